"""A question a named stdio server holds again as it restarts keeps its lease renewed.

A named stdio server keeps its sessions' lease tokens on the machine, and started again
(killed, then restarted by its client) its session holds again every lease whose token it
finds there. A question's lease held so was renewed by nothing: it ran out, and another
answerer took the question the session still showed held. It is now renewed as one
``next_question`` hands out, the first renewal at once (its lease was last renewed before the
restart).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm._keys import ask_queue
from redis_swarm.mcp_server import build_server

from .mcp_server._helpers import connect
from .test_mcp_question_lease import _others_claim

LEASE_S = 2.0  # the question's: several of them pass while the restored session holds it


@pytest.fixture
def core(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    swarm = Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home))
    yield swarm
    swarm.close()


def test_a_question_held_again_after_a_restart_is_renewed_until_answered(core: Swarm) -> None:
    core.publish_context("shard-r", "a big book\n", source="book.md")
    posted = core.post_task(ask_queue("shard-r"), "who did it?", lease_s=LEASE_S)
    # What a killed server of the agent left behind: its lease, its token kept here.
    claimed = core.claim(ask_queue("shard-r"), worker="shard-r")
    assert claimed is not None and claimed.id == posted.id and claimed.token is not None
    tokens.remember(core.settings, "shard-r", claimed.id, claimed.token)
    time.sleep(LEASE_S / 2)  # (the restart: the lease, last renewed before it, runs on)

    async def body() -> None:
        server = build_server(core, role="shard", name="shard-r", keep_tokens=True)
        async with connect(server) as shard:
            status, _ = await shard("swarm_status")
            assert status["holding"] == [posted.id], status
            taken = await anyio.to_thread.run_sync(_others_claim, core, "shard-r", 4 * LEASE_S)
            assert taken == [], f"another answerer took {taken} while the shard held it"
            held = core.get_task(posted.id)
            assert (held.status, held.worker, held.attempts) == ("claimed", "shard-r", 1)
            answered, _ = await shard("answer_question", question_id=posted.id, text="the butler")
            assert answered["answered"] and "lease_lost" not in answered, answered

    anyio.run(body)
    done = core.get_task(posted.id)
    assert done.status is TaskStatus.COMPLETED and done.attempts == 1
    assert done.finding_id is not None and not core.get_finding(done.finding_id).superseded
