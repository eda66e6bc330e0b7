"""One reader of the swarm's task events per A2A server, shared by every client that waits
on a task (``SendStreamingMessage``, ``SubscribeToTask``, a blocking ``SendMessage``).

Before, each such client followed the whole event stream itself: a thousand subscribers were
a thousand blocked ``XREAD`` connections, each reading every task event of the swarm to keep
the few of its own task. Now one reader follows the stream while anyone listens, and hands
each event to the listeners of its task (a queue each).

A listener may want events older than the reader's position (a resume from a
``Last-Event-ID``, or a position pinned before the reader started). It registers first,
then reads that backlog from the stream itself (``events``, bounded pages), and then takes
its queue, skipping what the backlog already gave: registration and the reader's hand-out of
a batch both run without an await between them, so every event is either in the backlog
read (at or before the reader's position when the listener registered) or in the queue.

A stopping server ``close``s the feed: every listener's events end (a stream then ends as a
stream does, a blocking wait answers with the task as it is), and so does every later one's.

``updates_of`` says what a client hears of one event (a stream's, a webhook's). Any writer
of the event stream may add a task event (a worker's user may): a completion naming a
finding that does not exist ended every open stream of its task, and each resume of it,
with "task not found", though the task was there. Such an event is not believed: the task's
record says its state (see ``updates_of``), and the log says so in one line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from a2a.types import TaskArtifactUpdateEvent, TaskStatusUpdateEvent

from .._client import AsyncSwarm
from .._errors import NotFound, ValidationError
from .._models import Event, EventType, Finding
from .._models import Task as SwarmTask
from .._models import TaskStatus as SwarmStatus
from ._convert import updates

__all__ = ["TaskFeed", "stream_order", "updates_of"]

log = logging.getLogger(__name__)

# Events read per page of a listener's backlog.
BACKLOG_PAGE = 1000

# What a listener's queue holds: an event, the reader's error, or None (the feed is closed).
Item = Event | BaseException | None


def stream_order(event_id: str) -> tuple[int, int]:
    """An event stream id (``MS-SEQ``) as numbers, to compare two ids."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class TaskFeed:
    """The task events of ``swarm``, read once and handed to the listeners of each task."""

    def __init__(self, swarm: AsyncSwarm, block_s: float) -> None:
        self.swarm = swarm
        self.block_s = block_s
        self._listeners: dict[str, set[asyncio.Queue[Item]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._position = "0-0"  # the newest event the reader has handed out (or its start)
        self._closed = False

    @property
    def listening(self) -> int:
        """How many listeners are registered (for tests and the server's own checks)."""
        return sum(len(queues) for queues in self._listeners.values())

    async def events(self, task_id: str, after: str) -> AsyncGenerator[Event]:
        """The task events of ``task_id`` after the event id ``after``, in order, each once,
        until the caller stops or the feed is closed; an error of the reader is raised here."""
        if self._reader is None:
            start = await self.swarm.last_event_id()
            if self._reader is None:  # (another listener may have started it meanwhile)
                self._position = start
                self._reader = asyncio.create_task(self._read(start))
        queue: asyncio.Queue[Item] = asyncio.Queue()
        self._listeners.setdefault(task_id, set()).add(queue)
        if self._closed:
            queue.put_nowait(None)
        reader_at = self._position
        try:
            last = after
            async for event in self._backlog(task_id, after, reader_at):
                last = event.id
                yield event
            while True:
                item = await queue.get()
                if item is None:  # closed
                    return
                if isinstance(item, BaseException):
                    raise item
                if stream_order(item.id) > stream_order(last):
                    last = item.id
                    yield item
        finally:
            self._leave(task_id, queue)

    async def _backlog(self, task_id: str, after: str, upto: str) -> AsyncIterator[Event]:
        """The events of ``task_id`` after ``after`` up to the reader's position ``upto`` at
        least (a page may read past it; the queue's copies are then skipped)."""
        cursor = after
        while stream_order(cursor) < stream_order(upto):
            page = await self.swarm.events(since=cursor, types="task", limit=BACKLOG_PAGE)
            for event in page:
                if event.fields.get("task") == task_id:
                    yield event
            if len(page) < BACKLOG_PAGE:
                return
            cursor = page[-1].id

    def close(self) -> None:
        """End every listener's events, now and from now on (the server is stopping)."""
        self._closed = True
        for queues in self._listeners.values():
            for queue in queues:
                queue.put_nowait(None)

    def _leave(self, task_id: str, queue: asyncio.Queue[Item]) -> None:
        queues = self._listeners.get(task_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._listeners[task_id]
        if not self._listeners and self._reader is not None:
            # Nobody listens: no connection stays blocked for nothing. The next listener
            # starts a reader again, from the newest event, and reads its own backlog.
            self._reader.cancel()
            self._reader = None

    async def _read(self, start: str) -> None:
        try:
            async for event in self.swarm.follow_events(
                since=start, types="task", block_s=self.block_s
            ):
                # (no await until the position moves: see the module's docstring)
                for queue in self._listeners.get(event.fields.get("task", ""), ()):
                    queue.put_nowait(event)
                self._position = event.id
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every listener hears it; the next one starts again
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._reader is asyncio.current_task():
            self._reader = None
        for queues in self._listeners.values():
            for queue in queues:
                queue.put_nowait(exc)


async def updates_of(
    swarm: AsyncSwarm, event: Event, task: SwarmTask
) -> list[TaskStatusUpdateEvent | TaskArtifactUpdateEvent]:
    """What a client hears of ``event`` of ``task`` (``_convert.updates``), a completion's
    finding read. A completion naming a finding that does not exist (see the module) is the
    task's record's word: an update with the record's own finding when the task is
    completed, else none (skipped); either way one line in the log."""
    finding = None
    named = event.fields.get("finding")
    if event.type == EventType.TASK_COMPLETED and named:
        try:
            finding = await swarm.get_finding(named)
        except (NotFound, ValidationError):
            said = (
                f"task event {event.id} says task {task.id} completed with finding "
                f"{named[:80]!r}, which does not exist"
            )
            if task.status != SwarmStatus.COMPLETED:
                log.warning("%s, and the task is %s: the event is skipped", said, task.status.value)
                return []
            finding = await _own_finding(swarm, task)
            log.warning("%s: its update carries the task's own finding", said)
    return updates(event, task, finding)


async def _own_finding(swarm: AsyncSwarm, task: SwarmTask) -> Finding | None:
    if not task.finding_id:
        return None
    try:
        return await swarm.get_finding(task.finding_id)
    except (NotFound, ValidationError):
        return None
