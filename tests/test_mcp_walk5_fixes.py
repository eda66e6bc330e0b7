"""What the MCP tools still got wrong after the fifth walkthrough.

1. claim_task, renew_task, post_task and post_tasks took a lease as whole seconds from 1,
   where the Python API, ``--jsonl`` and the CLI's ``--lease`` take the core's range (a
   fraction of a second too, from ``MIN_LEASE_S`` to ``MAX_LEASE_S``);
2. search_context measured its hits against the budget in Python's characters, where the
   clients count UTF-16 units (an emoji is two): a page of emoji was twice its budget;
3. a worker whose task's shard holds a context that is not text (a PDF) was told to search
   and read it, and get_context said it was not UTF-8 ("fix that argument"), where the
   prompts say its media type, its size and the command that writes it to a file.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from redis_swarm import Swarm
from redis_swarm._budget import client_len
from redis_swarm._validate import MAX_LEASE_S, MIN_LEASE_S
from redis_swarm.mcp_server import build_server

from .mcp_server._helpers import connect, texts


def _lease_schema(tool: Any) -> dict[str, Any]:
    """The schema of a tool's lease_s (the number's, of an optional one)."""
    schema = tool.input_schema["properties"]["lease_s"]
    if "anyOf" in schema:
        (schema,) = (s for s in schema["anyOf"] if s.get("type") != "null")
    assert isinstance(schema, dict)
    return schema


def test_the_lease_tools_take_the_cores_range_fractions_too(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")

    async def body() -> None:
        async with connect(build_server(core, role="all", name="planner")) as agent:
            listed = {tool.name: tool for tool in (await agent.client.list_tools()).tools}
            items = listed["post_tasks"].input_schema["$defs"]["TaskInput"]
            schemas = [_lease_schema(listed[name]) for name in ("claim_task", "renew_task")]
            schemas += [_lease_schema(listed["post_task"]), items["properties"]["lease_s"]]
            for schema in schemas:
                assert schema["type"] == "number", schema
                assert (schema["minimum"], schema["maximum"]) == (MIN_LEASE_S, MAX_LEASE_S)
            posted, _ = await agent("post_task", queue="frac", description="d", lease_s=0.25)
            many, _ = await agent(
                "post_tasks", tasks=[{"queue": "frac", "description": "e", "lease_s": 2.5}]
            )
            claimed, _ = await agent("claim_task", queue="frac", lease_s=30.5)
            task_id = claimed["task"]["id"]
            assert claimed["task"]["lease_s"] == 30.5
            held = core.get_task(task_id)
            assert held.lease_deadline is not None and held.claimed_at is not None
            assert held.lease_deadline - held.claimed_at == 30_500
            before = time.time() * 1000
            renewed, _ = await agent("renew_task", task_id=task_id, lease_s=3.75)
            later = time.time() * 1000
            assert renewed["renewed"] is True
            after = core.get_task(task_id).lease_deadline
            assert after is not None and before + 3750 - 50 <= after <= later + 3750 + 50
            said = await agent.error("claim_task", queue="frac", lease_s=0)
            assert f"lease_s: must be at least {MIN_LEASE_S:g}" in said, said
            said = await agent.error("renew_task", task_id=task_id, lease_s=MAX_LEASE_S * 2)
            assert "lease_s: must be at most" in said, said
        assert core.get_task(posted["task"]["id"]).lease_s == 0.25
        assert core.get_task(many["ids"][0]).lease_s == 2.5

    try:
        anyio.run(body)
    finally:
        core.close()


def test_search_hits_fit_the_budget_as_the_clients_count_it(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")
    # A line of 37 characters is 67 UTF-16 units: by len(), twice as many fitted.
    core.publish_context("emoji", "".join(f"needle {'🐝' * 30}\n" for _ in range(40)), source="t")

    async def body() -> None:
        server = build_server(core, role="worker", budget_tokens=500)
        budget = 500 * 4
        body_chars = budget - 1_200  # (a page's body: the budget but the header's room)
        async with connect(server, budget_tokens=500) as worker:
            head, hits = await worker("search_context", owner="emoji", pattern="needle")
            assert hits is not None and head["hits"][0] == 1
            assert client_len(hits) <= body_chars, (client_len(hits), head)
            assert 3 <= head["hits"][1] < 40 and "next_cursor" in head
            result = await worker.raw("search_context", owner="emoji", pattern="needle")
            assert sum(client_len(text) for text in texts(result)) <= budget

    try:
        anyio.run(body)
    finally:
        core.close()


def test_a_context_that_is_not_text_is_said_with_its_media_type_and_command(
    redis_url: str,
) -> None:
    core = Swarm(redis_url, swarm="test")
    # ASCII bytes: UTF-8 as it happens, yet a PDF by its media type (the one rule).
    pdf = b"%PDF-1.7 not text to an agent"
    info = core.publish_context("shard-pdf", pdf, media_type="application/pdf", source="report.pdf")
    core.post_task("work", "read the report", parent="shard-pdf")
    command = f"`swarm context get shard-pdf --version {info.version} -o <FILE>`"

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            claimed, _ = await worker("claim_task", queue="work")
            assert claimed["context"] == {
                "owner": "shard-pdf",
                "version": info.version,
                "media_type": "application/pdf",
                "size_bytes": len(pdf),
            }
            said = claimed["next"]
            assert "search_context(" not in said and "get_context(" not in said, said
            assert f"is not text: {len(pdf)} bytes of `application/pdf`" in said, said
            assert command in said and "report_finding(" in said, said
            # get_context of the task's shard (its default owner): the same, no error.
            head, text = await worker("get_context")
            assert text is None
            assert head["media_type"] == "application/pdf"
            assert head["size_bytes"] == len(pdf)
            assert command in head["next"] and "UTF-8" not in head["next"], head
            again, _ = await worker("get_context", owner="shard-pdf", version=info.version)
            assert again == head

    try:
        anyio.run(body)
    finally:
        core.close()
