"""Every MCP tool that acts as its session's agent registers that agent again, once, when a
sweep removed it while the session was quiet, then does what was asked, as ``read_inbox``
did alone: before, a ``send_message`` went out from an agent the swarm no longer knew, a
``post_task`` named a parent gone, and a ``claim_task`` registered a bare implicit worker in
its place (no MCP metadata), until the server's next heartbeat. Spoken to by a real client
over stdio (``test_mcp_review_fixes._server``)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm._models import Agent
from redis_swarm.mcp_server._tools import TOOLS

from .test_mcp_review_fixes import _server
from .test_mcp_review_inbox import _tool


def _swept(s: Swarm, agent: str) -> None:
    """A coordinator's ``swarm agents sweep`` while the session is quiet (every agent
    silent for any time at all: 0 s), the session's agent among those removed."""
    assert agent in s.sweep(stale_after_s=0)
    assert agent not in [a.id for a in s.agents()]


def _registered_by_the_server(s: Swarm, agent: str) -> Agent:
    """The agent as its MCP session registers it (role, metadata), not a bare worker."""
    record = s.get_agent(agent)
    assert record.role == "agent" and not record.implicit, record
    metadata = record.metadata or {}
    assert metadata.get("via") == "mcp" and metadata.get("rejoined") is True, record
    return record


def test_tools_acting_as_the_agent_register_it_again_after_a_sweep(
    redis_url: str, swarm_home: Path
) -> None:
    with (
        Swarm(redis_url, swarm="test") as s,
        _server(redis_url, swarm_home, "--role", "all") as proc,
    ):
        error, texts = _tool(proc, 2, "swarm_status")
        assert not error, texts
        agent = json.loads(texts[0])["you"]["agent"]
        s.register("worker", name="peer")

        _swept(s, agent)
        s.register("worker", name="peer")
        error, texts = _tool(proc, 3, "send_message", to="peer", body="after the sweep")
        assert not error, texts
        _registered_by_the_server(s, agent)
        [got] = s.inbox("peer")
        assert got.body == "after the sweep" and got.sender == agent

        _swept(s, agent)  # (a planner's tool: the task's parent is the agent, registered)
        error, texts = _tool(proc, 4, "post_task", queue="q", description="the job")
        assert not error, texts
        _registered_by_the_server(s, agent)
        posted = json.loads(texts[0])["task"]["id"]
        assert s.get_task(posted).parent == agent

        _swept(s, agent)  # (a worker's tool: the claim's implicit join found it registered)
        error, texts = _tool(proc, 5, "claim_task", queue="q")
        assert not error and json.loads(texts[0])["task"]["id"] == posted, texts
        record = _registered_by_the_server(s, agent)
        assert record.current_task in (None, posted)


def test_every_tool_that_changes_something_acts_through_the_one_rejoin() -> None:
    # (the read-only ones act as no agent: they take the session without a heartbeat)
    for spec in TOOLS:
        source = inspect.getsource(spec.fn)
        acting = "await self._acting(ctx)" in source
        assert acting is not spec.read_only, spec.name
