"""A search over MCP: a catastrophic pattern answers (RE2), the server keeps answering while a
search runs (the work is off the event loop), and a cancelled search is let go."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

from ._helpers import connect

# ping is deprecated from the 2026-07-28 revision on; these clients speak the handshake era.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

EVIL = "(a+)+$"
LINES = "".join(f"{'a' * 60}! line {i}\n" for i in range(50_000)) + "the end: aaaa\n"


def test_a_catastrophic_pattern_with_a_concurrent_ping(core: Swarm) -> None:
    core.publish_context("evil", LINES, source="test")
    pings: list[float] = []

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            done = anyio.Event()

            async def ping_meanwhile() -> None:
                while not done.is_set():
                    started = time.monotonic()
                    await worker.client.send_ping()
                    pings.append(time.monotonic() - started)
                    await anyio.sleep(0.01)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ping_meanwhile)
                with anyio.fail_after(20):
                    head, text = await worker(
                        "search_context", owner="evil", pattern=EVIL, regex=True
                    )
                done.set()
            assert head["hits"] == [1, 1] and text is not None and "the end: aaaa" in text
            message = await worker.error(
                "search_context", owner="evil", pattern=r"(?<=a)!", regex=True
            )
            assert "RE2" in message and "plain text instead of a regex" in message

    anyio.run(body)
    assert pings and max(pings) < 0.5, pings


def test_a_slow_search_leaves_the_server_answering_and_can_be_cancelled(core: Swarm) -> None:
    core.publish_context("big", "needle\n", source="test")
    release = threading.Event()
    entered = threading.Event()
    search = core.search_context

    def slow_search(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)  # a search that takes as long as the test wants
        return search(*args, **kwargs)

    core.search_context = slow_search

    async def body() -> None:
        # The session ends while the search still runs: it ends at once only if the cancelled
        # request stopped waiting for the search (a handler left waiting would hold it 30 s).
        with anyio.fail_after(10):
            await session()

    async def session() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            async with anyio.create_task_group() as tg:
                cancelled = anyio.CancelScope()

                async def searching() -> None:
                    with cancelled:
                        await worker.raw("search_context", owner="big", pattern="needle")

                tg.start_soon(searching)
                await anyio.to_thread.run_sync(entered.wait, 10)
                with anyio.fail_after(2):  # the server answers while the search runs
                    await worker.client.send_ping()
                    status, _ = await worker("swarm_status")
                assert status["you"]["role"] == "worker"
                # The client gives up: it sends notifications/cancelled, and the server,
                # which stops waiting on the search, goes on answering at once.
                cancelled.cancel()
            with anyio.fail_after(2):
                await worker.client.send_ping()
                head, _ = await worker("read_context_lines", owner="big", start=1)
            assert head["lines"] == [1, 1]
            assert not release.is_set()

    try:
        anyio.run(body)
    finally:
        release.set()
