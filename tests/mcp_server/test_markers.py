"""A tool is described by its method alone: the ``@tool`` marker is where roles and
read-only-ness live, and every table is derived from it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from redis_swarm.mcp_server import INSTRUCTIONS, TOOL_ROLES, _roles, tool_names
from redis_swarm.mcp_server._roles import WORKER, tool, tool_specs
from redis_swarm.mcp_server._tools import READ_ONLY_TOOLS, TOOLS, SwarmTools


def test_every_public_coroutine_of_the_tools_is_a_marked_tool() -> None:
    public = {
        name
        for name, fn in inspect.getmembers(SwarmTools, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert public == {spec.name for spec in TOOLS} == set(TOOL_ROLES)
    assert len(TOOLS) == len(public)


def test_an_unmarked_tool_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tool marked here is declared in a copy, dropped after the test: kept, a test run
    # after it in the same process saw an "extra" tool no role offers.
    monkeypatch.setattr(_roles, "_DECLARED", dict(_roles._DECLARED))

    class Sloppy(SwarmTools):
        async def forgotten(self) -> None:
            """A tool whose author forgot the marker."""

    with pytest.raises(TypeError, match=r"Sloppy.forgotten .* without @tool"):
        tool_specs(Sloppy)

    class Careful(SwarmTools):
        @tool(roles=WORKER, read_only=True)
        async def extra(self) -> None:
            """A marked one."""

    assert [s.name for s in tool_specs(Careful)] == ["extra", *tool_names("all")]
    with pytest.raises(ValueError, match="roles must be some of"):
        tool(roles={"janitor"})


def test_the_tables_are_read_from_the_markers() -> None:
    assert TOOL_ROLES["claim_task"] == WORKER
    assert "swarm_status" in READ_ONLY_TOOLS and "claim_task" not in READ_ONLY_TOOLS
    assert tool_names("all") == [spec.name for spec in TOOLS]
    assert tool_names("all")[0] == "swarm_status"  # the order clients list them in


@pytest.mark.parametrize("role", sorted(INSTRUCTIONS))
def test_the_instructions_name_exactly_the_tools_of_their_role(role: str) -> None:
    named = {name for name in TOOL_ROLES if re.search(rf"\b{name}\b", INSTRUCTIONS[role])}
    assert named == set(tool_names(role))


def test_the_docs_table_matches_the_markers() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "mcp.md").read_text()
    table: dict[str, frozenset[str]] = {}
    for line in docs.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            marks = zip(("worker", "shard", "coordinator"), cells[1:4], strict=True)
            roles = frozenset(role for role, mark in marks if mark)
            for name in re.findall(r"`(\w+)[(`]", cells[0]):
                table[name] = roles
    assert table == TOOL_ROLES
