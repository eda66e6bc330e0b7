"""Turns at a handle's connections, for a face serving many requests at once (the dashboard,
the A2A server).

A handle's pool holds at most ``Settings.max_connections`` connections and refuses a call
when all are in use, at once (it never queues: for a claim or an ask caller, which the
core's refusal advises, waiting would hide a leak). A server answering a burst of clients
would pass that refusal on as an outage. ``Turns`` lets ``size`` calls run at once, a
caller over it waiting for a turn at most ``wait_s`` (``patient``: as long as it takes),
then ``NoTurn``, which each face answers as busy in its own protocol.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["NoTurn", "Turns"]


class NoTurn(Exception):
    """No turn came within the wait: the caller is answered busy (how is the face's)."""


class Turns:
    """At most ``size`` callers at once (at least one); ``async with turns:`` takes a turn,
    waiting at most ``wait_s``, and gives it back. ``waiting``: how many wait now."""

    def __init__(self, size: int, wait_s: float) -> None:
        self.size = max(1, size)
        self.wait_s = wait_s
        self.waiting = 0
        self._free = asyncio.Semaphore(self.size)

    async def take(self, *, patient: bool = False) -> None:
        """Take a turn (give it back with ``give_back``); ``NoTurn`` when none came within
        ``wait_s`` (``patient``: wait as long as it takes)."""
        if not self._free.locked():
            await self._free.acquire()  # (at once: a turn is free)
            return
        self.waiting += 1
        try:
            if patient:
                await self._free.acquire()
                return
            # Not asyncio.wait_for: before Python 3.12 it could drop a turn granted just as
            # the wait timed out. (A cancelled acquire passes a turn it was handed on.)
            waiting = asyncio.ensure_future(self._free.acquire())
            try:
                await asyncio.wait({waiting}, timeout=self.wait_s)
            except BaseException:  # (the caller cancelled: a turn it got goes back)
                if waiting.done() and not waiting.cancelled():
                    self._free.release()
                waiting.cancel()
                raise
            if not waiting.done():
                waiting.cancel()
                raise NoTurn(f"no turn of {self.size} came within {self.wait_s:g} s")
        finally:
            self.waiting -= 1

    def give_back(self) -> None:
        self._free.release()

    async def __aenter__(self) -> None:
        await self.take()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.give_back()
