"""What a red-team tour of ``swarm mcp`` found: a NUL byte in a path is a clear refusal, a
refused path never says where it leads outside the root, and a server serves a bounded number
of sessions (each one an agent in the swarm's registry), refused past it in words that say what
to do, with the agent of a session that ends (or goes unused) leaving the registry."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import httpx2 as httpx
import pytest
from click.testing import CliRunner

from redis_swarm import Swarm
from redis_swarm.cli import main
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._server import _SESSIONS

from .._servers import free_port
from ._helpers import SRC, connect, eventually, http_server
from .test_http import _ACCEPT, _INIT

_MODERN = "2026-07-28"


def _publish_error(core: Swarm, root: Path, path: str) -> str:
    async def body() -> str:
        async with connect(build_server(core, role="shard", root=root)) as shard:
            return await shard.error("publish_context", path=path, owner="leak")

    return anyio.run(body)


def test_a_nul_byte_in_a_path_is_refused_clearly(core: Swarm, tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("fine\n")
    message = _publish_error(core, tmp_path, "doc.txt\x00../../etc/passwd")
    assert "NUL byte" in message and "without it" in message, message
    assert core.contexts() == []


def test_a_refused_path_never_says_where_it_leads(
    core: Swarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside, home = tmp_path / "root", tmp_path / "elsewhere", tmp_path / "home"
    for folder in (root, outside, home):
        folder.mkdir()
    (outside / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (home / ".bashrc").write_text("export SECRET=1\n")
    monkeypatch.setenv("HOME", str(home))
    (root / "innocent.md").symlink_to(outside / "key.pem")
    (root / "env").symlink_to("/proc/self/environ")
    (root / "passwd").symlink_to("/etc/passwd")

    message = _publish_error(core, root, "~/.bashrc")
    assert "'~/.bashrc' is outside the directory" in message, message
    assert "names a place outside it" in message and str(home) not in message
    for link, target in (("innocent.md", str(outside)), ("env", "/proc"), ("passwd", "/etc")):
        message = _publish_error(core, root, link)
        assert f"{link!r} is outside the directory" in message, message
        assert "through a link" in message and target not in message, message
        assert str(os.getpid()) not in message
    assert core.contexts() == []


def test_2026_sessions_are_bounded_and_leave_once_unused(core: Swarm) -> None:
    """On the 2026 era each client name is a session (an agent): past the bound a new name
    is refused before it registers; a session unused for the idle time, holding no lease,
    leaves the registry and frees its place."""
    task = core.post_task("q", "held across the idle time")
    server = build_server(core, role="worker", transport="http", max_sessions=2)
    registry = _SESSIONS[server]

    async def body() -> None:
        async with (
            connect(server, mode=_MODERN, client_name="one") as one,
            connect(server, mode=_MODERN, client_name="two") as two,
            connect(server, mode=_MODERN, client_name="three") as three,
        ):
            claimed, _ = await one("claim_task", queue="q")
            assert claimed["task"]["id"] == task.id
            await two("read_inbox")
            refused = await three.error("read_inbox")
            assert "2 sessions open" in refused and "--max-sessions" in refused, refused
            assert sorted(a.metadata["client"] for a in core.agents() if a.metadata) == [
                "one",
                "two",
            ]
            registry.idle_s = 0  # every session is unused now: only the lease keeps one
            await registry.close_unused()
            agents = core.agents()
            assert [a.metadata["client"] for a in agents if a.metadata] == ["one"]
            assert core.get_task(task.id).status == "claimed"
            await three("read_inbox")  # its place is free again
            assert len(core.agents()) == 2

    anyio.run(body)


def test_http_sessions_are_bounded(core: Swarm, redis_url: str, tmp_path: Path) -> None:
    """`swarm mcp --transport http --max-sessions 2`: a third initialize is refused with 503
    saying what to do, and registers nothing; a session that ends (DELETE) takes its agent
    out of the registry and frees its place."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env.pop("SWARM_MCP_TOKEN", None)
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--port", str(port), "--max-sessions", "2"]
    url = f"http://127.0.0.1:{port}/mcp"
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}

    def open_session() -> httpx.Response:
        opened = httpx.post(url, json=_INIT, headers=_ACCEPT, timeout=10)
        if opened.status_code == 200:
            session = {**_ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}
            told = httpx.post(url, json=initialized, headers=session, timeout=10)
            assert told.status_code == 202, told.text
        return opened

    with open(tmp_path / "server.log", "w+") as log, http_server(argv, env, log, url):
        first, second = open_session(), open_session()
        assert first.status_code == second.status_code == 200
        anyio.run(eventually, lambda: len(core.agents()) == 2)
        refused = open_session()
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert "2 sessions open" in error["message"] and "--max-sessions" in error["message"]
        assert "mcp-session-id" not in refused.headers
        assert len(core.agents()) == 2
        ended = {**_ACCEPT, "mcp-session-id": first.headers["mcp-session-id"]}
        assert httpx.delete(url, headers=ended, timeout=10).status_code in (200, 204)
        anyio.run(eventually, lambda: len(core.agents()) == 1)
        assert open_session().status_code == 200
        anyio.run(eventually, lambda: len(core.agents()) == 2)


def test_max_sessions_is_for_http() -> None:
    run = CliRunner().invoke(main, ["mcp", "--max-sessions", "3"])
    assert run.exit_code == 2 and "--max-sessions is for --transport http" in run.output
