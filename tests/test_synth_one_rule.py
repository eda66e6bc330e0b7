"""A synthesis citing no finding is refused unless ``cites_none``: one rule, the core's. The
MCP ``synthesize`` tool refused an empty ``sources`` itself, before the core, in words of its
own; it calls the core now, and says the core's refusal in an agent's words (the core's hints
through ``TOOL_WORDS``, as every core error is said to an MCP agent): list_findings, and
cites_none=true, never the Python call the core names to a Python caller."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from redis_swarm import Swarm, ValidationError, _hints
from redis_swarm.a2a_server._words import A2A_WORDS, in_a2a_words
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._render import TOOL_WORDS, failed_call, tool_error

from .mcp_server._helpers import connect

SHARD = "shard-1"


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def _core_refusal(core: Swarm, pass_name: str) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        core.synthesize(SHARD, pass_name, "nothing", [])
    return refused.value


def test_the_tool_says_the_core_s_refusal_in_an_agent_s_words(core: Swarm) -> None:
    refused = _core_refusal(core, "Pass 1")
    said_to_python = str(refused)
    assert _hints.CITES_NONE in said_to_python and _hints.LIST_FINDINGS in said_to_python

    async def body() -> str:
        async with connect(build_server(core, role="shard", name=SHARD)) as shard:
            return await shard.error("synthesize", pass_name="Pass 1", text="t", sources=[])

    message = anyio.run(body)
    # The core's refusal, word for word but its hints, as this server says every core error.
    assert message == failed_call("synthesize", tool_error(refused, "shard"))
    assert "Pass 1' cites no finding, so nothing was stored" in message
    assert "a synthesis cites the findings it rests on" in message
    assert "(list the pass's findings with list_findings; cites_none=true stores one" in message
    for python_or_cli in ("Swarm.synthesize", "cites_none=True", "swarm findings", "swarm "):
        assert python_or_cli not in message, message
    assert core.syntheses().items == ()


def test_the_tool_leaves_the_rule_to_the_core(core: Swarm) -> None:
    """What the core checks first is said first: the tool adds no check of its own before the
    core's (an empty text with no sources is the core's "needs a non-empty text")."""

    async def body() -> tuple[str, str]:
        async with connect(build_server(core, role="shard", name=SHARD)) as shard:
            blank = await shard.error("synthesize", pass_name="Pass 1", text=" ", sources=[])
            stored, _ = await shard(
                "synthesize", pass_name="P", text="none", sources=[], cites_none=True
            )
            return blank, stored["synthesis_id"]

    blank, sid = anyio.run(body)
    assert "a synthesis needs a non-empty text" in blank, blank
    assert core.get_synthesis(sid).sources == ()


def test_every_face_has_words_for_the_hint_and_none_says_python() -> None:
    said = f"x (list the pass's findings {_hints.LIST_FINDINGS}; {_hints.CITES_NONE})"
    mcp = _hints.reworded(said, TOOL_WORDS)
    assert mcp == (
        "x (list the pass's findings with list_findings; cites_none=true stores one resting on "
        "none: a pass that found nothing)"
    )
    a2a = in_a2a_words(said)
    assert A2A_WORDS[_hints.CITES_NONE] in a2a
    for message in (mcp, a2a):
        assert "cites_none=True" not in message and "Swarm." not in message, message
