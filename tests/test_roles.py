"""The seed's API: its own examples run with only the import line changed."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from redis_swarm import (
    EphemeralWorker,
    RedisSwarmCoordinator,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
)

from ._raw import command_calls, raw_client, reset_stats, script_calls

SEED_PASS_1 = textwrap.dedent(
    """
    from redis_swarm import SwarmMemoryShard, EphemeralWorker

    shard = SwarmMemoryShard(specialization="gedimat_logistics")
    shard.load_context(
        context_text="Gedimat has 3 depots... [200K tokens of context]",
        context_source="gedimat_operational_context.md",
    )
    for i in range(5):
        task_id = shard.spawn_worker_task(
            task_type="if.search_pass1",
            task_description=f"Research logistics optimization patterns #{i+1}",
            task_data={"query": f"logistics pattern {i+1}", "context_ref": shard.agent_id},
            pass_name="Pass 1: Signal Capture",
        )
    print("Spawned 5 tasks for Pass 1")

    worker = EphemeralWorker()
    task = worker.claim_task("queue:if.search_pass1")
    if task:
        finding = {
            "summary": "Found 3 logistics patterns applicable to Gedimat",
            "patterns": ["milkrun", "cross-dock", "consolidation"],
            "sources": ["source1.pdf", "source2.pdf"],
        }
        worker.report_finding(finding)
        print("Worker reported finding and will now disappear")

    findings = shard.get_all_findings(task_type="if.search_pass1")
    print(f"Collected {len(findings)} findings from Pass 1")

    synthesis_id = shard.synthesize_findings(
        pass_name="Pass 1",
        synthesis="After reviewing 5 research tasks: milkrun and cross-dock apply.",
        sources=[f["finding_id"] for f in findings],
    )
    print(f"Synthesis: {synthesis_id}")
    """
)


def test_seed_pass_1_example_runs_unchanged(redis_url: str) -> None:
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "seed"}
    result = subprocess.run(
        [sys.executable, "-c", SEED_PASS_1], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Spawned 5 tasks for Pass 1"
    assert lines[1] == "Worker reported finding and will now disappear"
    assert lines[2] == "Collected 1 findings from Pass 1"
    assert lines[3].startswith("Synthesis: ")
    with Swarm(redis_url, swarm="seed") as swarm:
        assert swarm.queue_stats()["if.search_pass1"]["pending"] == 4
        assert swarm.queue_stats()["if.search_pass1"]["completed"] == 1


def test_seed_shapes(redis_url: str) -> None:
    host, port = redis_url.removeprefix("redis://").split(":")
    shard = SwarmMemoryShard(redis_host=host, redis_port=int(port), specialization="research")
    assert shard.agent_id.startswith("memory_research_")
    assert shard.specialization == "research"
    shard.load_context("line one\nline two\n" * 1000, "notes.md")
    task_id = shard.spawn_worker_task("analysis", "Read it", {"q": 1}, pass_name="P1")
    worker = EphemeralWorker(host, int(port))  # the seed's positional form
    assert worker.worker_id.startswith("worker_")
    assert worker.task is None
    assert worker.claim_task("queue:missing") is None
    task = worker.claim_task("analysis")
    assert task is not None
    assert task["task_id"] == task_id
    assert task["parent_shard"] == shard.agent_id
    assert task["data"] == {"q": 1}
    assert task["description"] == "Read it"
    assert (worker.task_id, worker.parent_shard_id) == (task_id, shard.agent_id)
    assert worker.get_parent_context() == "line one\nline two\n" * 1000
    finding_id = worker.report_finding({"summary": "two lines repeat", "sources": ["notes.md:1"]})
    findings = shard.get_all_findings()
    assert [f["finding_id"] for f in findings] == [finding_id]
    found = findings[0]
    assert found["task_id"] == task_id
    assert found["worker_id"] == worker.worker_id
    assert found["timestamp"].endswith("Z")
    assert found["content"]["summary"] == "two lines repeat"
    assert shard.get_all_findings(task_type="other") == []
    package = shard.get_context_for_worker()
    assert package["parent_shard_id"] == shard.agent_id
    assert package["findings_count"] == 1
    shard.heartbeat()

    coordinator = SonnetCoordinator(host, int(port))
    status = coordinator.get_swarm_status()
    assert status["total_shards"] == 1
    assert status["shards"][0]["shard_id"] == shard.agent_id
    request = coordinator.request_synthesis(shard.agent_id, "P1", "summarise")
    assert request
    with Swarm(redis_url) as swarm:
        inbox = swarm.inbox(shard.agent_id)
    assert inbox[0].kind == "synthesis_request"


def test_the_seed_worker_loop_pays_one_round_trip_per_task(redis_url: str) -> None:
    shard = SwarmMemoryShard(url=redis_url, specialization="loop")
    posted = [shard.spawn_worker_task("loop", f"t{i}", {"i": i}) for i in range(4)]
    worker = EphemeralWorker(url=redis_url)
    raw = raw_client(redis_url)
    reset_stats(raw)
    seen = []
    for task in worker.claim_tasks("queue:loop"):
        seen.append(task["task_id"])
        assert worker.task_id == task["task_id"]
        worker.report_finding({"summary": f"did {task['description']}"})
    # the first claim and four reports, each leasing the next task (the last found none:
    # the loop ends there, no claim after it)
    assert script_calls(command_calls(raw)) == 1 + 4
    raw.close()
    assert seen == posted
    assert [f["content"]["summary"] for f in shard.get_all_findings()] == [
        f"did t{i}" for i in range(4)
    ]


def test_leaving_the_worker_loop_gives_the_next_task_back(redis_url: str) -> None:
    shard = SwarmMemoryShard(url=redis_url, specialization="loop")
    first, second = (shard.spawn_worker_task("loop", f"t{i}", None) for i in range(2))
    worker = EphemeralWorker(url=redis_url)
    for task in worker.claim_tasks("loop"):
        worker.report_finding({"summary": "one is enough"})  # leases the second task
        assert task["task_id"] == first
        break
    with Swarm(redis_url) as swarm:
        back = swarm.get_task(second)
    assert (back.status.value, back.attempts, back.abandons) == ("pending", 1, 0)
    skipped = worker.claim_tasks("loop")  # a task not reported: the loop claims the next
    assert next(skipped)["task_id"] == second
    assert next(skipped, None) is None  # never reported, still held: nothing else to claim
    with Swarm(redis_url) as swarm:  # and once the loop ended, given back
        back = swarm.get_task(second)
    assert (back.status.value, back.failures, back.abandons) == ("pending", 0, 0)
    assert worker.held is None


def test_a_skipped_task_is_given_back_before_its_lease_runs_out(redis_url: str) -> None:
    """The loop holds the tasks it moved on from (so as not to yield them again at once),
    but not until their lease runs out: that counts an abandon (a worker gone), and a loop
    waiting longer than the lease yielded the task again and again, an abandon each time,
    until it was dead-lettered. A claim of the loop waits no longer than half that lease;
    nothing by then, the loop ends and gives them back."""
    with Swarm(redis_url) as swarm, EphemeralWorker(url=redis_url) as worker:
        a, b, c = (swarm.post_task("skips", name, lease_s=2).id for name in "abc")
        started = time.monotonic()
        seen = []
        for task in itertools.islice(worker.claim_tasks("skips", wait_s=5), 4):
            seen.append(task["task_id"])
            if task["task_id"] == c:  # a and b skipped
                worker.report_finding({"summary": "c"})  # its claim of the next one waits
        took = time.monotonic() - started
        assert seen == [a, b, c]
        assert took < 2.0, took
        for skipped in (a, b):
            back = swarm.get_task(skipped)
            assert (back.status.value, back.abandons, back.failures) == ("pending", 0, 0)


def test_a_long_loop_gives_a_skipped_task_back_once_half_its_lease_passed(
    redis_url: str,
) -> None:
    with Swarm(redis_url) as swarm, EphemeralWorker(url=redis_url) as worker:
        skipped = swarm.post_task("skips", "not for this worker", lease_s=2).id
        swarm.post_tasks(
            [{"queue": "skips", "description": f"t{i}", "lease_s": 2} for i in range(9)]
        )
        met: list[float] = []
        for task in worker.claim_tasks("skips"):
            if task["task_id"] == skipped:
                met.append(time.monotonic())
                continue
            # Slow work until the skipped task comes back, then quick: the rest takes
            # milliseconds, far from another half-lease, however loaded the machine is.
            if len(met) < 2:
                time.sleep(0.3)  # 9 tasks: about 2.7 s, past half the skipped lease
            worker.report_finding({"summary": "done"})
        back = swarm.get_task(skipped)
        assert (back.status.value, back.abandons, back.failures) == ("pending", 0, 0)
        assert len(met) == 2  # given back once half its lease (1 s) passed, then met again
        assert met[1] - met[0] > 0.9  # held (about 1 s from its claim), not yielded at once
        assert swarm.queue_stats()["skips"]["completed"] == 9


def test_worker_without_claim_is_a_clear_error(redis_url: str) -> None:
    worker = EphemeralWorker(url=redis_url)
    with pytest.raises(ValidationError, match="claim_task"):
        worker.report_finding({"summary": "x"})


def test_v1_coordinator(redis_url: str) -> None:
    v1: Any = RedisSwarmCoordinator(url=redis_url)
    agent = v1.register_agent("sonnet_coordinator", context_capacity=20000, metadata={"model": "m"})
    assert agent.startswith("sonnet_coordinator_")
    v1.heartbeat()
    version = v1.update_context("shared text " * 100)
    assert len(version) >= 12
    assert v1.get_context(agent) == "shared text " * 100
    assert v1.get_context("nobody") is None
    low = v1.post_task("search", "if.search", {"query": "a"}, priority=0)
    high = v1.post_task("search", "if.search", {"query": "b"}, priority=5)
    status = v1.get_queue_status("search")
    assert status["pending_tasks"] == 2
    claimed = v1.claim_task("search")
    assert claimed["task_id"] == high
    assert claimed["data"] == {"query": "b"}
    v1.complete_task(high, {"summary": "done", "hits": 3})
    assert v1.get_queue_status("search")["counts"]["completed"] == 1
    assert low

    other: Any = RedisSwarmCoordinator(url=redis_url)
    other_id = other.register_agent("haiku_worker", parent_id=agent)
    v1.send_message(other_id, {"type": "hello", "n": 1})
    messages = other.get_messages()
    assert messages[0]["content"] == {"type": "hello", "n": 1}
    assert messages[0]["from"] == agent
    assert other.get_messages() == []
    active = {a["id"] for a in v1.list_active_agents(include_subagents=True)}
    assert {agent, other_id} <= active
    assert other_id not in {a["id"] for a in v1.list_active_agents()}
    assert v1.cleanup_stale_agents(max_age_seconds=3600) == []
