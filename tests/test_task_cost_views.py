"""What every agent run on a task cost is the core's view, ``Swarm.task_costs`` (and
``AsyncSwarm``'s), which ``swarm task show`` and ``swarm lineage TASK`` both use: the task,
its finding, the findings reported on it after it was settled (superseded), its failed runs
and their total. The superseded ones are picked out by the server, so that showing a task of
a big pass sends back its own findings only, not every finding of the pass reported since."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._errors import AlreadyCompleted
from redis_swarm._models import TaskCosts
from redis_swarm._usage import Usage

from ._cli import Cli
from ._servers import RedisServer

PASS = "big pass"
OTHERS = 150  # findings of other tasks of the pass, reported after the task was settled
BIG = "x" * 20_000  # each of them that large: 3 MB in all


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


def _settled_task_in_a_big_pass(swarm: Swarm) -> tuple[str, str, str]:
    """A task completed ($0.10), then a late report on it ($0.03, superseded), among
    ``OTHERS`` large findings of the pass's other tasks; returns the ids of the task, its
    finding and the superseded one."""
    task = swarm.post_task("q", "the task", pass_name=PASS)
    first = swarm.claim(["q"], worker="w1")
    assert first is not None and first.token is not None and first.id == task.id
    again = swarm.claim(["q"], worker="w2")  # (nothing: it is held)
    assert again is None
    own = Usage("claude-json", cost_usd=0.1, tokens_in=1000, cached_in=400, tokens_out=100)
    finding = swarm.report(task.id, first.token, {"summary": "found"}, usage=own)
    others = swarm.post_tasks(
        [{"queue": "q", "description": f"other {i}", "pass_name": PASS} for i in range(OTHERS)]
    )
    for other in others:
        held = swarm.claim(["q"], worker="w3")
        assert held is not None and held.token is not None
        swarm.report(held.id, held.token, {"summary": f"other {other.id}", "details": BIG})
    late_usage = Usage("claude-json", cost_usd=0.03, tokens_in=500, tokens_out=10)
    with pytest.raises(AlreadyCompleted) as raised:
        swarm.report(task.id, first.token, {"summary": "late"}, worker="w1", usage=late_usage)
    assert raised.value.finding_id is not None
    return task.id, finding.id, raised.value.finding_id


def _sent_bytes(server: RedisServer) -> int:
    client = server.client()
    try:
        return int(client.info("stats")["total_net_output_bytes"])
    finally:
        client.close()


def _check(costs: TaskCosts, task_id: str, finding_id: str, late_id: str) -> None:
    assert costs.task.id == task_id
    assert costs.finding is not None and costs.finding.id == finding_id
    assert [f.id for f in costs.superseded] == [late_id]
    assert costs.searched_all
    assert costs.total == {
        "cost_usd": 0.13, "tokens_in": 1500, "cached_in": 400, "tokens_out": 110
    }  # fmt: skip


def test_both_shells_total_a_tasks_runs(handle: Swarm, redis_url: str) -> None:
    task_id, finding_id, late_id = _settled_task_in_a_big_pass(handle)
    _check(handle.task_costs(task_id), task_id, finding_id, late_id)

    async def read() -> TaskCosts:
        async with AsyncSwarm(redis_url, swarm="test") as swarm:
            return await swarm.task_costs(task_id)

    _check(asyncio.run(read()), task_id, finding_id, late_id)
    open_task = handle.post_task("q", "not done yet", pass_name=PASS)
    costs = handle.task_costs(open_task.id)  # an open task: no superseded finding to seek
    assert costs.finding is None and costs.superseded == () and costs.searched_all
    assert costs.total == dict.fromkeys(("cost_usd", "tokens_in", "cached_in", "tokens_out"))


def test_task_show_reads_the_tasks_own_findings_only(
    cli: Cli, handle: Swarm, redis_server: RedisServer
) -> None:
    """``task show`` of a task whose pass has 3 MB of other findings reported after it
    settled: what Redis sends back is its own records, a few KB (before: every finding of
    the pass reported since, 3 MB, read to find the superseded one)."""
    task_id, _, late_id = _settled_task_in_a_big_pass(handle)
    before = _sent_bytes(redis_server)
    shown = cli("task", "show", task_id).stdout
    sent = _sent_bytes(redis_server) - before
    assert f"superseded {late_id} cost" in shown
    assert "$0.1300 · 1,500 in (400 cached) / 110 out (its finding," in shown
    assert sent < 100_000, sent
    tree = cli.json("lineage", task_id)
    assert [f["id"] for f in tree["superseded"]] == [late_id]
    assert tree["total"]["cost_usd"] == 0.13 and tree["superseded_searched_all"]
