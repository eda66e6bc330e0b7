"""What a tour of the MCP tools found: a claim's `next` that sent a worker to a context never
published, an ask that told the caller to pass `data` it had no way to pass, and times shown
as epoch milliseconds by one tool and ISO-8601 by the others."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm
from redis_swarm._keys import ask_queue
from redis_swarm.mcp_server import build_server

from ._answers import answer_one
from .mcp_server._helpers import connect

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def test_a_task_whose_shard_published_no_context_is_worked_from_its_description(
    core: Swarm,
) -> None:
    """`next` said to read the shard's context with search_context(owner=...): NotFound."""
    core.post_task("work", "count the words", data={"n": 3}, parent="shard-none")
    core.publish_context("shard-ctx", "a big book\n", source="book.md")
    core.post_task("read", "summarise the book", parent="shard-ctx")
    core.post_task("alone", "say hello")

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            claimed, _ = await worker("claim_task", queue="work")
            assert claimed["context"] is None
            said = claimed["next"]
            assert "`shard-none`, which has not published a context: work from the " in said
            assert "description and data" in said and "report_finding(task_id=" in said
            assert "search_context" not in said and "get_context" not in said, said
            # (what it says is what the prompt of `swarm run` says then)
            error = await worker.error("search_context", owner="shard-none", pattern="x")
            assert "NotFound" in error

            with_context, _ = await worker("claim_task", queue="read")
            assert with_context["context"]["owner"] == "shard-ctx"
            assert 'search_context(owner="shard-ctx", pattern=...)' in with_context["next"]
            assert 'get_context(owner="shard-ctx")' in with_context["next"]

            orphan, _ = await worker("claim_task", queue="alone")
            assert "context" not in orphan
            assert "description and data" in orphan["next"]
            assert "search_context" not in orphan["next"]

    anyio.run(body)


def test_ask_takes_the_material_in_data_as_its_error_says(core: Swarm) -> None:
    """The question's limit told the caller to pass the material in data: the tool had none."""
    core.publish_context("lib", "a big book\n", source="book.md")
    material = "x" * 40_000

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            error = await worker.error("ask", target="lib", question=material)
            assert "PayloadTooLarge" in error and "pass the material in data" in error
            answerer = answer_one(core, ask_queue("lib"), "it is all x")
            got, _ = await worker(
                "ask", target="lib", question="What is this?", data={"text": material}
            )
            await anyio.to_thread.run_sync(answerer.join, 10)
            assert got["text"] == "it is all x"
            assert core.get_task(got["question_id"]).data["data"] == {"text": material}
            error = await worker.error("ask", target="lib", question="?", data=["not", "one"])
            assert "data" in error

    anyio.run(body)


def test_times_are_iso_in_every_tool(core: Swarm) -> None:
    """next_question gave its lease_deadline in epoch milliseconds, ask its answer's
    created_at; claim_task and renew_task give ISO-8601 UTC."""
    core.publish_context("shard-t", "a big book\n", source="book.md")
    core.post_task("work", "read it", parent="shard-t")
    asked: dict[str, Any] = {}

    def asker() -> None:
        asked["answer"] = core.ask("shard-t", "Who did it?", timeout_s=30)

    async def body() -> None:
        async with connect(build_server(core, role="worker")) as worker:
            claimed, _ = await worker("claim_task", queue="work")
            assert ISO.fullmatch(claimed["task"]["lease_deadline"])
            renewed, _ = await worker("renew_task", task_id=claimed["task"]["id"])
            assert ISO.fullmatch(renewed["lease_deadline"])
            answerer = answer_one(core, ask_queue("shard-t"), "the butler")
            got, _ = await worker("ask", target="shard-t", question="Who?")
            await anyio.to_thread.run_sync(answerer.join, 10)
            assert ISO.fullmatch(got["created_at"]), got
        async with connect(build_server(core, role="shard", name="shard-t")) as shard:
            thread = threading.Thread(target=asker)
            thread.start()
            question, _ = await shard("next_question", wait_s=20)
            assert ISO.fullmatch(question["lease_deadline"]), question
            await shard("answer_question", question_id=question["question_id"], text="x")
            await anyio.to_thread.run_sync(thread.join, 10)

    anyio.run(body)
    assert asked["answer"].text == "x"
