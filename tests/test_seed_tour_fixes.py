"""The seed-compatible classes, after a tour: the seed's own example runs (a synthesis citing
made-up ids keeps them as references), the seed's ValueErrors and empty context, a typed
worker that fails a task or notices it was failed elsewhere, a worker's model registered,
coordinators that message agents and shards that read them, and a finding's content as
reported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_swarm import (
    Conflict,
    Coordinator,
    EphemeralWorker,
    LeaseLost,
    MemoryShard,
    NotFound,
    SonnetCoordinator,
    Swarm,
    SwarmMemoryShard,
    ValidationError,
    Worker,
)
from redis_swarm.roles import NoParentShard, NoTaskClaimed, UncitedSources
from redis_swarm.roles._seed import REFERENCES


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url) as made:
        yield made


@pytest.fixture
def make(redis_url: str) -> Iterator[Callable[..., Any]]:
    """Makes role objects on the test's server, closed at the end."""
    made: list[Any] = []

    def new(kind: Any, **options: Any) -> Any:
        made.append(kind(url=redis_url, **options))
        return made[-1]

    yield new
    for role in made:
        role.close()


# --- 1. the seed's own example, its synthesis citing made-up ids

# The seed's __main__ (swarm_architecture_v2.py), its import line changed; what SEED.md's
# usage pattern adds (the worker reading its parent's context) is in it too.
SEED_MAIN = textwrap.dedent(
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
        parent_context = worker.get_parent_context()
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
        synthesis="After reviewing 5 research tasks, 3 key patterns emerged...",
        sources=["finding_12345", "finding_67890"],
    )
    print(f"Synthesis complete: {synthesis_id}")
    """
)


def test_the_seeds_own_main_runs_with_only_its_import_line_changed(redis_url: str) -> None:
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "seed"}
    result = subprocess.run(
        [sys.executable, "-c", SEED_MAIN], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "Spawned 5 tasks for Pass 1",
        "Worker reported finding and will now disappear",
        "Collected 1 findings from Pass 1",
    ]
    assert lines[3].startswith("Synthesis complete: ")
    with Swarm(redis_url, swarm="seed") as swarm:
        stored = swarm.get_synthesis(lines[3].removeprefix("Synthesis complete: "))
    assert stored.sources == ()  # made-up ids are cited as nothing...
    assert stored.text == (  # ...and kept, as references
        "After reviewing 5 research tasks, 3 key patterns emerged...\n\n"
        f'{REFERENCES}["finding_12345","finding_67890"]'
    )


def test_a_seed_synthesis_cites_the_findings_and_keeps_the_other_sources(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    shard = make(SwarmMemoryShard, specialization="mixed")
    task_id = shard.spawn_worker_task("mixed", "Read it")
    real = shard.collect_worker_finding(task_id, {"summary": "found it"})
    sources = ["finding_12345", real, "https://example.com/a b", real, "finding_12345"]

    with pytest.warns(UncitedSources, match="without citing finding_12345: it is no finding"):
        stored = swarm.get_synthesis(shard.synthesize_findings("P1", "It holds.", sources))

    assert stored.sources == (real,)
    assert stored.text == f'It holds.\n\n{REFERENCES}["finding_12345","https://example.com/a b"]'
    # every source a finding: the text as given, nothing added
    plain = swarm.get_synthesis(shard.synthesize_findings("P1", "Only findings.", [real]))
    assert (plain.text, plain.sources) == ("Only findings.", (real,))


def test_the_core_and_the_typed_shard_still_refuse_a_missing_finding(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    shard = make(MemoryShard, specialization="strict")
    with pytest.raises(NotFound, match="no finding finding_12345"):
        shard.synthesize("P1", "text", ["finding_12345"])
    with pytest.raises(NotFound, match="no finding finding_12345"):
        swarm.synthesize(shard.agent_id, "P1", "text", ["finding_12345"])
    seed = make(SwarmMemoryShard, specialization="seed")
    with pytest.raises(ValidationError, match="non-empty text"):
        seed.synthesize_findings("P1", " ", ["finding_12345"])  # the core's refusal, unchanged
    with pytest.raises(ValidationError, match="each a string"):
        seed.synthesize_findings("P1", "text", ["finding_12345", 7])


# --- 2. the seed's ValueErrors, and its empty context


def test_a_worker_used_before_a_claim_raises_what_the_seeds_except_valueerror_catches(
    make: Callable[..., Any],
) -> None:
    worker = make(EphemeralWorker)
    for call in (lambda: worker.report_finding({"summary": "x"}), worker.get_parent_context):
        with pytest.raises(ValueError, match="claim_task") as caught:  # the seed's except
            call()
        assert isinstance(caught.value, NoTaskClaimed)
        assert isinstance(caught.value, ValidationError)
    with pytest.raises(ValidationError) as typed:  # the typed worker: no ValueError
        make(Worker).report({"summary": "x"})
    assert not isinstance(typed.value, ValueError)


def test_get_parent_context_of_a_shard_without_context_is_empty_as_in_the_seed(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    shard = make(SwarmMemoryShard, specialization="no context")
    shard.spawn_worker_task("bare", "Nothing loaded")
    worker = make(EphemeralWorker)
    assert worker.claim_task("bare") is not None
    assert worker.get_parent_context() == ""
    with pytest.raises(NotFound):
        worker.parent_context()  # the typed method keeps saying so
    worker.report_finding({"summary": "nothing to read"})

    swarm.post_task("orphans", "Posted by no shard")
    assert worker.claim_task("orphans") is not None
    with pytest.raises(NoParentShard, match="names no parent shard") as orphan:
        worker.get_parent_context()
    assert isinstance(orphan.value, ValueError) and isinstance(orphan.value, NotFound)


# --- 3. the typed worker fails a task, and notices one failed elsewhere


def test_a_worker_fails_its_task_and_claims_the_next(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    first = swarm.post_task("jobs", "first")
    second = swarm.post_task("jobs", "second")
    worker = make(Worker)
    with pytest.raises(ValidationError, match="claim"):
        worker.fail("too early")
    assert worker.claim("jobs").id == first.id
    failed = worker.fail("the source was unreachable")
    assert (failed.id, failed.failures, failed.last_error) == (
        first.id,
        1,
        "the source was unreachable",
    )
    assert worker.held is None
    with pytest.raises(Conflict, match="holds no task to fail"):
        worker.fail("again")
    assert worker.claim("jobs").id == second.id
    dead = worker.fail("give up", retry=False)
    assert dead.status.value == "dead"


def test_a_worker_notices_its_task_failed_elsewhere(make: Callable[..., Any], swarm: Swarm) -> None:
    first = swarm.post_task("jobs", "first")
    second = swarm.post_task("jobs", "second")
    worker = make(Worker)
    task = worker.claim("jobs")
    assert task.id == first.id
    swarm.fail(task.id, task.token, "failed by its runner")  # through the core

    assert worker.release() is None  # not this worker's any more: nothing to give back
    assert worker.held is None

    task = worker.claim("jobs")
    assert task.id == second.id
    swarm.fail(task.id, task.token, "failed by its runner")
    # no Conflict: the failed task is not held; both wait out their backoff (delayed)
    assert worker.claim("jobs") is None
    assert {swarm.get_task(t.id).status.value for t in (first, second)} == {"delayed"}

    # a task still leased to the worker is still refused
    third = swarm.post_task("more", "third")
    other = make(Worker)
    assert other.claim("more").id == third.id
    with pytest.raises(Conflict, match="still holds task"):
        other.claim("more")
    # failing a task whose lease is no longer this worker's says so, and holds nothing
    swarm.release(third.id, other.held.token)
    with pytest.raises(LeaseLost, match="no longer held"):
        other.fail("too late")
    assert other.held is None


# --- 4. a worker's model


def test_a_worker_with_a_model_is_registered_with_it(
    make: Callable[..., Any], swarm: Swarm
) -> None:
    swarm.post_task("modelled", "one")
    swarm.post_task("modelled", "two")
    worker = make(EphemeralWorker, worker_id="worker_sonnet", model="claude-sonnet")
    assert worker.claim_task("queue:modelled") is not None
    agent = swarm.get_agent("worker_sonnet")
    assert (agent.role, agent.model, agent.implicit) == ("worker", "claude-sonnet", False)
    worker.report_finding({"summary": "done"})
    [finding] = swarm.findings(queue="modelled").items
    assert finding.model == "claude-sonnet"

    bare = make(EphemeralWorker, worker_id="worker_bare")
    assert bare.claim_task("modelled") is not None
    agent = swarm.get_agent("worker_bare")
    assert (agent.model, agent.implicit) == (None, True)  # registered by its claim, as before


# --- 5. coordinators message agents; shards and coordinators read their inbox


def test_a_seed_coordinator_messages_and_a_seed_shard_reads_its_requests(
    make: Callable[..., Any],
) -> None:
    shard = make(SwarmMemoryShard, specialization="inbox")
    coordinator = make(SonnetCoordinator)
    request = coordinator.request_synthesis(shard.agent_id, "Pass 1", "cite everything")
    sent = coordinator.send_message(shard.agent_id, {"type": "status", "left": 0})
    everyone = coordinator.broadcast_message("pass 2 starts")

    messages = shard.get_messages()
    assert [m["message_id"] for m in messages] == [request, sent, everyone]
    assert messages[0]["kind"] == "synthesis_request"
    assert messages[0]["content"] == {"pass_name": "Pass 1", "instructions": "cite everything"}
    assert messages[1]["content"] == {"type": "status", "left": 0}
    assert messages[2]["content"] == "pass 2 starts"
    assert {m["from"] for m in messages} == {coordinator.agent_id}
    assert shard.get_messages() == []  # read once

    coordinator_two = make(SonnetCoordinator)
    coordinator_two.send_message(coordinator.agent_id, [1, 2, 3])
    assert [m["content"] for m in coordinator.get_messages()] == [[1, 2, 3]]
    with pytest.raises(NotFound):
        coordinator.send_message("nobody_here", "hello")


def test_a_typed_coordinator_sends_and_broadcasts(make: Callable[..., Any]) -> None:
    shard = make(MemoryShard, specialization="typed")
    coordinator = make(Coordinator)
    direct = coordinator.send(shard.agent_id, "look at pass 2", kind="note", data={"pass": 2})
    everyone = coordinator.broadcast("stand by")
    assert (direct.to, everyone.to) == (shard.agent_id, "*")

    inbox = shard.inbox()
    assert [(m.kind, m.body, m.data) for m in inbox] == [
        ("note", "look at pass 2", {"pass": 2}),
        ("text", "stand by", None),
    ]
    assert list(shard.inbox()) == []
    assert coordinator.inbox() == []  # its own broadcast is not its to read


# --- 6. a finding's content as reported


def test_a_seed_findings_content_is_what_was_reported(make: Callable[..., Any]) -> None:
    shard = make(SwarmMemoryShard, specialization="content")
    shard.spawn_worker_task("content", "a")
    shard.spawn_worker_task("content", "b")
    worker = make(EphemeralWorker)
    reported = [
        {"summary": "s", "zeta": 1, "alpha": {"b": 1, "a": 2}},
        {"summary": "t", "details": "d", "sources": ["x.md"], "confidence": 0.5, "z": None},
    ]
    for finding in reported:
        assert worker.claim_task("content") is not None
        worker.report_finding(finding)

    contents = [f["content"] for f in shard.get_all_findings()]
    assert contents == reported
    assert [list(c) for c in contents] == [list(f) for f in reported]  # key order too
    assert list(contents[0]["alpha"]) == ["b", "a"]
