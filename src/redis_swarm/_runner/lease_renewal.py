"""The renewal of a task's lease while its agent runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import ConnectionFailed, NotFound, SwarmError, ValidationError
from .._models import Task

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["LeaseRenewal"]


@dataclass(frozen=True)
class LeaseRenewal:
    """Renews the lease of the task an agent runs for, three times per lease (``tick_s``):
    None while it holds; when the task is gone (cancelled, completed elsewhere, its lease
    taken over), why, also added to ``lost``, so that the agent is stopped. An outage is
    noted with ``on_error`` and tried again at the next tick."""

    swarm: Swarm
    task: Task
    lease_s: int | None  # asked at each renewal (None: as the claim asked, else the task's)
    lost: list[str]  # why the pool stopped the agent, if it did
    on_error: Callable[[str], None]

    @property
    def tick_s(self) -> float:
        return max(0.2, (self.lease_s or self.task.lease_s) / 3)

    def __call__(self) -> str | None:
        task, lost = self.task, self.lost
        try:
            self.swarm.renew(task.id, task.token, lease_s=self.lease_s)
        except ConnectionFailed as exc:  # an outage: try again at the next tick
            self.on_error(f"renew of {task.id} failed (retrying): {exc}")
        except NotFound:
            lost.append("the task no longer exists")
        except SwarmError as exc:
            if isinstance(exc, ValidationError):
                raise
            lost.append(str(exc))
        return lost[-1] if lost else None
