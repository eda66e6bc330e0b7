"""The renewal of a task's lease while its agent runs, and what the pool does when the
renewal finds the lease lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import ConnectionFailed, LeaseLost, NotFound, SwarmError, ValidationError
from .._models import Task, TaskStatus

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["LeaseRenewal"]

OUTAGE_TICK_S = 1.0  # how soon a renewal that failed in an outage is tried again
GONE = "the task no longer exists"


@dataclass
class LeaseRenewal:
    """Renews the lease of the task an agent runs for, three times per lease, looked at every
    ``tick_s``: None while the agent is to run on; when the task is gone (cancelled,
    completed elsewhere, leased to another worker), why, also added to ``lost``, so that the
    agent is stopped. A renewal that fails in an outage is told to ``on_outage`` (which holds
    the pool's claims: the lease may run out meanwhile) and tried again within
    ``OUTAGE_TICK_S``; the first that Redis answers after it is told to ``on_back``.

    A lease lost is not always a task lost: the core takes the first report of an open task
    whatever the age of its token (docs/tasks.md). So a renewal refused with ``LeaseLost``
    reads the task, and stops the agent only when its report could not count or would
    duplicate another worker's run: the task settled (completed, cancelled) or leased to a
    worker that is not the pool's (``ours``). Else it runs on, told once per state to
    ``on_kept``: the task leased again to one of the pool's own workers (a claim whose
    reply was lost, which a paused server ran when it woke up: no slot holds that lease,
    and the agent is the only run of the task), back in its queue, or dead-lettered after
    its lease ran out. A claim of the pool that leases it then hands the lease to this
    agent's slot (``PoolState._adopted``); one by another worker stops the agent at the
    next renewal."""

    swarm: Swarm
    task: Task
    lease_s: int | None  # asked at each renewal (None: as the claim asked, else the task's)
    lost: list[str]  # why the pool stopped the agent, if it did
    token: Callable[[], str | None]  # the newest lease the pool holds of the task
    on_outage: Callable[[ConnectionFailed], None]
    on_back: Callable[[], None]
    ours: Callable[[str], bool]  # a worker id of this pool
    on_kept: Callable[[str], None]  # why the agent runs on though its lease was lost
    _due: float = field(default=0.0, init=False)  # monotonic time of the next renewal
    _failing: bool = field(default=False, init=False)
    _kept: tuple[str, str | None, int] | None = field(default=None, init=False)  # told so

    def __post_init__(self) -> None:
        self._due = time.monotonic() + self.every_s

    @property
    def every_s(self) -> float:
        """How often the lease is renewed while it holds."""
        return max(0.2, (self.lease_s or self.task.lease_s) / 3)

    @property
    def tick_s(self) -> float:
        return min(self.every_s, OUTAGE_TICK_S)

    def __call__(self) -> str | None:
        now = time.monotonic()
        if now < self._due:
            return None
        task, lost = self.task, self.lost
        try:
            try:
                self.swarm.renew(task.id, self.token(), lease_s=self.lease_s)
                why = None
            except LeaseLost as exc:
                why = self._lost_lease(exc)
        except ConnectionFailed as exc:  # an outage: try again soon
            self._failing = True
            self._due = time.monotonic() + OUTAGE_TICK_S
            self.on_outage(exc)
            return None
        except NotFound:
            why = GONE
        except SwarmError as exc:
            if isinstance(exc, ValidationError):
                raise
            why = str(exc)
        if why is not None:
            lost.append(why)
        else:
            self._due = now + self.every_s
            if self._failing:  # (Redis answered: the pool may claim again)
                self._failing = False
                self.on_back()
        return lost[-1] if lost else None

    def _lost_lease(self, exc: LeaseLost) -> str | None:
        """Why the agent must stop, the lease it runs under being lost (``exc``), or None
        when it runs on (see the class docstring)."""
        try:
            now = self.swarm.get_task(self.task.id)
        except NotFound:
            return GONE
        if now.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED):
            return str(exc)
        holder = now.worker if now.status is TaskStatus.CLAIMED else None
        if holder is not None and not self.ours(holder):
            return f"{exc}; worker {holder} holds it"
        self._keep(now, holder)
        return None

    def _keep(self, now: Task, holder: str | None) -> None:
        """Say why the agent runs on, once per state of its task."""
        state = (now.status.value, holder, now.attempts)
        if state == self._kept:
            return
        self._kept = state
        if holder is not None:
            said = (
                f"{now.id}: its lease ran out and {holder}, a worker of this pool, leased it "
                f"again (attempt {now.attempts}: a claim whose reply was lost, as through an "
                "outage); its agent runs on, the task's only run, and its report completes it"
            )
        else:
            said = (
                f"{now.id}: its lease ran out and the task is {now.status.value} now; its "
                "agent runs on, and its report completes it unless another worker's does first"
            )
        self.on_kept(said)
