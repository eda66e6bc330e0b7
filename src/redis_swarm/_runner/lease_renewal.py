"""The renewal of a task's lease while its agent runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import ConnectionFailed, NotFound, SwarmError, ValidationError
from .._models import Task

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["LeaseRenewal"]

OUTAGE_TICK_S = 1.0  # how soon a renewal that failed in an outage is tried again


@dataclass
class LeaseRenewal:
    """Renews the lease of the task an agent runs for, three times per lease, looked at every
    ``tick_s``: None while it holds; when the task is gone (cancelled, completed elsewhere,
    its lease taken over), why, also added to ``lost``, so that the agent is stopped. A
    renewal that fails in an outage is told to ``on_outage`` (which holds the pool's
    claims: the lease may run out meanwhile) and tried again within ``OUTAGE_TICK_S``; the
    first that succeeds after it is told to ``on_back``."""

    swarm: Swarm
    task: Task
    lease_s: int | None  # asked at each renewal (None: as the claim asked, else the task's)
    lost: list[str]  # why the pool stopped the agent, if it did
    token: Callable[[], str | None]  # the newest lease the pool holds of the task
    on_outage: Callable[[ConnectionFailed], None]
    on_back: Callable[[], None]
    _due: float = field(default=0.0, init=False)  # monotonic time of the next renewal
    _failing: bool = field(default=False, init=False)

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
            self.swarm.renew(task.id, self.token(), lease_s=self.lease_s)
        except ConnectionFailed as exc:  # an outage: try again soon
            self._failing = True
            self._due = time.monotonic() + OUTAGE_TICK_S
            self.on_outage(exc)
            return None
        except NotFound:
            lost.append("the task no longer exists")
        except SwarmError as exc:
            if isinstance(exc, ValidationError):
                raise
            lost.append(str(exc))
        else:
            self._due = now + self.every_s
            if self._failing:
                self._failing = False
                self.on_back()
        return lost[-1] if lost else None
