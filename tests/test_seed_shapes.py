"""The seed's return shapes, method by method: every key the seed's code returned is there,
with the seed's type (swarm_architecture_v2.py and V1's redis_swarm_coordinator.py in
dannystocker/infrafabric). Extra keys are allowed; a missing key or another type is a bug."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from redis_swarm import (
    EphemeralWorker,
    LeaseLost,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    TaskStatus,
    ValidationError,
)

from ._raw import command_calls, raw_client, reset_stats


def assert_shape(value: Mapping[str, Any], shape: Mapping[str, type | tuple[type, ...]]) -> None:
    missing = sorted(set(shape) - set(value))
    assert not missing, f"missing the seed's keys {missing} in {value}"
    for key, kind in shape.items():
        assert isinstance(value[key], kind), f"{key}: {value[key]!r} is not {kind}"


@pytest.fixture
def shard(redis_url: str) -> Iterator[SwarmMemoryShard]:
    made = SwarmMemoryShard(specialization="research", url=redis_url)
    made.load_context("line one\nline two\n" * 100, "notes.md")
    yield made
    made.close()


@pytest.fixture
def worker(redis_url: str) -> Iterator[EphemeralWorker]:
    made = EphemeralWorker(url=redis_url)
    yield made
    made.close()


# --- swarm_architecture_v2.py


def test_spawn_worker_task_returns_a_task_id(shard: SwarmMemoryShard) -> None:
    task_id = shard.spawn_worker_task("analysis", "Read it", {"q": 1}, pass_name="P1")
    assert isinstance(task_id, str) and task_id


def test_claim_task_is_the_seed_task_record(
    shard: SwarmMemoryShard, worker: EphemeralWorker, redis_url: str
) -> None:
    task_id = shard.spawn_worker_task("analysis", "Read it", {"q": 1}, pass_name="P1")
    task = worker.claim_task("queue:analysis")
    assert task is not None
    seed = {"task_id": str, "parent_shard": str, "type": str, "description": str, "data": dict}
    assert_shape(task, {**seed, "pass_name": str, "posted_at": str, "status": str})
    assert (task["task_id"], task["type"], task["pass_name"]) == (task_id, "analysis", "P1")
    with EphemeralWorker(url=redis_url) as other:  # (this worker holds its task)
        assert other.claim_task("queue:analysis") is None


def test_report_finding_and_get_all_findings(
    shard: SwarmMemoryShard, worker: EphemeralWorker
) -> None:
    task_id = shard.spawn_worker_task("analysis", "Read it", {"q": 1})
    assert worker.claim_task("analysis") is not None
    assert isinstance(worker.get_parent_context(), str)
    worker.report_finding({"summary": "s", "patterns": ["a"], "sources": ["x.md"]})
    [found] = shard.get_all_findings(task_type="analysis")
    shape = {"finding_id": str, "task_id": str, "worker_id": str, "timestamp": str}
    assert_shape(found, {**shape, "content": dict})
    assert found["task_id"] == task_id
    assert found["content"] == {"summary": "s", "patterns": ["a"], "sources": ["x.md"]}
    assert shard.get_all_findings(task_type="other") == []


def test_collect_worker_finding_completes_the_task(shard: SwarmMemoryShard, redis_url: str) -> None:
    task_id = shard.spawn_worker_task("analysis", "Read it", {"q": 1})
    shard.collect_worker_finding(task_id, {"summary": "found it"}, worker_id="worker_1a2b")
    [found] = shard.get_all_findings()
    assert (found["task_id"], found["worker_id"]) == (task_id, "worker_1a2b")
    assert shard.worker_findings == [{"summary": "found it"}]
    # Without a worker id the seed wrote "unknown".
    other = shard.spawn_worker_task("analysis", "Again", {})
    shard.collect_worker_finding(other, {"summary": "again"})
    assert shard.get_all_findings()[1]["worker_id"] == "unknown"
    with Swarm(redis_url) as swarm:
        assert swarm.get_task(task_id).status.value == "completed"


def test_collect_worker_finding_refused_while_another_worker_holds_the_task(
    shard: SwarmMemoryShard, worker: EphemeralWorker
) -> None:
    task_id = shard.spawn_worker_task("analysis", "Read it", {})
    assert worker.claim_task("analysis") is not None
    with pytest.raises(LeaseLost, match="held by worker"):
        shard.collect_worker_finding(task_id, {"summary": "not mine"})
    worker.report_finding({"summary": "mine"})


def test_synthesize_findings_returns_an_id(shard: SwarmMemoryShard) -> None:
    task_id = shard.spawn_worker_task("analysis", "Read it", {})
    shard.collect_worker_finding(task_id, {"summary": "x"})
    fid = shard.get_all_findings()[0]["finding_id"]
    assert isinstance(shard.synthesize_findings("P1", "all of it", [fid]), str)


def test_a_task_outside_a_pass_has_the_seeds_pass_in_both_shapes(
    shard: SwarmMemoryShard, worker: EphemeralWorker
) -> None:
    # The seed's task record wrote pass_name or "unknown"; the finding says the same.
    shard.spawn_worker_task("analysis", "Read it", {})
    task = worker.claim_task("analysis")
    assert task is not None and task["pass_name"] == "unknown"
    worker.report_finding({"summary": "x"})
    [found] = shard.get_all_findings()
    assert found["pass_name"] == "unknown"


def test_synthesize_findings_refuses_citing_nothing(shard: SwarmMemoryShard) -> None:
    with pytest.raises(ValidationError, match=r"cites no finding.*pass the ids it rests on"):
        shard.synthesize_findings("P1", "all of it", [])
    assert not shard.swarm.syntheses(shard=shard.agent_id).items


def test_get_context_for_worker(shard: SwarmMemoryShard, worker: EphemeralWorker) -> None:
    shard.spawn_worker_task("analysis", "Read it", {})
    assert worker.claim_task("analysis") is not None
    worker.report_finding({"summary": "x"})
    package = shard.get_context_for_worker()
    shape = {"parent_shard_id": str, "specialization": str, "context_preview": str}
    assert_shape(package, {**shape, "context_full_location": str, "findings_count": int})
    assert package["findings_count"] == 1
    assert package["context_preview"] == ("line one\nline two\n" * 100)[:5000]


def test_get_swarm_status_counts_per_shard(redis_url: str, worker: EphemeralWorker) -> None:
    one = SwarmMemoryShard(specialization="one", url=redis_url)
    two = SwarmMemoryShard(specialization="two", url=redis_url)
    for n in range(3):
        one.spawn_worker_task("analysis", f"task {n}", {})
    two.spawn_worker_task("other", "task", {})
    assert worker.claim_task("analysis") is not None
    worker.report_finding({"summary": "x"})
    coordinator = SonnetCoordinator(url=redis_url)
    status = coordinator.get_swarm_status()
    assert_shape(status, {"total_shards": int, "shards": list, "coordinator_id": str})
    assert status["total_shards"] == 2
    for entry in status["shards"]:
        shape = {"shard_id": str, "specialization": str, "findings_count": int}
        assert_shape(entry, {**shape, "pending_tasks": int})
    by_id = {s["shard_id"]: s for s in status["shards"]}
    assert (by_id[one.agent_id]["findings_count"], by_id[one.agent_id]["pending_tasks"]) == (1, 2)
    assert (by_id[two.agent_id]["findings_count"], by_id[two.agent_id]["pending_tasks"]) == (0, 1)
    for made in (one, two, coordinator):
        made.close()


def test_get_swarm_status_costs_the_same_whatever_the_number_of_tasks(redis_url: str) -> None:
    shard = SwarmMemoryShard(url=redis_url)
    coordinator = SonnetCoordinator(url=redis_url)
    raw = raw_client(redis_url)

    def cost() -> dict[str, int]:
        reset_stats(raw)
        coordinator.get_swarm_status()
        return command_calls(raw)

    shard.spawn_worker_task("analysis", "one", {})
    few = cost()
    shard.swarm.post_tasks(
        [
            {"queue": "analysis", "description": f"t{n}", "parent": shard.agent_id}
            for n in range(300)
        ]
    )
    assert cost() == few
    assert coordinator.get_swarm_status()["shards"][0]["pending_tasks"] == 301
    shard.close()
    coordinator.close()
    raw.close()


def test_request_synthesis_returns_an_id(shard: SwarmMemoryShard, redis_url: str) -> None:
    coordinator = SonnetCoordinator(url=redis_url)
    assert isinstance(coordinator.request_synthesis(shard.agent_id, "P1", "summarise"), str)
    coordinator.close()


# --- V1: redis_swarm_coordinator.py


@pytest.fixture
def v1(redis_url: str) -> Iterator[RedisSwarmCoordinator]:
    made = RedisSwarmCoordinator(url=redis_url)
    made.register_agent("sonnet_coordinator", context_capacity=20000, metadata={"model": "m"})
    yield made
    made.close()


def test_v1_register_update_and_get_context(v1: RedisSwarmCoordinator) -> None:
    assert isinstance(v1.agent_id, str)
    v1.update_context("shared " * 10)
    assert v1.get_context(str(v1.agent_id)) == "shared " * 10
    assert v1.get_context("nobody") is None


def test_v1_post_and_claim_task(v1: RedisSwarmCoordinator) -> None:
    task_id = v1.post_task("search", "if.search", {"query": "a"}, priority=5)
    assert isinstance(task_id, str)
    task = v1.claim_task("search")
    assert task is not None
    shape = {"task_id": str, "queue": str, "type": str, "data": dict, "posted_by": str}
    assert_shape(task, {**shape, "posted_at": str, "priority": str})
    assert (task["type"], task["priority"], task["posted_by"]) == ("if.search", "5", v1.agent_id)
    assert v1.claim_task("search") is None


def test_v1_complete_task_with_and_without_a_claim(v1: RedisSwarmCoordinator) -> None:
    claimed = v1.post_task("search", "if.search", {})
    assert v1.claim_task("search") is not None
    v1.complete_task(claimed, {"summary": "done"})
    unclaimed = v1.post_task("search", "if.search", {})
    v1.complete_task(unclaimed, ["any", "value"])
    assert v1.get_queue_status("search")["counts"]["completed"] == 2


def test_v1_messages(v1: RedisSwarmCoordinator, redis_url: str) -> None:
    other = RedisSwarmCoordinator(url=redis_url)
    other_id = other.register_agent("haiku_worker", parent_id=v1.agent_id)
    v1.send_message(other_id, {"type": "hello", "n": 1})
    [msg] = other.get_messages()
    assert_shape(msg, {"message_id": str, "from": str, "to": str, "timestamp": str})
    assert (msg["content"], msg["from"], msg["to"]) == (
        {"type": "hello", "n": 1},
        v1.agent_id,
        other_id,
    )
    other.close()


def test_v1_list_active_agents_is_the_agent_hash(v1: RedisSwarmCoordinator, redis_url: str) -> None:
    other = RedisSwarmCoordinator(url=redis_url)
    sub = other.register_agent("haiku_worker", parent_id=v1.agent_id)
    [main] = v1.list_active_agents()
    shape = {"agent_id": str, "role": str, "context_capacity": str, "parent_id": str}
    assert_shape(main, {**shape, "registered_at": str, "metadata": str})
    assert (main["agent_id"], main["role"]) == (v1.agent_id, "sonnet_coordinator")
    assert (main["context_capacity"], main["parent_id"]) == ("20000", "none")
    assert json.loads(main["metadata"]) == {"model": "m"}
    everyone = {a["agent_id"]: a for a in v1.list_active_agents(include_subagents=True)}
    assert everyone[sub]["parent_id"] == v1.agent_id
    other.close()


def test_v1_get_queue_status(v1: RedisSwarmCoordinator) -> None:
    ids = [v1.post_task("search", "if.search", {"n": n}) for n in range(12)]
    status = v1.get_queue_status("search")
    assert_shape(status, {"queue": str, "pending_tasks": int, "tasks": list})
    assert (status["queue"], status["pending_tasks"], status["tasks"]) == ("search", 12, ids[:10])


def test_v1_get_queue_status_of_an_unknown_queue_has_every_status(
    v1: RedisSwarmCoordinator,
) -> None:
    """A queue never posted to counts every status at zero, as a known one does (its counts
    were {}: a reader of counts["pending"] failed on it alone)."""
    v1.post_task("search", "if.search", {"n": 1})
    known = v1.get_queue_status("search")["counts"]
    unknown = v1.get_queue_status("nothing-here")
    assert list(unknown["counts"]) == list(known) == [s.value for s in TaskStatus]
    assert set(unknown["counts"].values()) == {0}
    assert (unknown["pending_tasks"], unknown["tasks"]) == (0, [])


def test_v1_cleanup_stale_agents(v1: RedisSwarmCoordinator) -> None:
    assert v1.cleanup_stale_agents(max_age_seconds=3600) == []


def test_the_seed_shapes_share_no_name_with_the_core() -> None:
    """A seed shape (a TypedDict in roles) is never named like a public core name."""
    import redis_swarm
    from redis_swarm import roles

    def in_roles(value: object) -> bool:
        return str(getattr(value, "__module__", "")).startswith(roles.__name__)

    shapes = {n for n, v in vars(roles).items() if isinstance(v, type) and in_roles(v)}
    core = {n for n in redis_swarm.__all__ if not in_roles(getattr(redis_swarm, n))}
    assert shapes & core == set()
