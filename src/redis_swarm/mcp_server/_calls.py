"""The core's blocking calls made from the event loop, on worker threads: a write waited for
even when its request is cancelled (``call``), a read abandoned (``read``), and the calls
that wait (a claim, a pass's wait) in slices that a cancellation or the server's leaving
ends, what a cancelled call took (a task claimed, an inbox read) given back. The base of
``_session.SessionRegistry``, whose tools make every core call through it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from .._client import Swarm
from .._errors import SwarmError, Timeout
from .._models import Inbox, Task

__all__ = ["CoreCalls"]

log = logging.getLogger("redis_swarm.mcp")

T = TypeVar("T")


# A waiting call's slice (a claim's, a pass's): how soon a cancellation or the server's
# leaving ends its wait, and with it the worker thread that waits.
_SLICE_S = 1.0


class CoreCalls:
    """A swarm handle's calls, made off the event loop."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self._inbox_locks: dict[str, anyio.Lock] = {}  # (``reading_inbox``)
        # Set when the client closed stdin: waiting claims end instead of holding the exit.
        self.leaving = threading.Event()

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call on a worker thread (the event loop keeps serving). A
        cancelled request still waits for it: a write must not happen unseen."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    async def claim(
        self, queue: str | list[str], *, worker: str, lease_s: float | None, wait_s: float
    ) -> Task | None:
        """A claim that may wait, on a worker thread. It waits in slices of a second, so that
        a cancelled request (``notifications/cancelled``) or the server's leaving ends it
        soon: the client never sees a task claimed then, so one taken anyway (the claim and
        the cancellation crossing) is released, no failure counted."""
        lock = threading.Lock()
        taken: list[Task] = []
        abandoned = threading.Event()

        def take() -> Task | None:
            deadline = time.monotonic() + wait_s
            while True:
                left = max(0.0, deadline - time.monotonic())
                task = self.swarm.claim(
                    queue, worker=worker, lease_s=lease_s, wait_s=min(left, _SLICE_S)
                )
                with lock:
                    if task is not None and not (abandoned.is_set() or self.leaving.is_set()):
                        taken.append(task)
                        return task
                if task is not None:
                    self.swarm.release(task.id, task.token)
                    return None
                if left <= _SLICE_S or abandoned.is_set() or self.leaving.is_set():
                    return None

        try:
            return await anyio.to_thread.run_sync(take, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            with lock:
                abandoned.set()
                lost = list(taken)
            with anyio.CancelScope(shield=True):
                for task in lost:
                    await self.give_back(task)
            raise

    async def wait(
        self, *, pass_name: str | None, queue: str | None, timeout_s: float
    ) -> dict[str, int]:
        """The core's wait for a pass (or a queue) to settle, on a worker thread, in slices of
        a second as a waiting claim's: a cancelled request or the server's leaving ends the
        thread within a slice, not at the timeout. Raises Timeout as the core's does."""
        abandoned = threading.Event()

        def wait() -> dict[str, int]:
            deadline = time.monotonic() + timeout_s
            while True:
                left = max(0.0, deadline - time.monotonic())
                try:
                    return self.swarm.wait(
                        pass_name=pass_name, queue=queue, timeout_s=min(left, _SLICE_S)
                    )
                except Timeout:
                    if left <= _SLICE_S or abandoned.is_set() or self.leaving.is_set():
                        raise

        try:
            return await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            abandoned.set()
            raise

    @asynccontextmanager
    async def reading_inbox(self, agent: str) -> AsyncIterator[None]:
        """One read_inbox of ``agent`` at a time on this server: an acknowledged read takes
        the batch of the one before it as read, so a call made while a cancelled one gives
        its batch back (``take_inbox``) would take that batch for good. (The channel's and
        the hooks' peeks take nothing.)"""
        lock = self._inbox_locks.setdefault(agent, anyio.Lock())
        async with lock:
            yield

    async def take_inbox(self, agent: str, limit: int) -> Inbox:
        """The acknowledged read of ``agent``'s inbox, on a worker thread. A cancelled
        request still waits for it (as ``call``), then gives its batch back
        (``give_back_inbox``): the client never sees those messages, so the next read
        returns them."""
        taken: list[Inbox] = []

        def take() -> Inbox:
            inbox = self.swarm.inbox(agent, ack=True, limit=limit)
            taken.append(inbox)
            return inbox

        try:
            inbox = await anyio.to_thread.run_sync(take)
            # (the thread's wait is shielded: a cancellation that came meanwhile is raised
            # here, not at the SDK's next checkpoint, after the answer was made and dropped)
            await anyio.lowlevel.checkpoint_if_cancelled()
            return inbox
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                for inbox in taken:
                    if inbox.read_id is not None:
                        await self._give_back_read(agent, inbox.read_id)
            raise

    async def _give_back_read(self, agent: str, read_id: str) -> None:
        try:
            await anyio.to_thread.run_sync(self.swarm.give_back_inbox, agent, read_id)
        except SwarmError as exc:  # (they stay read: get_message shows them by id)
            log.warning("could not give back the inbox read of %s cancelled: %s", agent, exc)

    async def give_back(self, task: Task) -> None:
        """Release a task claimed for a request that was cancelled before its answer."""
        try:
            await anyio.to_thread.run_sync(self.swarm.release, task.id, task.token)
        except SwarmError as exc:  # its lease already ended: nothing held
            log.info("could not release %s after a cancelled claim: %s", task.id, exc)

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call that changes nothing on a worker thread; a cancelled
        request (``notifications/cancelled``) stops waiting for it at once."""
        call = functools.partial(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
