"""The MCP ask tool: a worker holding a task asks its shard; the answer links to that task."""

from __future__ import annotations

import threading
from typing import Any

import anyio

from redis_swarm import Swarm
from redis_swarm._keys import ask_queue
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


def test_a_shard_session_answers_the_questions_about_its_context(core: Swarm) -> None:
    assert {"next_question", "answer_question"} <= set(tool_names("shard"))
    assert "next_question" not in tool_names("worker")
    core.publish_context("shard-x", "a big book\n", source="book.md")
    asked: dict[str, Any] = {}

    def asker() -> None:
        asked["answer"] = core.ask("shard-x", "Who did it?", data={"page": 3}, timeout_s=30)

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-x")) as shard:
            none, _ = await shard("next_question")
            assert none["question"] is None and "wait_s" in none["next"]
            thread = threading.Thread(target=asker)
            thread.start()
            got, _ = await shard("next_question", wait_s=20)
            assert got["question"] == "Who did it?" and got["data"] == {"page": 3}
            done, _ = await shard(
                "answer_question", question_id=got["question_id"], text="The butler.",
                sources=["context:L1"],
            )  # fmt: skip
            assert done["answered"] is True
            await anyio.to_thread.run_sync(thread.join, 10)
            # A retried answer is told it was answered, with the answer's id, and stores
            # nothing (before, it was told it held no lease, and to pass a token: a duplicate).
            error = await shard.error("answer_question", question_id=got["question_id"], text="x")
            assert "AlreadyCompleted: " in error and "this session answered it" in error, error
            assert done["finding_id"] in error and "next_question" in error
            assert "no lease" not in error and "claim_task" not in error

    anyio.run(body)
    assert asked["answer"].text == "The butler." and asked["answer"].answerer == "shard-x"
    assert asked["answer"].sources == ("context:L1",)
    assert len(core.findings().items) == 1


def test_a_late_answer_is_kept_and_told_once(core: Swarm) -> None:
    """The asker stopped waiting (its question cancelled) before the shard answered: the answer
    is kept superseded, the shard is told so in its own tools' words, and a retry stores no
    second copy."""
    core.publish_context("shard-y", "a big book\n", source="book.md")
    question = core.post_task(ask_queue("shard-y"), "Who did it?")

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-y")) as shard:
            got, _ = await shard("next_question")
            assert got["question_id"] == question.id
            core.cancel(question.id)
            late = await shard.error("answer_question", question_id=question.id, text="The cook.")
            assert "AlreadyCompleted: " in late and "superseded" in late, late
            assert "next_question" in late and "claim_task" not in late
            again = await shard.error("answer_question", question_id=question.id, text="The cook.")
            assert "was settled before your answer arrived" in again, again

    anyio.run(body)
    (kept,) = core.findings().items
    assert kept.superseded and kept.task_id == question.id


def test_an_answer_to_a_question_the_session_never_took_says_how_to_take_one(
    core: Swarm,
) -> None:
    """answer_question takes no token: the way out is next_question, not claim_task's."""
    core.publish_context("shard-z", "a big book\n", source="book.md")
    question = core.post_task(ask_queue("shard-z"), "Who did it?")

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-z")) as shard:
            said = await shard.error("answer_question", question_id=question.id, text="The cook.")
            assert f"holds no lease on question {question.id}" in said, said
            assert "next_question" in said and "claim_task" not in said and "token" not in said

    anyio.run(body)
    assert core.get_task(question.id).status.value == "pending"
