"""The one place that says which A2A task state each swarm status is, and which status each
task event leaves a task in (docs/a2a.md draws the same table)."""

from __future__ import annotations

from a2a.types import TaskState

from .._models import EventType, TaskStatus

__all__ = ["STATE_OF", "STATUS_AFTER", "TERMINAL", "statuses_in"]

STATE_OF: dict[TaskStatus, TaskState] = {
    TaskStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    TaskStatus.DELAYED: TaskState.TASK_STATE_SUBMITTED,
    TaskStatus.CLAIMED: TaskState.TASK_STATE_WORKING,
    TaskStatus.COMPLETED: TaskState.TASK_STATE_COMPLETED,
    TaskStatus.DEAD: TaskState.TASK_STATE_FAILED,
    TaskStatus.CANCELLED: TaskState.TASK_STATE_CANCELED,
}

# The events that change what an A2A client sees; the others (renewed, failed before a retry
# or the dead letter, a delayed task falling due, findings) leave the state as it was.
STATUS_AFTER: dict[EventType, TaskStatus] = {
    EventType.TASK_POSTED: TaskStatus.PENDING,
    EventType.TASK_CLAIMED: TaskStatus.CLAIMED,
    EventType.TASK_RELEASED: TaskStatus.PENDING,
    EventType.TASK_EXPIRED: TaskStatus.PENDING,
    EventType.TASK_RETRIED: TaskStatus.PENDING,
    EventType.TASK_REQUEUED: TaskStatus.PENDING,
    EventType.TASK_COMPLETED: TaskStatus.COMPLETED,
    EventType.TASK_DEAD: TaskStatus.DEAD,
    EventType.TASK_CANCELLED: TaskStatus.CANCELLED,
}

TERMINAL = frozenset(
    {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED}
)


def statuses_in(state: TaskState) -> list[TaskStatus]:
    """The swarm statuses an A2A state stands for (empty: none of ours, e.g. input-required)."""
    return [status for status, mapped in STATE_OF.items() if mapped == state]
