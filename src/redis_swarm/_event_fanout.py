"""One follower of the swarm's event log, handed out to many listeners: what the dashboard's
event streams (``dashboard/_feed.EventHub``) and the A2A server's waiters on a task
(``a2a_server/_feed.TaskFeed``) are both built on.

A follower holds one of the handle's connections for as long as it follows (a blocked
``XREAD``). A follower per listener was a connection per open tab, per A2A subscriber: a
hundred of them took every connection of the handle, and each read every event of the swarm
to keep a few. ``EventFanout`` is one follower while anyone listens (none when nobody does),
handing each event to every listener whose types and predicate (``where``: the A2A one, its
task) want it, into that listener's queue: listeners cost no connection.

A listener that resumes from an older event (a ``Last-Event-ID``, a position pinned before
the follower started) reads that backlog itself, in pages (``events``, through the gate),
then its queue, skipping what the backlog already gave: registering a listener and handing
out an event both run without an await, so every event is either in the backlog (at or
before the follower's position when the listener registered) or in the queue.

A queue is bounded (``buffer``): a listener whose client reads more slowly than events come
is dropped (``FellBehind``, its queue freed) rather than buffered without end; its client
resumes from the last event it got. Not one still reading the pages of its backlog: live
events filling its queue then say nothing of its pace (a long backlog takes a while), so its
queue is freed and its backlog made to reach past them (the log holds them too), and it
catches up. The follower's error reaches every listener (once the events before it were
read; ``on_error`` hears it too) and the next listener starts a follower again. ``close``
ends every listener, now and later (``ended``: what each one's ``next`` raises then), and no
follower starts again: a listener after it is handed its end without a call to Redis.
``aclose`` waits for every follower stopped (by it, or when the last listener left), so that
none outlives the fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from ._client import AsyncSwarm
from ._errors import SwarmError
from ._models import Event, EventType, event_order, type_filter, type_wanted

__all__ = ["BACKLOG_PAGE", "BUFFER", "Closed", "EventFanout", "FellBehind", "Listener"]

# The most events waiting for one listener: one that falls further behind is dropped.
BUFFER = 1000
# Events read per page of a listener's backlog (the events before the follower's position).
BACKLOG_PAGE = 1000

# What a listener asks for by type: as ``events`` and ``follow_events`` take them.
Types = Iterable[EventType | str] | EventType | str | None
T = TypeVar("T")


class FellBehind(SwarmError):
    """A listener's client read its events more slowly than they came, and its queue
    (``most`` events) filled: it was dropped, and may resume from its last event."""

    def __init__(self, most: int, rejoin: str) -> None:
        super().__init__(
            f"this client fell more than {most} events behind the swarm and was dropped: {rejoin}"
        )


class Closed(SwarmError):
    """The fan-out was closed (its server is stopping): a listener's events end here."""

    def __init__(self) -> None:
        super().__init__(
            "the event fan-out was closed (its server is stopping): listen again once it runs"
        )


class EventFanout:
    """One follower of ``swarm``'s events (of ``types``) for every listener on it
    (``listen``).

    ``gate``: entered around each short call a listener makes (the follower's start, a page of
    a backlog), as the face's requests are; ``on_error``: told when the follower fails;
    ``buffer``: the most events waiting for one listener; ``rejoin``: what a dropped
    listener's client is told to do (``FellBehind``); ``ended``: what each listener's
    ``next`` raises once the fan-out is closed."""

    def __init__(
        self,
        swarm: AsyncSwarm,
        *,
        types: Types = None,
        block_s: float = 5.0,
        buffer: int = BUFFER,
        gate: contextlib.AbstractAsyncContextManager[object] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        rejoin: str = "listen again from the last event it received",
        ended: Callable[[], BaseException] = Closed,
    ) -> None:
        self.swarm = swarm
        self.types = types
        self.block_s = block_s
        self.buffer = buffer
        self.rejoin = rejoin
        self.ended = ended
        self._gate = gate
        self._on_error = on_error
        self._listeners: set[Listener] = set()
        self._reader: asyncio.Task[None] | None = None
        # Followers cancelled and not yet ended (``leave``, ``close``): ``aclose`` waits.
        self._stopping: set[asyncio.Task[None]] = set()
        self._starting = asyncio.Lock()
        self._position = "0-0"  # the newest event the follower handed out (or its start)
        self.closed = False

    @property
    def listening(self) -> int:
        """How many listeners are registered."""
        return len(self._listeners)

    @property
    def following(self) -> bool:
        """Whether a follower runs (it does only while someone listens)."""
        return self._reader is not None

    async def listen(
        self,
        since: str | int | None,
        *,
        types: Types = None,
        where: Callable[[Event], bool] | None = None,
    ) -> Listener:
        """A listener of the events after ``since`` (an event id; a time in epoch ms: from
        then on, inclusive; None: from now on) of ``types`` (None: all the follower's) for
        which ``where`` holds (None: every one). Raises what starting the follower raised
        (Redis out of reach). ``Listener.close`` it. Once closed, a listener still gets its
        backlog, then its end (and no follower is started for it: nothing is asked of
        Redis here, which may be gone with the server that closed it)."""
        if self._reader is None and not self.closed:
            async with self._starting:
                if self._reader is None and not self.closed:
                    start = await self.call(self.swarm.last_event_id)
                    self._position = start
                    if not self.closed:  # (nor when it closed during that call)
                        self._reader = asyncio.create_task(self._follow(start))
        # (no await from here on: the listener's backlog ends where its queue begins)
        after = self._position if since is None else since
        listener = Listener(self, after, self._position, types or self.types, where)
        self._listeners.add(listener)
        if self.closed:
            listener.hand(self.ended())
        return listener

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` (a short one: a page of a backlog), through the gate."""
        if self._gate is None:
            return await call()
        async with self._gate:
            return await call()

    def leave(self, listener: Listener) -> None:
        """``listener`` is closed (its client gone)."""
        self._listeners.discard(listener)
        if not self._listeners and self._reader is not None:
            # Nobody listens: no connection stays blocked for nothing. The next listener
            # starts a follower again, from the newest event, and reads its own backlog.
            self._stop_reader()

    def close(self) -> None:
        """End every listener's events, now and from now on (the server is stopping): each
        one's ``next`` raises ``ended()`` once the events before it were read."""
        self.closed = True
        for listener in list(self._listeners):
            listener.hand(self.ended())
        if self._reader is not None:
            self._stop_reader()

    def _stop_reader(self) -> None:
        """Cancel the follower; kept until it has ended, for ``aclose`` to wait for."""
        reader = self._reader
        assert reader is not None
        self._reader = None
        reader.cancel()
        self._stopping.add(reader)
        reader.add_done_callback(self._stopping.discard)

    async def aclose(self) -> None:
        """``close``, and wait for every follower stopped to end (the one ``close``
        stopped, and those stopped before it when their last listener left)."""
        self.close()
        for reader in list(self._stopping):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _follow(self, start: str) -> None:
        try:
            async for event in self.swarm.follow_events(
                since=start, types=self.types, block_s=self.block_s
            ):
                # (no await until the position moves: see the module's docstring)
                for listener in list(self._listeners):
                    listener.hand(event)
                self._position = event.id
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every listener hears it; the next one starts again
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._reader is asyncio.current_task():
            self._reader = None
        for listener in list(self._listeners):
            listener.hand(exc)
        if self._on_error is not None:
            self._on_error(exc)


# What a listener's queue holds: an event, or the follower's error (or FellBehind: dropped;
# or the fan-out's end).
_Item = Event | BaseException


class Listener:
    """One client's events (``EventFanout.listen``): its backlog, then what the follower
    hands it, each once, in order, read with ``next``."""

    def __init__(
        self,
        fanout: EventFanout,
        since: str | int,
        upto: str,
        types: Types,
        where: Callable[[Event], bool] | None,
    ) -> None:
        self._fanout = fanout
        self._types = types
        self._filter = type_filter(types)
        self._where = where
        self._queue: deque[_Item] = deque()
        self._ready = asyncio.Event()
        self._last = event_order(since)  # the newest event given (or where it starts)
        self._since: str | int = since  # where the next page of the backlog starts
        self._upto = event_order(upto)  # the follower's position when it registered
        self._backlog: deque[Event] = deque()
        self._backlog_read = self._last >= self._upto
        self._dropped = False

    def wants(self, event: Event) -> bool:
        """Whether ``event`` is one of this listener's (its types, its predicate)."""
        return type_wanted(event.type.value, self._filter) and (
            self._where is None or self._where(event)
        )

    def hand(self, item: _Item) -> None:
        """(The follower's) one event for this listener, or an error that ends it."""
        if self._dropped or (isinstance(item, Event) and not self.wants(item)):
            return
        if isinstance(item, Event) and len(self._queue) >= self._fanout.buffer:
            if not self._backlog_read:
                # Still reading its backlog, page by page: no sign it reads slowly. Its
                # backlog is made to reach this event (the log holds it and those queued:
                # the pages read them), the queue freed.
                self._queue = deque(i for i in self._queue if not isinstance(i, Event))
                self._upto = event_order(item.id)
                return
            self._dropped = True
            self._queue.clear()  # (its memory goes now, not when the client leaves)
            item = FellBehind(self._fanout.buffer, self._fanout.rejoin)
        self._queue.append(item)
        self._ready.set()

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when none came within ``timeout`` seconds (None: wait
        for one). Raises what the follower raised (once the events before it were read), a
        backlog's read error, ``FellBehind``, or the fan-out's ``ended()`` once closed."""
        event = await self._from_backlog()
        if event is not None:
            return event
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, BaseException):
                    raise item
                if event_order(item.id) > self._last:  # (not one the backlog gave)
                    self._last = event_order(item.id)
                    return item
            self._ready.clear()
            if deadline is None:
                await self._ready.wait()
                continue
            left = deadline - loop.time()
            if left <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), left)

    async def _from_backlog(self) -> Event | None:
        """The next event of the backlog (up to the follower's position when the listener
        registered, at least: a page may read past it, and the queue's copies are skipped),
        read a page at a time; None once it is all given."""
        while not self._backlog and not self._backlog_read:
            read = functools.partial(
                self._fanout.swarm.events, since=self._since, types=self._types, limit=BACKLOG_PAGE
            )
            page = await self._fanout.call(read)
            self._backlog.extend(
                event for event in page if self._where is None or self._where(event)
            )
            if len(page) < BACKLOG_PAGE:
                self._backlog_read = True
            else:
                self._since = page[-1].id
                self._backlog_read = event_order(self._since) >= self._upto
        if not self._backlog:
            return None
        event = self._backlog.popleft()
        self._last = event_order(event.id)
        return event

    def close(self) -> None:
        """The client is gone: it stops listening (the last one stops the follower)."""
        self._fanout.leave(self)
