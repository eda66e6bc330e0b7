"""The task scripts against what a worker may write around them (docs/security.md, the threat
model: HSET any task record, ZADD a queue's sets, HINCRBY counts, XADD the event stream),
after tests/test_claim_damaged_records.py:

- a number JSON cannot write that a LATER move reads (priority, seq, max_attempts) dead-letters
  the task at its claim: written back without it, the task's next release or fail stopped
  half-way ('arithmetic on nil') and the task was in no set;
- renew, release, fail, cancel and requeue check what they read before their first write: a
  damaged record is dead-lettered (in a queue's set) or refused, never left half-moved;
- a claim that stopped at its cap of dropped ids keeps the wake token its wait popped, so that
  another waiter does not sleep with a task pending; a report's claim_next goes on past the
  cap instead of answering "nothing to claim";
- a record dead-lettered for its damage keeps no lease (deadline, worker);
- an event stream that refuses appends (an entry under the largest id) stops no script: the
  append is dropped, the work goes on;
- a due hint further ahead than any scan sets it is not trusted (it froze reclaims);
- a finding's id and task id are the server's, whatever the body sent through a raw FCALL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from redis_swarm import CorruptRecord, Swarm, TaskStatus
from redis_swarm._keys import Keys
from redis_swarm._scripts import fcall
from redis_swarm._usage import Usage

from ._handles import must
from ._invariants import check_swarm

KEYS = Keys("test")
Q = "qh"
DROP_CAP = 1000  # lua/_tasks.lua: the ids without a task one claim drops at most
HEAD = -9_999_999  # a score before every real task's (priority 0: the posting order)
MAX_ID = "18446744073709551615-18446744073709551615"  # the largest stream id


def _counts(swarm: Swarm, queue: str = Q) -> dict[str, int]:
    return {s: n for s, n in swarm.queue_stats().get(queue, {}).items() if n}


def _rewrite(raw: Any, task_id: str, drop: str = "", tail: str = "") -> None:
    """HSET the task's record back without field ``drop``, with ``tail`` (raw JSON text, such
    as ``"x":1e999``, which json.dumps cannot write) added."""
    record = json.loads(raw.hget(KEYS.tasks, task_id))
    record.pop(drop, None)
    text = json.dumps(record)
    raw.hset(KEYS.tasks, task_id, text[:-1] + "," + tail + "}" if tail else text)


def _stored(raw: Any, task_id: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(raw.hget(KEYS.tasks, task_id))
    return record


# --- 1. a number a later move reads, caught at the claim


@pytest.mark.parametrize("field", ["seq", "priority", "max_attempts"])
def test_a_claim_dead_letters_a_number_a_later_move_reads(
    swarm: Swarm, raw: Any, field: str
) -> None:
    """The claim wrote the task back without the field; its release then failed on the
    pending score (its fail on max_attempts) after leaving the lease set: in no set."""
    task = swarm.post_task(Q, "d")
    _rewrite(raw, task.id, field, f'"{field}":1e999')
    assert swarm.claim(Q, worker="w1") is None
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD
    assert f"its field {field} is not a finite number" in must(dead.dead_reason)
    assert _counts(swarm) == {"dead": 1}
    if field != "max_attempts":  # (written back without it: the checker reads every record's)
        check_swarm(raw)


# --- 1b. task_update checks what it reads before its first write


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [
        ("release", "seq", None),
        ("release", "priority", "1e999"),
        ("fail", "max_attempts", None),
        ("fail", "failures", "1e999"),
        ("fail", "failures", "1e300"),  # (finite, and printed -9223372036854775808 all the same)
        ("renew", "lease_deadline", '"soon"'),
        ("fail", "failed_usage", '"spent"'),
    ],
)
def test_an_update_of_a_damaged_lease_dead_letters_it_before_any_write(
    swarm: Swarm, raw: Any, action: str, field: str, value: str | None
) -> None:
    """The record was damaged after its claim (the worker HSET it). The script failed half-way
    (the lease gone, the counters moved, the record still claimed), or wrote garbage."""
    swarm.post_task(Q, "d")
    task = must(swarm.claim(Q, worker="w1"))
    _rewrite(raw, task.id, field, f'"{field}":{value}' if value else "")
    token = must(task.token)
    usage = Usage(source="test", tokens_in=5) if field == "failed_usage" else None
    update: Callable[[], object] = {
        "release": lambda: swarm.release(task.id, token),
        "renew": lambda: swarm.renew(task.id, token),
        "fail": lambda: swarm.fail(task.id, token, "boom", usage=usage),
    }[action]
    with pytest.raises(CorruptRecord, match=f"dead-lettered: damaged record: its field {field}"):
        update()
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD and raw.zscore(KEYS.dead(Q), task.id) is not None
    assert raw.zcard(KEYS.leases(Q)) == 0 and _counts(swarm) == {"dead": 1}
    assert dead.lease_deadline is None and dead.worker is None
    if field != "max_attempts" and value != "1e300":  # (the checker reads those of every record)
        check_swarm(raw)


def test_a_requeue_of_a_damaged_dead_record_is_refused_and_changes_nothing(
    swarm: Swarm, raw: Any
) -> None:
    """Dead-lettered for a seq it lacks, the requeue left the dead set, moved the counters and
    stopped at the pending score: the task in no set."""
    task = swarm.post_task(Q, "d")
    _rewrite(raw, task.id, "seq")
    assert swarm.claim(Q, worker="w1") is None  # (dead-lettered: no seq)
    before = raw.hget(KEYS.tasks, task.id)
    with pytest.raises(CorruptRecord, match="its field seq is missing"):
        swarm.requeue_dead(task.id)
    assert raw.hget(KEYS.tasks, task.id) == before
    assert raw.zscore(KEYS.dead(Q), task.id) is not None and _counts(swarm) == {"dead": 1}
    swarm.cancel(task.id, dead=True)  # (what it does not read stays settleable)
    assert swarm.get_task(task.id).status == TaskStatus.CANCELLED
    check_swarm(raw)


# --- 2, 3. the claims past the cap of dropped ids


def test_a_waiting_claim_past_its_cap_keeps_the_token_it_popped(redis_url: str, raw: Any) -> None:
    """Its second round ran as if no wait had popped a token, and popped one for its task:
    another task's. The other waiter slept through its wait with that task pending."""
    w0, w1, poster = (Swarm(redis_url, swarm="test") for _ in range(3))
    try:
        assert w0.claim(Q, worker="w0") is None and w1.claim(Q, worker="w1") is None
        raw.zadd(KEYS.pending(Q), {f"t-fake{i}": HEAD + i for i in range(DROP_CAP + 500)})
        t1, t2 = poster.post_task(Q, "T1"), poster.post_task(Q, "T2")
        assert must(w0.claim(Q, worker="w0", wait_s=5)).id == t1.id
        assert raw.llen(KEYS.wake(Q)) == 1  # (T2's)
        start = time.monotonic()
        assert must(w1.claim(Q, worker="w1", wait_s=3)).id == t2.id
        assert time.monotonic() - start < 1.5
    finally:
        for handle in (w0, w1, poster):
            handle.close()


def test_the_claim_behind_a_report_past_its_cap_keeps_its_token(redis_url: str, raw: Any) -> None:
    """The claim pipelined behind a report (its wait_s) stopped at the cap: the report then
    waited again, popping another task's token."""
    w0, w1, poster = (Swarm(redis_url, swarm="test") for _ in range(3))
    try:
        assert w0.claim(Q, worker="w0") is None and w1.claim(Q, worker="w1") is None
        t0 = poster.post_task(Q, "T0")
        got = must(w0.claim(Q, worker="w0", wait_s=5))  # (woken: its next report waits behind)
        assert got.id == t0.id
        assert w1.claim(Q, worker="w1") is None
        raw.zadd(KEYS.pending(Q), {f"t-fake{i}": HEAD + i for i in range(DROP_CAP + 500)})
        t1, t2 = poster.post_task(Q, "T1"), poster.post_task(Q, "T2")
        _, nxt = w0.report(
            got.id, must(got.token), {"summary": "ok"}, worker="w0", claim_next=Q, wait_s=5
        )
        assert must(nxt).id == t1.id
        assert raw.llen(KEYS.wake(Q)) == 1  # (T2's)
        start = time.monotonic()
        assert must(w1.claim(Q, worker="w1", wait_s=3)).id == t2.id
        assert time.monotonic() - start < 1.5
    finally:
        for handle in (w0, w1, poster):
            handle.close()


def test_a_report_claim_next_goes_on_past_the_cap(swarm: Swarm, raw: Any) -> None:
    """The report's claim stopped at the cap with a real task pending behind the ids it
    dropped, and the report answered "nothing to claim"."""
    swarm.post_task(Q, "first")
    task = must(swarm.claim(Q, worker="w1"))
    second = swarm.post_task(Q, "second")
    raw.zadd(KEYS.pending(Q), {f"t-fake{i}": HEAD + i for i in range(DROP_CAP + 200)})
    _, nxt = swarm.report(task.id, must(task.token), {"summary": "ok"}, worker="w1", claim_next=Q)
    assert must(nxt).id == second.id
    assert raw.zcard(KEYS.pending(Q)) == 0 and _counts(swarm) == {"completed": 1, "claimed": 1}


# --- 4. a damaged lease dead-lettered keeps no lease


def test_a_damaged_lease_dead_lettered_by_a_reclaim_keeps_no_lease(swarm: Swarm, raw: Any) -> None:
    swarm.post_task(Q, "d")
    task = must(swarm.claim(Q, worker="w1", lease_s=1))
    _rewrite(raw, task.id, "lease_s", '"lease_s":1e999')
    raw.zadd(KEYS.leases(Q), {task.id: 0})
    raw.hdel(KEYS.counts, f"due:{KEYS.delayed(Q)}")
    assert swarm.reap() == 1
    dead = swarm.get_task(task.id)
    assert dead.status == TaskStatus.DEAD
    assert dead.lease_deadline is None and dead.worker is None
    check_swarm(raw)


# --- 6. a poisoned event stream


def test_a_poisoned_event_stream_stops_no_script(swarm: Swarm, raw: Any) -> None:
    """An entry under the largest id makes every later XADD fail: every script that appends
    an event failed, a claim after it had popped its task (lost: in no set)."""
    swarm.register("worker", name="w1")
    swarm.register("coordinator", name="lead")
    raw.xadd(KEYS.events, {"type": "x"}, id=MAX_ID)
    with pytest.raises(redis.ResponseError, match="exhausted"):
        raw.xadd(KEYS.events, {"type": "y"})  # (poisoned)
    posted = swarm.post_tasks([{"queue": Q, "description": f"c{i}"} for i in range(4)])
    a = must(swarm.claim(Q, worker="w1"))
    swarm.renew(a.id, must(a.token))
    finding, nxt = swarm.report(a.id, must(a.token), {"summary": "ok"}, worker="w1", claim_next=Q)
    assert swarm.get_finding(finding.id).task_id == a.id
    b = must(nxt)
    swarm.release(b.id, must(b.token))
    c = must(swarm.claim(Q, worker="w1"))
    swarm.fail(c.id, must(c.token), "boom", retry=False)
    swarm.cancel(posted[3].id)
    swarm.send("w1", "hello", sender="lead")
    swarm.broadcast("to all", sender="lead")
    # (in either order: with no event id, the inbox and the broadcasts have their own ids)
    assert sorted(m.body for m in swarm.inbox("w1")) == ["hello", "to all"]
    stats = _counts(swarm)
    assert stats == {"completed": 1, "pending": 1, "dead": 1, "cancelled": 1}, stats
    check_swarm(raw, events=False)  # (counts match the sets: nothing lost)


# --- 7. a due hint no scan set


@pytest.mark.parametrize("kind", ["lease", "delayed"])
def test_a_due_hint_far_ahead_is_not_trusted(swarm: Swarm, raw: Any, kind: str) -> None:
    """A worker's HINCRBY of the queue's due hint froze reclaims and promotions for good."""
    if kind == "lease":
        swarm.post_task(Q, "d")
        task = must(swarm.claim(Q, worker="w1", lease_s=1))
        raw.zadd(KEYS.leases(Q), {task.id: 0})
    else:
        task = swarm.post_task(Q, "d", not_before=int(time.time() * 1000) + 3_600_000)
        raw.zadd(KEYS.delayed(Q), {task.id: 0})
    raw.hincrby(KEYS.counts, f"due:{KEYS.delayed(Q)}", 10**14)
    got = must(swarm.claim(Q, worker="w2"))
    assert got.id == task.id and got.worker == "w2"
    hint = int(raw.hget(KEYS.counts, f"due:{KEYS.delayed(Q)}"))
    assert hint < time.time() * 1000 + 3_600_000  # (set again by the scan)


# --- 8. a finding's id and task id


def test_a_finding_body_cannot_claim_another_id_or_task(redis_url: str, raw: Any) -> None:
    """The finding was the client's JSON closed with a meta block without id and task_id: a
    raw FCALL's body could name another finding's id or task's."""
    with Swarm(redis_url, swarm="test") as swarm:
        other = swarm.post_task(Q, "other")
        swarm.post_task(Q, "mine")
        mine = must(swarm.claim(Q, worker="w1"))
        if mine.id == other.id:
            mine, other = must(swarm.claim(Q, worker="w1")), mine
        body = json.dumps(
            {
                "id": "f-forged",
                "task_id": other.id,
                "summary": "s",
                "worker": "ghost",
                "sources": [],
            }
        )
        keys: tuple[str, ...] = (KEYS.tasks, KEYS.counts, KEYS.pass_counts, KEYS.events)
        keys += (KEYS.pending(Q), KEYS.delayed(Q), KEYS.leases(Q), KEYS.dead(Q))
        keys += (KEYS.findings, KEYS.finding_index, KEYS.findings_by("queue", Q))
        args = (0, 1000, mine.id, Q, must(mine.token), "f-real", body, "", "0", "0")
        raw.execute_command(*fcall("task_report", keys, args))
        finding = swarm.get_finding("f-real")
        assert (finding.id, finding.task_id, finding.worker) == ("f-real", mine.id, "w1")
        assert json.loads(raw.hget(KEYS.findings, "f-real"))["task_id"] == mine.id


def test_a_report_on_a_record_with_unreadable_owners_stores_nothing(swarm: Swarm, raw: Any) -> None:
    """Its parent was no string: the report stored its finding, took the task out of the
    lease set, then stopped on the shard's counter."""
    swarm.post_task(Q, "d")
    task = must(swarm.claim(Q, worker="w1"))
    _rewrite(raw, task.id, tail='"parent":{"x":1}')
    with pytest.raises(CorruptRecord, match="its field parent is not a string"):
        swarm.report(task.id, must(task.token), {"summary": "ok"}, finding_id="f-1")
    assert raw.hget(KEYS.findings, "f-1") is None
    assert raw.zscore(KEYS.leases(Q), task.id) is not None and _counts(swarm) == {"claimed": 1}
