"""Edges of the MCP tools, through the real server: an empty publish_context text is refused
(it would replace a real context with nothing); send_message to '*' sends its kind and data
(a broadcast dropped both, so an empty kind passed unnoticed); a cursor whose members have
other types than its tool writes is refused as damaged, with the way to start again (a list
for a flag was read as true, a list for a pass went to the core as a filter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._budget import encode_cursor

from .mcp_server._helpers import Tools, connect


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


async def _refused(agent: Tools, tool: str, **args: object) -> str:
    said = await agent.error(tool, **args)
    assert said.startswith(f"Error executing tool {tool}: ValidationError: "), said
    return said


def test_an_empty_context_text_is_refused(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-1")) as shard:
            await shard("publish_context", text="the real context\n")
            for empty in ("", "  \n"):
                said = await _refused(shard, "publish_context", text=empty)
                assert "text is empty: pass the context's text, or path=" in said, said
            _, page = await shard("get_context")
            assert page == "the real context\n"  # still the one published
            # On purpose: allow_empty (the core's refusal names it; the tool had none).
            await shard("publish_context", text="", allow_empty=True)
            assert core.get_context("shard-1") == ""

    anyio.run(body)


def test_a_broadcast_sends_its_kind_and_data(core: Swarm) -> None:
    async def body() -> None:
        async with (
            connect(build_server(core, role="coordinator", name="boss")) as boss,
            connect(build_server(core, role="shard", name="shard-1")) as shard,
        ):
            await shard("swarm_status")
            for to in ("*", "shard-1"):
                said = await _refused(boss, "send_message", to=to, body="hi", kind="")
                assert "message kind is empty" in said, said
            await boss("send_message", to="*", body="all hands", kind="alert", data={"n": 1})
            inbox, _ = await shard("read_inbox")
            [message] = inbox["messages"]
            assert (message["kind"], message["data"]) == ("alert", {"n": 1}), message

    anyio.run(body)


# Cursors that decode, each with a member of a type its tool never writes.
_FORGED: list[tuple[str, str, dict[str, Any]]] = [
    ("list_findings", "findings", {"p": ["P"], "s": 0}),
    ("list_findings", "findings", {"c": 5, "s": 0}),
    ("list_findings", "findings", {"s": True}),
    ("list_agents", "agents", {"o": 0, "a": [1]}),
    ("list_agents", "agents", {"o": 0, "a": 1}),
    ("list_agents", "agents", {"o": 0, "r": {"x": 1}}),
    ("search_context", "search", {"p": "retry", "s": 0, "l": 0, "r": [1]}),
    ("search_context", "search", {"p": "retry", "s": 0, "l": 0, "i": "yes"}),
    ("search_context", "search", {"p": "retry", "s": 0, "l": 0, "a": [2]}),
    ("search_context", "search", {"p": ["retry"], "s": 0, "l": 0}),
    ("get_context", "context", {"o": "shard-1", "v": "x", "c": [1]}),
    ("get_context", "context", {"o": "shard-1", "v": "x", "c": True}),
]


def test_cursors_with_members_of_other_types(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-1")) as shard:
            await shard("publish_context", text="retry\n" * 20)
            for tool, kind, state in _FORGED:
                said = await _refused(shard, tool, cursor=encode_cursor(kind, state))
                assert f"the {kind} cursor" in said and "is damaged: pass the next_cursor" in said
                assert "omit it to start at the first page" in said, (state, said)
            forged = encode_cursor("page", {"k": "x", "i": [1]})
            said = await _refused(shard, "next_page", cursor=forged)
            assert "is damaged" in said and "omit" not in said, said
            assert "repeat the call that returned the first page" in said, said

    anyio.run(body)
