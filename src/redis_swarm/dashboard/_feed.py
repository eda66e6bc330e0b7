"""The event stream, read with a timeout: what ``swarm watch`` follows (``EventFeed``), and
what every event stream of the dashboard shares (``EventHub``).

``follow_events`` blocks until an event comes; a view also needs to wake up when nothing
happens (a keepalive line, a clock that ticks). Cancelling a blocked async generator would
end it, so a background task follows the stream into a queue and the view reads the queue
with a timeout.

A follower holds one of the handle's connections for as long as it follows (a blocked
``XREAD``). The dashboard's streams once had one each: a hundred open tabs (or ``curl -N``)
took every connection of its handle, and every other request was refused. ``EventHub`` is
one follower while anyone listens (none when nobody does), handing each event to every
open stream's queue (as ``a2a_server``'s ``TaskFeed`` does for its tasks): viewers cost no
connection. A stream that resumes from an older event (``Last-Event-ID``) reads that backlog
itself, in pages, then its queue, skipping what the backlog already gave: registering a
stream and handing out an event both run without an await, so every event is in one of the
two. A queue is bounded: a client that reads more slowly than events come is dropped
(``FellBehind``) rather than buffered without end; a browser reconnects and resumes from the
last event it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

from .._client import AsyncSwarm, raise_if_cancelled
from .._models import Event, EventType

__all__ = ["MAX_STREAMS", "STREAM_BUFFER", "EventFeed", "EventHub", "FellBehind", "Stream",
           "TooManyStreams"]  # fmt: skip

# The most event streams one dashboard serves at once (each a task, a socket and a queue,
# but no Redis connection): the one over it is refused (503) rather than served.
MAX_STREAMS = 200
# The most events waiting for one stream's client: one that falls further behind is dropped.
STREAM_BUFFER = 1000
# Events read per page of a stream's backlog (the events before the follower's position).
BACKLOG_PAGE = 1000

T = TypeVar("T")


class EventFeed:
    """Events after ``since`` (an event id; a time in epoch ms: from then on, inclusive;
    None: from now on), in order, read with ``next(timeout)``."""

    def __init__(
        self,
        swarm: AsyncSwarm,
        since: str | int | None = None,
        types: Sequence[EventType] | None = None,
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


def _order(event_id: str | int) -> tuple[int, int]:
    """An event id (``MS-SEQ``) as numbers, to compare two ids; a time in epoch ms (a
    ``since`` that starts at it, inclusive) as just before its first id."""
    if isinstance(event_id, int):
        return event_id, -1
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class FellBehind(Exception):
    """A stream's client read its events more slowly than they came, and its queue
    (``STREAM_BUFFER`` events) filled: it was dropped, and may resume from its last event."""


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


# What a stream's queue holds: an event, or the follower's error (or FellBehind: dropped).
_Item = Event | BaseException


class EventHub:
    """One follower of ``swarm``'s events for every stream open on it (``open``).

    ``gate``: entered around each short call a stream makes (the follower's start, a page of
    a backlog), as the dashboard's requests are (see ``app._Gate``); ``on_error``: told when
    the follower fails (the dashboard logs an outage); ``most``: streams served at once."""

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
        self.swarm = swarm
        self.most = most
        self.buffer = buffer
        self.block_s = block_s
        self._gate = gate
        self._on_error = on_error
        self._streams: set[Stream] = set()
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._closed = False  # (aclose: no follower starts again)
        self._position = "0-0"  # the newest event the follower handed out (or its start)

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return len(self._streams)

    @property
    def following(self) -> bool:
        """Whether a follower runs (it does only while a stream is open)."""
        return self._reader is not None

    def full(self) -> bool:
        return len(self._streams) >= self.most

    async def open(self, since: str | int | None, types: Sequence[EventType] | None) -> Stream:
        """A stream of the events after ``since`` (an event id; a time in epoch ms: from
        then on, inclusive; None: from now on), of ``types`` (None: all). Raises
        ``TooManyStreams`` when ``most`` are open, and what starting the follower raised
        (Redis out of reach). ``Stream.close`` it."""
        if self._closed:
            raise HubStopped()
        if self.full():
            raise TooManyStreams(self.most)
        if self._reader is None:
            async with self._starting:
                if self._reader is None and not self._closed:
                    start = await self.call(self.swarm.last_event_id)
                    self._position = start
                    self._reader = asyncio.create_task(self._follow(start))
        if self.full():  # (others opened while the follower started)
            raise TooManyStreams(self.most)
        # (no await from here on: the stream's backlog ends where its queue begins)
        stream = Stream(self, self._position if since is None else since, self._position, types)
        self._streams.add(stream)
        return stream

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` (a short one: a page of a backlog), through the gate."""
        if self._gate is None:
            return await call()
        async with self._gate:
            return await call()

    def leave(self, stream: Stream) -> None:
        """``stream`` is closed (its client gone)."""
        self._streams.discard(stream)
        if not self._streams and self._reader is not None:
            # Nobody listens: no connection stays blocked for nothing. The next stream
            # starts a follower again, from the newest event, and reads its own backlog.
            self._reader.cancel()
            self._reader = None

    async def aclose(self) -> None:
        """Stop the follower and end every open stream (the app is shutting down); no
        stream opens after."""
        self._closed = True
        for stream in list(self._streams):
            stream.hand(HubStopped())
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _follow(self, start: str) -> None:
        try:
            async for event in self.swarm.follow_events(since=start, block_s=self.block_s):
                # (no await until the position moves: see the module's docstring)
                for stream in list(self._streams):
                    stream.hand(event)
                self._position = event.id
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every stream hears it; the next one starts again
            if self._reader is asyncio.current_task():
                self._reader = None
            for stream in self._streams:
                stream.hand(exc)
            if self._on_error is not None:
                self._on_error(exc)


class Stream:
    """One client's events (``EventHub.open``): its backlog, then what the follower hands it,
    each once, in order, read with ``next(timeout)``."""

    def __init__(
        self, hub: EventHub, since: str | int, upto: str, types: Sequence[EventType] | None
    ) -> None:
        self._hub = hub
        self._types = frozenset(types) if types else None
        self._queue: deque[_Item] = deque()
        self._ready = asyncio.Event()
        self._last = _order(since)  # the newest event given (or where it starts)
        self._since: str | int = since  # where the next page of the backlog starts
        self._upto = _order(upto)  # the follower's position when it opened
        self._backlog: deque[Event] = deque()
        self._backlog_read = self._last >= self._upto
        self._dropped = False

    def hand(self, item: _Item) -> None:
        """(The follower's) one event for this stream, or its error."""
        if self._dropped:
            return
        if isinstance(item, Event) and self._types is not None and item.type not in self._types:
            return
        if isinstance(item, Event) and len(self._queue) >= self._hub.buffer:
            self._dropped = True
            self._queue.clear()  # (its memory goes now, not when the client leaves)
            item = FellBehind(
                f"this client fell more than {self._hub.buffer} events behind the swarm and "
                "was dropped: reconnect with the id of the last event it received (a browser "
                "does, by itself)"
            )
        self._queue.append(item)
        self._ready.set()

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None when none came within ``timeout`` seconds. Raises what
        the follower raised (once the events before it were read), a backlog's read error,
        or ``FellBehind``."""
        event = await self._from_backlog()
        if event is not None:
            return event
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, BaseException):
                    raise item
                if _order(item.id) > self._last:  # (not one the backlog gave)
                    self._last = _order(item.id)
                    return item
            self._ready.clear()
            left = deadline - loop.time()
            if left <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), left)

    async def _from_backlog(self) -> Event | None:
        """The next event of the backlog (before the follower's position when the stream
        opened), read a page at a time; None once it is all given."""
        while not self._backlog and not self._backlog_read:
            read = functools.partial(
                self._hub.swarm.events, since=self._since, types=self._types, limit=BACKLOG_PAGE
            )
            page = await self._hub.call(read)
            self._backlog.extend(page)
            if len(page) < BACKLOG_PAGE:
                self._backlog_read = True
            else:
                self._since = page[-1].id
                self._backlog_read = _order(self._since) >= self._upto
        if not self._backlog:
            return None
        event = self._backlog.popleft()
        self._last = _order(event.id)
        return event

    def close(self) -> None:
        """The client is gone: it stops listening (the last one stops the follower)."""
        self._hub.leave(self)
