"""Tool descriptions said per role, by the rule of the hints' words (``_render._in_words``): a
worker's next_page named list_findings, a coordinator's list_findings synthesize (tools their
servers do not offer); each now says what that role can do instead. (Every role's words,
descriptions included, are held by test_mcp_walkthrough_fixes.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm.mcp_server import AGENT_ROLES, build_server
from redis_swarm.mcp_server._arguments import description_of
from redis_swarm.mcp_server._tools import SwarmTools

from .mcp_server._helpers import connect


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


async def _listed(core: Swarm, role: str) -> dict[str, tuple[str, str]]:
    """Each tool ``role``'s client lists: its description and its input schema (as JSON)."""
    async with connect(build_server(core, role=role)) as agent:
        tools = (await agent.client.list_tools()).tools
    return {t.name: (t.description or "", json.dumps(t.input_schema)) for t in tools}


def test_a_role_without_a_tool_is_told_what_it_can_do_instead(core: Swarm) -> None:
    async def body() -> None:
        worker = await _listed(core, "worker")
        page = worker["next_page"][0]
        assert "other tools (get_context, search_context) take their own cursor" in page, page
        coordinator = await _listed(core, "coordinator")
        findings = coordinator["list_findings"][0]
        assert "a shard cites their ids in its synthesis" in findings, findings
        assert "ask one with request_synthesis" in findings, findings
        # Roles that offer the tools named read the docstring as written.
        for role in ("shard", "all"):
            listed = await _listed(core, role)
            for name in ("next_page", "list_findings"):
                written = description_of(getattr(SwarmTools, name))
                assert listed[name][0] == written, (role, name)

    anyio.run(body)


def test_every_reworded_description_is_still_written(core: Swarm) -> None:
    """Each of ``_DESCRIBED_WITHOUT``'s words is in some description (a docstring reworded
    leaves no entry that rewords nothing), and every role has words for each."""
    from redis_swarm.mcp_server._render import _DESCRIBED_WITHOUT  # (here: new in this change)

    async def body() -> None:
        every = await _listed(core, "all")
        text = "\n".join(d + s for d, s in every.values())
        for words in _DESCRIBED_WITHOUT:
            assert words in text, words
        for role in AGENT_ROLES:  # (a role without words for one would fail to build)
            await _listed(core, role)

    anyio.run(body)
