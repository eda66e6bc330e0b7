"""A claim that meets a task whose record or data cannot be read (written around redis-swarm)
hands out the others as usual and dead-letters the damaged one at once, under the lease it
just took: a single claim, a batch (``n=``), a report's ``claim_next`` (in its script, and in
the claim pipelined behind it, ``wait_s``) alike. The batch used to raise CorruptRecord with
the good tasks' tokens only in its message, and the damaged task came back lease after lease
until ``max_abandons`` buried it. Its record and data stay stored as they were (``swarm
doctor`` names it); repaired, ``requeue_dead`` runs it again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from redis_swarm import CorruptRecord, Swarm, Task, TaskStatus
from redis_swarm._errors import TaskDeadLettered
from redis_swarm._keys import Keys

from ._handles import must

KEYS = Keys("test")
Q = "dmg"
JUNK = "{not json"


def _damage(raw: Any, task: Task) -> None:
    raw.hset(KEYS.task_data, task.id, JUNK)


def _said(task: Task) -> Any:
    """The TaskDeadLettered warning a claim that dead-lettered ``task`` gives (the suite turns
    warnings into errors: tests/test_damaged_claim_said.py says what it holds)."""
    return pytest.warns(TaskDeadLettered, match=f"^task {task.id} was dead-lettered: ")


def _buried(swarm: Swarm, raw: Any, task: Task) -> dict[str, Any]:
    """The damaged task's stored record, checked dead-lettered at once (one attempt, no
    abandon), its last error naming the damage and the repair, its data kept as it was."""
    record: dict[str, Any] = json.loads(raw.hget(KEYS.tasks, task.id))
    assert record["status"] == "dead", record
    assert record["attempts"] == 1 and record.get("abandons", 0) == 0
    error = record["last_error"]
    assert f"task {task.id}'s data is stored corrupt" in error, error
    assert f"redis-cli HSET '{KEYS.task_data}' {task.id} 'JSON' with its data" in error, error
    assert f"swarm task requeue {task.id}" in error
    assert record["dead_reason"].startswith("failed without retry: ")
    assert "lease_deadline" not in record and "worker" not in record
    assert raw.hget(KEYS.task_data, task.id) == JUNK  # (kept: nothing lost)
    assert raw.zscore(KEYS.dead(Q), task.id) is not None
    assert raw.zscore(KEYS.leases(Q), task.id) is None
    assert swarm.corrupt_records()["task"] == [task.id]
    with pytest.raises(CorruptRecord, match="data is stored corrupt"):
        swarm.get_task(task.id)
    return record


def test_a_batch_claim_hands_out_the_good_tasks_and_buries_the_damaged_one(
    swarm: Swarm, raw: Any
) -> None:
    first = swarm.post_task(Q, "first", data={"n": 1}, priority=3)
    bad = swarm.post_task(Q, "bad", data={"n": 2}, priority=2)
    last = swarm.post_task(Q, "last", data={"n": 3}, priority=1)
    _damage(raw, bad)
    with _said(bad):
        got = swarm.claim(Q, worker="w", n=3)
    assert [t.id for t in got] == [first.id, last.id]
    assert [t.data for t in got] == [{"n": 1}, {"n": 3}]
    for task in got:  # their leases and tokens are usable
        swarm.renew(task.id, task.token)
        swarm.report(task.id, task.token, {"summary": "ok"})
    _buried(swarm, raw, bad)
    stats = swarm.queue_stats()[Q]
    assert stats["completed"] == 2 and stats["dead"] == 1 and stats["claimed"] == 0
    assert swarm.claim(Q, worker="w", n=3) == []  # it does not come back


def test_a_single_claim_goes_past_the_damaged_task_as_a_batch_does(swarm: Swarm, raw: Any) -> None:
    bad = swarm.post_task(Q, "bad", data={"n": 1}, priority=5)
    good = swarm.post_task(Q, "good", data={"n": 2})
    _damage(raw, bad)
    with _said(bad):
        got = must(swarm.claim(Q, worker="w"))
    assert got.id == good.id and got.data == {"n": 2}
    swarm.report(got.id, got.token, {"summary": "ok"})
    _buried(swarm, raw, bad)
    assert swarm.claim(Q, worker="w") is None


def test_a_claim_that_meets_only_a_damaged_task_finds_nothing(swarm: Swarm, raw: Any) -> None:
    bad = swarm.post_task(Q, "bad", data={"n": 1})
    _damage(raw, bad)
    with _said(bad):
        assert swarm.claim(Q, worker="w") is None
    _buried(swarm, raw, bad)
    assert swarm.claim(Q, worker="w", n=2) == []
    assert swarm.reap() == 0  # no lease left to expire


def test_a_damaged_task_repaired_is_run_again(swarm: Swarm, raw: Any) -> None:
    bad = swarm.post_task(Q, "bad", data={"n": 1})
    _damage(raw, bad)
    with _said(bad):
        assert swarm.claim(Q, worker="w") is None
    raw.hset(KEYS.task_data, bad.id, json.dumps({"n": 1}))
    swarm.requeue_dead(bad.id)
    again = must(swarm.claim(Q, worker="w"))
    assert again.id == bad.id and again.data == {"n": 1}
    swarm.report(again.id, again.token, {"summary": "ok"})
    assert swarm.get_task(bad.id).status is TaskStatus.COMPLETED


def test_a_task_record_of_a_wrong_type_is_buried_so_too(swarm: Swarm, raw: Any) -> None:
    """Its record readable to the script but not to the client (a description that is no
    string): the same fate."""
    good = swarm.post_task(Q, "good")
    bad = swarm.post_task(Q, "bad", priority=5)
    record = json.loads(raw.hget(KEYS.tasks, bad.id))
    raw.hset(KEYS.tasks, bad.id, json.dumps({**record, "description": 5}))
    with _said(bad):
        got = swarm.claim(Q, worker="w", n=2)
    assert [t.id for t in got] == [good.id]
    stored = json.loads(raw.hget(KEYS.tasks, bad.id))
    assert stored["status"] == "dead" and stored["description"] == 5
    assert f"task {bad.id} is stored corrupt" in stored["last_error"]
    assert swarm.claim(Q, worker="w") is None


def test_a_report_claim_next_goes_past_a_damaged_task(swarm: Swarm, raw: Any) -> None:
    swarm.post_task(Q, "first", priority=9)
    task = must(swarm.claim(Q, worker="w"))
    bad = swarm.post_task(Q, "bad", data={"n": 1}, priority=5)
    good = swarm.post_task(Q, "good", data={"n": 2})
    _damage(raw, bad)
    with _said(bad):
        finding, nxt = swarm.report(
            task.id, task.token, {"summary": "ok"}, worker="w", claim_next=Q
        )
    assert swarm.get_task(task.id).finding_id == finding.id
    assert must(nxt).id == good.id and must(nxt).data == {"n": 2}
    _buried(swarm, raw, bad)
    swarm.report(good.id, must(nxt).token, {"summary": "ok"})
    # the damaged one alone: the report answers no next task, the task buried all the same
    bad2 = swarm.post_task(Q, "bad2", data={"n": 3})
    raw.hset(KEYS.task_data, bad2.id, JUNK)
    third = swarm.post_task(Q, "third", priority=9)
    got = must(swarm.claim(Q, worker="w"))
    assert got.id == third.id
    with _said(bad2):
        _, nxt = swarm.report(got.id, got.token, {"summary": "ok"}, worker="w", claim_next=Q)
    assert nxt is None
    assert json.loads(raw.hget(KEYS.tasks, bad2.id))["status"] == "dead"


def test_the_claim_behind_a_waiting_report_goes_past_a_damaged_task(
    redis_url: str, raw: Any
) -> None:
    """The claim pipelined behind a report (its wait_s, once a claim had to wait)."""
    with Swarm(redis_url, swarm="test") as w0, Swarm(redis_url, swarm="test") as poster:
        assert w0.claim(Q, worker="w0") is None
        t0 = poster.post_task(Q, "T0")
        got = must(w0.claim(Q, worker="w0", wait_s=5))  # (woken: its next report waits behind)
        assert got.id == t0.id
        bad = poster.post_task(Q, "bad", data={"n": 1}, priority=5)
        good = poster.post_task(Q, "good", data={"n": 2})
        _damage(raw, bad)
        with _said(bad):
            _, nxt = w0.report(
                got.id, must(got.token), {"summary": "ok"}, worker="w0", claim_next=Q, wait_s=5
            )
        assert must(nxt).id == good.id and must(nxt).data == {"n": 2}
        _buried(w0, raw, bad)


def test_a_record_the_fail_cannot_move_either_is_buried_by_the_script_and_the_claim_goes_on(
    swarm: Swarm, raw: Any
) -> None:
    """A record this side cannot read (a description no text) whose fail the script cannot
    make either (its failure count no number): the script dead-letters it itself, answering
    CorruptRecord "was dead-lettered"; that is the claim's goal met, not a failure to give it
    up (which named a `swarm task fail` that then found no lease)."""
    bad = swarm.post_task(Q, "bad", priority=2)
    good = swarm.post_task(Q, "good", priority=1)
    record = json.loads(raw.hget(KEYS.tasks, bad.id))
    record.update(description=5, failures="x")
    raw.hset(KEYS.tasks, bad.id, json.dumps(record))
    with _said(bad):
        got = swarm.claim(Q, worker="w", n=2)
    assert [t.id for t in got] == [good.id]
    assert json.loads(raw.hget(KEYS.tasks, bad.id))["status"] == "dead"
    assert raw.zscore(KEYS.dead(Q), bad.id) is not None
    assert raw.zscore(KEYS.leases(Q), bad.id) is None


def test_a_dead_task_whose_data_is_still_damaged_is_not_requeued(swarm: Swarm, raw: Any) -> None:
    """Requeued with its data still damaged, its next claim only dead-lettered it again, an
    attempt spent: refused until repaired, nothing changed."""
    bad = swarm.post_task(Q, "bad", data={"n": 1})
    _damage(raw, bad)
    with _said(bad):
        assert swarm.claim(Q, worker="w") is None
    before = raw.hget(KEYS.tasks, bad.id)
    with pytest.raises(CorruptRecord) as refused:
        swarm.requeue_dead(bad.id)
    said = str(refused.value)
    assert f"task {bad.id}'s data is still stored damaged" in said
    assert f"redis-cli HSET '{KEYS.task_data}' {bad.id} 'JSON'" in said
    assert raw.hget(KEYS.tasks, bad.id) == before  # (nothing changed)
    raw.hset(KEYS.task_data, bad.id, json.dumps({"n": 1}))
    assert swarm.requeue_dead(bad.id).status is TaskStatus.PENDING
    assert must(swarm.claim(Q, worker="w")).data == {"n": 1}
