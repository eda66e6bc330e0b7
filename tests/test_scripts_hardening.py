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
- an event stream that refuses appends (an entry under the largest id) stops no task script:
  the append is dropped, the work goes on; a send is refused with nothing stored (its message
  took an id of its own stream: a broadcast's, and the reader that committed through it never
  showed the direct message);
- a send to a stream that refuses entries appends no event; a message's id is its event's,
  even past an inbox whose last id is ahead of the clock;
- a due hint further ahead than any scan sets it is not trusted (it froze reclaims); one a
  worker moved to the ends of a 64-bit integer is set again, exactly, without overflowing (every
  claim of the queue failed, after its reclaims);
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
        assert time.monotonic() - start < 2.5  # (its wait is 3 s: woken, it is ms)
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
        assert time.monotonic() - start < 2.5  # (its wait is 3 s: woken, it is ms)
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
    # (a message's id is its event's: refused, with nothing stored, while the log is poisoned)
    with pytest.raises(CorruptRecord, match="refuses new entries"):
        swarm.send("w1", "hello", sender="lead")
    with pytest.raises(CorruptRecord, match="refuses new entries"):
        swarm.broadcast("to all", sender="lead")
    assert swarm.inbox("w1") == []
    stats = _counts(swarm)
    assert stats == {"completed": 1, "pending": 1, "dead": 1, "cancelled": 1}, stats
    check_swarm(raw, events=False)  # (counts match the sets: nothing lost)


def _read_all(swarm: Swarm, agent: str) -> list[str]:
    """What a reader that peeks one message, shows it and commits through it shows (a hook)."""
    shown: list[str] = []
    while got := swarm.inbox(agent, ack=False, limit=1):
        shown.append(got[0].body)
        swarm.mark_read(agent, got[0].seq)
    return shown


def test_no_message_is_lost_to_a_poisoned_event_log(swarm: Swarm, raw: Any) -> None:
    """Each message took an id of its own stream: a direct message and a broadcast sent in the
    same ms took the same id, the broadcast was shown first and marking it read passed the
    direct message too (91 of 300 shown)."""
    swarm.register("worker", name="A")
    swarm.register("worker", name="S")
    raw.xadd(KEYS.events, {"type": "x"}, id=MAX_ID)
    sent: list[str] = []
    shown: list[str] = []
    for i in range(300):
        for to, body in (("*", f"b{i}"), ("A", f"m{i}")):
            try:
                if to == "*":
                    swarm.broadcast(body, sender="S")
                else:
                    swarm.send(to, body, sender="S")
                sent.append(body)
            except CorruptRecord:
                pass
        shown += _read_all(swarm, "A")
    assert shown == sent == []  # (refused, nothing stored)
    assert raw.xlen(KEYS.inbox("A")) == raw.xlen(KEYS.broadcast) == raw.hlen(KEYS.messages) == 0
    raw.delete(KEYS.events)  # (the repair swarm doctor names)
    for i in range(300):
        swarm.broadcast(f"b{i}", sender="S")
        swarm.send("A", f"m{i}", sender="S")
        shown += _read_all(swarm, "A")
    assert shown == [body for i in range(300) for body in (f"b{i}", f"m{i}")]


@pytest.mark.parametrize("target", ["inbox", "broadcast"])
@pytest.mark.parametrize("damage", ["largest id", "another type"])
def test_a_send_to_a_stream_that_refuses_entries_appends_no_event(
    swarm: Swarm, raw: Any, target: str, damage: str
) -> None:
    """The message.sent event was appended, then the send refused: an event announced a message
    never stored (another type: a bare WRONGTYPE)."""
    swarm.register("worker", name="A")
    stream = KEYS.inbox("A") if target == "inbox" else KEYS.broadcast
    if damage == "largest id":
        raw.xadd(stream, {"id": "x"}, id=MAX_ID)
    else:
        raw.set(stream, "x")
    before = raw.xlen(KEYS.events)
    send: Callable[[], object] = (
        (lambda: swarm.send("A", "hello", sender="S"))
        if target == "inbox"
        else (lambda: swarm.broadcast("to all", sender="S"))
    )
    with pytest.raises(CorruptRecord, match=f"the stream {stream} refuses new entries"):
        send()
    assert raw.xlen(KEYS.events) == before and raw.hlen(KEYS.messages) == 0


def test_a_message_past_an_inbox_ahead_of_the_clock_keeps_its_event_id(
    swarm: Swarm, raw: Any
) -> None:
    """The message took an id of its inbox ('*', past its last), its event another: the one
    sequence broken, a broadcast sent after it took a lower id (shown, and passed, first)."""
    swarm.register("worker", name="A")
    ahead = int(time.time() * 1000) + 3_600_000
    raw.xadd(KEYS.inbox("A"), {"id": "m-old", "to": "A", "body": "old"}, id=f"{ahead}-0")
    raw.hset(KEYS.cursors, "A|inbox", f"{ahead}-0")  # (read)
    message = swarm.send("A", "hello", sender="S")
    assert message.seq == f"{ahead}-1"
    event = raw.xrevrange(KEYS.events, count=1)[0]
    assert event[0] == message.seq and event[1]["message"] == message.id
    later = swarm.broadcast("to all", sender="S")
    assert later.seq == f"{ahead}-2"  # (after it: the order they were sent)
    assert _read_all(swarm, "A") == ["hello", "to all"]


def test_ids_are_compared_by_their_parts_not_as_one_string(redis_url: str) -> None:
    """Eleven messages in one millisecond give the inbox an id 'T-10'; a send the next
    millisecond (the log's newest 'T+1-0') must not take 'T-10' for the larger and step
    below the log (it was refused as a poisoned stream, under ordinary load)."""
    at = int(time.time() * 1000) + 1_000
    with (
        Swarm(redis_url, swarm="test", clock=lambda: at) as first,
        Swarm(redis_url, swarm="test", clock=lambda: at + 1) as later,
    ):
        agent = first.register("worker", name="a").id
        for i in range(11):
            first.send(agent, f"x{i}", sender="S")
        later.broadcast("hello", sender="S")
        message = later.send(agent, "later", sender="S")
        assert message.seq == f"{at + 1}-1"
        assert _read_all(later, agent)[-2:] == ["hello", "later"]


def test_an_inbox_entry_past_2_53_does_not_stall_its_reader(swarm: Swarm, raw: Any) -> None:
    """A worker's inbox entry with a seq past 2^53: every later message takes a seq there, and
    ids compared as Lua numbers stopped the read's cursor (one message shown for ever)."""
    swarm.register("worker", name="a")
    ahead = int(time.time() * 1000) + 60_000
    raw.xadd(KEYS.inbox("a"), {"id": "m-forged", "from": "x", "to": "a", "kind": "note",
             "body": "forged", "data": "", "at": str(ahead)},
             id=f"{ahead}-9007199254740994")  # fmt: skip
    sent = [swarm.send("a", f"m{i}", sender="lead").seq for i in range(4)]
    assert sent == [f"{ahead}-{9007199254740995 + i}" for i in range(4)]
    shown = [m.body for _ in range(6) for m in swarm.inbox("a", limit=1)]
    assert shown == ["forged", "m0", "m1", "m2", "m3"]


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


def _forge_hint(raw: Any, target: int) -> None:
    """HINCRBY the queue's due hint to target, as a worker can: steps of at most 2^62 (Redis
    refuses a larger increment or a sum past a 64-bit integer)."""
    field = f"due:{KEYS.delayed(Q)}"
    now = int(raw.hget(KEYS.counts, field) or 0)
    while now != target:
        step = max(-(2**62), min(2**62, target - now))
        now = raw.hincrby(KEYS.counts, field, step)


@pytest.mark.parametrize(
    "forged", [-(2**63), 2**63 - 1, -(2**53) - 12_345, 2**53 + 12_345, -5], ids=str
)
def test_a_due_hint_forged_anywhere_is_set_again_exactly(
    swarm: Swarm, raw: Any, forged: int
) -> None:
    """From -2^63 the scan's HINCRBY (the time less the hint) overflowed: every claim and reap of
    the queue failed for good, after its reclaims. Past 2^53 the hint a Lua number read missed
    its last digits, so the time written back was off by as many."""
    swarm.post_task(Q, "d")
    task = must(swarm.claim(Q, worker="w1"))
    # (a delayed task sets the next due time: a multiple of 1024, which a double holds exactly
    # next to 2^63, so only the hint's own digits can be lost)
    due = (int(time.time() * 1000) + 30_000) // 1024 * 1024
    swarm.post_task(Q, "later", not_before=due)
    field = f"due:{KEYS.delayed(Q)}"
    raw.zadd(KEYS.leases(Q), {task.id: 0})  # (expired)
    _forge_hint(raw, forged)
    assert swarm.reap() == 1
    assert int(raw.hget(KEYS.counts, field)) == due
    _forge_hint(raw, forged)
    got = must(swarm.claim(Q, worker="w2"))  # (the reclaimed task)
    assert got.id == task.id and got.worker == "w2"
    assert int(raw.hget(KEYS.counts, field)) == due
    check_swarm(raw)


def test_a_hint_forged_ahead_is_lowered_exactly(swarm: Swarm, raw: Any) -> None:
    """A post lowering a hint near 2^63 wrote the time less the hint as a Lua number read it:
    the hint landed off by up to 512 ms (here 1 below the time)."""
    assert swarm.claim(Q, worker="w1") is None  # (the hint set)
    _forge_hint(raw, 2**63 - 1)
    due = (int(time.time() * 1000) + 30_000) // 1024 * 1024
    swarm.post_task(Q, "later", not_before=due)
    assert int(raw.hget(KEYS.counts, f"due:{KEYS.delayed(Q)}")) == due
