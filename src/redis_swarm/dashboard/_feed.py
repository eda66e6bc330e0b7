"""The event stream, read with a timeout: what the SSE route and ``swarm watch`` both follow.

``follow_events`` blocks until an event comes; a view also needs to wake up when nothing
happens (a keepalive line, a clock that ticks). Cancelling a blocked async generator would
end it, so a background task follows the stream into a queue and the view reads the queue
with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import TracebackType

from .._client import AsyncSwarm, raise_if_cancelled
from .._models import Event, EventType

__all__ = ["EventFeed"]


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
