"""One reader of the swarm's task events per A2A server, shared by every client that waits
on a task (``SendStreamingMessage``, ``SubscribeToTask``, a blocking ``SendMessage``).

Before, each such client followed the whole event stream itself: a thousand subscribers were
a thousand blocked ``XREAD`` connections, each reading every task event of the swarm to keep
the few of its own task. ``TaskFeed`` is the core's ``EventFanout`` (``_event_fanout``: one
follower while anyone listens, a listener's backlog read in pages then its queue, each event
once) following the task events, each waiter a listener of its task's (``events``).

A listener's queue is bounded (``BUFFER`` events): a client that reads its stream more
slowly than its task's events come is ended with ``FellBehind`` (an error, as a stream
ends when following fails), told to subscribe again from its last update, rather than
buffered without end. A stopping server ``close``s the feed: every listener's events end (a
stream then ends as a stream does, a blocking wait answers with the task as it is), and so
does every later one's.

``updates_of`` says what a client hears of one event (a stream's, a webhook's). Any writer
of the event stream may add a task event (a worker's user may): a completion naming a
finding that does not exist ended every open stream of its task, and each resume of it,
with "task not found", though the task was there; one naming another task's finding gave
the task that finding as its artifact; one naming no finding, or a ``task.dead`` or
``task.cancelled``, ended every stream and the pushes with a final state the task did not
have (completed without an artifact, failed while the task was still submitted). Such an
event is not believed: the task's record says its state (see ``updates_of``), and the log
says so in one line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator

from a2a.types import TaskArtifactUpdateEvent, TaskStatusUpdateEvent

from .._client import AsyncSwarm
from .._errors import NotFound, ValidationError
from .._event_fanout import BUFFER, Closed, EventFanout
from .._models import Event, EventType, Finding
from .._models import Task as SwarmTask
from .._printable import short
from ._convert import belied, updates

__all__ = ["TaskFeed", "updates_of"]

log = logging.getLogger(__name__)


class TaskFeed(EventFanout):
    """The task events of ``swarm``, read once and handed to the listeners of each task
    (at most ``buffer`` waiting for each)."""

    def __init__(self, swarm: AsyncSwarm, block_s: float, *, buffer: int = BUFFER) -> None:
        super().__init__(
            swarm, types="task", block_s=block_s, buffer=buffer,
            rejoin="subscribe again (SubscribeToTask) with the id of the last update it "
            "received as Last-Event-ID",
        )  # fmt: skip

    async def events(self, task_id: str, after: str) -> AsyncGenerator[Event]:
        """The task events of ``task_id`` after the event id ``after``, in order, each once,
        until the caller stops or the feed is closed; an error of the reader, or
        ``FellBehind``, is raised here."""
        listener = await self.listen(after, where=lambda event: event.fields.get("task") == task_id)
        try:
            with contextlib.suppress(Closed):
                while (event := await listener.next()) is not None:  # (None: never, untimed)
                    yield event
        finally:
            listener.close()


async def updates_of(
    swarm: AsyncSwarm, event: Event, task: SwarmTask
) -> list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
    """What a client hears of ``event`` of ``task`` (``_convert.updates``), a completion's
    finding read. The task's record says its state (see the module): an event saying the
    task settled (completed, dead, cancelled) while the record says otherwise is skipped
    (``belied``); a completion of a completed task naming no finding, one that does not
    exist or another task's, carries the record's own finding. Either way one line in the
    log."""
    said = belied(event, task)
    if said is not None:
        log.warning(
            "task event %s says task %s is %s, but the task is %s: the event is skipped",
            event.id, task.id, said.value, task.status.value,
        )  # fmt: skip
        return []
    finding = None
    if event.type == EventType.TASK_COMPLETED:  # (the task is completed: not belied)
        named = event.fields.get("finding")
        finding = await _finding_of(swarm, named, task)
        if finding is None:
            finding = await _finding_of(swarm, task.finding_id, task)
            what = (
                f"finding {short(named)!r}, which does not exist or is another task's"
                if named
                else "no finding"
            )
            log.warning(
                "task event %s says task %s completed with %s: its update carries the task's "
                "own finding",
                event.id, task.id, what,
            )  # fmt: skip
    return updates(event, task, finding)


async def _finding_of(swarm: AsyncSwarm, finding_id: str | None, task: SwarmTask) -> Finding | None:
    """Finding ``finding_id`` when it exists and is ``task``'s, else None."""
    if not finding_id:
        return None
    try:
        finding = await swarm.get_finding(finding_id)
    except (NotFound, ValidationError):
        return None
    return finding if finding.task_id == task.id else None
