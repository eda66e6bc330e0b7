"""A seed report that came after its task was settled returns the finding's id, as the
seed's did, and says what the id cannot: a ``SupersededFinding`` warning (the roles'
way of telling an outcome that is no error, as ``close()`` does)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from redis_swarm import EphemeralWorker, RedisSwarmCoordinator, Swarm, SwarmMemoryShard
from redis_swarm.roles import SupersededFinding


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as made:
        yield made


def test_report_finding_of_a_cancelled_task_warns(redis_url: str, swarm: Swarm) -> None:
    task_id = swarm.post_task("q", "t").id
    with EphemeralWorker(url=redis_url, swarm="test") as worker:
        assert worker.claim_task("q") is not None
        swarm.cancel(task_id)
        with pytest.warns(SupersededFinding) as said:
            fid = worker.report_finding({"summary": "late"})
        [warning] = said
        assert str(warning.message).startswith(
            f"report_finding(): task {task_id} was already settled"
        )
        assert f"kept as {fid}, marked superseded" in str(warning.message)
        assert warning.filename == __file__  # points at the caller's line
        assert swarm.get_finding(fid).superseded
        assert worker.held is None


def test_a_report_that_completes_its_task_says_nothing(redis_url: str, swarm: Swarm) -> None:
    swarm.post_task("q", "t")
    with EphemeralWorker(url=redis_url, swarm="test") as worker:
        assert worker.claim_task("q") is not None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fid = worker.report_finding({"summary": "first"})
    assert not swarm.get_finding(fid).superseded


def test_it_can_be_made_an_error(redis_url: str, swarm: Swarm) -> None:
    task_id = swarm.post_task("q", "t").id
    with EphemeralWorker(url=redis_url, swarm="test") as worker:
        assert worker.claim_task("q") is not None
        swarm.cancel(task_id)
        with warnings.catch_warnings():
            warnings.simplefilter("error", SupersededFinding)
            with pytest.raises(SupersededFinding, match="marked superseded"):
                worker.report_finding({"summary": "late"})
    [finding] = swarm.findings().items  # stored all the same
    assert finding.superseded


def test_collect_worker_finding_and_v1_complete_task_warn_alike(
    redis_url: str, swarm: Swarm
) -> None:
    with SwarmMemoryShard(url=redis_url, swarm="test", specialization="late") as shard:
        task_id = shard.spawn_worker_task("q", "t")
        first = shard.collect_worker_finding(task_id, {"summary": "first"})
        with pytest.warns(SupersededFinding, match=r"^collect_worker_finding\(\): task"):
            again = shard.collect_worker_finding(task_id, {"summary": "second"})
        assert again != first and swarm.get_finding(again).superseded
    with RedisSwarmCoordinator(url=redis_url, swarm="test") as v1:
        v1.register_agent("haiku_worker")
        task_id = v1.post_task("queue:v1", "if.search", {"q": 1})
        assert v1.claim_task("queue:v1") is not None
        swarm.cancel(task_id)
        with pytest.warns(SupersededFinding, match=r"^complete_task\(\): task"):
            fid = v1.complete_task(task_id, {"summary": "late"})
        assert swarm.get_finding(fid).superseded
