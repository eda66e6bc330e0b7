"""A named MCP server whose agent was swept rejoins it at its next heartbeat; should another
server's live agent of another role have taken the id meanwhile (between the heartbeat that
found the agent gone and the rejoin), the rejoin is refused as a session's start is
(``name_held``), instead of taking that agent over in its own role."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._errors import Conflict, NotFound
from redis_swarm._models import Agent
from redis_swarm.mcp_server._session import SessionRegistry

NAME = "rejoin-held"
# Another MCP server's identity (this machine, another process): the shard's.
OTHER = {"host": socket.gethostname(), "pid": os.getpid() + 1}


class _TakenAfterTheBeat(Swarm):
    """The worker server's handle: the heartbeat of its swept agent is refused (NotFound),
    and another server's session registers the id right after, before the rejoin (once)."""

    def __init__(self, url: str, takeover: Callable[[], object]) -> None:
        super().__init__(url, swarm="test")
        self.takeover = takeover
        self.taken = False

    def heartbeat(self, agent_id: str, *, current_task: str | None = None) -> Agent:
        try:
            return super().heartbeat(agent_id, current_task=current_task)
        except NotFound:
            if not self.taken:
                self.taken = True
                self.takeover()
            raise


def _request_of(client: str) -> Any:
    """A stdio request's context as ``for_request`` reads it: its client's name."""
    info = SimpleNamespace(client_info=SimpleNamespace(name=client))
    return SimpleNamespace(session=SimpleNamespace(client_params=info), protocol_version="")


def test_a_rejoin_does_not_take_over_a_name_another_servers_live_agent_took(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    core = Swarm(redis_url, swarm="test")

    def shard_server_registers() -> None:
        core.join(NAME, lambda _: {"role": "shard", "metadata": {"via": "mcp", **OTHER}})

    worker = _TakenAfterTheBeat(redis_url, shard_server_registers)

    async def body() -> None:
        registry = SessionRegistry(worker, role="worker", name=NAME)
        session = await registry._open("claude-code")
        time.sleep(0.01)
        assert list(core.sweep(stale_after_s=0.001)) == [NAME]  # (a suspended laptop)
        with caplog.at_level(logging.WARNING, logger="redis_swarm.mcp"):
            await registry._beat(session)  # not found; the shard's server takes the id; rejoin
        assert worker.taken
        agent = core.get_agent(NAME)
        # Before, the rejoin stored the worker's profile over the shard's live agent: its
        # role, this server's pid, and the shard's server lost its agent.
        assert agent.role == "shard" and agent.alive, agent
        assert agent.metadata == {"via": "mcp", **OTHER}, agent.metadata
        assert f"agent {NAME} is live as role shard" in caplog.text, caplog.text
        seen = core.get_agent(NAME).last_seen
        time.sleep(0.01)
        await registry._beat(session)  # its next beat: none (it kept the shard's alive)
        assert core.get_agent(NAME).role == "shard"
        assert core.get_agent(NAME).last_seen == seen
        assert session.displaced is not None and f"agent {NAME} is live" in session.displaced
        registry._shared["claude-code"] = session  # (as for_request keeps a stdio session)
        with pytest.raises(Conflict, match=f"agent {NAME} is live as role shard"):
            await registry.for_request(_request_of("claude-code"))  # its tool calls are told

    try:
        anyio.run(body)
    finally:
        worker.close()
        core.close()
