"""A cancellation delivered and lost, as Python 3.11's ``asyncio.wait_for`` can lose one when
the awaited call ends as the request comes (redis-py puts a wait_for around every command):
the task still counts the request (``Task.cancelling``), but nothing raised it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import pytest

# Before Python 3.11 a request lost this way leaves no trace to act on.
needs_cancelling = pytest.mark.skipif(
    not hasattr(asyncio.Task, "cancelling"),
    reason="a request lost this way leaves no trace before Python 3.11",
)


async def lose_a_cancellation(step: Awaitable[object]) -> None:
    """Ask the current task to stop, then let ``step`` swallow the CancelledError (caught with
    no ``uncancel()``, as that wait_for does)."""
    me = asyncio.current_task()
    assert me is not None
    me.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await step
