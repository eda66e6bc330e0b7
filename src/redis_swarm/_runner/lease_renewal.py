"""The renewal of a task's lease while its agent runs, and what the pool does when the
renewal finds the lease lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import ConnectionFailed, LeaseLost, NotFound, SwarmError, ValidationError
from .._models import Task, TaskStatus
from .outcomes import lease_unknown, task_gone

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["LeaseRenewal"]

OUTAGE_TICK_S = 1.0  # how soon a renewal that failed in an outage is tried again


@dataclass
class LeaseRenewal:
    """Renews the lease of the task an agent runs for, three times per lease, looked at every
    ``tick_s``: None while the agent is to run on; when the task is gone (cancelled,
    completed elsewhere, leased to another worker), why, also added to ``lost``, so that the
    agent is stopped. A renewal that fails in an outage is told to ``on_outage`` (which holds
    the pool's claims: the lease may run out meanwhile) and tried again within
    ``OUTAGE_TICK_S``; the first that Redis answers after it is told to ``on_back``.

    A lease lost is not always a task lost: the core takes the first report of an open task
    whatever the age of its token (docs/tasks.md). A claim of the pool whose reply was lost
    (a paused server runs the claims it received while paused when it wakes up) may lease
    again the task whose lease ran out meanwhile, a lease no slot holds. So a renewal
    refused with ``LeaseLost`` reads the task, and lets the agent run on (told once per
    holder and attempt to ``on_kept``) only when the pool proves the new lease its own
    (``adopt``: ``PoolState._adopt_orphan``, which renews it with a secret that claim sent,
    and hands it to the slot: ``token`` then gives it, and the renewals go on with it).
    Else it stops the agent: the task settled, back in its queue or dead-lettered (another
    worker will run it: a requeue, say, and its agent would run twice), or leased to a
    worker whose run it is (another process's, whatever its name)."""

    swarm: Swarm
    task: Task
    lease_s: float | None  # asked at each renewal (None: as the claim asked, claimed_lease_s)
    lost: list[str]  # why the pool stopped the agent, if it did
    token: Callable[[], str | None]  # the newest lease the pool holds of the task
    on_outage: Callable[[ConnectionFailed], None]
    on_back: Callable[[], None]
    # True when the task's new lease (the task as read) is proved the pool's and is now the
    # slot's: a claim of the pool whose reply was lost (see the class docstring)
    adopt: Callable[[Task], bool]
    on_kept: Callable[[str], None]  # why the agent runs on though its lease was lost
    # The first renewal due at once, not a third of a lease on: a lease taken over from a
    # holder that renewed it last some time ago (an MCP server restarted), its end unknown.
    at_once: bool = False
    _due: float = field(default=0.0, init=False)  # monotonic time of the next renewal
    _failing: bool = field(default=False, init=False)
    _kept: tuple[str, int] | None = field(default=None, init=False)  # told so

    def __post_init__(self) -> None:
        self._due = time.monotonic() + (0.0 if self.at_once else self.every_s)

    @property
    def every_s(self) -> float:
        """How often the lease is renewed while it holds."""
        return max(0.2, (self.lease_s or self.task.claimed_lease_s) / 3)

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
            why = task_gone(task.id)
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
            return task_gone(self.task.id)
        holder = now.worker if now.status is TaskStatus.CLAIMED else None
        if now.attempts < self.task.attempts or (
            holder is not None and now.attempts == self.task.attempts
        ):  # Redis counts no attempt of ours, or another lease took our attempt's number:
            return lease_unknown(self.task.id)  # the server lost the pool's claim
        if holder is None or now.attempts <= self.task.attempts:
            return str(exc)  # (settled, pending, dead: the core's words say it)
        if not self.adopt(now):  # (said here once: LeaseLost names the attempt only)
            return self._leased_again(now, holder)
        self._keep(now, holder)
        return None

    def _leased_again(self, now: Task, holder: str) -> str:
        """How the task went from this renewal's lease to ``holder``'s (``now``), in words
        its record proves: every lease that ended since this one's claim, this one among
        them, counted as run out (``abandons``, which only an expired lease counts); or
        this one the only lease ended, none run out, none failed, and none able to have run
        out unseen (a lease that dead-lettered it, ``max_abandons`` reached, and a requeue
        after it, which sets ``abandons`` back to 0): released, by its holder or by
        ``swarm task release``. Else (several leases since, a requeue) words true either
        way: the record cannot tell without a read of the task's events."""
        ended = now.attempts - self.task.attempts
        expired = now.abandons - self.task.abandons
        if expired == ended:
            how = "its lease ran out"
        elif (
            ended == 1
            and expired == 0
            and now.failed_attempt != self.task.attempts
            and self.task.abandons + 1 < now.max_abandons
        ):
            how = "it was released"
        else:
            how = "its lease ended"
        return f"{how} and {holder} leased it again (attempt {now.attempts})"

    def _keep(self, now: Task, holder: str) -> None:
        """Say why the agent runs on, once per lease of its task."""
        if (holder, now.attempts) == self._kept:
            return
        self._kept = (holder, now.attempts)
        self.on_kept(
            f"{now.id}: {self._leased_again(now, holder)} "
            "by a claim of this pool whose reply was lost, as through an outage; the slot holds "
            "that lease now, its agent runs on, the task's only run, and its report completes it"
        )
