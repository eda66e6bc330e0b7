"""A waiting claim_task ends with its request: cancelled, or the client gone; so do the other
tools that wait (next_question, wait_for_pass), and the worker threads they wait on."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

from ._helpers import connect, eventually
from .test_stdio import _initialize, _raw_server, _reply, _rpc


def _cancelled_claim(core: Swarm, during: Any, after: Any) -> None:
    """claim_task(queue="cancq", wait_s=20), cancelled once ``during()`` returned; then
    ``after()``, and the session holds nothing a slice of the wait later."""

    async def body() -> None:
        with anyio.fail_after(15):
            await session()

    async def session() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            async with anyio.create_task_group() as tg:
                scope = anyio.CancelScope()

                async def claiming() -> None:
                    with scope:
                        await worker.raw("claim_task", queue="cancq", wait_s=20)

                tg.start_soon(claiming)
                await anyio.to_thread.run_sync(during)
                scope.cancel()
            await anyio.to_thread.run_sync(after)
            await anyio.sleep(2.5)  # longer than a slice of the claim's wait
            status, _ = await worker("swarm_status")
            assert not status.get("holding"), status

    anyio.run(body)


def test_a_cancelled_waiting_claim_takes_nothing_posted_after(core: Swarm) -> None:
    posted = []
    _cancelled_claim(
        core,
        lambda: time.sleep(0.5),
        lambda: posted.append(core.post_task("cancq", "posted after the cancel")),
    )
    assert core.get_task(posted[0].id).status == "pending"


def test_a_claim_that_landed_as_it_was_cancelled_is_released(core: Swarm) -> None:
    task = core.post_task("cancq", "claimed as the client gave up")
    claimed, cancelled = threading.Event(), threading.Event()
    claim = core.claim

    def claim_then_cross(*args: Any, **kwargs: Any) -> Any:
        got = claim(*args, **kwargs)
        claimed.set()
        cancelled.wait(10)  # the claim's answer arrives after the client cancelled
        return got

    core.claim = claim_then_cross
    try:
        _cancelled_claim(core, lambda: claimed.wait(10), cancelled.set)
    finally:
        cancelled.set()
    released = core.get_task(task.id)
    assert released.status == "pending" and released.failures == 0


def test_the_end_of_input_ends_a_waiting_claim_at_once(redis_url: str, tmp_path: Path) -> None:
    with open(tmp_path / "stderr.log", "w+") as errlog, _raw_server(redis_url, errlog) as proc:
        assert proc.stdin is not None
        _rpc(proc, _initialize(1))
        _reply(proc, 1)
        _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"name": "claim_task", "arguments": {"queue": "cancq", "wait_s": 20}}
        _rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})
        time.sleep(1)
        started = time.monotonic()
        proc.stdin.close()
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("role", "tool", "args", "waits_in"),
    [
        ("shard", "next_question", {"wait_s": 20}, "claim"),
        ("shard", "wait_for_pass", {"pass_name": "P", "timeout_s": 20}, "wait"),
        ("coordinator", "wait_for_pass", {"queue": "cancq", "timeout_s": 20}, "wait"),
    ],
)
def test_a_cancelled_wait_ends_its_thread_within_a_slice(
    core: Swarm, role: str, tool: str, args: dict[str, Any], waits_in: str
) -> None:
    """Cancelled half a second into a 20-second wait, the call ends at once and so does the
    core call it waits on, on its worker thread, within a slice of the wait (it ran to its
    timeout, holding a thread and a Redis connection for nothing)."""
    core.post_task("cancq", "never done", pass_name="P")
    real = getattr(core, waits_in)
    lock = threading.Lock()
    waiting = [0]

    def counted(*a: Any, **k: Any) -> Any:
        with lock:
            waiting[0] += 1
        try:
            return real(*a, **k)
        finally:
            with lock:
                waiting[0] -= 1

    async def body() -> None:
        with anyio.fail_after(15):
            async with connect(build_server(core, role=role, name="shard-1")) as agent:
                await agent("swarm_status")  # registered: nothing else calls the core now
                setattr(core, waits_in, counted)
                scope = anyio.CancelScope()
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        with scope:
                            await agent.raw(tool, **args)

                    tg.start_soon(call)
                    await eventually(lambda: waiting[0] == 1)
                    await anyio.sleep(0.5)
                    scope.cancel()
                await eventually(lambda: waiting[0] == 0, timeout_s=2.5)

    try:
        anyio.run(body)
    finally:
        setattr(core, waits_in, real)
