"""A lease lost is said as the task's record proves it was lost.

``LeaseRenewal`` (swarm run's pool, and the MCP server's renewal of a shard's question) said
"its lease ran out and X leased it again" of every lease another worker took over, also of
one that did not run out: released (by its holder, or ``swarm task release``), or given up
by a failure, then claimed by another. A lease runs out only where the record counts it
(``abandons``): released when nothing else can have ended it, else words true either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from redis_swarm import Swarm, Task
from redis_swarm._keys import ask_queue
from redis_swarm._runner.lease_renewal import LeaseRenewal
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._server import _SESSIONS

from .mcp_server._helpers import connect
from .test_mcp_question_lease import LEASE_S, _asking

QUEUE = "words"


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    swarm = Swarm(redis_url, swarm="test")
    yield swarm
    swarm.close()


def test_a_question_released_and_taken_by_another_is_said_released(core: Swarm) -> None:
    core.publish_context("shard-w", "a big book\n", source="book.md")
    got: dict[str, Any] = {}

    async def body() -> tuple[str, threading.Thread]:
        server = build_server(core, role="shard", name="shard-w")
        async with connect(server) as shard:
            thread = _asking(core, "shard-w", got)
            question, _ = await shard("next_question", wait_s=10)
            qid = str(question["question_id"])
            (session,) = _SESSIONS[server].live
            core.release(qid, session.leases[qid].token)  # (as `swarm task release` does)
            other = core.claim(ask_queue("shard-w"), worker="other", wait_s=2)
            assert other is not None and other.id == qid
            await anyio.sleep(LEASE_S / 3 + 1.5)  # (a renewal due meanwhile, refused)
            answered, _ = await shard("answer_question", question_id=qid, text="the butler")
            said = answered.get("lease_lost", "")
            assert "it was released and other leased it again (attempt 2)" in said, answered
            assert "ran out" not in said, answered
            return qid, thread

    _qid, thread = anyio.run(body)
    thread.join(10)


def _released(swarm: Swarm, held: Task) -> None:
    swarm.release(held.id, held.token)


def _failed(swarm: Swarm, held: Task) -> None:
    swarm.fail(held.id, held.token, "gave up", retry_after_s=0)


def _released_then_another_ran_out(swarm: Swarm, held: Task) -> None:
    swarm.release(held.id, held.token)
    between = swarm.claim([QUEUE], worker="between", lease_s=30)
    assert between is not None and between.id == held.id
    swarm.renew(held.id, between.token, lease_s=0.05)  # (it runs out now)
    anyio.run(anyio.sleep, 0.2)


@pytest.mark.parametrize(
    ("happens", "said"),
    [
        (_released, "it was released and other leased it again (attempt 2)"),
        (_failed, "its lease ended and other leased it again (attempt 2)"),
        (_released_then_another_ran_out, "its lease ended and other leased it again (attempt 3)"),
    ],
)
def test_a_lease_not_run_out_is_not_said_to_have_run_out(
    core: Swarm, happens: Callable[[Swarm, Task], None], said: str
) -> None:
    core.post_task(QUEUE, "the task", lease_s=30)
    held = core.claim([QUEUE], worker="mine", lease_s=30)
    assert held is not None
    lost: list[str] = []
    renewal = LeaseRenewal(
        core, held, 30, lost, token=lambda: held.token,
        on_outage=lambda exc: pytest.fail(f"no outage here: {exc}"), on_back=lambda: None,
        adopt=lambda _now: False, on_kept=lambda why: pytest.fail(f"kept: {why}"),
    )  # fmt: skip
    happens(core, held)
    other = core.claim([QUEUE], worker="other", lease_s=30)
    assert other is not None and other.id == held.id
    renewal._due = 0.0  # due now
    assert renewal() == said and lost == [said], lost
