"""Every sender of a report says that its lease had run out and another worker leased the
task since (the core's ``Finding.overtaken_said``, from the report script's own reply): the
MCP worker's report_finding, ``swarm run``'s outcome, ``swarm serve``'s answer. The reply
names that lease's worker only as a string, and by its attempt too, so that a later lease of
the same worker name (two processes sharing it) is said as that. A task's renewals come
every third of the lease its claim took (``Task.claimed_lease_s``), not of the task's own."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm, TaskStatus
from redis_swarm._models import Finding
from redis_swarm._runner import Runner, RunOptions, ServeOptions, Server
from redis_swarm._runner.lease_renewal import LeaseRenewal
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._server import _SESSIONS

from ._cli import SRC
from ._handles import must
from .mcp_server._helpers import connect

PY = sys.executable

# An agent (``swarm run``'s or ``swarm serve``'s) whose lease ends while it runs (released
# with its own token, as one run out would) and which another worker, "w2", leases again;
# then it prints its finding.
TAKEN_MEANWHILE = (
    "cat > /dev/null; "
    f"PYTHONPATH={SRC} {PY} -c 'import os; from redis_swarm import Swarm; "
    'e = os.environ; s = Swarm(e["SWARM_URL"], swarm=e["SWARM_NAME"]); '
    's.release(e["SWARM_TASK_ID"], e["SWARM_TASK_TOKEN"]); '
    'assert s.claim(e["SWARM_TASK_QUEUE"], worker="w2").id == e["SWARM_TASK_ID"]\'; '
    "echo the butler"
)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _overtaken(swarm: Swarm, again_as: str = "w2") -> tuple[str, str]:
    """A task whose first lease (w1's) ended and which ``again_as`` leased again: its id and
    the first lease's token."""
    first = must(swarm.claim(swarm.post_task("q", "d").queue, worker="w1"))
    assert first.token is not None
    swarm.release(first.id, first.token)
    again = must(swarm.claim("q", worker=again_as))
    assert again.id == first.id and again.attempts == 2
    return first.id, first.token


def test_report_finding_says_another_worker_leased_the_task(swarm: Swarm) -> None:
    async def body() -> dict[str, Any]:
        server = build_server(swarm, role="worker", name="mcp-worker")
        async with connect(server) as worker:
            swarm.post_task("work", "do it")
            claimed, _ = await worker("claim_task", queue="work", lease_s=30)
            task_id = claimed["task"]["id"]
            (session,) = _SESSIONS[server].live
            swarm.release(task_id, session.leases[task_id].token)
            assert must(swarm.claim("work", worker="w2")).id == task_id
            done, _ = await worker("report_finding", task_id=task_id, summary="s")
            return {**done, "brief": claimed["task"]}

    done = anyio.run(body)
    assert done["completed"] is True, done
    said = done.get("lease_lost", "")
    assert f"the lease of task {done['task_id']} ended before this report" in said, done
    assert "w2 leased it again (attempt 2)" in said and "w2's will be kept superseded" in said
    assert swarm.get_task(done["task_id"]).finding_id == done["finding_id"]
    # (claim_task's brief: the lease its claim took, said once, not again in ms)
    assert done["brief"]["lease_s"] == 30 and "lease_ms" not in done["brief"], done["brief"]


def test_swarm_run_s_outcome_says_it(swarm: Swarm) -> None:
    task_id = swarm.post_task("q", "who did it?").id
    options = RunOptions(queues=("q",), command=TAKEN_MEANWHILE, concurrency=1, lease_s=30,
                         poll_s=0.2, until_done=True, worker="pool")  # fmt: skip
    (outcome,) = Runner(swarm, options).run()
    assert outcome.status == "completed", outcome
    assert f"the lease of task {task_id} ended before this report" in outcome.detail, outcome
    assert "w2 leased it again (attempt 2)" in outcome.detail, outcome
    assert "w2's will be kept superseded" in outcome.detail, outcome
    done = swarm.get_task(task_id)
    assert done.status is TaskStatus.COMPLETED and done.finding_id == outcome.finding_id


def test_swarm_serve_s_answer_says_it(swarm: Swarm) -> None:
    swarm.publish_context("lib", "a book\n", source="book.md")
    server = Server(swarm, ServeOptions(owner="lib", poll_s=0.2, command=TAKEN_MEANWHILE))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        got = swarm.ask("lib", "who did it?", timeout_s=30)
        deadline = time.monotonic() + 20
        while not server.outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.drain()
        thread.join(30)
    assert got.text.strip() == "the butler", got
    (outcome,) = server.outcomes
    assert outcome.status == "completed" and outcome.detail.startswith("answered"), outcome
    assert "the lease of question" in outcome.detail and "ended before this answer" in (
        outcome.detail
    ), outcome
    assert "w2 leased it again (attempt 2)" in outcome.detail, outcome
    assert "it is the question's answer, and w2's will be kept superseded" in outcome.detail


def test_a_worker_that_is_no_string_is_never_named(swarm: Swarm, raw: Any) -> None:
    """A task record whose worker was written around redis-swarm as a number: the reply of
    the report names no holder (the type checked in the script)."""
    task_id, token = _overtaken(swarm)
    record = json.loads(raw.hget(swarm.keys.tasks, task_id))
    raw.hset(swarm.keys.tasks, task_id, json.dumps({**record, "worker": 12345}))
    found = swarm.report(task_id, token, {"summary": "s"})
    assert found.overtaken_by is None and found.overtaken_attempt is None
    assert found.overtaken_said() is None
    assert swarm.get_task(task_id).finding_id == found.id


def test_a_forged_worker_name_is_said_escaped(swarm: Swarm, raw: Any) -> None:
    """A task record whose worker was written around redis-swarm as a string with a line
    break and an escape sequence: every face's words show it quoted, on one line."""
    task_id, token = _overtaken(swarm)
    record = json.loads(raw.hget(swarm.keys.tasks, task_id))
    forged = "w2\n\x1b[31mreported: all done"
    raw.hset(swarm.keys.tasks, task_id, json.dumps({**record, "worker": forged}))
    found = swarm.report(task_id, token, {"summary": "s"})
    assert found.overtaken_by == forged  # (the data as the record holds it)
    said = found.overtaken_said() or ""
    assert "\n" not in said and "\x1b" not in said, said
    assert f"{forged!r} leased it again" in said, said


def test_a_later_lease_of_the_same_worker_name_is_said_by_its_attempt(swarm: Swarm) -> None:
    task_id, token = _overtaken(swarm, again_as="w1")
    found = swarm.report(task_id, token, {"summary": "s"}, worker="w1")
    assert found.overtaken_by == "w1" and found.overtaken_attempt == 2
    said = found.overtaken_said() or ""
    assert "a later lease (attempt 2) of the same worker name, w1, took it" in said, said
    assert "that lease's will be kept superseded" in said and "w1 leased" not in said, said


def test_the_replies_with_claim_next_and_a_wait_behind_say_it_too(swarm: Swarm) -> None:
    """The reply's shape alike on every path: claim_next (the next task leased), and a wait
    pipelined behind the report (the batch's)."""
    task_id, token = _overtaken(swarm)
    nxt = swarm.post_task("q", "next").id
    found, following = swarm.report(task_id, token, {"summary": "s"}, worker="w1",
                                    claim_next="q")  # fmt: skip
    assert found.overtaken_by == "w2" and found.overtaken_attempt == 2
    assert following is not None and following.id == nxt and following.token is not None
    # (a claim of the queue that waited: the next report's wait goes behind it in a batch)
    assert swarm.claim("empty", worker="w1", wait_s=0.1) is None
    task_id, token = _overtaken(swarm)
    found, following = swarm.report(task_id, token, {"summary": "t"}, worker="w1",
                                    claim_next="q", wait_s=0.1)  # fmt: skip
    assert found.overtaken_by == "w2" and following is None


def test_a_renewal_that_asks_no_length_comes_every_third_of_the_claim_s_lease(
    swarm: Swarm,
) -> None:
    posted = swarm.post_task("q", "d", lease_s=900)
    task = must(swarm.claim(posted.queue, worker="w1", lease_s=3))
    assert task.lease_ms == 3000
    renewal = LeaseRenewal(
        swarm, task, None, [], token=lambda: task.token, on_outage=lambda _exc: None,
        on_back=lambda: None, adopt=lambda _now: False, on_kept=lambda _why: None,
    )  # fmt: skip
    assert renewal.every_s == pytest.approx(1.0)
    assert LeaseRenewal(
        swarm, task, 30, [], token=lambda: task.token, on_outage=lambda _exc: None,
        on_back=lambda: None, adopt=lambda _now: False, on_kept=lambda _why: None,
    ).every_s == pytest.approx(10.0)  # fmt: skip


def test_claimed_lease_s_without_lease_ms_or_a_claim(swarm: Swarm) -> None:
    posted = swarm.post_task("q", "d", lease_s=900)
    assert posted.claimed_lease_s == 900  # (never claimed: the task's own)
    task = must(swarm.claim(posted.queue, worker="w1", lease_s=4.5))
    older = dataclasses.replace(task, lease_ms=None)  # (claimed before it was recorded)
    assert older.claimed_lease_s == 4.5 and task.claimed_lease_s == 4.5


def test_the_core_says_it_after_another_reason() -> None:
    """After how a renewal found the lease lost (answer_question's ``lease_lost``): nothing
    composed by the tool."""
    found = Finding(id="f", task_id="q-1", summary="s", worker="me", overtaken_by="other",
                    overtaken_attempt=3)  # fmt: skip
    said = found.overtaken_said(what="question", deed="answer", why="the lease was lost")
    assert said == (
        "the lease was lost; your answer came first all the same, so it is the question's "
        "answer, and other's will be kept superseded"
    )
    alone = dataclasses.replace(found, overtaken_by=None)
    assert alone.overtaken_said(what="question", deed="answer") is None
    assert alone.overtaken_said(what="question", deed="answer", why="lost") == (
        "lost; your answer came first all the same, so it is the question's answer"
    )


def test_a_hook_s_report_of_a_stopped_subagent_says_it(swarm: Swarm) -> None:
    from redis_swarm._hooks.events import _LastMessage, _report_or_fail

    task_id, token = _overtaken(swarm)
    message = _LastMessage(swarm.settings, "parent", "w1", '{"summary": "s"}')
    said = _report_or_fail(swarm, task_id, token, ({"summary": "s"}, "object"), message, [])
    assert said.startswith(f"{task_id} reported: "), said
    assert f"; the lease of task {task_id} ended before this report" in said, said
    assert "w2 leased it again (attempt 2)" in said, said
