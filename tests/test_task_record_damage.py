"""Task records a worker rewrote with plain HSET (the threat model lets it: docs/security.md),
met by a claim, a reclaim, a promotion, a renew, a release, a fail or a report's claim_next,
after tests/test_claim_damaged_records.py and tests/test_scripts_hardening.py:

- a task of queue A whose record was rewritten to name a queue no task was posted to (or no
  queue), its id left in A's set at the score the scripts gave it: the claim through A
  dropped it, and it was lost (counted in A, in no set, its pass never settled). It is
  dead-lettered in A, its record naming A again, its counters exact; a coordinator can
  requeue it. A record naming a queue tasks were posted to is that queue's: dropped from A's
  set, even at its very score (a worker reads the record: that score proves nothing);
- a finite number out of the range a post accepts (a lease_s of 1e300 or below 0, a
  max_attempts of 1e300, a priority past 10,000, an attempts of -1): the scripts leased it
  with a nonsense deadline, retried it for ever, or wrote a nonsense score. It is damaged, as
  a non-finite number is: dead-lettered naming the range;
- the invariant checker reports a record without max_attempts instead of raising KeyError."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from redis_swarm import Conflict, CorruptRecord, Swarm, TaskStatus
from redis_swarm._keys import Keys
from redis_swarm._scripts import fcall

from ._handles import must
from ._invariants import check_swarm

KEYS = Keys("test")
A, B = "qa", "qb"
NOWHERE = "never-posted"  # a queue no task was posted to: no counters name it


def _counts(swarm: Swarm, queue: str) -> dict[str, int]:
    return {s: n for s, n in swarm.queue_stats().get(queue, {}).items() if n}


def _hset(raw: Any, task_id: str, **fields: Any) -> None:
    """What a worker can do: HSET the task's record with these fields changed (None: left
    out)."""
    record = json.loads(raw.hget(KEYS.tasks, task_id))
    for name, value in fields.items():
        if value is None:
            record.pop(name, None)
        else:
            record[name] = value
    raw.hset(KEYS.tasks, task_id, json.dumps(record))


def _stored(raw: Any, task_id: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(raw.hget(KEYS.tasks, task_id))
    return record


# --- 1. a record rewritten to name another queue


@pytest.mark.parametrize(
    "queue", [NOWHERE, "shard:s1", None], ids=["never-posted", "a-shard-counter", "none"]
)
@pytest.mark.parametrize("n", [1, 3])
def test_a_pending_task_whose_record_names_another_queue_is_dead_lettered_in_its_own(
    swarm: Swarm, raw: Any, n: int, queue: str | None
) -> None:
    # (a shard's counters share the hash: shard:s1|pending names no queue)
    real = swarm.post_tasks(
        [{"queue": A, "description": f"c{i}", "parent": "s1"} for i in range(3)]
    )
    theirs = swarm.post_task(B, "of B")
    _hset(raw, real[0].id, queue=queue)
    got = swarm.claim(A, worker="w1", n=n)
    leased = got if isinstance(got, list) else [must(got)]
    assert [t.id for t in leased] == [t.id for t in real[1 : 1 + n]]
    dead = swarm.get_task(real[0].id)
    assert dead.status == TaskStatus.DEAD and dead.queue == A
    assert raw.zscore(KEYS.dead(A), dead.id) is not None
    named = f"names {queue}" if queue else "is missing"
    assert f"its field queue {named} (written around redis-swarm) while queue {A}'s pending" in (
        must(dead.dead_reason)
    )
    left = {"pending": 2 - len(leased)} if len(leased) < 2 else {}
    assert _counts(swarm, A) == {"dead": 1, "claimed": len(leased)} | left
    assert _counts(swarm, B) == {"pending": 1}  # (B's counters never counted it)
    check_swarm(raw)
    # (its record sound again: a coordinator requeues it, and it runs in A)
    swarm.requeue_dead(dead.id)
    for task in leased:
        swarm.report(task.id, must(task.token), {"summary": "ok"}, worker="w1")
    again = swarm.claim(A, worker="w2", n=3)
    assert isinstance(again, list) and dead.id in {t.id for t in again}
    for task in again:
        swarm.report(task.id, must(task.token), {"summary": "ok"}, worker="w2")
    assert _counts(swarm, A) == {"completed": 3}
    assert must(swarm.claim(B, worker="w3")).id == theirs.id
    check_swarm(raw)


def test_another_queues_task_added_at_its_very_score_is_dropped_not_dead_lettered(
    swarm: Swarm, raw: Any
) -> None:
    """A worker reads B's task's record and adds its id to A's pending set at the score the
    scripts gave it in B: A's claim drops it (it is B's: B's counters name that queue), and
    B's claim leases it. (A review's catch: trusting the score, A's claim dead-lettered it,
    its record rewritten to A, and it stayed in B's set, never claimable, B's pending one too
    high for ever.)"""
    mine = swarm.post_task(A, "of A")
    theirs = swarm.post_task(B, "of B", priority=3)
    raw.zadd(KEYS.pending(A), {theirs.id: raw.zscore(KEYS.pending(B), theirs.id)})
    assert must(swarm.claim(A, worker="w1")).id == mine.id
    assert swarm.claim(A, worker="w1") is None
    assert swarm.get_task(theirs.id).status == TaskStatus.PENDING
    assert must(swarm.claim(B, worker="w2")).id == theirs.id
    assert _counts(swarm, A) == {"claimed": 1} and _counts(swarm, B) == {"claimed": 1}
    check_swarm(raw)


def test_a_record_rewritten_to_name_a_queue_tasks_were_posted_to_is_dropped(
    swarm: Swarm, raw: Any
) -> None:
    """What the score cannot tell apart from the case above: A's task, its record rewritten to
    name B (which has tasks), is dropped from A's set as B's (docs/security.md says so; swarm
    doctor names A's pending counter one above its set, --recount mends it)."""
    task = swarm.post_task(A, "of A")
    swarm.post_task(B, "of B")
    _hset(raw, task.id, queue=B)
    assert swarm.claim(A, worker="w1") is None
    assert raw.zscore(KEYS.pending(A), task.id) is None
    assert swarm.get_task(task.id).status == TaskStatus.PENDING  # (held by no set)
    assert not swarm.check_counters().ok


def test_a_claim_of_several_queues_dead_letters_it_in_the_queue_that_held_it(
    swarm: Swarm, raw: Any
) -> None:
    task = swarm.post_task(A, "of A")
    swarm.post_task("other", "elsewhere")
    _hset(raw, task.id, queue=NOWHERE)
    assert must(swarm.claim([A, "other"], worker="w1")).queue == "other"
    assert swarm.get_task(task.id).status == TaskStatus.DEAD
    assert _counts(swarm, A) == {"dead": 1} and _counts(swarm, B) == {}
    check_swarm(raw)


def test_a_lease_whose_record_names_another_queue_is_dead_lettered_when_it_ends(
    swarm: Swarm, raw: Any
) -> None:
    swarm.post_task(A, "of A")
    task = must(swarm.claim(A, worker="w1", lease_s=0.05))
    _hset(raw, task.id, queue=NOWHERE)
    with pytest.raises(Conflict, match=f"task {task.id} is not in queue {A}"):
        swarm.report(task.id, must(task.token), {"summary": "ok"}, worker="w1")
    time.sleep(0.1)
    assert swarm.reap() == 1
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD and dead.queue == A
    assert f"while queue {A}'s lease set held it" in must(dead.dead_reason)
    assert raw.zcard(KEYS.leases(A)) == 0 and _counts(swarm, A) == {"dead": 1}
    check_swarm(raw)


def test_a_delayed_task_whose_record_names_another_queue_is_dead_lettered_when_due(
    swarm: Swarm, raw: Any
) -> None:
    task = swarm.post_task(A, "later", delay_s=0.05)
    _hset(raw, task.id, queue=NOWHERE)
    time.sleep(0.1)
    assert swarm.claim(A, worker="w1") is None
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD
    assert f"while queue {A}'s delayed set held it" in must(dead.dead_reason)
    assert raw.zcard(KEYS.delayed(A)) == 0 and _counts(swarm, A) == {"dead": 1}
    check_swarm(raw)


# --- 2. a finite number out of the range a post accepts

SECONDS = "a number of seconds from 0.001 to 2592000"


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("lease_s", 1e300, SECONDS),
        ("lease_s", -5, SECONDS),
        ("lease_s", 0, SECONDS),
        ("max_attempts", 1e300, "a number from 1 to 1000"),
        ("max_attempts", 0, "a number from 1 to 1000"),
        ("priority", 1e300, "a number from -10000 to 10000"),
        ("priority", -10_001, "a number from -10000 to 10000"),
        ("attempts", -1, "a count"),
        ("attempts", 1.5, "a count"),
    ],
)
def test_a_claim_dead_letters_a_number_out_of_its_range(
    swarm: Swarm, raw: Any, field: str, value: float, kind: str
) -> None:
    """Leased before: a lease_s of 1e300 gave a deadline formatted as a 64-bit overflow, one
    below 0 a lease already over; a max_attempts of 1e300 retried for ever."""
    real = swarm.post_tasks([{"queue": A, "description": f"c{i}"} for i in range(3)])
    _hset(raw, real[1].id, **{field: value})
    got = swarm.claim(A, worker="w1", n=3)
    assert isinstance(got, list)
    assert [t.id for t in got] == [real[0].id, real[2].id]
    dead = swarm.get_task(real[1].id)
    assert dead.status == TaskStatus.DEAD and raw.zscore(KEYS.dead(A), dead.id) is not None
    assert f"damaged record: its field {field} is not {kind}" in must(dead.dead_reason)
    assert _counts(swarm, A) == {"claimed": 2, "dead": 1}
    assert raw.zcard(KEYS.leases(A)) == 2


def test_a_posting_counter_pushed_past_2_to_53_dead_letters_nothing(swarm: Swarm, raw: Any) -> None:
    """A worker may HINCRBY the posting counter (#seq in counts). Pushed past 2^53 (below 2^63,
    so posts go on), a range check on seq dead-lettered every task posted after it, in every
    queue, at its first claim (a review's catch): seq is checked finite only."""
    raw.hincrby(KEYS.counts, "#seq", 2**60)
    posted = swarm.post_tasks([{"queue": A, "description": f"c{i}"} for i in range(2)])
    got = swarm.claim(A, worker="w1", n=2)
    assert isinstance(got, list) and {t.id for t in got} == {t.id for t in posted}
    assert _counts(swarm, A) == {"claimed": 2}


@pytest.mark.parametrize(("field", "value"), [("max_abandons", 1e300), ("abandons", -1)])
def test_a_reclaim_dead_letters_a_number_out_of_its_range(
    swarm: Swarm, raw: Any, field: str, value: float
) -> None:
    swarm.post_task(A, "d")
    task = must(swarm.claim(A, worker="w1", lease_s=0.05))
    _hset(raw, task.id, **{field: value})
    time.sleep(0.1)
    assert swarm.reap() == 1
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD
    assert f"its field {field} is not" in must(dead.dead_reason)
    assert _counts(swarm, A) == {"dead": 1} and raw.zcard(KEYS.leases(A)) == 0


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [
        ("renew", "lease_ms", 1e300),
        ("renew", "lease_ms", -1000),
        ("release", "priority", 1e300),
        ("fail", "max_attempts", 1e300),
    ],
)
def test_an_update_dead_letters_a_number_out_of_its_range(
    swarm: Swarm, raw: Any, action: str, field: str, value: float
) -> None:
    """Renewed to a deadline no integer holds (or one long past), released at a nonsense
    score, or failed and retried for ever."""
    swarm.post_task(A, "d")
    task = must(swarm.claim(A, worker="w1"))
    _hset(raw, task.id, **{field: value})
    token = must(task.token)
    update: Callable[[], object] = {
        "release": lambda: swarm.release(task.id, token),
        "renew": lambda: swarm.renew(task.id, token),
        "fail": lambda: swarm.fail(task.id, token, "boom"),
    }[action]
    with pytest.raises(CorruptRecord, match=f"dead-lettered: damaged record: its field {field}"):
        update()
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD and raw.zscore(KEYS.dead(A), task.id) is not None
    assert raw.zcard(KEYS.leases(A)) == 0 and _counts(swarm, A) == {"dead": 1}


def test_a_report_that_claims_next_dead_letters_a_number_out_of_its_range(
    swarm: Swarm, raw: Any
) -> None:
    real = swarm.post_tasks([{"queue": A, "description": f"c{i}"} for i in range(3)])
    first = must(swarm.claim(A, worker="w1"))
    _hset(raw, real[1].id, lease_s=-1)
    _, nxt = swarm.report(first.id, must(first.token), {"summary": "ok"}, worker="w1", claim_next=A)
    assert nxt is not None and nxt.id == real[2].id
    assert nxt.lease_deadline is not None and nxt.lease_deadline > time.time() * 1000
    assert swarm.get_task(real[1].id).status == TaskStatus.DEAD
    assert _counts(swarm, A) == {"completed": 1, "claimed": 1, "dead": 1}
    check_swarm(raw)


def test_numbers_at_the_ends_of_their_ranges_are_not_damage(swarm: Swarm, raw: Any) -> None:
    """What a post accepts, a claim, a release and a fail accept back."""
    task = swarm.post_task(A, "d", priority=-10_000, max_attempts=1000, lease_s=0.001)
    got = must(swarm.claim(A, worker="w1"))
    swarm.release(got.id, must(got.token))
    _hset(raw, task.id, lease_s=30 * 86_400)
    got = must(swarm.claim(A, worker="w1"))
    assert got.status == TaskStatus.CLAIMED
    assert must(got.lease_deadline) - must(got.claimed_at) == 30 * 86_400_000
    assert swarm.fail(got.id, must(got.token), "boom").status == TaskStatus.DELAYED
    check_swarm(raw)


def test_a_raw_claim_with_limits_of_another_shape_is_refused_before_any_write(
    swarm: Swarm, raw: Any
) -> None:
    """The limits come from the caller: one of another shape (a raw FCALL's) is refused
    with nothing written, never read as no limit."""
    task = swarm.post_task(A, "d")
    _hset(raw, task.id, lease_s=-5)
    keys: tuple[str, ...] = (KEYS.tasks, KEYS.task_data, KEYS.counts, KEYS.pass_counts, KEYS.events)
    keys += (KEYS.agents, KEYS.presence)
    keys += (KEYS.pending(A), KEYS.delayed(A), KEYS.leases(A), KEYS.dead(A), KEYS.wake(A))
    args = (0, 1000, "claim", "w1", 0, 100, 1000, 3, "no limits", "0", "0", "secret")
    before = raw.hget(KEYS.tasks, task.id)
    with pytest.raises(redis.ResponseError, match="SWARM_INVALID the record limits sent"):
        raw.execute_command(*fcall("task_claim", keys, args))
    assert raw.hget(KEYS.tasks, task.id) == before
    assert raw.zrange(KEYS.pending(A), 0, -1) == [task.id] and _counts(swarm, A) == {"pending": 1}


# --- 3. the invariant checker


@pytest.mark.parametrize("limit", ["max_attempts", "max_abandons"])
def test_the_checker_reports_a_record_without_a_limit(swarm: Swarm, raw: Any, limit: str) -> None:
    """It raised KeyError, which named neither the record nor the invariant."""
    task = swarm.post_task(A, "d")
    _hset(raw, task.id, **{limit: None})
    with pytest.raises(AssertionError, match=f"task {task.id}: no {limit}"):
        check_swarm(raw)
