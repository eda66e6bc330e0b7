"""``deregister_if_read``: an agent is removed only when no direct message waits unread for it,
looked for by the script that removes it; and the two faces that removed an agent once
nothing of it would be lost (the hooks' SubagentStop, the MCP server closing a handshake-era
session to make room) use it, so that a message sent between their look at the inbox and the
removal is no longer dropped with the inbox."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from redis_swarm import NotFound, Settings, Swarm
from redis_swarm._hooks.events import _leave_if_done, subagent_for
from redis_swarm._keys import Keys
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._server import _SESSIONS
from redis_swarm.mcp_server._session import MIN_IDLE_TO_MAKE_ROOM_S

from ._raw import raw_client
from .mcp_server._helpers import connect, eventually

KEYS = Keys("test")


def _left(url: str) -> list[bytes]:
    """The agents of the ``agent.left`` events, oldest first."""
    with raw_client(url) as r:
        return [f[b"agent"] for _, f in r.xrange(KEYS.events) if f[b"type"] == b"agent.left"]


def _bodies(swarm: Swarm, agent: str) -> list[str]:
    return [m.body for m in swarm.inbox(agent, ack=False)]


# --- the core


def test_an_unread_direct_message_keeps_the_agent_and_its_inbox(
    swarm: Swarm, redis_url: str
) -> None:
    swarm.register("worker", name="w1")
    swarm.send("w1", "please review PR 12", sender="lead")
    assert swarm.deregister_if_read("w1") is False
    assert swarm.get_agent("w1").id == "w1"
    assert _bodies(swarm, "w1") == ["please review PR 12"]
    assert _left(redis_url) == []
    swarm.inbox("w1")  # read (acknowledged): nothing waits now
    assert swarm.deregister_if_read("w1") is True
    with pytest.raises(NotFound):
        swarm.get_agent("w1")
    assert _left(redis_url) == [b"w1"]


def test_an_agent_with_no_direct_message_unread_goes(swarm: Swarm, redis_url: str) -> None:
    swarm.register("worker", name="w1")
    swarm.register("worker", name="w2")
    swarm.broadcast("for everyone", sender="lead")  # (not dropped by a deregistration)
    swarm.send("w2", "for w2", sender="lead")
    assert swarm.deregister_if_read("w1") is True
    with pytest.raises(NotFound):
        swarm.get_agent("w1")
    assert _bodies(swarm, "w2") == ["for everyone", "for w2"]
    with pytest.raises(NotFound, match="not registered"):
        swarm.deregister_if_read("w1")  # a new call finds nobody
    with pytest.raises(NotFound, match="not registered"):
        swarm.deregister_if_read("nobody")


def test_a_message_read_but_not_yet_confirmed_does_not_keep_the_agent(swarm: Swarm) -> None:
    """A peek then ``mark_read``: read messages stay in the stream (``get_message``), and are
    not unread."""
    swarm.register("worker", name="w1")
    sent = swarm.send("w1", "seen", sender="lead")
    swarm.mark_read("w1", sent.seq)
    assert swarm.deregister_if_read("w1") is True


def test_a_retried_call_answers_as_the_first_did(
    swarm: Swarm, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lost reply makes redis-py send the same script call again: the same departure token.
    monkeypatch.setattr("redis_swarm._ops.agents.new_id", lambda prefix: f"{prefix}-fixed")
    swarm.register("worker", name="w1")
    assert swarm.deregister_if_read("w1") is True
    assert swarm.deregister_if_read("w1") is True  # the same call, sent again: no NotFound
    assert _left(redis_url) == [b"w1"]
    swarm.register("worker", name="w2")
    swarm.send("w2", "waiting", sender="lead")
    assert swarm.deregister_if_read("w2") is False
    assert swarm.deregister_if_read("w2") is False  # kept, and kept again
    assert _bodies(swarm, "w2") == ["waiting"]
    assert _left(redis_url) == [b"w1"]


def test_deregister_still_drops_the_inbox_and_returns_none(swarm: Swarm, redis_url: str) -> None:
    swarm.register("worker", name="w1")
    swarm.send("w1", "dropped", sender="lead")
    assert swarm.deregister("w1") is None
    with pytest.raises(NotFound):
        swarm.get_agent("w1")
    with raw_client(redis_url) as r:
        assert r.exists(KEYS.inbox("w1")) == 0
        (left,) = [f for _, f in r.xrange(KEYS.events) if f[b"type"] == b"agent.left"]
    assert left[b"unread"] == b"1"


# --- the faces: a message sent between their look at the inbox and the removal


def _message_first(
    monkeypatch: pytest.MonkeyPatch, swarm: Swarm, target: str, body: str
) -> list[str]:
    """Have the first removal of ``target`` through ``swarm`` (``deregister`` or
    ``deregister_if_read``, whichever the face calls) send it a direct message just before it
    reaches Redis: the message a peer sends after the face looked at the inbox."""
    sent: list[str] = []
    for name in ("deregister", "deregister_if_read"):
        real = getattr(swarm, name, None)
        if real is None:  # (the code before deregister_if_read)
            continue

        def removal(agent_id: str, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if agent_id == target and not sent:
                sent.append(swarm.send(agent_id, body, sender="lead").id)
            return _real(agent_id, *args, **kwargs)

        monkeypatch.setattr(swarm, name, removal)
    return sent


@pytest.fixture
def home_swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


@pytest.mark.parametrize("record", ["registered by its claim", "registered on purpose"])
def test_subagent_stop_keeps_a_subagent_sent_a_message_as_it_leaves(
    home_swarm: Swarm, monkeypatch: pytest.MonkeyPatch, record: str
) -> None:
    swarm = home_swarm
    worker = subagent_for("me", "a1")
    if record == "registered on purpose":
        swarm.register("worker", name=worker)  # (a broadcast cursor: the hook peeks first)
    swarm.post_task("q", "investigate")
    task = swarm.claim("q", worker=worker)
    assert task is not None and task.token is not None
    swarm.report(task.id, task.token, {"summary": "done"})
    sent = _message_first(monkeypatch, swarm, worker, "one more thing")
    assert _leave_if_done(swarm, worker) is False
    assert sent  # (the removal was reached: the message came after every look)
    assert swarm.get_agent(worker).id == worker
    assert _bodies(swarm, worker) == ["one more thing"]
    monkeypatch.undo()
    swarm.inbox(worker)  # read: now nothing of it would be lost
    assert _leave_if_done(swarm, worker) is True
    with pytest.raises(NotFound):
        swarm.get_agent(worker)


def test_a_session_closed_to_make_room_keeps_an_agent_sent_a_message_as_it_leaves(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A handshake-era session's made-up id (Claude Code's), closed to make room: a message
    sent to its agent as it leaves keeps the agent, stale, its inbox intact."""
    core = Swarm(redis_url, swarm="test")
    server = build_server(core, role="worker", transport="http", max_sessions=1)
    registry = _SESSIONS[server]
    now = [1000.0]
    registry.clock = lambda: now[0]

    def ids() -> list[str]:
        return sorted(a.id for a in core.agents())

    async def body() -> None:
        async with connect(server, client_name="claude-code"):
            # (the registry's session, not only the agent: its last-used time is set after
            # the agent registers, and a clock moved before that would make it look fresh)
            await eventually(lambda: len(registry.live) == 1)
            (first,) = ids()
            sent = _message_first(monkeypatch, core, first, "please review PR 12")
            now[0] += MIN_IDLE_TO_MAKE_ROOM_S + 60
            async with connect(server, client_name="claude-code"):
                await eventually(lambda: len(ids()) == 2)  # (first kept; else it left)
                assert sent  # (the removal was reached: the message came after every look)
                kept = core.get_agent(first)
                assert not kept.alive and kept.left_at is not None
                assert _bodies(core, first) == ["please review PR 12"]
                # (no start takes a made-up id again: the log says what keeps it, and how
                # to read or drop it, not that it waits for its next start)
                assert f"'swarm msg inbox {first}' reads it" in caplog.text, caplog.text
                assert "its next start" not in caplog.text, caplog.text

    caplog.set_level(logging.INFO, logger="redis_swarm")
    try:
        anyio.run(body)
    finally:
        core.close()
