"""Three defects of a session whose hooks and MCP server share one agent id, where the hooks
name the server's tools only while the agent's record names a server that runs:

1. A SessionStart hook that read the record just before the server registered wrote what it
   read back over the server's pid and host (the read, then ``register``): the core's
   ``join`` now stores a registration only over the record it was built from.
2. A server rejoining after a sweep registered without its transport, host and pid, and one
   whose record the hooks re-registered after a sweep never said them again.
3. Of two servers under one id, the one closing marked the agent stale (and, were it the one
   the record named, left it naming a dead pid) although the other still ran.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from redis_swarm import Settings, Swarm
from redis_swarm._errors import ValidationError
from redis_swarm._hooks import HookOptions, handle
from redis_swarm._hooks.events import mcp_tools
from redis_swarm._keys import Keys
from redis_swarm._models import Agent
from redis_swarm.mcp_server._agent_session import AgentSession
from redis_swarm.mcp_server._identity import names_a_server, server_identity
from redis_swarm.mcp_server._session import SessionRegistry

from .test_session_identity import _call, _stdio

START = {"session_id": "s1", "source": "startup"}


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


@pytest.fixture
def hooks(redis_url: str, tmp_path: Path) -> Iterator[Swarm]:
    swarm = Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path))
    yield swarm
    swarm.close()


def _tools_named(core: Swarm, agent: str) -> bool:
    """Whether the hooks of a session under ``agent`` would name its MCP server's tools."""
    return mcp_tools(core.get_agent(agent)) is not None


async def _server(core: Swarm, name: str) -> tuple[SessionRegistry, AgentSession]:
    """A stdio server's session under ``name``, in this process (its pid: this one's)."""
    registry = SessionRegistry(core, role="worker", name=name)
    return registry, await registry._open("claude-code")


class _ServerStartsMidway(Swarm):
    """The hooks' handle: the session's MCP server registers the id right after the hooks
    read its record, before they write theirs (once)."""

    def __init__(self, settings: Settings, server_starts: Callable[[], object]) -> None:
        super().__init__(settings)
        self.server_starts = server_starts
        self.started = False

    def _start_once(self) -> None:
        if not self.started:
            self.started = True
            self.server_starts()

    def get_agent(self, agent_id: str, stale_after_s: float = 60.0) -> Agent:
        agent = super().get_agent(agent_id, stale_after_s)
        self._start_once()  # (the read, then register, of the hooks before ``join``)
        return agent

    def join(
        self,
        agent_id: str,
        revise: Callable[[Agent | None], Mapping[str, Any]],
        *,
        announce: bool = True,
    ) -> Agent:
        def built_then_raced(stored: Agent | None) -> Mapping[str, Any]:
            profile = revise(stored)
            self._start_once()
            return profile

        return super().join(agent_id, built_then_raced, announce=announce)


def test_a_session_start_racing_its_mcp_server_keeps_the_server_named(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    options = HookOptions(agent="raced", queues=("work",))
    with Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path)) as before:
        handle(before, "SessionStart", START, options)  # an earlier session: hooks only
    assert not _tools_named(core, "raced")
    racing = _ServerStartsMidway(
        Settings.from_url(redis_url, swarm="test", home=tmp_path),
        lambda: anyio.run(_server, core, "raced"),
    )
    try:
        handle(racing, "SessionStart", START, options)
    finally:
        racing.close()
    assert racing.started
    agent = core.get_agent("raced")
    assert _tools_named(core, "raced"), agent.metadata  # the server's pid and host kept
    assert agent.role == "worker" and agent.left_at is None
    # and the hooks' keys beside the server's: neither wrote over the other
    assert {"hook": "claude", "queues": ["work"]}.items() <= (agent.metadata or {}).items()


def test_join_stores_only_over_the_record_it_was_built_from(core: Swarm) -> None:
    core.register("worker", name="j", metadata={"a": 1})
    seen: list[dict[str, Any]] = []

    def revise(stored: Agent | None) -> dict[str, Any]:
        assert stored is not None
        seen.append(dict(stored.metadata or {}))
        if len(seen) == 1:  # someone else writes the record as this one builds its own
            core.tally("j", "loop_claims", "s1")
        return {"role": "worker", "metadata": {**(stored.metadata or {}), "b": 2}}

    joined = core.join("j", revise)
    assert seen == [{"a": 1}, {"a": 1, "loop_claims": {"s1": 1}}]  # built again on it
    assert joined.metadata == {"a": 1, "loop_claims": {"s1": 1}, "b": 2}
    assert core.get_agent("j").metadata == joined.metadata
    fresh = core.join("new-one", lambda stored: {"role": "shard", "metadata": {"s": stored}})
    assert fresh.role == "shard" and fresh.metadata == {"s": None}


def test_a_server_rejoining_after_a_sweep_names_itself_again(core: Swarm, hooks: Swarm) -> None:
    async def body() -> None:
        registry, session = await _server(core, "swept")
        assert _tools_named(core, "swept")
        time.sleep(0.01)
        assert list(core.sweep(stale_after_s=0.001)) == ["swept"]  # (a suspended laptop)
        await registry._beat(session)  # not found: it rejoins
        agent = core.get_agent("swept")
        assert (agent.metadata or {}).get("rejoined") is True
        assert _tools_named(core, "swept"), agent.metadata
        # Swept again, and this time the session's hooks register it first (hooks only):
        # the server's next heartbeat finds a record naming no server, and names itself.
        time.sleep(0.01)
        assert list(core.sweep(stale_after_s=0.001)) == ["swept"]
        handle(hooks, "UserPromptSubmit", {"session_id": "s1"}, HookOptions(agent="swept"))
        assert not _tools_named(core, "swept")
        await registry._beat(session)
        assert _tools_named(core, "swept"), core.get_agent("swept").metadata
        assert (core.get_agent("swept").metadata or {}).get("hook") == "claude"  # kept

    anyio.run(body)


def test_a_server_closing_while_another_runs_under_its_id_leaves_the_agent_alive(
    core: Swarm, hooks: Swarm, redis_url: str, tmp_path: Path
) -> None:
    options = HookOptions(agent="twice", queues=("work",))

    async def body() -> None:
        registry, first = await _server(core, "twice")
        async with _stdio(redis_url, tmp_path, "twice") as second:
            await _call(second, "swarm_status")  # the record names the second server now
            second_pid = (core.get_agent("twice").metadata or {})["pid"]
            assert second_pid != os.getpid()
            await registry.close(first)  # the first one closes; the second runs on
            agent = core.get_agent("twice")
            assert agent.alive and agent.left_at is None
            assert (agent.metadata or {})["pid"] == second_pid and _tools_named(core, "twice")
            start = handle(hooks, "SessionStart", {**START, "source": "resume"}, options)
            assert _tools_named(core, "twice") and start.context
        # the second one, named by the record, closes: the agent ends (no server named)
        agent = core.get_agent("twice")
        assert agent.alive is False and agent.left_at is not None
        assert not names_a_server(agent) and not _tools_named(core, "twice")

    anyio.run(body)


def test_the_server_named_closing_hands_the_agent_to_the_other_at_its_heartbeat(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    async def body() -> None:
        registry, first = await _server(core, "handed")
        async with _stdio(redis_url, tmp_path, "handed") as second:
            await _call(second, "swarm_status")  # registered after the first: named
            assert (core.get_agent("handed").metadata or {})["pid"] != os.getpid()
        # It closed: the agent reads ended a moment, until the first server's heartbeat
        agent = core.get_agent("handed")
        assert agent.left_at is not None and not _tools_named(core, "handed")
        await registry._beat(first)
        agent = core.get_agent("handed")
        assert agent.alive and agent.left_at is None
        assert (agent.metadata or {})["pid"] == os.getpid() and _tools_named(core, "handed")
        await registry.close(first)
        assert core.get_agent("handed").alive is False

    anyio.run(body)


def test_mark_stale_for_a_session_the_record_no_longer_names_changes_nothing(
    core: Swarm,
) -> None:
    me = server_identity()
    other = {"host": socket.gethostname(), "pid": os.getpid() + 1}
    core.register("worker", name="m", metadata={"via": "mcp", **me})
    core.post_task("q", "work", task_id="t-1")
    core.heartbeat("m", current_task="t-1")
    assert core.mark_stale("m", session=other) is False
    agent = core.get_agent("m")
    assert agent.alive and agent.left_at is None and agent.current_task == "t-1"
    assert core.mark_stale("m", session=me) is True
    agent = core.get_agent("m")
    assert agent.alive is False and agent.current_task is None
    assert agent.metadata == {"via": "mcp"}  # the session's keys dropped with it
    with pytest.raises(ValidationError, match="session must be a mapping"):
        core.mark_stale("m", session=["host"])  # type: ignore[arg-type]


def test_join_replaces_a_record_that_is_not_utf8(core: Swarm, redis_url: str) -> None:
    """A record written around the operations, not even text: join builds on none and
    replaces it (it raised UnicodeDecodeError, failing a hook and an MCP session's open)."""
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.hset(Keys("test").agents, "garbled", b"\xff\xfe not utf-8")
        seen: list[Agent | None] = []

        def revise(stored: Agent | None) -> dict[str, Any]:
            seen.append(stored)
            return {"role": "worker", "metadata": {"fresh": True}}

        joined = core.join("garbled", revise)
        assert seen == [None] and joined.metadata == {"fresh": True}
        assert core.get_agent("garbled").metadata == {"fresh": True}
    finally:
        raw.close()


def test_a_session_holding_a_task_that_no_longer_exists_lets_it_go_without_rejoining(
    core: Swarm, redis_url: str
) -> None:
    """A heartbeat naming a task that no longer exists is refused (NotFound), as one of an
    agent swept: the server tells them apart, lets the task go and beats on, instead of
    registering the agent again at every beat."""

    async def body() -> None:
        registry, session = await _server(core, "holder")
        task = core.post_task("q", "held, then gone")
        claimed = core.claim("q", worker="holder")
        assert claimed is not None and claimed.token is not None
        session.hold(claimed)
        raw = redis.Redis.from_url(redis_url)
        try:
            raw.hdel(Keys("test").tasks, task.id)  # (gone: as a cancelled then retired task)
        finally:
            raw.close()
        joined_before = len(core.events(types="agent.joined"))
        for _ in range(3):
            await registry._beat(session)
        assert len(core.events(types="agent.joined")) == joined_before  # no rejoin
        assert task.id not in session.leases
        agent = core.get_agent("holder")
        assert agent.alive and agent.current_task is None
        assert not (agent.metadata or {}).get("rejoined")

    anyio.run(body)


class _RegisteredBetweenBeats(Swarm):
    """A handle on which the agent, unknown at the beat naming its task, is registered by
    someone else (a hook, a second server) just before the beat naming none."""

    def heartbeat(self, agent_id: str, *, current_task: str | None = None) -> Agent:
        if current_task == "":
            self.register("worker", name=agent_id)
        return super().heartbeat(agent_id, current_task=current_task)


def test_a_session_whose_agent_was_unknown_keeps_a_task_that_exists(redis_url: str) -> None:
    """The beat naming the task was refused for the agent (deregistered), not the task:
    registered again before the next beat, the session must not let a live lease go."""

    async def body() -> None:
        with _RegisteredBetweenBeats(redis_url, swarm="test") as swarm:
            registry = SessionRegistry(swarm, role="worker", name="between")
            session = await registry._open("claude-code")
            task = swarm.post_task("q", "held")
            claimed = swarm.claim("q", worker="between")
            assert claimed is not None
            session.hold(claimed)
            Swarm.deregister(swarm, "between")  # (the lease stays: the task is open)
            await registry._beat(session)
            assert task.id in session.leases

    anyio.run(body)
