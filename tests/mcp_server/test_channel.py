"""``swarm mcp --channel``: the MCP SDK's own client, over stdio, sees Claude Code channel
events (``notifications/claude/channel``) for what concerns its session's agent: one per
direct message, broadcast, synthesis request and watched-queue task, each within a second,
and one saying N for a burst; a client on the 2026-07-28 protocol is never sent one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client import ClientExtension, NotificationBinding
from mcp_types import Implementation
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import BaseModel

from redis_swarm import Swarm, TaskStatus
from redis_swarm._models import Event, EventType
from redis_swarm.mcp_server import AGENT_ROLES, tool_names
from redis_swarm.mcp_server._channel import CAPABILITY, METHOD, RECHECK_S, instructions, notices

from .._handles import must
from ._helpers import SRC, stdio_env

AGENT = "chan-1"
_TAG_ATTR = re.compile(r"[A-Za-z0-9_]+")  # what Claude Code keeps of a meta key


class ChannelEvent(BaseModel):
    content: str
    meta: dict[str, str] = {}


class Heard(ClientExtension):
    """The test client's ear for channel events, each stamped with when it arrived."""

    identifier = "io.redis-swarm/channel-test"

    def __init__(self) -> None:
        self.events: list[tuple[float, ChannelEvent]] = []

    def notifications(self) -> Sequence[NotificationBinding[Any]]:
        return [NotificationBinding(method=METHOD, params_type=ChannelEvent, handler=self._on)]

    async def _on(self, event: ChannelEvent) -> None:
        self.events.append((time.monotonic(), event))


def _params(redis_url: str, *args: str, name: str = AGENT) -> StdioServerParameters:
    argv = ["-m", "redis_swarm", "mcp", "--name", name, "--channel", *args]
    return StdioServerParameters(command=sys.executable, args=argv, env=stdio_env(redis_url))


@asynccontextmanager
async def _client(
    redis_url: str, mode: str, heard: Heard, name: str = AGENT, *options: str
) -> AsyncIterator[Client]:
    info = Implementation(name="claude-code", version="2.1.80")
    params = _params(redis_url, "--watch-queue", "work", *options, name=name)
    async with Client(
        params, mode=mode, client_info=info, extensions=[heard], read_timeout_seconds=60
    ) as client:
        yield client


@asynccontextmanager
async def _side_by_side(redis_url: str, *sessions: tuple[Heard, str]) -> AsyncIterator[None]:
    """Legacy sessions (each ear with its agent's name), their servers started side by side
    (each takes a second or two to start), all connected inside the block."""
    connected = [anyio.Event() for _ in sessions]
    over = anyio.Event()

    async def hold(heard: Heard, name: str, ready: anyio.Event) -> None:
        async with _client(redis_url, "legacy", heard, name):
            ready.set()
            await over.wait()

    async with anyio.create_task_group() as group:
        for (heard, name), ready in zip(sessions, connected, strict=True):
            group.start_soon(hold, heard, name, ready)
        for ready in connected:
            await ready.wait()
        try:
            yield
        finally:
            over.set()


async def _registered(core: Swarm, *names: str) -> None:
    with anyio.fail_after(10):
        while not {*(names or (AGENT,))} <= {a.id for a in core.agents()}:
            await anyio.sleep(0.02)


async def _next(heard: Heard, count: int, since: float) -> ChannelEvent:
    """The ``count``-th event, which must arrive within seconds of ``since``: pushed (the
    channel's blocking read), not found by its recheck (every ``RECHECK_S``, 30 s). (The bound
    leaves room for a loaded 2-core machine: CI saw 1.5 s.)"""
    with anyio.fail_after(5):
        while len(heard.events) < count:
            await anyio.sleep(0.005)
    at, event = heard.events[count - 1]
    assert at - since < 3.0 < RECHECK_S, f"{event} took {at - since:.2f} s"
    assert all(_TAG_ATTR.fullmatch(k) for k in event.meta), event.meta
    return event


def test_one_channel_event_per_message_broadcast_request_and_task(
    core: Swarm, redis_url: str
) -> None:
    core.register("coordinator", name="lead")
    heard = Heard()

    async def body() -> None:
        async with _client(redis_url, "legacy", heard) as client:
            assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
            assert CAPABILITY in (client.server_capabilities.experimental or {})
            await _registered(core)

            t = time.monotonic()
            sent = core.send(AGENT, "please look at auth.py", sender="lead")
            event = await _next(heard, 1, t)
            assert event.meta == {"kind": "message", "message_id": sent.id, "from": "lead"}
            assert "please look at auth.py" in event.content and "read_inbox" in event.content

            t = time.monotonic()
            cast = core.broadcast("freeze at noon", sender="lead")
            core.broadcast("my own words", sender=AGENT)  # not told of its own broadcast
            event = await _next(heard, 2, t)
            assert event.meta == {"kind": "broadcast", "message_id": cast.id, "from": "lead"}
            assert "freeze at noon" in event.content

            t = time.monotonic()
            core.post_task("elsewhere", "not watched")
            core.post_task("work", "later", not_before=int(time.time() * 1000) + 3_600_000)
            task = core.post_task("work", "review auth.py")
            event = await _next(heard, 3, t)
            assert event.meta == {"kind": "task", "task_id": task.id, "queue": "work"}
            assert "claim_task" in event.content

            t = time.monotonic()
            asked = core.request_synthesis(AGENT, "P1", "cite everything", sender="lead")
            event = await _next(heard, 4, t)
            assert event.meta == {"kind": "synthesis_request", "message_id": asked.id,
                                  "from": "lead", "pass_name": "P1"}  # fmt: skip

            t = time.monotonic()
            core.post_tasks([{"queue": "work", "description": f"t{i}"} for i in range(50)])
            event = await _next(heard, 5, t)
            assert event.meta == {"kind": "task", "queue": "work", "count": "50"}
            claim = 'claim_task(queue="work")'  # JSON arguments, as the tool takes them
            assert event.content == f"50 tasks are claimable in queue work: {claim}."

            await anyio.sleep(0.3)  # nothing more comes: one event each
            assert len(heard.events) == 5, [e for _, e in heard.events]
            # The two messages were shown whole, so they are read; the synthesis request's
            # instructions were not shown: it is unread.
            assert {m.id for m in core.inbox(AGENT, ack=False)} == {asked.id}

    anyio.run(body)


def test_tasks_that_become_claimable_by_time_are_told_with_nobody_claiming(
    core: Swarm, redis_url: str
) -> None:
    """A delayed task falling due, and a lease that ends unreported, make a task claimable
    when no script looks: the server checks its watched queues when their time comes, and
    the session hears of each within a second of it."""
    heard = Heard()

    async def body() -> None:
        async with _client(redis_url, "legacy", heard):
            await _registered(core)
            due_at = time.monotonic() + 1
            later = core.post_task("work", "later", not_before=int(time.time() * 1000) + 1000)
            await anyio.sleep(0.7)
            assert heard.events == []  # not yet claimable
            event = await _next(heard, 1, due_at)
            assert event.meta == {"kind": "task", "task_id": later.id, "queue": "work"}

            leased = must(core.claim("work", worker="gone", lease_s=0.5))
            ends_at = time.monotonic() + 0.5
            event = await _next(heard, 2, ends_at)
            assert event.meta == {"kind": "task", "task_id": leased.id, "queue": "work"}
            assert core.get_task(leased.id).status is TaskStatus.PENDING
            await anyio.sleep(0.3)
            assert len(heard.events) == 2, [e for _, e in heard.events]
        assert RECHECK_S > 5  # what was heard came from the due moments, not from a poll

    anyio.run(body)


def test_every_session_watching_a_queue_hears_a_task_fall_due(core: Swarm, redis_url: str) -> None:
    """Two sessions watch the same queue: both hear of a delayed task falling due (and of a
    retry's backoff ending), as both hear of a post; whichever server's check made it
    claimable, its event reaches every watcher."""
    first, second = Heard(), Heard()

    async def body() -> None:
        async with _side_by_side(redis_url, (first, AGENT), (second, "chan-2")):
            await _registered(core, AGENT, "chan-2")
            due_at = time.monotonic() + 0.5
            later = core.post_task("work", "later", not_before=int(time.time() * 1000) + 500)
            for heard in (first, second):
                event = await _next(heard, 1, due_at)
                assert event.meta == {"kind": "task", "task_id": later.id, "queue": "work"}
            task = must(core.claim("work", worker="w"))
            failed = core.fail(task.id, task.token, "flaky")  # retried after a 1 s backoff
            assert failed.status is TaskStatus.DELAYED and failed.not_before is not None
            due_at = time.monotonic() + (failed.not_before - int(time.time() * 1000)) / 1000
            for heard in (first, second):
                event = await _next(heard, 2, due_at)
                assert event.meta == {"kind": "task", "task_id": later.id, "queue": "work"}

    anyio.run(body)


def test_no_channel_events_on_the_2026_protocol(core: Swarm, redis_url: str) -> None:
    """A 2026-07-28 client has no connection to push on: it is not told of the capability,
    and gets no event for its agent's messages or its watched queue."""
    core.register("coordinator", name="lead")
    heard = Heard()

    async def body() -> None:
        async with _client(redis_url, "2026-07-28", heard) as client:
            assert client.protocol_version == "2026-07-28"
            assert (await client.call_tool("read_inbox", {})).is_error is False  # registers
            await _registered(core)
            core.send(AGENT, "hello", sender="lead")
            core.broadcast("all", sender="lead")
            core.post_task("work", "a task")
            await anyio.sleep(0.5)
            assert heard.events == []
            assert CAPABILITY not in (client.server_capabilities.experimental or {})

    anyio.run(body)


def test_a_client_asking_for_2026_in_initialize_gets_a_handshake_version(
    redis_url: str, tmp_path: Path
) -> None:
    """Claude Code registers channels on the handshake: an initialize that names the newest
    version is answered with the newest handshake version, and the capability."""
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    params = _params(redis_url)
    with (
        open(tmp_path / "stderr.log", "w") as errlog,
        subprocess.Popen(
            [params.command, *params.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=errlog, text=True, env=env,
        ) as proc,
    ):  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        info = {"name": "claude-code", "version": "2.1.80"}
        init = {"protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": info}
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                     "params": init}) + "\n")  # fmt: skip
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())["result"]
        proc.stdin.close()
        assert proc.wait(15) == 0
    assert reply["protocolVersion"] == HANDSHAKE_PROTOCOL_VERSIONS[-1]
    assert reply["capabilities"]["experimental"] == {CAPABILITY: {}}
    assert "<channel" in reply["instructions"]


def _event(type_: EventType, n: int, **fields: str) -> Event:
    return Event(id=f"1-{n}", type=type_, at=0, fields=fields)


def test_notices_coalesce_a_batch_per_kind_and_queue() -> None:
    batch = [
        _event(EventType.MESSAGE_SENT, 1, message="m1", to="a", **{"from": "x"}, kind="text"),
        _event(EventType.MESSAGE_SENT, 2, message="m2", to="a", **{"from": "y"}, kind="text"),
        _event(EventType.MESSAGE_SENT, 3, message="m3", to="b", **{"from": "x"}, kind="text"),
        _event(EventType.TASK_POSTED, 4, task="t1", queue="q1", status="pending"),
        _event(EventType.TASK_RELEASED, 5, task="t2", queue="q1"),
        _event(EventType.TASK_POSTED, 6, task="t3", queue="q2", status="pending"),
        _event(EventType.TASK_POSTED, 7, task="t4", queue="q3", status="pending"),
        _event(EventType.TASK_DUE, 8, task="t5", queue="q1"),
        _event(EventType.TASK_EXPIRED, 9, task="t6", queue="q1", status="pending"),
        _event(EventType.TASK_EXPIRED, 10, task="t7", queue="q2", status="dead"),
        _event(EventType.TASK_POSTED, 11, task="t8", queue="q2", status="delayed"),
        _event(EventType.TASK_RETRIED, 12, task="t9", queue="q2"),
        _event(EventType.TASK_CLAIMED, 13, task="t1", queue="q1"),
    ]
    got = notices(batch, "a", ["q1", "q2"])
    assert [n.meta for n in got] == [
        {"kind": "message", "count": "2"},
        {"kind": "task", "queue": "q1", "count": "4"},
        {"kind": "task", "task_id": "t3", "queue": "q2"},
    ]
    assert got[0].content.startswith("2 new messages from x, y")
    # every tool a notice names is a real tool
    named = {w for n in got for w in re.findall(r"\b([a-z]+_[a-z_]+)\(", n.content)}
    named |= {"read_inbox"}
    assert named <= set(tool_names("all"))


def _tools_named(text: str) -> set[str]:
    """The tools ``text`` names: as a call (``synthesize(``), or by a name no prose has."""
    words = set(re.findall(r"\b([a-z_]+)\(", text)) | set(re.findall(r"\b[a-z]+_[a-z_]+\b", text))
    return words & set(tool_names("all"))


@pytest.mark.parametrize("role", AGENT_ROLES)
def test_each_notice_names_only_tools_its_sessions_role_has(role: str) -> None:
    """A worker asked for a synthesis is not told to call list_findings and synthesize, nor
    a shard told of a task to call claim_task: each notice is worded for the session's tools."""
    batch = [
        _event(EventType.MESSAGE_SENT, 1, message="m1", to="a", **{"from": "x"}, kind="text"),
        _event(EventType.MESSAGE_SENT, 2, message="m2", to="*", **{"from": "x"}, kind="text"),
        _event(EventType.MESSAGE_SENT, 3, message="m3", to="*", **{"from": "y"}, kind="text"),
        _event(
            EventType.SYNTHESIS_REQUESTED,
            4,
            shard="a",
            message="m4",
            **{"from": "lead", "pass": "P1"},
        ),
        _event(EventType.TASK_POSTED, 5, task="t1", queue="q1", status="pending"),
        _event(EventType.TASK_POSTED, 6, task="t2", queue="q2", status="pending"),
        _event(EventType.TASK_POSTED, 7, task="t3", queue="q2", status="pending"),
    ]
    got = notices(batch, "a", ["q1", "q2"], role=role)
    kinds = [n.meta["kind"] for n in got]
    assert sorted(kinds) == ["broadcast", "message", "synthesis_request", "task", "task"]
    has = set(tool_names(role))
    for text in [*(n.content for n in got), instructions(["q1"], role)]:
        assert _tools_named(text) <= has, (role, text)
        assert "read_inbox" in text or text.startswith(("Task", "2 tasks")), text
    (asked,) = (n.content for n in got if n.meta["kind"] == "synthesis_request")
    assert asked.startswith("lead asks you to synthesize the findings of P1")
    if {"list_findings", "synthesize"} <= has:
        assert "then synthesize(pass_name, text, sources)" in asked
    else:  # said plainly, with what this session can do instead
        assert f"(role {role}) cannot write a synthesis: a shard's session does" in asked
        assert 'send_message(to="lead", body=...)' in asked
    task = next(n.content for n in got if n.meta["kind"] == "task")
    assert ("claim_task(queue=" in task) == ("claim_task" in has), task


def test_a_worker_session_asked_for_a_synthesis_is_told_in_its_tools(
    core: Swarm, redis_url: str
) -> None:
    """The server's role reaches its channel: a worker's session hears a synthesis request in
    a worker's words, and its instructions name no tool it lacks."""
    core.register("coordinator", name="lead")
    heard = Heard()

    async def body() -> None:
        async with _client(redis_url, "legacy", heard, AGENT, "--role", "worker") as client:
            told = client.instructions or ""
            assert _tools_named(told) <= set(tool_names("worker")), told
            await _registered(core)
            t = time.monotonic()
            core.request_synthesis(AGENT, "P1", "cite everything", sender="lead")
            event = await _next(heard, 1, t)
            assert event.meta["kind"] == "synthesis_request"
            assert _tools_named(event.content) == {"read_inbox", "send_message"}, event.content

    anyio.run(body)
