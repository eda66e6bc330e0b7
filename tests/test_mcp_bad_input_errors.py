"""Bad input a tool itself refuses is a ValidationError said as the others are ("Error
executing tool T: ValidationError: ... (fix that argument and call again)"), not a bare tool
error without its kind or hint: a search cursor reused with another pattern, a damaged cursor,
wait_for_pass naming nothing; and next_question's bad owner is blamed on the owner, not on the
name of a queue the agent never gave."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._validate import MAX_HITS
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._budget import encode_cursor

from .mcp_server._helpers import Tools, connect


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


async def _refused(agent: Tools, tool: str, **args: object) -> str:
    """The message of a call refused as bad input, as every other argument refusal reads."""
    said = await agent.error(tool, **args)
    assert said.startswith(f"Error executing tool {tool}: ValidationError: "), said
    assert said.endswith("(fix that argument and call again)"), said
    return said


def test_a_search_cursor_with_another_pattern(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            await shard("publish_context", text="retry\n" * 20)
            head, _ = await shard("search_context", pattern="retry", max_hits=5)
            said = await shard.error(
                "search_context", cursor=head["next_cursor"], pattern="timeout"
            )
            assert said.startswith("Error executing tool search_context: ValidationError: "), said
            # (it names the tools to call: no hint added)
            assert 'pages search_context with pattern="retry": leave pattern out to go on' in said
            assert 'or call search_context(pattern="timeout") without the cursor' in said
            await shard("search_context", cursor=head["next_cursor"])  # (as said: it goes on)

    anyio.run(body)


def test_damaged_cursors(core: Swarm) -> None:
    """Cursors that decode but hold what no page gave: each says to pass the cursor back
    unchanged, or to start again without it."""

    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            await shard("publish_context", text="retry\n" * 20)
            damaged = [
                ("search_context", encode_cursor("search", {"p": "retry", "s": -1, "l": 0})),
                ("list_findings", encode_cursor("findings", {"s": -1})),
                ("list_agents", encode_cursor("agents", {"o": "x"})),
                ("get_context", encode_cursor("context", {"o": 5})),
            ]
            for tool, cursor in damaged:
                said = await _refused(shard, tool, cursor=cursor)
                assert "is damaged: pass the next_cursor of the previous page unchanged" in said
                assert "omit it to start at" in said, said
            beyond = encode_cursor("search", {"p": "retry", "s": MAX_HITS, "l": 0})
            said = await _refused(shard, "search_context", cursor=beyond)
            assert "narrow the pattern, and search anew without the cursor" in said, said

    anyio.run(body)


def test_wait_for_pass_naming_nothing(core: Swarm) -> None:
    async def body() -> None:
        async with connect(build_server(core, role="coordinator")) as coordinator:
            said = await _refused(coordinator, "wait_for_pass", timeout_s=0)
            assert "name what to wait for: pass_name=... or queue=..." in said, said

    anyio.run(body)


def test_next_question_blames_the_owner(core: Swarm) -> None:
    """Was "queue 'ask.bad owner' contains ' '" (an argument the agent never gave), and
    without the hint: "ask." read as a tool's name."""

    async def body() -> None:
        async with connect(build_server(core, role="shard")) as shard:
            said = await _refused(shard, "next_question", owner="bad owner")
            assert "context owner 'bad owner' contains ' '" in said, said
            assert "queue" not in said, said

    anyio.run(body)
