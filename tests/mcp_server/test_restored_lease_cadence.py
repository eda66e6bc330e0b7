"""A question held again after a restart is renewed as often as its claim's lease needs.

A named stdio server started again holds again the question whose token it finds kept on
the machine, and keeps its lease renewed (``SessionRegistry.held_again``). The renewals came
every third of the task's ``lease_s``: a question claimed with a shorter lease of its own
(``swarm task claim --lease``, its token kept for the agent) ran out between two renewals,
and another answerer took it while the session still showed it held. They now come every
third of the lease the claim asked for (``Task.lease_ms``), each asking for that lease again.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm._keys import ask_queue
from redis_swarm.mcp_server import build_server

from ..test_mcp_question_lease import _others_claim
from ..test_mcp_review_fixes import _server, _tool
from ._helpers import connect

TASK_LEASE_S = 60.0  # the task's: renewals every 20 s would come far too late
CLAIM_LEASE_S = 3.0  # the claim's own, a few of which pass while the session holds it


@pytest.fixture
def kept(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    swarm = Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home))
    yield swarm
    swarm.close()


def _claimed_short(core: Swarm, owner: str) -> str:
    """A question of ``owner`` claimed by its agent with a lease shorter than the task's, its
    token kept on this machine (as ``swarm task claim --lease`` keeps it)."""
    core.publish_context(owner, "a big book\n", source="book.md")
    queue = ask_queue(owner)
    posted = core.post_task(queue, "who did it?", lease_s=TASK_LEASE_S, data={"kind": "question"})
    claimed = core.claim(queue, worker=owner, lease_s=CLAIM_LEASE_S)
    assert claimed is not None and claimed.id == posted.id and claimed.token is not None
    tokens.remember(core.settings, owner, claimed.id, claimed.token)
    return posted.id


def _held_by(core: Swarm, qid: str, owner: str) -> None:
    held = core.get_task(qid)
    assert (held.status, held.worker, held.attempts) == ("claimed", owner, 1), held


def _answered_once(core: Swarm, qid: str) -> None:
    done = core.get_task(qid)
    assert done.status is TaskStatus.COMPLETED and done.attempts == 1
    assert done.finding_id is not None and not core.get_finding(done.finding_id).superseded


def test_a_short_lease_held_again_by_a_restarted_stdio_server_does_not_run_out(
    redis_url: str, swarm_home: Path, kept: Swarm
) -> None:
    qid = _claimed_short(kept, "shard-s")
    with _server(redis_url, swarm_home, "--role", "shard", "--name", "shard-s") as proc:
        failed, text = _tool(proc, 2, "swarm_status")
        assert not failed and json.loads(text)["holding"] == [qid], text
        taken = _others_claim(kept, "shard-s", 2 * CLAIM_LEASE_S)
        assert taken == [], f"another answerer took {taken} while the first server held it"
        proc.send_signal(signal.SIGKILL)
        proc.wait(15)
    _held_by(kept, qid, "shard-s")
    with _server(redis_url, swarm_home, "--role", "shard", "--name", "shard-s") as proc:
        failed, text = _tool(proc, 2, "swarm_status")
        assert not failed and json.loads(text)["holding"] == [qid], text
        taken = _others_claim(kept, "shard-s", 3 * CLAIM_LEASE_S)
        assert taken == [], f"another answerer took {taken} while the restarted server held it"
        _held_by(kept, qid, "shard-s")
        failed, text = _tool(proc, 3, "answer_question", question_id=qid, text="the butler")
        assert not failed, text
        answered = json.loads(text)
        assert answered["answered"] and "lease_lost" not in answered, answered
    _answered_once(kept, qid)


def test_each_renewal_of_a_lease_held_again_asks_for_the_claims_lease(kept: Swarm) -> None:
    """In process: the renewals keep the claim's lease (not the task's, longer), so that a
    server that dies gives the question back as soon as that claim meant."""
    qid = _claimed_short(kept, "shard-m")
    time.sleep(CLAIM_LEASE_S / 2)  # (the restart: the lease, last renewed before it, runs on)

    async def body() -> None:
        server = build_server(kept, role="shard", name="shard-m", keep_tokens=True)
        async with connect(server) as shard:
            status, _ = await shard("swarm_status")
            assert status["holding"] == [qid], status
            taken = await anyio.to_thread.run_sync(
                _others_claim, kept, "shard-m", 3 * CLAIM_LEASE_S
            )
            assert taken == [], f"another answerer took {taken} while the shard held it"
            held = kept.get_task(qid)
            left_s = (held.lease_deadline or 0) / 1000 - time.time()
            assert 0 < left_s <= CLAIM_LEASE_S + 0.5, held
            answered, _ = await shard("answer_question", question_id=qid, text="the butler")
            assert answered["answered"] and "lease_lost" not in answered, answered

    anyio.run(body)
    _answered_once(kept, qid)
