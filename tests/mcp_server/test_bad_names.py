"""Every tool that takes a name says what is wrong with a bad one, however it checks it."""

from __future__ import annotations

from typing import Any

import anyio

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server

from ._helpers import connect

NAME_ARGUMENTS = ("to", "queue", "owner", "target", "shard")
BAD = "bad name"
# A plausible value of each required argument that is not a name.
FILLERS: dict[str, Any] = {
    "body": "b",
    "task_id": "t-1",
    "summary": "s",
    "start": 1,
    "question": "q",
    "question_id": "q-1",
    "text": "t",
    "description": "d",
    "pass_name": "Pass 1",
    "sources": ["f-1"],
    "instructions": "i",
    "error": "e",
}
# Optional arguments a tool needs one of before it looks at names.
NEEDED: dict[str, dict[str, Any]] = {
    "search_context": {"pattern": "p"},
    "publish_context": {"text": "hello"},
}


def test_every_tool_says_what_is_wrong_with_a_bad_name(core: Swarm) -> None:
    async def body() -> None:
        server = build_server(core, role="all")
        checked = []
        async with connect(server) as tools:
            for spec in await server.list_tools():
                properties = spec.input_schema.get("properties", {})
                required = spec.input_schema.get("required", [])
                for name in NAME_ARGUMENTS:
                    if name not in properties:
                        continue
                    args = {r: FILLERS.get(r, "x") for r in required} | NEEDED.get(spec.name, {})
                    args[name] = BAD
                    said = await tools.error(spec.name, **args)
                    assert BAD in said and "ValidationError" in said, (spec.name, name, said)
                    checked.append((spec.name, name))
        assert ("publish_context", "owner") in checked and len(checked) >= 10

    anyio.run(body)
