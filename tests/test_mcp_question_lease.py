"""A shard answering over MCP keeps its question's lease while its session holds it.

``next_question`` claims with the question's own lease (a third of its asker's timeout, 5 s at
least), and the shard role has no ``renew_task``: an agent thinking longer than that lost the
lease, another answerer took the question, and one of the two answers ended superseded. The
server now keeps the lease renewed while the session holds the question (as ``swarm serve``
does its agent's), stops when it is answered or the session ends (the question then goes back
to its queue), and the next answer_question says so when a renewal was refused.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm, TaskStatus, Timeout
from redis_swarm._keys import ask_queue
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._server import _SESSIONS

from .mcp_server._helpers import connect
from .test_mcp_review_fixes import _server, _tool

# An ask of 12 s gives its question the shortest lease there is (5 s: a third of 12 is less).
ASK_S = 12.0
LEASE_S = 5.0


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def _asking(
    core: Swarm, owner: str, got: dict[str, Any], timeout_s: float = ASK_S
) -> threading.Thread:
    def ask() -> None:
        try:
            got["answer"] = core.ask(owner, "slow one", timeout_s=timeout_s)
        except Exception as exc:  # (said by the test's assertion)
            got["error"] = exc

    thread = threading.Thread(target=ask)
    thread.start()
    return thread


def _others_claim(core: Swarm, owner: str, for_s: float) -> list[str]:
    """What another answerer claimed from ``owner``'s ask queue in ``for_s`` seconds."""
    taken: list[str] = []
    end = time.monotonic() + for_s
    while time.monotonic() < end:
        task = core.claim(ask_queue(owner), worker="other", wait_s=0.5)
        if task is not None:
            taken.append(task.id)
    return taken


def test_a_question_held_past_its_lease_is_no_other_answerers_while_the_session_lives(
    core: Swarm,
) -> None:
    core.publish_context("shard-l", "a big book\n", source="book.md")
    got: dict[str, Any] = {}
    held: dict[str, Any] = {}

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-l")) as shard:
            thread = _asking(core, "shard-l", got)
            question, _ = await shard("next_question", wait_s=10)
            qid = held["id"] = question["question_id"]
            assert core.get_task(qid).lease_s == LEASE_S
            # The agent thinks for longer than the lease: nobody else gets the question.
            taken = await anyio.to_thread.run_sync(_others_claim, core, "shard-l", LEASE_S + 2)
            assert taken == [], f"another answerer took {taken} while the shard held it"
            answered, _ = await shard("answer_question", question_id=qid, text="the butler")
            assert answered["answered"] and "lease_lost" not in answered, answered
            await anyio.to_thread.run_sync(thread.join, 10)

    anyio.run(body)
    assert "error" not in got, got
    answer = got["answer"]
    assert answer.text == "the butler"
    question = core.get_task(held["id"])
    assert question.status is TaskStatus.COMPLETED and question.attempts == 1
    assert question.finding_id == answer.finding_id  # the current finding, not superseded
    assert not core.get_finding(answer.finding_id).superseded


def test_a_session_ended_unanswered_gives_its_question_back_and_stops_renewing(
    core: Swarm,
) -> None:
    """Closed cleanly: released at once, and no renewal of the closed session touches the
    lease the next answerer holds."""
    core.publish_context("shard-c", "a big book\n", source="book.md")
    got: dict[str, Any] = {}

    async def body() -> str:
        async with connect(build_server(core, role="shard", name="shard-c")) as shard:
            thread = _asking(core, "shard-c", got)
            question, _ = await shard("next_question", wait_s=10)
        closed_ms = time.time() * 1000
        qid = str(question["question_id"])
        other = core.claim(ask_queue("shard-c"), worker="other", wait_s=2)
        assert other is not None and other.id == qid and other.attempts == 2
        await anyio.sleep(LEASE_S / 3 + 1)  # (past a renewal's due time)
        renewed = [
            e for e in core.events(types=["task.renewed"])
            if e.fields.get("task") == qid and e.at >= closed_ms
        ]  # fmt: skip
        assert all(e.fields.get("worker") == "other" for e in renewed), renewed
        core.answer(other, other.token, "from the other")
        await anyio.to_thread.run_sync(thread.join, 10)
        return qid

    qid = anyio.run(body)
    assert got["answer"].text == "from the other", got
    assert core.get_task(qid).status is TaskStatus.COMPLETED


def test_a_killed_shard_s_question_goes_back_once_its_lease_runs_out(
    redis_url: str, swarm_home: Path, core: Swarm
) -> None:
    """A shard's server killed (no close, no release): the renewals stop with it, and the
    question is handed to the next answerer once its lease runs out."""
    core.publish_context("shard-k", "a big book\n", source="book.md")
    got: dict[str, Any] = {}
    thread = _asking(core, "shard-k", got)
    with _server(redis_url, swarm_home, "--role", "shard", "--name", "shard-k") as proc:
        failed, text = _tool(proc, 2, "next_question", wait_s=10)
        assert not failed, text
        qid = json.loads(text)["question_id"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(15)
    start = time.monotonic()
    other = core.claim(ask_queue("shard-k"), worker="other", wait_s=LEASE_S + 3)
    assert other is not None and other.id == qid and other.attempts == 2
    assert time.monotonic() - start < LEASE_S + 3
    core.answer(other, other.token, "from the other")
    thread.join(10)
    assert got["answer"].text == "from the other", got


def test_a_lease_lost_is_said_by_the_next_answer_of_its_question(core: Swarm) -> None:
    """The renewal refused (the lease gone to another answerer): it stops, and the shard's
    answer says so; still the first answer of the open question, it is the answer."""
    core.publish_context("shard-x", "a big book\n", source="book.md")
    got: dict[str, Any] = {}

    async def body() -> str:
        server = build_server(core, role="shard", name="shard-x")
        async with connect(server) as shard:
            thread = _asking(core, "shard-x", got)
            question, _ = await shard("next_question", wait_s=10)
            qid = str(question["question_id"])
            (session,) = _SESSIONS[server].live
            core.release(qid, session.leases[qid].token)  # (as a lease run out would)
            other = core.claim(ask_queue("shard-x"), worker="other", wait_s=2)
            assert other is not None and other.id == qid
            await anyio.sleep(LEASE_S / 3 + 1.5)  # (a renewal due meanwhile, refused)
            answered, _ = await shard("answer_question", question_id=qid, text="the butler")
            said = answered.get("lease_lost", "")
            assert f"the lease of question {qid} was lost" in said, answered
            assert "other" in said and "it is the question's answer" in said, answered
            await anyio.to_thread.run_sync(thread.join, 10)
            return qid

    qid = anyio.run(body)
    assert got["answer"].text == "the butler", got
    assert core.get_task(qid).finding_id == got["answer"].finding_id


def test_the_askers_timeout_ends_the_renewals_and_the_late_answer_says_why(core: Swarm) -> None:
    """Renewed never past its asker's wait: the asker withdraws the question at its timeout,
    the next renewal is refused and the renewals stop; the shard's late answer (kept
    superseded) says its lease was lost, and why."""
    core.publish_context("shard-t", "a big book\n", source="book.md")
    got: dict[str, Any] = {}

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-t")) as shard:
            thread = _asking(core, "shard-t", got, timeout_s=6)
            question, _ = await shard("next_question", wait_s=10)
            qid = str(question["question_id"])
            await anyio.to_thread.run_sync(thread.join, 15)
            assert core.get_task(qid).status is TaskStatus.CANCELLED
            cancelled_ms = time.time() * 1000
            await anyio.sleep(LEASE_S / 3 + 1.5)  # (a renewal due meanwhile, refused)
            said = await shard.error("answer_question", question_id=qid, text="too late")
            assert f"the lease of question {qid} was lost" in said, said
            assert "cancelled" in said and "kept as superseded" in said, said
            renewed = [
                e for e in core.events(types=["task.renewed"])
                if e.fields.get("task") == qid and e.at > cancelled_ms
            ]  # fmt: skip
            assert renewed == [], renewed

    anyio.run(body)
    assert isinstance(got.get("error"), Timeout), got
