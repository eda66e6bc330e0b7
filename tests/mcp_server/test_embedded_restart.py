"""A running ``swarm mcp`` on the embedded server, after that server stopped (``swarm down``):
the next tool call starts it again on its data, as the server's launch started it; a start
that cannot happen is that call's error, saying what to do (before, every later call failed,
telling to run a bare ``swarm up`` that names another home)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._embedded import ENV_VAR, EmbeddedServer
from redis_swarm.mcp_server._server import build_server

from ._helpers import connect


def _swarm(home: Path) -> Swarm:
    swarm = Swarm(f"embedded://{home}", swarm="test")
    swarm.ping()  # what `swarm mcp` does before it serves: it starts the server
    return swarm


def test_a_tool_call_starts_a_stopped_embedded_server_again(swarm_home: Path) -> None:
    swarm = _swarm(swarm_home)
    server = EmbeddedServer(swarm_home)
    first_pid = server.pid()

    async def scenario() -> None:
        async with connect(build_server(swarm, role="all")) as tools:
            posted, _ = await tools("post_task", queue="q", description="before the stop")
            assert server.stop()  # `swarm down`
            assert not server.is_running()
            status, _ = await tools("swarm_status")  # the next call: started again
            assert status["queues"]["q"]["pending"] == 1, status  # on its data
            again, _ = await tools("post_task", queue="q", description="after it")
            assert again["task"]["id"] != posted["task"]["id"]

    try:
        anyio.run(scenario)
    finally:
        swarm.close()
    assert server.is_running() and server.pid() not in (None, first_pid)


def test_a_start_that_fails_is_the_call_s_error_saying_what_to_do(
    swarm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm = _swarm(swarm_home)
    missing = str(swarm_home / "no-redis-server")

    async def scenario() -> None:
        async with connect(build_server(swarm, role="all")) as tools:
            assert EmbeddedServer(swarm_home).stop()
            monkeypatch.setenv(ENV_VAR, missing)  # (the machine's redis-server gone)
            said = await tools.error("swarm_status")
            assert said.startswith("Error executing tool swarm_status: EmbeddedServerError: ")
            assert f"{ENV_VAR}={missing} is not a runnable redis-server" in said
            assert "swarm up" not in said
            monkeypatch.delenv(ENV_VAR)  # fixed: the next call starts it
            status, _ = await tools("swarm_status")
            assert status["swarm"] == "test"

    try:
        anyio.run(scenario)
    finally:
        swarm.close()
