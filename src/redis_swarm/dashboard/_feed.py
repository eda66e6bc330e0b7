"""The event stream, read with a timeout: what ``swarm watch`` follows (``EventFeed``), and
what every event stream of the dashboard shares (``EventHub``).

``follow_events`` blocks until an event comes; a view also needs to wake up when nothing
happens (a keepalive line, a clock that ticks). Cancelling a blocked async generator would
end it, so a background task follows the stream into a queue and the view reads the queue
with a timeout.

The dashboard's streams once had a follower each, a connection each: a hundred open tabs
(or ``curl -N``) took every connection of its handle, and every other request was refused.
``EventHub`` is the core's ``EventFanout`` (one follower while anyone listens, its backlog
and queue seam, its bounded queues: ``_event_fanout``), each stream a listener (a
``Stream``) read with ``next(timeout)`` for its keepalive; what is the dashboard's own is
here: at most ``MAX_STREAMS`` open (``TooManyStreams``), none once it stops
(``HubStopped``), and a client that falls behind told that its browser reconnects by itself
(``FellBehind``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from types import TracebackType

from .._client import AsyncSwarm, raise_if_cancelled
from .._event_fanout import BUFFER, EventFanout, FellBehind
from .._event_fanout import Listener as Stream
from .._models import Event, EventType

__all__ = ["MAX_STREAMS", "STREAM_BUFFER", "EventFeed", "EventHub", "FellBehind", "HubStopped",
           "Stream", "TooManyStreams"]  # fmt: skip

# The most event streams one dashboard serves at once (each a task, a socket and a queue,
# but no Redis connection): the one over it is refused (503) rather than served.
MAX_STREAMS = 200
# The most events waiting for one stream's client: one that falls further behind is dropped.
STREAM_BUFFER = BUFFER


class EventFeed:
    """Events after ``since`` (an event id; a time in epoch ms: from then on, inclusive;
    None: from now on), in order, read with ``next(timeout)``."""

    def __init__(
        self,
        swarm: AsyncSwarm,
        since: str | int | None = None,
        types: Sequence[EventType | str] | None = None,
        *,
        buffer: int = 1000,
    ) -> None:
        self._swarm = swarm
        self._since = since
        self._types = list(types) if types else None
        # Bounded: a reader that stops reading stops the follower too (backpressure).
        self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue(maxsize=buffer)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventFeed:
        if self._since is None:
            # Pin "now" before the caller is told the feed is open: an event appended right
            # after that must be delivered, not skipped by a follower that starts late.
            self._since = await self._swarm.last_event_id()
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _follow(self) -> None:
        try:
            async for event in self._swarm.follow_events(since=self._since, types=self._types):
                await self._queue.put(event)
        except Exception as exc:  # handed to the reader, which decides how to report it
            await self._queue.put(exc)

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None if none came within ``timeout`` seconds.

        Raises what the follower raised (a lost connection, say) once the events that came
        before it were read; and CancelledError when the calling task was asked to stop,
        even where that request was lost (``raise_if_cancelled``: a ``wait_for`` of Python
        3.11, this one or one of redis-py's in the caller's turn, that finished as the
        request came), so that a view that loops on ``next`` stops on Ctrl-C.
        """
        raise_if_cancelled()
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            raise_if_cancelled()
        if isinstance(item, BaseException):
            raise item
        return item

    def drain(self) -> list[Event]:
        """The events already waiting, without blocking (a burst, handled as one change)."""
        events: list[Event] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, BaseException):
                # Put it back for the next ``next()``: the events before it come first.
                self._queue.put_nowait(item)
                break
            events.append(item)
        return events


class TooManyStreams(Exception):
    """The dashboard already serves its most event streams (``MAX_STREAMS``)."""

    def __init__(self, most: int) -> None:
        super().__init__(
            f"the dashboard already serves {most} event streams, its most: close one (another "
            "tab of it) and try again"
        )


class HubStopped(Exception):
    """The dashboard is shutting down: no stream opens, and those open end with it."""

    def __init__(self) -> None:
        super().__init__("the dashboard is stopping: open it again once it runs")


class EventHub(EventFanout):
    """One follower of ``swarm``'s events for every stream open on it (``open``): an
    ``EventFanout`` whose listeners are the dashboard's streams, at most ``most``.

    ``gate``: entered around each short call a stream makes (the follower's start, a page of
    a backlog), as the dashboard's requests are (see ``app._Gate``); ``on_error``: told when
    the follower fails (the dashboard logs an outage)."""

    def __init__(
        self,
        swarm: AsyncSwarm,
        *,
        gate: contextlib.AbstractAsyncContextManager[object] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        most: int = MAX_STREAMS,
        buffer: int = STREAM_BUFFER,
        block_s: float = 5.0,
    ) -> None:
        super().__init__(
            swarm, block_s=block_s, buffer=buffer, gate=gate, on_error=on_error,
            rejoin="reconnect with the id of the last event it received (a browser does, by "
            "itself)",
            ended=HubStopped,
        )  # fmt: skip
        self.most = most

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return self.listening

    def full(self) -> bool:
        return self.listening >= self.most

    async def open(
        self, since: str | int | None, types: Sequence[EventType | str] | None
    ) -> Stream:
        """A stream of the events after ``since`` (an event id; a time in epoch ms: from
        then on, inclusive; None: from now on), of ``types`` (None: all). Raises
        ``TooManyStreams`` when ``most`` are open, ``HubStopped`` once closed, and what
        starting the follower raised (Redis out of reach). ``Stream.close`` it."""
        if self.closed:
            raise HubStopped()
        if self.full():
            raise TooManyStreams(self.most)
        stream = await self.listen(since, types=types)
        if self.listening > self.most:  # (others opened while the follower started)
            stream.close()
            raise TooManyStreams(self.most)
        return stream
