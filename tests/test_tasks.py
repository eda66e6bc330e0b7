"""The work queue on a real Redis, through both shells: posting, claiming, the lifecycle of a
task, reports and findings, syntheses, listings, counts and waiting."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import (
    AlreadyCompleted,
    EventType,
    Finding,
    InvalidState,
    LeaseLost,
    Limits,
    NotFound,
    PayloadTooLarge,
    Swarm,
    Task,
    TaskSpec,
    TaskStatus,
    Timeout,
    Usage,
    ValidationError,
)
from redis_swarm._codec import Record, built
from redis_swarm._keys import Keys
from redis_swarm._validate import MAX_DESCRIPTION_CHARS, MAX_QUEUES, check_queues

from ._handles import must, untyped
from ._invariants import check_swarm
from ._raw import command_calls, reset_stats, script_calls

KEYS = Keys("test")


def events(raw: redis.Redis) -> list[dict[str, str]]:
    entries: list[tuple[str, dict[str, str]]] = raw.xrange(KEYS.events)  # type: ignore[assignment]
    return [fields for _, fields in entries]


def event_types(raw: redis.Redis) -> list[str]:
    return [fields["type"] for fields in events(raw)]


def claimed(swarm: Swarm, queues: Any = "q", worker: str = "w1", **kw: Any) -> Task:
    task: Task | None = swarm.claim(queues, worker=worker, **kw)
    assert task is not None
    return task


# --- posting


def test_post_and_get_keep_every_field(swarm: Swarm) -> None:
    data = {"path": "src/x.py", "lines": [1, 20], "nested": {"empty": [], "none": None}}
    task = swarm.post_task(
        "if.search_pass1", "find the auth bugs", data, pass_name="Pass 1: Signal Capture",
        priority=5, max_attempts=4, lease_s=30, dedupe_key="src/x.py", parent="shard-1",
    )  # fmt: skip
    assert task.id.startswith("t-")
    assert task.status is TaskStatus.PENDING
    assert (task.queue, task.description, task.data) == (
        "if.search_pass1",
        "find the auth bugs",
        data,
    )
    assert (task.pass_name, task.priority, task.max_attempts) == ("Pass 1: Signal Capture", 5, 4)
    assert (task.lease_s, task.dedupe_key, task.parent) == (30, "src/x.py", "shard-1")
    assert task.attempts == task.attempts == 0
    assert task.created_at > 1_700_000_000_000
    assert swarm.get_task(task.id) == task
    assert Task.from_dict(task.to_dict()) == task


def test_records_decoded_from_replies_are_what_their_constructor_makes(swarm: Swarm) -> None:
    """Tasks and findings are decoded without the frozen dataclass __init__ (``built``): the
    same fields, in the same order, equal and immutable; a missing or unknown field is the
    constructor's own TypeError; a default factory still makes a fresh value."""
    posted = swarm.post_task("q", "d", {"k": [1]}, pass_name="p", lease_s=2.5)
    task = claimed(swarm)
    finding, nxt = swarm.report(task.id, task.token, {"summary": "s"}, worker="w1", claim_next="q")
    assert nxt is None
    for record in (posted, task, swarm.get_task(task.id), finding):
        again = type(record)(**vars(record))
        assert record == again and list(vars(record).items()) == list(vars(again).items())
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.id = "other"  # type: ignore[misc]
    assert task.token is not None and task.token.startswith(f"{task.attempts}.")
    with pytest.raises(TypeError, match="queue"):
        built(Task, {"id": "t-1", "description": "d"})
    with pytest.raises(TypeError, match="colour"):
        built(Task, {"id": "t-1", "queue": "q", "description": "d", "colour": "red"})
    ids = {"id": "f-1", "task_id": "t-1"}
    one, two = built(Finding, ids), built(Finding, ids)
    assert one == two == Finding("f-1", "t-1") and one.extra == {} and one.extra is not two.extra

    @dataclasses.dataclass(frozen=True)
    class Checked(Record):
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("n must not be negative")

    with pytest.raises(ValueError, match="negative"):  # its own check runs
        built(Checked, {"n": -1})


def test_any_text_survives_the_round_trip(swarm: Swarm) -> None:
    text = 'résumé — 日本語 😀 "quoted" \\ back/slash \n newline \t tab'
    label = " ".join(text.split())  # (a pass name is printable text on one line)
    task = swarm.post_task(
        "q", text, {"t": text, "n": [1.5, -2, 10**15]}, pass_name=label, dedupe_key=text
    )
    got = swarm.claim("q", worker="w")
    assert got is not None
    assert (got.description, got.pass_name, got.dedupe_key) == (text, label, text)
    assert got.data == {"t": text, "n": [1.5, -2, 10**15]}
    assert swarm.post_task("q", "other", dedupe_key=text).id == task.id
    finding = swarm.report(got.id, got.token, {"summary": text, "sources": [text], "x": text})
    assert (finding.summary, finding.sources, finding.extra) == (text, (text,), {"x": text})
    assert finding.pass_name == label and swarm.findings(pass_name=label).items == (finding,)
    assert swarm.pass_stats(label)["completed"] == 1
    assert swarm.wait(pass_name=label, timeout_s=1)["completed"] == 1


def test_post_tasks_is_one_batch(swarm: Swarm, raw: redis.Redis) -> None:
    specs: list[TaskSpec | dict[str, Any]] = [
        TaskSpec("a", f"task {i}", {"i": i}, pass_name="p") for i in range(1500)
    ]
    specs += [{"queue": "b", "description": "dict spec", "priority": 1}]
    tasks = swarm.post_tasks(specs)
    assert len(tasks) == 1501
    assert len({t.id for t in tasks}) == 1501
    assert [t.data for t in tasks[:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert swarm.queue_stats()["a"]["pending"] == 1500
    assert swarm.queue_stats()["b"]["pending"] == 1
    assert swarm.pass_stats("p")["pending"] == 1500
    assert swarm.post_tasks([]) == []
    assert event_types(raw).count("task.posted") == 1501


def test_dedupe_key_yields_one_task(swarm: Swarm) -> None:
    first = swarm.post_task("q", "one", {"v": 1}, dedupe_key="k")
    again = swarm.post_task("q", "two", {"v": 2}, dedupe_key="k")
    assert again == first
    assert again.data == {"v": 1}
    other_queue = swarm.post_task("r", "one", dedupe_key="k")
    assert other_queue.id != first.id
    batch = swarm.post_tasks([
        {"queue": "q", "description": "x", "dedupe_key": "n"},
        {"queue": "q", "description": "y", "dedupe_key": "n"},
        {"queue": "q", "description": "z", "dedupe_key": "k"},
    ])  # fmt: skip
    assert batch[0].id == batch[1].id
    assert batch[2].id == first.id
    assert swarm.queue_stats()["q"]["pending"] == 2
    # Completed tasks still dedupe: the key names the work, not one attempt of it.
    task = claimed(swarm)
    swarm.report(task.id, task.token, {"summary": "done"})
    assert swarm.post_task("q", "one", dedupe_key="k").status is TaskStatus.COMPLETED


def test_priority_first_then_fifo_within_a_priority(swarm: Swarm) -> None:
    names = ["a0", "b5", "c0", "d5", "e-1", "f5", "g0"]
    for name in names:
        swarm.post_task("q", name, priority=int(name[1:]))
    order = [claimed(swarm).description for _ in names]
    assert order == ["b5", "d5", "f5", "a0", "c0", "g0", "e-1"]
    assert swarm.claim("q", worker="w1") is None


def test_fifo_holds_inside_one_batch(swarm: Swarm) -> None:
    swarm.post_tasks([TaskSpec("q", f"n{i}") for i in range(50)])
    assert [claimed(swarm).description for _ in range(50)] == [f"n{i}" for i in range(50)]


def test_claim_across_queues_takes_the_best(swarm: Swarm) -> None:
    swarm.post_task("low", "old low", priority=0)
    swarm.post_task("high", "new high", priority=3)
    swarm.post_task("other", "not asked for", priority=9)
    assert claimed(swarm, ["low", "high"]).description == "new high"
    assert claimed(swarm, ["low", "high"]).description == "old low"
    assert swarm.claim(["low", "high"], worker="w1") is None


def test_claim_returns_data_and_a_lease(swarm: Swarm) -> None:
    swarm.post_task("q", "d", {"x": 1}, lease_s=60)
    task = claimed(swarm, lease_s=5)
    assert task.status is TaskStatus.CLAIMED
    assert task.data == {"x": 1}
    assert (task.worker, task.attempts) == ("w1", 1)
    assert task.token is not None and task.token.startswith("1.")
    assert task.claimed_at is not None and task.lease_deadline == task.claimed_at + 5000
    assert swarm.queue_stats()["q"]["claimed"] == 1


def test_worker_is_registered_implicitly(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("q", "d")
    claimed(swarm, worker="alice")
    import json

    agent = json.loads(raw.hget(KEYS.agents, "alice") or "{}")
    assert agent["id"] == "alice" and agent["role"] == "worker" and agent["implicit"] is True
    assert agent["registered_at"] > 0
    assert raw.zscore(KEYS.presence, "alice") is not None


def test_claims_mark_presence_at_most_once_a_second(
    swarm: Swarm, raw: redis.Redis, redis_url: str
) -> None:
    """The first claim of a worker through a handle registers it and marks it present; the
    next within a second do not write it again; a new handle, or a deregister, starts over."""
    swarm.post_tasks([TaskSpec("q", f"t{i}") for i in range(4)])
    start = time.monotonic()
    claimed(swarm, worker="alice")
    first = raw.zscore(KEYS.presence, "alice")
    time.sleep(0.01)  # the server's clock moves: a second mark would change the score
    claimed(swarm, worker="alice")
    if time.monotonic() - start < 1.0:
        assert raw.zscore(KEYS.presence, "alice") == first
    other = Swarm(redis_url, swarm="test")
    try:
        claimed(other, worker="alice")
        assert must(raw.zscore(KEYS.presence, "alice")) > must(first)
    finally:
        other.close()
    swarm.deregister("alice")
    assert raw.hget(KEYS.agents, "alice") is None
    claimed(swarm, worker="alice")
    assert raw.hget(KEYS.agents, "alice") is not None


def test_not_before_delays_a_task_and_claim_waits_for_it(swarm: Swarm) -> None:
    # (room for the post, the stats and the first claim on a loaded machine: a cluster
    # handle's first requests also learn the slots)
    at = int(time.time() * 1000) + 1500
    task = swarm.post_task("q", "later", not_before=at)
    assert task.status is TaskStatus.DELAYED
    assert swarm.queue_stats()["q"]["delayed"] == 1
    assert swarm.claim("q", worker="w1") is None
    got = swarm.claim("q", worker="w1", wait_s=5)
    assert got is not None and got.id == task.id
    # claimed once due, and not a wait chunk later (the claim waits until the due time)
    assert at <= time.time() * 1000 < at + 1500


def test_claim_wakes_up_when_a_task_is_posted(swarm: Swarm, redis_url: str) -> None:
    poster = Swarm(redis_url, swarm="test")

    def post_soon() -> None:
        time.sleep(0.3)
        poster.post_task("elsewhere", "not for us")
        time.sleep(0.2)
        poster.post_task("q", "for us")

    thread = threading.Thread(target=post_soon)
    thread.start()
    start = time.monotonic()
    task = swarm.claim(["q"], worker="w1", wait_s=10)
    elapsed = time.monotonic() - start
    thread.join()
    poster.close()
    assert task is not None and task.description == "for us"
    assert 0.4 < elapsed < 3


def test_claim_waits_for_a_lease_to_expire(swarm: Swarm) -> None:
    swarm.post_task("q", "d", lease_s=0.4)
    first = claimed(swarm, worker="dies")
    start = time.monotonic()
    second = claimed(swarm, worker="next", wait_s=5)
    assert second.id == first.id and second.attempts == 2
    assert 0.3 < time.monotonic() - start < 2.5


def test_claim_wait_blocks_instead_of_polling(swarm: Swarm, raw: redis.Redis) -> None:
    reset_stats(raw)
    start = time.monotonic()
    assert swarm.claim("q", worker="w1", wait_s=0.6) is None
    assert 0.55 < time.monotonic() - start < 3
    calls = command_calls(raw)
    scripts = script_calls(calls)
    assert scripts <= 3 and calls.get("blpop", 0) <= 3


# --- while working


def test_renew_extends_the_lease(swarm: Swarm) -> None:
    swarm.post_task("q", "d", lease_s=10)
    task = claimed(swarm)
    renewed = swarm.renew(task.id, task.token, 100)
    assert renewed.lease_deadline is not None and task.lease_deadline is not None
    assert renewed.lease_deadline >= task.lease_deadline + 89_000
    assert renewed.data is None and renewed.status is TaskStatus.CLAIMED


def test_release_puts_it_back_without_using_an_attempt(swarm: Swarm) -> None:
    swarm.post_task("q", "d", {"k": "v"}, max_attempts=1)
    first = claimed(swarm)
    released = swarm.release(first.id, first.token)
    assert released.status is TaskStatus.PENDING and released.worker is None
    assert released.data == {"k": "v"}
    second = claimed(swarm, worker="w2")
    assert second.id == first.id and second.attempts == 2
    with pytest.raises(LeaseLost):
        swarm.renew(first.id, first.token)
    # max_attempts is 1, yet the task is still retried once: the release gave its attempt back.
    failed = swarm.fail(second.id, second.token, "boom")
    assert failed.status is TaskStatus.DEAD


def test_fail_with_retry_backs_off_then_dead_letters(swarm: Swarm) -> None:
    swarm.post_task("q", "d", max_attempts=2)
    task = claimed(swarm)
    failed = swarm.fail(task.id, task.token, "flaky network")
    assert failed.status is TaskStatus.DELAYED and failed.last_error == "flaky network"
    assert failed.not_before is not None and task.claimed_at is not None
    assert failed.not_before >= task.claimed_at + 1000
    assert swarm.claim("q", worker="w1") is None  # backing off
    again = claimed(swarm, wait_s=5)
    assert again.attempts == 2
    dead = swarm.fail(again.id, again.token, "still flaky")
    assert dead.status is TaskStatus.DEAD
    assert dead.dead_reason is not None and "still flaky" in dead.dead_reason
    assert "2 attempts" in dead.dead_reason
    assert swarm.queue_stats()["q"]["dead"] == 1


def test_fail_without_retry_dead_letters_now(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("q", "d", max_attempts=5)
    task = claimed(swarm)
    dead = swarm.fail(task.id, task.token, "bad input", retry=False)
    assert dead.status is TaskStatus.DEAD and dead.dead_reason == "failed without retry: bad input"
    assert event_types(raw)[-2:] == ["task.failed", "task.dead"]
    with pytest.raises(LeaseLost):
        swarm.fail(task.id, task.token, "again")


def test_fail_keeps_what_the_failed_runs_cost(swarm: Swarm) -> None:
    swarm.configure_queue("q", retry_backoff_s=0.01)  # the retries, not their backoff, matter
    swarm.post_task("q", "d", max_attempts=5)
    models = {"claude-haiku-4-5": {"cost_usd": 0.02, "tokens_in": 500.0}}
    spent = Usage("claude-json", cost_usd=0.02, tokens_in=500, tokens_out=40, models=models)
    task = claimed(swarm)
    assert task.failed_usage is None
    first = swarm.fail(task.id, task.token, "error_max_turns", usage=spent)
    assert first.failed_usage == Usage("claude-json", 0.02, 500, 40, models=models)
    again = claimed(swarm, wait_s=5)
    swarm.fail(again.id, again.token, "crashed")  # no usage: nothing added
    third = claimed(swarm, wait_s=5)
    dead = swarm.fail(third.id, third.token, "error_max_turns", retry=False, usage=spent)
    total = swarm.get_task(task.id).failed_usage
    assert total is not None and total == dead.failed_usage
    assert total.cost_usd == pytest.approx(0.04)
    assert (total.tokens_in, total.tokens_out, total.cached_in) == (1000, 80, None)
    assert total.models["claude-haiku-4-5"] == {"cost_usd": pytest.approx(0.04), "tokens_in": 1000}
    # money spent stays spent: a requeue keeps it
    assert swarm.requeue_dead(task.id).failed_usage == total
    with pytest.raises(ValidationError, match="usage cost_usd"):
        swarm.fail(task.id, "1.x", "e", usage=Usage("claude-json", cost_usd=-1))


def test_requeue_dead_gives_a_fresh_budget(swarm: Swarm) -> None:
    swarm.post_task("q", "d", max_attempts=2)
    task = claimed(swarm)
    swarm.fail(task.id, task.token, "x", retry=False)
    requeued = swarm.requeue_dead(task.id)
    assert requeued.status is TaskStatus.PENDING and requeued.dead_reason is None
    with pytest.raises(InvalidState):
        swarm.requeue_dead(task.id)
    again = claimed(swarm)
    assert again.attempts == 2
    # One attempt used since the requeue, of a fresh budget of two: a failure is retried.
    assert swarm.fail(again.id, again.token, "y").status is TaskStatus.DELAYED
    assert swarm.queue_stats()["q"] == {
        "pending": 0, "delayed": 1, "claimed": 0, "completed": 0, "dead": 0, "cancelled": 0,
    }  # fmt: skip


def test_cancel(swarm: Swarm) -> None:
    pending = swarm.post_task("q", "p")
    assert swarm.cancel(pending.id).status is TaskStatus.CANCELLED
    assert swarm.cancel(pending.id).status is TaskStatus.CANCELLED  # idempotent
    assert swarm.claim("q", worker="w1") is None

    swarm.post_task("q", "c")
    held = claimed(swarm)
    assert swarm.cancel(held.id).status is TaskStatus.CANCELLED
    with pytest.raises(LeaseLost):
        swarm.renew(held.id, held.token)
    with pytest.raises(AlreadyCompleted) as info:
        swarm.report(held.id, held.token, {"summary": "too late"})
    assert swarm.get_finding(must(info.value.finding_id)).superseded

    swarm.post_task("q", "done")
    done = claimed(swarm)
    swarm.report(done.id, done.token, {"summary": "ok"})
    with pytest.raises(InvalidState):
        swarm.cancel(done.id)
    assert swarm.queue_stats()["q"]["cancelled"] == 2


def test_cancel_drops_a_dead_task_for_good(swarm: Swarm, raw: redis.Redis) -> None:
    """A coordinator drops a dead task rather than requeue it: it leaves the dead-letter
    set, counts as cancelled in the queue's and the pass's counters, and says so in a
    task.cancelled event; the swarm stays consistent."""
    swarm.post_task("q", "doomed", pass_name="p", max_attempts=1)
    dying = claimed(swarm)
    assert swarm.fail(dying.id, dying.token, "broken").status is TaskStatus.DEAD
    since = swarm.last_event_id()
    dead_set = KEYS.dead("q")
    assert raw.zscore(dead_set, dying.id) is not None

    with pytest.raises(InvalidState, match="is dead: requeue it"):
        swarm.cancel(dying.id)  # (not unless asked: a withdrawal must not erase a dead letter)
    assert swarm.get_task(dying.id).status.value == "dead"
    gone = swarm.cancel(dying.id, dead=True)
    assert gone.status is TaskStatus.CANCELLED and gone.dead_reason is None
    assert swarm.get_task(dying.id).status is TaskStatus.CANCELLED
    assert raw.zscore(dead_set, dying.id) is None
    assert swarm.queue_stats()["q"]["dead"] == 0 and swarm.queue_stats()["q"]["cancelled"] == 1
    assert swarm.pass_stats("p")["dead"] == 0 and swarm.pass_stats("p")["cancelled"] == 1
    assert [(e.type, e.fields.get("task")) for e in swarm.events(since=since)] == [
        (EventType.TASK_CANCELLED, dying.id)
    ]
    with pytest.raises(InvalidState, match="not dead"):  # nothing left to requeue
        swarm.requeue_dead(dying.id)
    check_swarm(raw, "test")


def test_retried_lifecycle_request_is_not_applied_twice(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm.post_task("q", "d")
    task = claimed(swarm)
    # A lost reply makes redis-py send the same script call again: same op id, same effect.
    monkeypatch.setattr("redis_swarm._ops.tasks.new_id", lambda prefix: "o-fixed")
    first = swarm.fail(task.id, task.token, "x")
    second = swarm.fail(task.id, task.token, "x")
    assert first == second and first.status is TaskStatus.DELAYED


# --- reports and findings


def test_report_completes_and_links_the_finding(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("q", "d", pass_name="Pass 1", parent="shard-1")
    task = claimed(swarm, worker="alice")
    finding = swarm.report(
        task.id, task.token,
        {"summary": "found it", "details": "line 3", "sources": ["a.py:3"], "confidence": 0.8,
         "severity": "high", "tags": ["x"]},
        model="claude-x", context_version="c0ffee",
    )  # fmt: skip
    assert isinstance(finding, Finding) and not finding.superseded
    assert (finding.task_id, finding.queue, finding.pass_name) == (task.id, "q", "Pass 1")
    assert (finding.shard, finding.worker, finding.model) == ("shard-1", "alice", "claude-x")
    assert finding.context_version == "c0ffee" and finding.attempt == 1
    assert (finding.summary, finding.details, finding.sources) == (
        "found it",
        "line 3",
        ("a.py:3",),
    )
    assert finding.confidence == 0.8
    assert finding.extra == {"severity": "high", "tags": ["x"]}
    done = swarm.get_task(task.id)
    assert done.status is TaskStatus.COMPLETED and done.finding_id == finding.id
    assert done.completed_at == finding.created_at
    assert swarm.get_finding(finding.id) == finding
    assert event_types(raw)[-2:] == ["task.completed", "finding.reported"]


def test_report_after_completion_is_kept_superseded(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("q", "d")
    task = claimed(swarm)
    first = swarm.report(task.id, task.token, {"summary": "first"})
    with pytest.raises(AlreadyCompleted) as info:
        swarm.report(task.id, task.token, {"summary": "second"}, worker="bob")
    late = swarm.get_finding(must(info.value.finding_id))
    assert late.superseded and late.summary == "second" and late.worker == "bob"
    assert swarm.get_task(task.id).finding_id == first.id
    assert [f.id for f in swarm.findings()] == [first.id, late.id]
    assert event_types(raw)[-1] == "finding.superseded"
    assert swarm.queue_stats()["q"]["completed"] == 1


def test_retried_report_with_the_same_finding_id_does_not_duplicate(swarm: Swarm) -> None:
    swarm.post_task("q", "d")
    task = claimed(swarm)
    one = swarm.report(task.id, task.token, {"summary": "x"}, finding_id="f-retry1")
    two = swarm.report(task.id, task.token, {"summary": "x"}, finding_id="f-retry1")
    assert one == two and one.id == "f-retry1"
    assert len(swarm.findings()) == 1
    # The same id on another task is a conflict, not a silent overwrite.
    swarm.post_task("q", "e")
    other = claimed(swarm)
    from redis_swarm import Conflict

    with pytest.raises(Conflict):
        swarm.report(other.id, other.token, {"summary": "y"}, finding_id="f-retry1")


def test_report_revives_a_dead_task(swarm: Swarm) -> None:
    swarm.post_task("q", "d", max_attempts=1)
    task = claimed(swarm)
    swarm.fail(task.id, task.token, "gave up")
    finding = swarm.report(task.id, task.token, {"summary": "but here it is"})
    assert not finding.superseded
    assert swarm.get_task(task.id).status is TaskStatus.COMPLETED
    assert swarm.queue_stats()["q"]["dead"] == 0


def test_findings_are_paged_and_filtered(swarm: Swarm) -> None:
    swarm.post_tasks(
        [TaskSpec("qa", f"a{i}", pass_name="P1", parent="s1") for i in range(130)]
        + [TaskSpec("qb", f"b{i}", pass_name="P2", parent="s2") for i in range(20)]
    )
    reported: list[Finding] = []
    for queue in ["qa"] * 130 + ["qb"] * 20:
        task = claimed(swarm, queue)
        reported.append(swarm.report(task.id, task.token, {"summary": task.description}))
    seen: list[Finding] = []
    cursor = None
    pages = 0
    while True:
        page = swarm.findings(cursor=cursor, limit=40)
        seen += page.items
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    assert [f.id for f in seen] == [f.id for f in reported] and pages == 4
    assert len(swarm.findings(shard="s2", limit=1000)) == 20
    assert len(swarm.findings(queue="qa", limit=1000)) == 130
    assert len(swarm.findings(pass_name="P1", shard="s1", limit=1000)) == 130
    assert len(swarm.findings(pass_name="P1", shard="s2", limit=1000)) == 0
    later = swarm.findings(since=reported[140].created_at, limit=1000)
    assert {f.id for f in later} >= {f.id for f in reported[141:]}
    with pytest.raises(ValidationError):
        swarm.findings(cursor="f-notinthere")


def test_syntheses_cite_existing_findings(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_tasks([TaskSpec("q", "a", pass_name="P"), TaskSpec("q", "b", pass_name="P")])
    ids = []
    for _ in range(2):
        task = claimed(swarm)
        ids.append(swarm.report(task.id, task.token, {"summary": task.description}).id)
    synthesis = swarm.synthesize("shard-1", "P", "both say hi", [*ids, ids[0]])
    assert synthesis.sources == tuple(ids) and synthesis.created_at > 0
    assert swarm.get_synthesis(synthesis.id) == synthesis
    assert event_types(raw)[-1] == "synthesis.created"
    with pytest.raises(NotFound) as info:
        swarm.synthesize("shard-1", "P", "made up", [ids[0], "f-doesnotexist"])
    assert "f-doesnotexist" in str(info.value)
    other = swarm.synthesize("shard-2", "Q", "other", [], cites_none=True)
    assert list(swarm.syntheses()) == [synthesis, other]
    assert list(swarm.syntheses(shard="shard-2")) == [other]
    assert list(swarm.syntheses(pass_name="P")) == [synthesis]
    with pytest.raises(NotFound):
        swarm.get_synthesis("s-nothere")


# --- views


def test_list_tasks_filters_and_pages(swarm: Swarm) -> None:
    swarm.post_tasks([TaskSpec("a", f"a{i}", {"i": i}, pass_name="P") for i in range(25)])
    swarm.post_tasks([TaskSpec("b", f"b{i}") for i in range(10)])
    claimed(swarm, "a")
    page = swarm.list_tasks(limit=10)
    assert len(page) == 10 and page.cursor is not None and page.items[0].data is None
    everything: list[Task] = []
    cursor = None
    while True:
        page = swarm.list_tasks(cursor=cursor, limit=10)
        everything += page.items
        if page.cursor is None:
            break
        cursor = page.cursor
    assert len(everything) == 35 and len({t.id for t in everything}) == 35
    assert len(swarm.list_tasks(queue="b")) == 10
    assert [t.description for t in swarm.list_tasks(status="claimed")] == ["a0"]
    assert len(swarm.list_tasks(status=TaskStatus.PENDING, queue="a")) == 24
    by_pass = swarm.list_tasks(pass_name="P", with_data=True, limit=1000)
    assert len(by_pass) == 25 and by_pass.items[3].data == {"i": 3}
    with pytest.raises(ValidationError):
        swarm.list_tasks(status="sleeping")
    with pytest.raises(ValidationError):
        swarm.list_tasks(limit=0)


def test_queue_and_pass_stats(swarm: Swarm) -> None:
    assert swarm.queue_stats() == {}
    swarm.post_tasks([TaskSpec("a", "x", pass_name="P")] * 3 + [TaskSpec("b", "y")])
    task = claimed(swarm, "a")
    swarm.report(task.id, task.token, {"summary": "ok"})
    stats = swarm.queue_stats()
    assert stats["a"] == {
        "pending": 2, "delayed": 0, "claimed": 0, "completed": 1, "dead": 0, "cancelled": 0,
    }  # fmt: skip
    assert stats["b"]["pending"] == 1
    assert swarm.pass_stats("P")["completed"] == 1 and swarm.pass_stats("P")["pending"] == 2
    assert sum(swarm.pass_stats("no such pass").values()) == 0


def test_wait_returns_when_the_pass_is_settled(swarm: Swarm, redis_url: str) -> None:
    swarm.post_tasks([TaskSpec("q", f"t{i}", pass_name="P") for i in range(12)])
    swarm.post_task("q", "another pass", pass_name="Q")
    worker = Swarm(redis_url, swarm="test")

    def work() -> None:
        for i in range(12):
            time.sleep(0.01)
            task = worker.claim("q", worker="w")
            assert task is not None
            if task.pass_name == "Q":
                worker.release(task.id, task.token)
                continue
            if i % 4 == 0:
                worker.fail(task.id, task.token, "nope", retry=False)
            elif i % 4 == 1:
                worker.cancel(task.id)
            else:
                worker.report(task.id, task.token, {"summary": "ok"})

    thread = threading.Thread(target=work)
    thread.start()
    stats = swarm.wait(pass_name="P", timeout_s=20)
    thread.join()
    worker.close()
    assert stats["pending"] + stats["delayed"] + stats["claimed"] == 0
    assert sum(stats.values()) == 12
    with pytest.raises(Timeout) as info:
        swarm.wait(pass_name="Q", timeout_s=0.3)
    assert "1 pending" in str(info.value)
    with pytest.raises(Timeout):
        swarm.wait(timeout_s=0.2)
    assert swarm.wait(queue="empty", timeout_s=0.1)["pending"] == 0


# --- refusals


BAD_NAMES: list[Any] = ["", "a b", "x:y", "q{1}", "ü", "a" * 129, None, 3]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_queue_names_are_refused(swarm: Swarm, raw: redis.Redis, name: Any) -> None:
    with pytest.raises(ValidationError):
        swarm.post_task(name, "d")
    with pytest.raises(ValidationError):
        swarm.claim(name, worker="w")
    assert raw.dbsize() == 0


def test_a_claims_queue_list_is_checked_whole(swarm: Swarm, raw: redis.Redis) -> None:
    """One check of a queue list (``check_queues``), which the faces call too: at least one
    queue, at most MAX_QUEUES, each a name; duplicates count once."""
    for queues, says in (
        ([], "claim needs at least one queue"),
        ([f"q{i}" for i in range(MAX_QUEUES + 1)], f"claim got {MAX_QUEUES + 1} queues"),
        (["ok", "a b"], "queue 'a b' contains ' '"),
        ({"q": 1}, "claim takes a queue name or a list of queue names"),
    ):
        with pytest.raises(ValidationError, match=re.escape(says)):
            swarm.claim(queues, worker="w")  # type: ignore[arg-type]
    assert raw.dbsize() == 0
    assert check_queues(["b", "a", "b"]) == ("b", "a")
    assert check_queues([f"q{i}" for i in range(MAX_QUEUES)], what="x")[-1] == f"q{MAX_QUEUES - 1}"
    swarm.post_task("b", "d")
    assert swarm.claim(["a", "b", "a"], worker="w") is not None


def test_bad_tasks_are_refused_and_nothing_is_stored(swarm: Swarm, raw: redis.Redis) -> None:
    assert swarm.post_task("q" * 128, "the longest name is fine").queue == "q" * 128
    raw.flushall()
    bad: list[dict[str, Any]] = [
        {"description": ""},
        {"description": 7},
        {"data": {1, 2}},
        {"data": float("nan")},
        {"priority": 10_001},
        {"priority": 1.5},
        {"priority": True},
        {"max_attempts": 0},
        {"lease_s": 0},
        {"lease_s": "10"},
        {"not_before": -1},
        {"dedupe_key": ""},
        {"pass_name": 3},
        {"parent": "a/b"},
        {"wat": 1},
    ]
    for change in bad:
        spec = {"queue": "q", "description": "d", **change}
        with pytest.raises(ValidationError):
            swarm.post_tasks([spec])
        # one bad spec in a batch: the good ones are not stored either
        with pytest.raises(ValidationError) as info:
            swarm.post_tasks([{"queue": "q", "description": "fine"}, spec])
        assert "task #1" in str(info.value)
    with pytest.raises(PayloadTooLarge):
        swarm.post_task("q", "d", "x" * (1024 * 1024 + 1))
    with pytest.raises(ValidationError):
        swarm.claim([], worker="w")
    with pytest.raises(ValidationError):
        swarm.claim("q", worker="bad worker")
    assert raw.dbsize() == 0


def test_a_finding_is_measured_as_encoded(redis_url: str) -> None:
    """Plain short text skips the trial encoding (it cannot pass the limit); text whose
    escapes take it past the limit is refused, text just under it is kept."""
    with Swarm(redis_url, swarm="test", limits=Limits(max_finding_bytes=1_000)) as small:
        small.post_task("q", "d")
        small.post_task("q", "e")
        task = claimed(small)
        with pytest.raises(PayloadTooLarge):
            small.report(task.id, task.token, {"summary": "s", "details": '"' * 600})
        with pytest.raises(PayloadTooLarge):
            small.report(task.id, task.token, {"summary": "s", "details": "\x01" * 200})
        assert small.report(task.id, task.token, {"summary": "s", "details": '"' * 480})
        other = claimed(small)
        assert small.report(other.id, other.token, {"summary": "ok"}).summary == "ok"


def test_a_post_under_its_own_id_tells_a_new_task_from_a_dedupe_hit(swarm: Swarm) -> None:
    mine = Swarm.new_task_id()
    first = swarm.post_task("q", "first", dedupe_key="k", task_id=mine)
    assert first.id == mine
    # posted once (the same post: another under its id is a Conflict, test_library_edges)
    assert swarm.post_task("q", "first", dedupe_key="k", task_id=mine) == first
    other = Swarm.new_task_id()
    hit = swarm.post_task("q", "second", dedupe_key="k", priority=5, task_id=other)
    assert hit.id == mine and hit.description == "first" and hit.priority == 0
    with pytest.raises(NotFound):
        swarm.get_task(other)
    ids = [Swarm.new_task_id(), Swarm.new_task_id()]
    specs = [{"queue": "q", "description": "a", "dedupe_key": "k"},
             {"queue": "q", "description": "b"}]  # fmt: skip
    posted = swarm.post_tasks(specs, task_ids=ids)
    assert [t.id for t in posted] == [mine, ids[1]]
    with pytest.raises(ValidationError, match="task_ids must be a list of one string per task"):
        swarm.post_tasks(specs, task_ids=ids[:1])
    with pytest.raises(ValidationError, match="task id"):
        swarm.post_task("q", "d", task_id="not an id")


def test_a_batch_error_names_the_spec_as_the_caller_labels_it(swarm: Swarm) -> None:
    specs = [
        {"queue": "q", "description": "a"},
        {"queue": "q", "description": "b", "priority": "x"},
    ]
    with pytest.raises(ValidationError, match=r"^task #1: priority"):
        swarm.post_tasks(specs)
    with pytest.raises(ValidationError, match=r"^line 7: priority"):
        swarm.post_tasks(specs, labels=["line 3", "line 7"])
    with pytest.raises(ValidationError, match="labels must be a list"):
        swarm.post_tasks(specs, labels="line 1")
    assert swarm.queue_stats() == {}


def test_the_description_limit_is_in_characters_as_documented(swarm: Swarm) -> None:
    # Text limits count characters (summary, question, pass name), payloads encoded bytes.
    wide = "\U0001f600" * MAX_DESCRIPTION_CHARS  # four bytes each in UTF-8
    assert swarm.post_task("q", wide).description == wide
    with pytest.raises(PayloadTooLarge, match=f"the limit is {MAX_DESCRIPTION_CHARS:,}"):
        swarm.post_task("q", "x" * (MAX_DESCRIPTION_CHARS + 1))
    doc = (Path(__file__).parent.parent / "docs" / "tasks.md").read_text(encoding="utf-8")
    assert f"at most {MAX_DESCRIPTION_CHARS:,} characters" in doc


def test_bad_findings_are_refused_and_nothing_is_stored(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("q", "d")
    task = claimed(swarm)
    bad: list[Any] = [
        "just text",
        {},
        {"summary": ""},
        {"summary": "   "},
        {"summary": 5},
        {"summary": "x" * 2001},
        {"summary": "s", "details": {"a": 1}},
        {"summary": "s", "sources": "a.py"},
        {"summary": "s", "sources": [1]},
        {"summary": "s", "confidence": 1.5},
        {"summary": "s", "confidence": "high"},
        {"summary": "s", "confidence": float("nan")},
        {"summary": "s", "blob": object()},
        {1: "x", "summary": "s"},
    ]
    for finding in bad:
        with pytest.raises(ValidationError):
            swarm.report(task.id, task.token, finding)
    with pytest.raises(PayloadTooLarge):
        swarm.report(task.id, task.token, {"summary": "s", "details": "x" * 300_000})
    assert not raw.exists(KEYS.findings)
    assert swarm.get_task(task.id).status is TaskStatus.CLAIMED
    ok = swarm.report(task.id, task.token, {"summary": "x" * 2000, "confidence": 1})
    assert ok.confidence == 1


def test_unknown_ids_are_not_found(swarm: Swarm) -> None:
    missing = "t-0000000000nothere"
    token = "1." + "a" * 22
    calls: list[Callable[[], Any]] = [
        lambda: swarm.get_task(missing),
        lambda: swarm.renew(missing, token),
        lambda: swarm.fail(missing, token, "x"),
        lambda: swarm.release(missing, token),
        lambda: swarm.cancel(missing),
        lambda: swarm.requeue_dead(missing),
        lambda: swarm.report(missing, token, {"summary": "x"}),
        lambda: swarm.get_finding("f-nothere"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    with pytest.raises(ValidationError):
        swarm.get_task("t-has space")
    with pytest.raises(ValidationError):
        swarm.get_task("t-" + "x" * 100)


def test_forged_tokens_are_refused(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("q", "d")
    task = claimed(swarm)
    assert task.token is not None
    attempt, secret = task.token.split(".")
    assert attempt == "1" and len(secret) >= 22
    # Reading the task, through the library or raw, does not reveal the secret.
    assert swarm.get_task(task.id).token is None
    assert secret not in str(raw.hgetall(Keys("test").tasks))
    other = swarm.post_task("q", "another")
    other_token = claimed(swarm).token
    assert other_token is not None
    guesses = [
        "1." + "A" * 22,  # the right attempt, a guessed secret
        f"2.{secret}",  # the right secret on an attempt never made
        f"1.{other_token.split('.')[1]}",  # another task's lease
    ]
    for token in guesses:
        with pytest.raises(LeaseLost, match="never issued"):
            swarm.renew(task.id, token)
        with pytest.raises(LeaseLost):
            swarm.release(task.id, token)
        with pytest.raises(LeaseLost):
            swarm.fail(task.id, token, "x")
        with pytest.raises(LeaseLost):
            swarm.report(task.id, token, {"summary": "forged"})
    for bad in ("1", 1, 0, None):  # the attempt number alone is not a token
        with pytest.raises(ValidationError):
            untyped(swarm).renew(task.id, bad)
    assert len(swarm.findings()) == 0
    assert swarm.get_task(task.id).status is TaskStatus.CLAIMED
    unclaimed = swarm.post_task("q", "never claimed")
    with pytest.raises(LeaseLost):
        swarm.report(unclaimed.id, guesses[0], {"summary": "forged"})
    swarm.report(other.id, other_token, {"summary": "its own lease"})


def test_every_state_change_is_an_event(swarm: Swarm, raw: redis.Redis) -> None:
    swarm.post_task("q", "d", pass_name="P")
    task = claimed(swarm)
    swarm.renew(task.id, task.token)
    swarm.release(task.id, task.token)
    task = claimed(swarm)
    swarm.fail(task.id, task.token, "x", retry=False)
    swarm.requeue_dead(task.id)
    task = claimed(swarm)
    swarm.report(task.id, task.token, {"summary": "ok"})
    assert event_types(raw) == [  # (w1's first claim registers it: it joins once)
        "task.posted", "agent.joined", "task.claimed", "task.renewed", "task.released",
        "task.claimed", "task.failed", "task.dead", "task.requeued", "task.claimed",
        "task.completed", "finding.reported",
    ]  # fmt: skip
    fields = events(raw)[-2]
    assert fields["task"] == task.id and fields["queue"] == "q" and fields["pass"] == "P"
    assert fields["worker"] == "w1" and fields["attempt"] == "3"


def test_lifecycle_events_keep_what_their_readers_read(swarm: Swarm, raw: redis.Redis) -> None:
    """task.posted keeps its status (the MCP channel wakes only for a pending task), task.claimed
    its worker and attempt (the chaos suite matches claims to renewals and expiries); the
    fields no reader used (priority, lease_deadline: both are in the task) are gone."""
    swarm.post_task("q", "now", priority=3)
    swarm.post_task("q", "later", not_before=2**47)
    task = claimed(swarm)
    swarm.report(task.id, task.token, {"summary": "ok"}, worker="w1", claim_next="q")
    tasks = [f for f in events(raw) if f["type"].startswith(("task.", "finding."))]
    posted, later, claim, completed, reported = tasks
    assert (posted["type"], posted["status"]) == ("task.posted", "pending")
    assert later["status"] == "delayed"
    assert "priority" not in posted
    assert (claim["type"], claim["worker"], claim["attempt"]) == ("task.claimed", "w1", "1")
    assert "lease_deadline" not in claim
    assert (completed["type"], completed["finding"], reported["type"]) == (
        "task.completed",
        reported["finding"],
        "finding.reported",
    )


def test_a_task_stored_by_an_older_version_is_claimed_and_completed(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """A record as older versions wrote it (cjson's shape, a null for a field it had none of,
    no seals, failures, abandons or max_abandons) is leased and completed by a report that
    leases the next task, and the one posted now is next."""
    old = (
        '{"id":"t-old","queue":"q","description":"from before","priority":0,"max_attempts":3,'
        '"lease_s":60,"seq":1,"created_at":1000,"attempts":0,"claims":{},"status":"pending",'
        '"worker":null,"parent":null}'
    )
    raw.hset(KEYS.tasks, "t-old", old)
    raw.zadd(KEYS.pending("q"), {"t-old": 1})
    raw.hincrby(KEYS.counts, "q|pending", 1)
    raw.hset(KEYS.counts, "#seq", 1)
    new = swarm.post_task("q", "from now")
    task = claimed(swarm)
    assert (task.id, task.worker, task.failures, task.abandons) == ("t-old", "w1", 0, 0)
    _, following = swarm.report(task.id, task.token, {"summary": "ok"}, worker="w1", claim_next="q")
    assert following is not None and following.id == new.id
    assert swarm.get_task("t-old").status is TaskStatus.COMPLETED
    assert swarm.queue_stats()["q"]["completed"] == 1
