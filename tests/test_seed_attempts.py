"""The seed's ``attempt`` counts as the core counts ``max_attempts``: a failure uses one, a
release or an abandon (a lease run out) none; ``claims`` counts every lease taken."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from redis_swarm import EphemeralWorker, RedisSwarmCoordinator, Swarm

from ._handles import must


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as made:
        yield made


def test_releases_do_not_count_as_attempts(redis_url: str, swarm: Swarm) -> None:
    swarm.post_task("q", "t", max_attempts=2)
    with EphemeralWorker(url=redis_url, swarm="test") as worker:
        for claim in range(1, 5):
            task = must(worker.claim_task("q"))
            assert (task["attempt"], task["max_attempts"], task["claims"]) == (1, 2, claim)
            assert task["token"] is not None and task["token"].startswith(f"{claim}.")
            worker.release_task()


def test_a_failure_uses_an_attempt_and_an_abandon_does_not(redis_url: str, swarm: Swarm) -> None:
    swarm.configure_queue("q", retry_backoff_s=0)
    task_id = swarm.post_task("q", "t", max_attempts=3).id
    with EphemeralWorker(url=redis_url, swarm="test") as worker:
        assert must(worker.claim_task("q"))["attempt"] == 1
        worker.fail("boom")
        must(swarm.claim("q", worker="vanished", lease_s=0.05))  # a worker that dies
        time.sleep(0.1)  # its lease runs out: an abandon
        task = must(worker.claim_task("q"))
        assert (task["attempt"], task["max_attempts"], task["claims"]) == (2, 3, 3)
        assert swarm.get_task(task_id).abandons == 1
        worker.release_task()


def test_v1_claim_task_counts_alike(redis_url: str, swarm: Swarm) -> None:
    with RedisSwarmCoordinator(url=redis_url, swarm="test") as v1:
        v1.register_agent("haiku_worker")
        task_id = v1.post_task("queue:v1", "if.search", {"q": 1})
        first = must(v1.claim_task("queue:v1"))
        swarm.release(task_id, first["token"])
        again = must(v1.claim_task("queue:v1"))
        assert (again["attempt"], again["max_attempts"], again["claims"]) == (1, 3, 2)
