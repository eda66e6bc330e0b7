"""Damaged or misplaced task records a worker can write (the threat model lets it ZADD into a
queue's sets and HSET any task record: docs/security.md) met by a claim, a reclaim or a
report, after tests/test_claim_foreign_ids.py:

- a task of queue A whose id is added to queue B's set is not B's: the claim through B drops
  it and goes on; the task stays A's, pending (or leased) in A, its counters untouched;
- a number JSON cannot write back (cjson decodes 1e999 as inf) never stops a script after its
  first writes (the tasks a claim popped were in no set): a field the move reads dead-letters
  the task naming it, any other is written back without it;
- a record with a pass_name but no pass_id is dead-lettered with its pass's counters moved
  too (the pass id found again by its name);
- reap counts a damaged lease it dead-letters;
- a claim that stopped at its cap of dropped ids says so, and the claim goes on: it never
  answers "nothing to claim" with real tasks pending."""

from __future__ import annotations

import json
from typing import Any

import pytest

from redis_swarm import Swarm, TaskStatus
from redis_swarm._keys import Keys

from ._handles import must

KEYS = Keys("test")
A, B = "qa", "qb"
DROP_CAP = 1000  # lua/_tasks.lua: the ids without a task one claim drops at most
HEAD = -9_999_999  # a score before every real task's (priority 0: the posting order)


def _counts(swarm: Swarm, queue: str) -> dict[str, int]:
    return {s: n for s, n in swarm.queue_stats().get(queue, {}).items() if n}


def _rewrite(raw: Any, task_id: str, drop: str = "", tail: str = "") -> None:
    """HSET the task's record back without field ``drop``, with ``tail`` (raw JSON text,
    such as ``"x":1e999``, which json.dumps cannot write) added."""
    record = json.loads(raw.hget(KEYS.tasks, task_id))
    record.pop(drop, None)
    text = json.dumps(record)
    raw.hset(KEYS.tasks, task_id, text[:-1] + "," + tail + "}" if tail else text)


def _due_now(raw: Any, queue: str, key: str, task_id: str) -> None:
    """Make the entry due at once and drop the queue's due hint (lua/_tasks.lua: due_field),
    so that the next claim or reap scans the queue's delayed and lease sets."""
    raw.zadd(key, {task_id: 0})
    raw.hdel(KEYS.counts, f"due:{KEYS.delayed(queue)}")


# --- 1. an id of another queue's task


@pytest.mark.parametrize("n", [1, 3])
def test_a_task_of_another_queue_in_pending_is_not_leased_through_it(
    swarm: Swarm, raw: Any, n: int
) -> None:
    """Leased through B, A's task moved A's counters (pending -1, claimed +1) while its lease
    was in B's set and its id still in A's pending set."""
    theirs = swarm.post_task(A, "of A")
    ours = swarm.post_task(B, "of B")
    raw.zadd(KEYS.pending(B), {theirs.id: HEAD})
    got = swarm.claim(B, worker="w1", n=n)
    leased = got if isinstance(got, list) else [must(got)]
    assert [t.id for t in leased] == [ours.id]
    assert raw.zscore(KEYS.pending(B), theirs.id) is None
    assert swarm.get_task(theirs.id).status == TaskStatus.PENDING
    assert _counts(swarm, A) == {"pending": 1} and _counts(swarm, B) == {"claimed": 1}
    assert raw.zcard(KEYS.leases(B)) == 1
    assert must(swarm.claim(A, worker="w2")).id == theirs.id  # (still claimable through A)
    assert _counts(swarm, A) == {"claimed": 1}


def test_a_claim_of_several_queues_drops_a_task_of_another_queue(swarm: Swarm, raw: Any) -> None:
    theirs = swarm.post_task(A, "of A")
    ours = swarm.post_task(B, "of B")
    raw.zadd(KEYS.pending(B), {theirs.id: HEAD})
    assert must(swarm.claim([B, "other"], worker="w1")).id == ours.id
    assert _counts(swarm, A) == {"pending": 1} and _counts(swarm, B) == {"claimed": 1}
    assert swarm.get_task(theirs.id).status == TaskStatus.PENDING


def test_a_lease_of_another_queue_is_not_reclaimed_through_it(swarm: Swarm, raw: Any) -> None:
    """A's claimed task added to B's lease set, due: reclaimed through B, it became pending
    in B's set with A's counters."""
    swarm.post_task(A, "of A")
    ours = swarm.post_task(B, "of B")  # (reap looks at the queues posted to)
    theirs = must(swarm.claim(A, worker="w1"))
    _due_now(raw, B, KEYS.leases(B), theirs.id)
    assert swarm.reap() == 0
    assert swarm.get_task(theirs.id).status == TaskStatus.CLAIMED
    assert raw.zscore(KEYS.leases(A), theirs.id) is not None
    assert raw.zrange(KEYS.pending(B), 0, -1) == [ours.id] and raw.zcard(KEYS.leases(B)) == 0
    assert _counts(swarm, A) == {"claimed": 1} and _counts(swarm, B) == {"pending": 1}
    swarm.report(theirs.id, theirs.token, {"summary": "ok"}, worker="w1")
    assert _counts(swarm, A) == {"completed": 1}


# --- 2. a number JSON cannot write


@pytest.mark.parametrize("field", ["attempts", "lease_s"])
def test_a_batch_claim_dead_letters_a_task_whose_read_number_is_infinite(
    swarm: Swarm, raw: Any, field: str
) -> None:
    """The claim popped three; the script stopped at the damaged one's write-back, the
    three were in no set and counted pending for ever."""
    real = swarm.post_tasks([{"queue": B, "description": f"c{i}"} for i in range(3)])
    _rewrite(raw, real[1].id, field, f'"{field}":1e999')
    got = swarm.claim(B, worker="w1", n=3)
    assert isinstance(got, list)
    assert [t.id for t in got] == [real[0].id, real[2].id]
    dead = swarm.get_task(real[1].id)
    assert dead.status == TaskStatus.DEAD and raw.zscore(KEYS.dead(B), dead.id) is not None
    assert f"damaged record: its field {field} is not a finite number" in must(dead.dead_reason)
    assert _counts(swarm, B) == {"claimed": 2, "dead": 1}
    assert field not in json.loads(raw.hget(KEYS.tasks, dead.id))  # (written back without it)


def test_a_claim_leases_a_task_with_an_infinite_number_it_does_not_read(
    swarm: Swarm, raw: Any
) -> None:
    """A field no move reads is written back without the number (JSON cannot hold it)."""
    task = swarm.post_task(B, "d")
    _rewrite(raw, task.id, tail='"x":1e999,"y":{"z":-1e999}')
    got = must(swarm.claim(B, worker="w1"))
    assert got.id == task.id and got.status == TaskStatus.CLAIMED
    stored = json.loads(raw.hget(KEYS.tasks, task.id))
    assert "x" not in stored and "y" not in stored and stored["status"] == "claimed"
    assert _counts(swarm, B) == {"claimed": 1}


def test_a_report_writes_back_a_record_with_an_infinite_number(swarm: Swarm, raw: Any) -> None:
    """The report stored its finding, left the lease set and moved the counters, then the
    script stopped at the write-back: the record still said claimed."""
    swarm.post_tasks([{"queue": B, "description": f"c{i}"} for i in range(2)])
    task = must(swarm.claim(B, worker="w1"))
    _rewrite(raw, task.id, tail='"x":1e999')
    finding, nxt = swarm.report(task.id, task.token, {"summary": "ok"}, worker="w1", claim_next=B)
    assert swarm.get_finding(finding.id).task_id == task.id
    assert swarm.get_task(task.id).status == TaskStatus.COMPLETED
    assert must(nxt).status == TaskStatus.CLAIMED
    assert _counts(swarm, B) == {"completed": 1, "claimed": 1}


@pytest.mark.parametrize(
    ("field", "buried"), [("abandons", True), ("x", False)], ids=["read", "unread"]
)
def test_a_reclaim_of_a_record_with_an_infinite_number(
    swarm: Swarm, raw: Any, field: str, buried: bool
) -> None:
    swarm.post_task(B, "d")
    task = must(swarm.claim(B, worker="w1"))
    _rewrite(raw, task.id, field, f'"{field}":1e999')
    _due_now(raw, B, KEYS.leases(B), task.id)
    assert swarm.reap() == 1
    got = swarm.get_task(task.id)
    if buried:
        assert got.status == TaskStatus.DEAD
        assert "its field abandons is not a finite number" in must(got.dead_reason)
        assert _counts(swarm, B) == {"dead": 1}
    else:
        assert got.status == TaskStatus.PENDING and got.abandons == 1
        assert _counts(swarm, B) == {"pending": 1}


def test_a_damaged_record_with_an_infinite_number_is_dead_lettered(swarm: Swarm, raw: Any) -> None:
    """It lacks a field the claim reads and holds a number cjson cannot write: it was left
    as it was, out of every set and counted pending for ever."""
    task = swarm.post_task(B, "d")
    _rewrite(raw, task.id, "lease_s", '"x":1e999')
    assert swarm.claim(B, worker="w1") is None
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD and "its field lease_s is missing" in must(
        dead.dead_reason
    )
    assert _counts(swarm, B) == {"dead": 1}


# --- 3. a pass_name without its pass_id


@pytest.mark.parametrize("drop", [("pass_id", "lease_s"), ("pass_id",)], ids=["and-lease", "only"])
def test_a_record_that_lost_its_pass_id_settles_its_pass(
    swarm: Swarm, raw: Any, drop: tuple[str, ...]
) -> None:
    """Dead-lettered with its queue's counters only, its pass counted it pending for ever
    (a wait on the pass never returned); with only its pass_id lost it was even leased and
    completed, its pass still pending."""
    task = swarm.post_task(B, "d", pass_name="p1")
    record = json.loads(raw.hget(KEYS.tasks, task.id))
    raw.hset(KEYS.tasks, task.id, json.dumps({k: v for k, v in record.items() if k not in drop}))
    assert swarm.claim(B, worker="w1") is None
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD
    assert f"its field {drop[-1]} is missing" in must(dead.dead_reason)
    assert {s: n for s, n in swarm.pass_stats("p1").items() if n} == {"dead": 1}
    assert swarm.wait(pass_name="p1", timeout_s=5)["dead"] == 1
    assert json.loads(raw.hget(KEYS.tasks, task.id))["pass_id"] == record["pass_id"]


# --- 4. reap counts what it dead-letters


def test_reap_counts_a_damaged_lease_it_dead_letters(swarm: Swarm, raw: Any) -> None:
    swarm.post_task(B, "d")
    task = must(swarm.claim(B, worker="w1"))
    _rewrite(raw, task.id, "seq")
    _due_now(raw, B, KEYS.leases(B), task.id)
    assert swarm.reap() == 1
    assert swarm.get_task(task.id).status == TaskStatus.DEAD


# --- 5. a claim that stopped at its cap


@pytest.mark.parametrize("n", [None, 2])
def test_a_claim_that_may_not_wait_goes_on_past_its_cap(
    swarm: Swarm, raw: Any, n: int | None
) -> None:
    """More ids without a task at the head of pending than one claim drops: it answered
    "nothing to claim" (None, or []) with a real task pending."""
    real = swarm.post_task(B, "d")
    raw.zadd(KEYS.pending(B), {f"t-fake{i}": HEAD + i for i in range(DROP_CAP + 5)})
    got = swarm.claim(B, worker="w1", n=n)
    leased = got if isinstance(got, list) else [must(got)]
    assert [t.id for t in leased] == [real.id]
    assert raw.zcard(KEYS.pending(B)) == 0 and _counts(swarm, B) == {"claimed": 1}
