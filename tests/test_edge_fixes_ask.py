"""The MCP ask tool records the session's own agent as the asker, and refuses a task_id the
session does not hold (another's, a settled one, a pending one), as ``swarm ask --task``
refuses an --asker other than the lease holder."""

from __future__ import annotations

import anyio

from redis_swarm import Swarm
from redis_swarm._keys import ask_queue
from redis_swarm.mcp_server import build_server

from ._answers import answer_one
from .mcp_server._helpers import connect


def test_ask_refuses_a_task_the_session_does_not_hold(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")
    core.publish_context("lib", "a big book\n", source="book.md")
    others = core.post_task("work", "held by wk-4", parent="lib")
    done = core.post_task("done-q", "completed", parent="lib")
    pending = core.post_task("later", "nobody holds it", parent="lib")
    ours = core.post_task("mine", "wk-5's own", parent="lib")
    old = core.claim("done-q", worker="old-worker")
    assert old is not None and old.id == done.id
    core.report(old.id, old.token, {"summary": "done"}, worker="old-worker")

    async def body() -> None:
        async with (
            connect(build_server(core, role="worker", name="wk-4")) as wk4,
            connect(build_server(core, role="worker", name="wk-5")) as wk5,
        ):
            got, _ = await wk4("claim_task", queue="work")
            assert got["task"]["id"] == others.id
            for tid in (others.id, done.id, pending.id):
                said = await wk5.error(
                    "ask", target="lib", question="Where?", task_id=tid, timeout_s=0.5
                )
                assert f"this session holds no lease on task {tid}" in said, said
                assert "claim_task" in said and "leave task_id out" in said, said
            assert not core.list_tasks(queue=ask_queue("lib")).items  # nothing asked
            mine, _ = await wk5("claim_task", queue="mine")
            assert mine["task"]["id"] == ours.id
            answerer = answer_one(core, ask_queue("lib"), "page 1")
            answer, _ = await wk5("ask", target="lib", question="Where?", task_id=ours.id)
            await anyio.to_thread.run_sync(answerer.join, 10)
            assert answer["asker_task"] == ours.id
            question = core.get_task(answer["question_id"])
            assert isinstance(question.data, dict)
            assert question.data["asker"] == "wk-5" and question.data["asker_task"] == ours.id

    try:
        anyio.run(body)
    finally:
        core.close()
