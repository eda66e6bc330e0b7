"""The MCP ask tool: a worker holding a task asks its shard; the answer links to that task."""

from __future__ import annotations

import anyio

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server, tool_names

from .._answers import answer_one
from ._helpers import connect


def test_a_worker_asks_the_shard_of_its_task(core: Swarm) -> None:
    assert "ask" in tool_names("worker") and "ask" in tool_names("shard")
    assert "ask" in tool_names("coordinator")
    core.publish_context("lib", "a big book\n", source="book.md")
    core.post_task("work", "summarise the book", parent="lib")

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            claimed, _ = await worker("claim_task", queue="work")
            answerer = answer_one(core, "ask.lib", "chapter 9", model="m-2")
            got, _ = await worker("ask", target="lib", question="Where is the plot twist?")
            answerer.join(10)
            assert got["text"] == "chapter 9" and got["answerer"] == "librarian"
            assert got["model"] == "m-2" and got["asker_task"] == claimed["task"]["id"]
            error = await worker.error("ask", target="nobody", question="hello?")
            assert "unknown target 'nobody'" in error
            error = await worker.error("ask", target="lib", question="anyone?", timeout_s=0.2)
            assert "no answerer claimed it" in error

    anyio.run(body)
