"""What a red-team tour of ``swarm mcp`` found: a NUL byte in a path is a clear refusal, a
refused path never says where it leads outside the root, and a server serves a bounded number
of sessions (each one an agent in the swarm's registry), refused past it in words that say what
to do only when no idle session can make room, with the agent of a session that goes unused
marked stale, its inbox kept for its client's return."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from click.testing import CliRunner

from redis_swarm import Swarm
from redis_swarm.cli import main
from redis_swarm.mcp_server import SessionRegistry, build_server
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


def _clock(registry: SessionRegistry) -> list[float]:
    """A fake clock for the registry's idle times: nobody waits 30 minutes."""
    now = [1000.0]
    registry.clock = lambda: now[0]
    return now


def test_a_2026_session_in_use_is_never_closed_as_unused(core: Swarm) -> None:
    """A call that runs longer than the idle time (a wait_for_pass, an ask) keeps its session
    in use, and the idle time counts from when it ended, not from when it began."""
    core.post_task("q", "slow", pass_name="p1")
    server = build_server(core, role="coordinator", transport="http")
    registry = _SESSIONS[server]
    now = _clock(registry)

    async def body() -> None:
        async with connect(server, mode=_MODERN, client_name="plan") as plan:
            await plan("read_inbox")
            (agent,) = core.agents()
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(plan.raw, "wait_for_pass", pass_name="p1", timeout_s=2))
                await eventually(lambda: "plan" in registry._busy)
                now[0] += 31 * 60  # the wait runs on past the idle time
                await registry.close_unused()
                (waiting,) = core.agents()
                assert waiting.alive and waiting.left_at is None
            now[0] += 29 * 60  # (the wait timed out: unused since it ended)
            await registry.close_unused()
            assert core.agents()[0].alive
            now[0] += 2 * 60
            await registry.close_unused()
            (left,) = core.agents()
            assert left.id == agent.id and not left.alive and left.left_at is not None

    anyio.run(body)


def test_a_2026_session_closed_unused_keeps_its_agent_and_inbox(core: Swarm) -> None:
    """A client quiet for the idle time loses neither its id nor what it was sent: its agent
    is marked stale, not deregistered, and its next request joins as it again."""
    server = build_server(core, role="worker", transport="http")
    registry = _SESSIONS[server]
    now = _clock(registry)

    async def body() -> None:
        async with connect(server, mode=_MODERN, client_name="two") as two:
            await two("read_inbox")
            (agent,) = core.agents()
            now[0] += 31 * 60
            await registry.close_unused()
            (quiet,) = core.agents()
            assert quiet.id == agent.id and not quiet.alive and quiet.left_at is not None
            core.send(agent.id, "please review PR 12", sender="lead")  # (no NotFound)
            inbox, _ = await two("read_inbox")
            assert "please review PR 12" in json.dumps(inbox), inbox
            (back,) = core.agents()
            assert back.id == agent.id and back.alive

    anyio.run(body)


def test_a_full_server_makes_room_from_its_session_unused_the_longest(core: Swarm) -> None:
    """On the 2026 era each client name is a session (an agent): past the bound, the session
    unused the longest that holds no lease and serves no request makes room (its agent marked
    stale, its inbox kept); a new name is refused, before it registers, only when none can
    go."""
    task = core.post_task("q", "held across the idle time")
    core.post_task("other", "slow", pass_name="p1")
    server = build_server(core, transport="http", max_sessions=2)
    registry = _SESSIONS[server]
    now = _clock(registry)

    def clients() -> dict[str, Any]:
        return {a.metadata["client"]: a for a in core.agents() if a.metadata}

    async def body() -> None:
        async with (
            connect(server, mode=_MODERN, client_name="one") as one,
            connect(server, mode=_MODERN, client_name="two") as two,
            connect(server, mode=_MODERN, client_name="three") as three,
        ):
            claimed, _ = await one("claim_task", queue="q")
            assert claimed["task"]["id"] == task.id
            now[0] += 1
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(two.raw, "wait_for_pass", pass_name="p1", timeout_s=2))
                await eventually(lambda: "two" in registry._busy)
                refused = await three.error("read_inbox")
                assert "2 sessions open" in refused and "--max-sessions" in refused, refused
                assert "none can make room" in refused
                assert sorted(clients()) == ["one", "two"]
            now[0] += 1
            await three("read_inbox")  # two is done: its session makes room
            agents = clients()
            assert agents["one"].alive and agents["three"].alive
            assert not agents["two"].alive and agents["two"].left_at is not None
            assert core.get_task(task.id).status == "claimed"
            core.send(agents["two"].id, "for two", sender="lead")
            now[0] += 1
            inbox, _ = await two("read_inbox")  # three, unused the longest now, makes room
            assert "for two" in json.dumps(inbox)
            assert clients()["two"].id == agents["two"].id and clients()["two"].alive
            assert not clients()["three"].alive

    anyio.run(body)


def test_http_sessions_make_room_or_are_refused(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """`swarm mcp --transport http --max-sessions 2`: Claude Code never sends DELETE, so a
    third initialize ends the session unused the longest (its agent marked stale, its id then
    404); while every session keeps a GET stream open, one more is refused with 503 saying
    what to do, and registers nothing."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env.pop("SWARM_MCP_TOKEN", None)
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--port", str(port), "--max-sessions", "2"]
    url = f"http://127.0.0.1:{port}/mcp"
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

    def open_session() -> httpx.Response:
        opened = httpx.post(url, json=_INIT, headers=_ACCEPT, timeout=10)
        if opened.status_code == 200:
            told = httpx.post(url, json=initialized, headers=_named(opened), timeout=10)
            assert told.status_code == 202, told.text
        return opened

    def _named(opened: httpx.Response) -> dict[str, str]:
        return {**_ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}

    with (
        open(tmp_path / "server.log", "w+") as log,
        http_server(argv, env, log, url),
        contextlib.ExitStack() as streams,
    ):
        first, second = open_session(), open_session()
        assert first.status_code == second.status_code == 200
        anyio.run(eventually, lambda: len(core.agents()) == 2)
        third = open_session()
        assert third.status_code == 200, third.text
        anyio.run(eventually, lambda: sum(1 for a in core.agents() if a.alive) == 2)
        (gone,) = [a for a in core.agents() if not a.alive]
        assert gone.left_at is not None and len(core.agents()) == 3
        ended = httpx.post(url, json=listed, headers=_named(first), timeout=10)
        assert ended.status_code == 404, ended.text
        for opened in (second, third):
            get = {**_named(opened), "Accept": "text/event-stream"}
            stream = streams.enter_context(httpx.stream("GET", url, headers=get, timeout=10))
            assert stream.status_code == 200
        refused = open_session()
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert "2 sessions open" in error["message"] and "--max-sessions" in error["message"]
        assert "mcp-session-id" not in refused.headers
        assert len(core.agents()) == 3


def test_max_sessions_is_for_http() -> None:
    run = CliRunner().invoke(main, ["mcp", "--max-sessions", "3"])
    assert run.exit_code == 2 and "--max-sessions is for --transport http" in run.output
