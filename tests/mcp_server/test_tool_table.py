"""docs/mcp.md's table of tools names each tool's arguments as its schema has them: every one
(``report_finding``'s ``token`` was missing), and none it does not take."""

from __future__ import annotations

import re
from pathlib import Path

import anyio

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

DOCS = Path(__file__).parents[2] / "docs" / "mcp.md"


def _documented() -> dict[str, set[str]]:
    """Tool -> the arguments its row names: ``name(a, b)``, ``name(a or b, c)``, ``name``
    (none), every spelling of one tool in the row together."""
    table: dict[str, set[str]] = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        for name, args in re.findall(r"`(\w+)(?:\(([^)]*)\))?`", cells[0]):
            named = table.setdefault(name, set())
            named.update(a for a in re.split(r",\s*|\s+or\s+", args.strip()) if a)
    return table


def test_the_docs_table_names_every_argument_of_every_tool(core: Swarm) -> None:
    async def body() -> dict[str, set[str]]:
        server = build_server(core, role="all")
        return {
            spec.name: set(spec.input_schema.get("properties", {}))
            for spec in await server.list_tools()
        }

    schemas = anyio.run(body)
    documented = _documented()
    assert set(documented) == set(schemas)
    wrong = {
        name: {"missing": sorted(schemas[name] - args), "extra": sorted(args - schemas[name])}
        for name, args in documented.items()
        if args != schemas[name]
    }
    assert not wrong, wrong
    assert "token" in documented["report_finding"]
