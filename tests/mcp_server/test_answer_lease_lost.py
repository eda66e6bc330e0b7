"""An answer whose lease another answerer holds now says so, whenever it comes.

A shard took a question (next_question), its lease ran out and another answerer leased the
question. Its answer_question still completes the question (the first answer of an open
question wins), but it said ``lease_lost`` only when its background renewal had noticed: an
answer sent before the next renewal was not told that another answerer held the question,
whose own answer would be refused. The report's script knows it (the token's attempt is not
the task's current one): its reply names the holder, the core's finding carries it
(``Finding.overtaken_by``), and the tool says it, at no round trip more.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from redis_swarm import AlreadyCompleted, Swarm, TaskStatus
from redis_swarm._keys import ask_queue
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._server import _SESSIONS

from .. import _clock
from .._clock import FakeClock
from ._helpers import connect

clock = _clock.clock
clocked = _clock.clocked

QUEUE = ask_queue("shard-o")


def _question(swarm: Swarm, lease_s: float = 10) -> str:
    return swarm.post_task(QUEUE, "who did it?", lease_s=lease_s, data={"kind": "question"}).id


def test_an_answer_after_the_lease_ran_out_and_was_taken_names_the_holder(
    clocked: Any, clock: FakeClock
) -> None:
    qid = _question(clocked)
    first = clocked.claim(QUEUE, worker="first")
    clock.advance(11)  # (the lease ran out: the next claim takes the question again)
    second = clocked.claim(QUEUE, worker="second")
    assert second is not None and second.id == qid and second.attempts == 2
    found = clocked.answer(first, first.token, "the butler", worker="first")
    assert found.overtaken_by == "second" and not found.superseded
    done = clocked.get_task(qid)
    assert done.status is TaskStatus.COMPLETED and done.finding_id == found.id
    # The holder's answer is refused (kept superseded), and says nothing of a holder.
    with pytest.raises(AlreadyCompleted):
        clocked.answer(second, second.token, "the gardener", worker="second")
    # Not stored: a read of the finding does not carry it.
    assert clocked.get_finding(found.id).overtaken_by is None


def test_an_answer_under_the_current_lease_or_one_run_out_untaken_names_none(
    clocked: Any, clock: FakeClock
) -> None:
    _question(clocked)
    held = clocked.claim(QUEUE, worker="first")
    assert clocked.answer(held, held.token, "the butler").overtaken_by is None
    _question(clocked)
    lapsed = clocked.claim(QUEUE, worker="first")
    clock.advance(11)  # (run out, and nobody took it)
    assert clocked.answer(lapsed, lapsed.token, "the butler").overtaken_by is None


def test_an_answer_that_claims_the_next_names_the_holder_and_claims(
    clocked: Any, clock: FakeClock
) -> None:
    """The reply of a report with claim_next says the holder too, and its next task is
    leased as before (the reply's layout moved by one)."""
    qid = _question(clocked)
    first = clocked.claim(QUEUE, worker="first")
    clock.advance(11)
    assert clocked.claim(QUEUE, worker="second") is not None
    following = _question(clocked)
    found, nxt = clocked.answer(first, first.token, "the butler", worker="first",
                                claim_next=QUEUE)  # fmt: skip
    assert found.overtaken_by == "second" and found.task_id == qid
    assert nxt is not None and nxt.id == following and nxt.token is not None
    assert clocked.get_task(following).worker == "first"


@pytest.mark.parametrize("renewed", [False, True], ids=["before-renewal", "after-renewal"])
def test_answer_question_says_another_answerer_took_it_and_is_refused(
    core: Swarm, renewed: bool
) -> None:
    """Before the next renewal, in the core's words; after a renewal refused, in its words
    (how the lease went), the holder's refusal added."""
    core.publish_context("shard-o", "a big book\n", source="book.md")
    got: dict[str, Any] = {}

    def ask() -> None:
        got["answer"] = core.ask("shard-o", "who did it?", timeout_s=30)

    async def body() -> tuple[str, Any]:
        server = build_server(core, role="shard", name="shard-o")
        async with connect(server) as shard:
            thread = threading.Thread(target=ask)
            thread.start()
            question, _ = await shard("next_question", wait_s=10)
            qid = str(question["question_id"])
            (session,) = _SESSIONS[server].live
            # (as a lease run out would, then another answerer's claim; no renewal is due
            # yet: the next comes a third of the 10 s lease after the claim)
            core.release(qid, session.leases[qid].token)
            other = core.claim(QUEUE, worker="other", wait_s=2)
            assert other is not None and other.id == qid and other.attempts == 2
            if renewed:
                await anyio.sleep(10 / 3 + 1.5)  # (a renewal due meanwhile, refused)
            answered, _ = await shard("answer_question", question_id=qid, text="the butler")
            assert answered["answered"], answered
            said = answered.get("lease_lost", "")
            if renewed:
                assert f"the lease of question {qid} was lost" in said, answered
                assert "it was released and other leased it again (attempt 2)" in said, answered
            else:
                assert f"the lease of question {qid} ended before this answer" in said, answered
                assert "and other leased it again" in said, answered
            assert "it is the question's answer" in said, answered
            assert "other's will be kept superseded" in said, answered
            await anyio.to_thread.run_sync(thread.join, 10)
            return qid, other

    qid, other = anyio.run(body)
    assert got["answer"].text == "the butler", got
    assert core.get_task(qid).finding_id == got["answer"].finding_id
    with pytest.raises(AlreadyCompleted):
        core.answer(other, other.token, "from the other")
