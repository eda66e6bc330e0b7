"""What a red-team tour of ``swarm mcp`` found: a NUL byte in a path is a clear refusal, a
refused path never says where it leads outside the root, and a server serves a bounded number
of sessions (each one an agent in the swarm's registry), refused past it in words that say what
to do only when no session unused for minutes can make room, with the agent of a session that
goes unused marked stale, its inbox kept for its client's return (or, a handshake-era session's
made-up id nobody comes back as, leaving unless a message to it waits unread)."""

from __future__ import annotations

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
from starlette.types import Message, Receive, Scope, Send

from redis_swarm import Swarm
from redis_swarm.cli import main
from redis_swarm.mcp_server import SessionRegistry, build_server
from redis_swarm.mcp_server._http import SessionsFull
from redis_swarm.mcp_server._server import _SESSIONS
from redis_swarm.mcp_server._session import MIN_IDLE_TO_MAKE_ROOM_S

from .._servers import free_port
from ._helpers import HTTP_ACCEPT, HTTP_INIT, SRC, connect, eventually, http_server

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


# Longer than a session must go unused before it makes room.
_LONG = MIN_IDLE_TO_MAKE_ROOM_S + 60


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
            now[0] += _LONG
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(two.raw, "wait_for_pass", pass_name="p1", timeout_s=2))
                await eventually(lambda: "two" in registry._busy)
                refused = await three.error("read_inbox")
                assert "2 sessions open" in refused and "--max-sessions" in refused, refused
                assert "none can make room" in refused
                assert sorted(clients()) == ["one", "two"]
            now[0] += _LONG
            await three("read_inbox")  # two is done: its session makes room
            agents = clients()
            assert agents["one"].alive and agents["three"].alive
            assert not agents["two"].alive and agents["two"].left_at is not None
            assert core.get_task(task.id).status == "claimed"
            core.send(agents["two"].id, "for two", sender="lead")
            now[0] += _LONG
            inbox, _ = await two("read_inbox")  # three, unused the longest now, makes room
            assert "for two" in json.dumps(inbox)
            assert clients()["two"].id == agents["two"].id and clients()["two"].alive
            assert not clients()["three"].alive

    anyio.run(body)


def test_room_is_made_only_from_a_session_unused_for_minutes(core: Swarm) -> None:
    """Claude Code does not recover from a session the server closed: one used a minute ago
    is never closed to make room, and the new session is refused instead, saying why."""
    server = build_server(core, transport="http", max_sessions=1)
    registry = _SESSIONS[server]
    now = _clock(registry)

    async def body() -> None:
        async with (
            connect(server, mode=_MODERN, client_name="one") as one,
            connect(server, mode=_MODERN, client_name="two") as two,
        ):
            await one("read_inbox")
            (agent,) = core.agents()
            now[0] += MIN_IDLE_TO_MAKE_ROOM_S - 60
            refused = await two.error("read_inbox")
            assert "none can make room" in refused and "in the last 5 minutes" in refused
            assert [a.id for a in core.agents()] == [agent.id] and core.agents()[0].alive
            now[0] += 60
            await two("read_inbox")
            assert not core.get_agent(agent.id).alive

    anyio.run(body)


def test_a_handshake_session_closed_to_make_room_leaves_unless_a_message_waits(
    core: Swarm,
) -> None:
    """A handshake-era session's agent id is made up for it and never taken again (Claude
    Code's): closed to make room, its agent leaves, as when the SDK ends the session idle,
    rather than staying stale until a sweep; but one a message to it waits unread for stays,
    stale, its inbox kept. A broadcast is every agent's: it keeps none."""
    server = build_server(core, role="worker", transport="http", max_sessions=1)
    registry = _SESSIONS[server]
    now = _clock(registry)

    def ids() -> list[str]:
        return [a.id for a in core.agents()]

    async def idle_for_long() -> None:
        # (a request still ending would mark its session used at the clock moved on: a
        # loaded machine let the first session's registration end after the move)
        await eventually(lambda: not registry._busy)
        now[0] += _LONG

    async def body() -> None:
        async with connect(server, client_name="claude-code"):
            await eventually(lambda: len(core.agents()) == 1)
            (first,) = ids()
            core.broadcast("all hands", sender="lead")
            await idle_for_long()
            async with connect(server, client_name="claude-code"):
                await eventually(lambda: (now := ids()) != [first] and len(now) == 1)
                (second,) = ids()
                core.send(second, "please review PR 12", sender="lead")
                await idle_for_long()
                async with connect(server, client_name="claude-code"):
                    await eventually(lambda: len(ids()) == 2)
                    kept = core.get_agent(second)
                    assert not kept.alive and kept.left_at is not None
                    waiting = core.inbox(second, ack=False)
                    assert "please review PR 12" in [m.body for m in waiting]

    anyio.run(body)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_an_initialize_alone_closes_no_session(core: Swarm) -> None:
    """Room is made when a session registers, after its ``initialized``: an ``initialize``
    that none follows (a probe, a client that gives up) closes nobody's session. It is
    refused with 503 when no session could make room (one used a minute ago), closing
    nothing."""
    server = build_server(core, role="worker", transport="http", max_sessions=1)
    registry = _SESSIONS[server]
    now = _clock(registry)
    reached: list[str] = []

    async def sdk(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["method"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    full = SessionsFull(sdk, 1, registry)
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}

    async def initialize() -> list[Message]:
        said: list[Message] = []

        async def send(message: Message) -> None:
            said.append(message)

        await full(scope, _no_body, send)
        return said

    async def body() -> None:
        async with connect(server, client_name="claude-code"):
            await eventually(lambda: len(core.agents()) == 1)
            now[0] += 60
            said = await initialize()
            assert said[0]["status"] == 503 and reached == []
            assert "in the last 5 minutes" in json.loads(said[1]["body"])["error"]["message"]
            now[0] += _LONG
            said = await initialize()
            assert said[0]["status"] == 200 and reached == ["POST"]
            (agent,) = core.agents()
            assert agent.alive

    anyio.run(body)


def test_http_sessions_are_refused_when_none_can_make_room(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """`swarm mcp --transport http --max-sessions 2`: while every session was used in the last
    minutes (Claude Code would not recover from its session closed), one more is refused with
    503 saying what to do, closes nothing and registers nothing."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env.pop("SWARM_MCP_TOKEN", None)
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--port", str(port), "--max-sessions", "2"]
    url = f"http://127.0.0.1:{port}/mcp"
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

    def open_session() -> httpx.Response:
        opened = httpx.post(url, json=HTTP_INIT, headers=HTTP_ACCEPT, timeout=10)
        if opened.status_code == 200:
            told = httpx.post(url, json=initialized, headers=_named(opened), timeout=10)
            assert told.status_code == 202, told.text
        return opened

    def _named(opened: httpx.Response) -> dict[str, str]:
        return {**HTTP_ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}

    with (
        open(tmp_path / "server.log", "w+") as log,
        http_server(argv, env, log, url),
    ):
        first, second = open_session(), open_session()
        assert first.status_code == second.status_code == 200
        anyio.run(eventually, lambda: len(core.agents()) == 2)
        refused = open_session()
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert "2 sessions open" in error["message"] and "--max-sessions" in error["message"]
        assert "mcp-session-id" not in refused.headers
        assert len(core.agents()) == 2 and all(a.alive for a in core.agents())
        listed_ok = httpx.post(url, json=listed, headers=_named(first), timeout=10)
        assert listed_ok.status_code == 200, listed_ok.text


def test_max_sessions_is_for_http() -> None:
    run = CliRunner().invoke(main, ["mcp", "--max-sessions", "3"])
    assert run.exit_code == 2 and "--max-sessions is for --transport http" in run.output
