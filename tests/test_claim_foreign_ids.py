"""Ids a worker wrote into a queue's sets by hand (the threat model lets a worker ZADD there and
HSET any task record: docs/security.md) never stop a claim. A claim that met an id with no
record, or with a record it cannot read, raised a raw Lua error after its ZPOPMIN had taken
the real tasks out of the pending set: those were then in no set, pending for ever, and
``swarm run`` stopped. Now such an id is dropped from the set it was met in and the claim
goes on; the record, if any, is left for ``swarm doctor``. A real task whose record lost a
field a move reads (its queue and pass still readable) is dead-lettered instead, its counters
moved: dropped, it was counted for ever in a status no set held, and a pass waited on it."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import CorruptRecord, Swarm, Task, TaskStatus
from redis_swarm._keys import Keys

from ._cli import Cli
from ._handles import must

KEYS = Keys("test")
Q = "qc"
DROP_CAP = 1000  # lua/_tasks.lua: the ids without a task one claim drops at most
HEAD = -9_999_999  # a score before every real task's (priority 0: the posting order)
NOT_JSON = "{this is not json"
# A record whose queue cannot be read: nothing tells which counters would hold it.
NO_QUEUE = '{"id":"%s","description":"d","status":"pending","attempts":0,"lease_s":9,"claims":{}}'


def _post(swarm: Swarm, n: int = 3) -> list[Task]:
    return swarm.post_tasks([{"queue": Q, "description": f"c{i}"} for i in range(1, n + 1)])


def _foreign(raw: Any, key: str, fid: str, record: str | None = None, score: int = HEAD) -> None:
    """What a worker can write: an id in a queue's set, and the record it likes (or none)."""
    if record is not None:
        raw.hset(KEYS.tasks, fid, record)
    raw.zadd(key, {fid: score})


def _consistent(swarm: Swarm, raw: Any, real: list[Task], done: int = 0) -> Counter[str]:
    """Every real open task is in the set its status says (pending or claimed here), the
    queue's sets hold nothing else, and the counters agree with the records (with ``done``
    tasks completed). Returns the open tasks' statuses."""
    statuses: Counter[str] = Counter()
    pending = set(raw.zrange(KEYS.pending(Q), 0, -1))
    leases = set(raw.zrange(KEYS.leases(Q), 0, -1))
    for task in real:
        status = swarm.get_task(task.id).status
        statuses[status.value] += 1
        assert status in (TaskStatus.PENDING, TaskStatus.CLAIMED), (task.id, status)
        held = pending if status == TaskStatus.PENDING else leases
        assert task.id in held, f"{task.id} is {status.value} but not in its set"
    ids = {t.id for t in real}
    assert pending <= ids and leases <= ids, (pending - ids, leases - ids)
    assert raw.zcard(KEYS.delayed(Q)) == 0
    counts = {s: n for s, n in swarm.queue_stats()[Q].items() if n}
    assert counts == dict(statuses) | ({"completed": done} if done else {})
    return statuses


@pytest.mark.parametrize("n", [1, 3])
def test_a_claim_skips_an_id_with_no_record_at_the_head_of_pending(
    swarm: Swarm, raw: Any, n: int
) -> None:
    real = _post(swarm)
    _foreign(raw, KEYS.pending(Q), "t-fake3")
    got = swarm.claim(Q, worker="w4", n=n)
    assert isinstance(got, list)
    assert [t.id for t in got] == [t.id for t in real[:n]]
    assert _consistent(swarm, raw, real) == Counter({"claimed": n, "pending": 3 - n})
    assert raw.zscore(KEYS.pending(Q), "t-fake3") is None


def test_a_batch_claim_looks_past_several_foreign_ids(swarm: Swarm, raw: Any) -> None:
    """More ids without a task than the batch asked for: the claim pops again for those it
    is short, and leases every real task."""
    real = _post(swarm)
    for i in range(5):
        _foreign(raw, KEYS.pending(Q), f"t-fake{i}", score=HEAD + i)
    got = swarm.claim(Q, worker="w4", n=3)
    assert isinstance(got, list)
    assert sorted(t.id for t in got) == sorted(t.id for t in real)
    assert _consistent(swarm, raw, real) == Counter({"claimed": 3})


def test_a_waiting_claim_goes_on_past_more_foreign_ids_than_one_claim_drops(
    swarm: Swarm, raw: Any
) -> None:
    """A claim drops at most DROP_CAP (lua/_tasks.lua) ids without a task: one that dropped
    that many and leased nothing says so, and the waiting claim looks again at once (it does
    not sleep out its wait with a task pending). A claim that may not wait does too:
    tests/test_claim_damaged_records.py."""
    real = _post(swarm, 1)
    raw.zadd(KEYS.pending(Q), {f"t-fake{i}": HEAD + i for i in range(DROP_CAP + 5)})
    got = must(swarm.claim(Q, worker="w4", wait_s=30))
    assert got.id == real[0].id
    assert _consistent(swarm, raw, real) == Counter({"claimed": 1})


def test_a_claim_of_several_queues_skips_a_foreign_id(swarm: Swarm, raw: Any) -> None:
    real = _post(swarm, 2)
    swarm.post_task("other", "elsewhere")
    _foreign(raw, KEYS.pending(Q), "t-fake3")
    got = must(swarm.claim([Q, "other"], worker="w4"))
    assert got.id == real[0].id
    assert _consistent(swarm, raw, real) == Counter({"claimed": 1, "pending": 1})


def test_a_waiting_claim_skips_a_foreign_id(swarm: Swarm, raw: Any) -> None:
    """The claim that follows a wait (woken by a wake-up token) pops as any claim does."""
    real = _post(swarm)
    _foreign(raw, KEYS.pending(Q), "t-fake3")
    got = swarm.claim(Q, worker="w4", wait_s=5, n=3)
    assert isinstance(got, list)
    assert [t.id for t in got] == [t.id for t in real]
    assert _consistent(swarm, raw, real) == Counter({"claimed": 3})


def test_a_report_that_claims_next_skips_a_foreign_id(swarm: Swarm, raw: Any) -> None:
    real = _post(swarm)
    first = must(swarm.claim(Q, worker="w4"))
    _foreign(raw, KEYS.pending(Q), "t-fake3")
    _, nxt = swarm.report(first.id, first.token, {"summary": "ok"}, worker="w4", claim_next=Q)
    assert nxt is not None and nxt.id == real[1].id
    assert swarm.get_task(first.id).status == TaskStatus.COMPLETED
    assert _consistent(swarm, raw, real[1:], 1) == Counter({"claimed": 1, "pending": 1})


@pytest.mark.parametrize(
    "record", [NOT_JSON, '"a string"', NO_QUEUE % "t-bad"], ids=["text", "string", "no-queue"]
)
def test_an_unreadable_record_in_pending_is_moved_aside(
    swarm: Swarm, raw: Any, record: str
) -> None:
    """Not JSON, not an object, or with no queue: the id leaves the pending set (it never
    blocks the queue again), the record stays as it was written, no counter moves."""
    real = _post(swarm)
    _foreign(raw, KEYS.pending(Q), "t-bad", record)
    got = swarm.claim(Q, worker="w4", n=3)
    assert isinstance(got, list)
    assert [t.id for t in got] == [t.id for t in real]
    assert _consistent(swarm, raw, real) == Counter({"claimed": 3})
    assert raw.hget(KEYS.tasks, "t-bad") == record
    if record == NOT_JSON:
        assert "t-bad" in swarm.corrupt_records()["task"]


def test_a_task_of_another_status_put_in_pending_is_not_leased(swarm: Swarm, raw: Any) -> None:
    """A completed task's id added to the pending set: leased, it would have been completed
    and claimed at once (its counters moved from completed). It is dropped from the set."""
    real = _post(swarm)
    done = must(swarm.claim(Q, worker="w1"))
    swarm.report(done.id, done.token, {"summary": "ok"}, worker="w1")
    _foreign(raw, KEYS.pending(Q), done.id)
    got = swarm.claim(Q, worker="w4", n=3)
    assert isinstance(got, list)
    assert [t.id for t in got] == [t.id for t in real[1:]]
    assert swarm.get_task(done.id).status == TaskStatus.COMPLETED
    assert _consistent(swarm, raw, real[1:], 1) == Counter({"claimed": 2})


def test_foreign_ids_in_the_lease_and_delayed_sets_do_not_stop_the_scans(
    swarm: Swarm, raw: Any
) -> None:
    """The claim's reclaim of expired leases and promotion of due tasks meet each set's
    entries at score 0 (due long ago): no record, and a record that is not JSON."""
    _foreign(raw, KEYS.leases(Q), "t-lease-none", score=0)
    _foreign(raw, KEYS.leases(Q), "t-lease-bad", NOT_JSON, score=0)
    _foreign(raw, KEYS.delayed(Q), "t-delay-none", score=0)
    _foreign(raw, KEYS.delayed(Q), "t-delay-bad", NOT_JSON, score=0)
    real = _post(swarm)  # (the queue's first claim scans both sets: it has no due hint yet)
    got = swarm.claim(Q, worker="w4", n=3)
    assert isinstance(got, list)
    assert [t.id for t in got] == [t.id for t in real]
    assert _consistent(swarm, raw, real) == Counter({"claimed": 3})
    assert swarm.reap() == 0


def test_an_operation_on_an_unreadable_task_says_so(swarm: Swarm, raw: Any) -> None:
    """Renew, fail, cancel and report of a task whose record a worker overwrote with text
    that is not JSON: CorruptRecord naming it, not a Lua error."""
    _post(swarm, 1)
    task = must(swarm.claim(Q, worker="w4"))
    raw.hset(KEYS.tasks, task.id, NOT_JSON)
    for call in (
        lambda: swarm.renew(task.id, task.token),
        lambda: swarm.fail(task.id, task.token, "boom", retry=False),
        lambda: swarm.cancel(task.id),
        lambda: swarm.report(task.id, task.token, {"summary": "ok"}, worker="w4"),
        lambda: swarm.report(task.id, task.token, {"summary": "ok"}, worker="w4", claim_next=Q),
    ):
        with pytest.raises(CorruptRecord, match=f"task {task.id} is stored unreadable"):
            call()


@pytest.fixture
def core(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_swarm_run_until_done_finishes_the_real_tasks(
    cli: Cli, core: Swarm, raw: Any, tmp_path: Path
) -> None:
    """The user tour's run: a pool of four over a queue with one fake id stopped at its
    first claim. Every real task is now done and the run ends."""
    real = core.post_tasks([{"queue": "qd", "description": f"d{i}"} for i in range(6)])
    _foreign(raw, KEYS.pending("qd"), "t-fake", score=HEAD)
    _foreign(raw, KEYS.pending("qd"), "t-bad", NOT_JSON, score=HEAD + 1)
    agent = tmp_path / "agent.py"
    agent.write_text('import json, sys\nsys.stdin.read()\nprint(json.dumps({"summary": "x"}))\n')
    out = cli("--json", "run", "--queue", "qd", "--exec", f"{sys.executable} {agent}",
              "--concurrency", "4", "--until-done")  # fmt: skip
    summary = json.loads(out.stdout)
    assert (summary["completed"], summary["failed"]) == (6, 0)
    assert {core.get_task(t.id).status for t in real} == {TaskStatus.COMPLETED}
    assert raw.zcard(KEYS.pending("qd")) == 0


def _damage(raw: Any, task_id: str, drop: str = "", **put: Any) -> None:
    """What a worker can do to a real task's record: HSET it back without a field, or with
    a field of another type."""
    record = json.loads(raw.hget(KEYS.tasks, task_id))
    record.pop(drop, None)
    raw.hset(KEYS.tasks, task_id, json.dumps(record | put))


def _buried(swarm: Swarm, raw: Any, task_id: str, field: str, was: str) -> None:
    """The task is dead-lettered for its damaged field: in the dead set, its reason and a
    task.dead event naming the field, its queue's and pass's counts settled."""
    task = swarm.get_task(task_id)
    assert task.status == TaskStatus.DEAD
    assert task.dead_reason is not None
    assert f"damaged record: its field {field} is" in task.dead_reason
    assert f"moved out of {was}" in task.dead_reason
    assert raw.zscore(KEYS.dead(Q), task_id) is not None
    assert {s: n for s, n in swarm.queue_stats()[Q].items() if n} == {"dead": 1}
    assert {s: n for s, n in swarm.pass_stats("p1").items() if n} == {"dead": 1}
    (event,) = [e for e in swarm.events(types="task.dead") if e.fields["task"] == task_id]
    assert event.fields["reason"] == task.dead_reason
    assert event.fields["pass"] == "p1"
    assert swarm.wait(pass_name="p1", timeout_s=5)["dead"] == 1
    listed = swarm.list_tasks(queue=Q, status="dead")
    assert [t.id for t in listed] == [task_id]


@pytest.mark.parametrize(
    ("drop", "put", "field"),
    [
        ("lease_s", {}, "lease_s"),
        ("", {"claims": "w1"}, "claims"),
        ("status", {}, "status"),
        ("id", {}, "id"),
    ],
    ids=["no-lease_s", "claims-text", "no-status", "no-id"],
)
def test_a_pending_task_whose_record_lost_a_field_is_dead_lettered(
    swarm: Swarm, raw: Any, drop: str, put: dict[str, Any], field: str
) -> None:
    """The review's repro: the claim took it out of pending and returned none, while
    queue_stats and the pass still counted it pending and get_task read it as pending, so
    that swarm doctor named nothing and a wait on the pass never returned."""
    task = swarm.post_task(Q, "d", pass_name="p1")
    _damage(raw, task.id, drop, **put)
    assert swarm.claim(Q, worker="w4") is None
    assert raw.zcard(KEYS.pending(Q)) == 0
    _buried(swarm, raw, task.id, field, "pending")


def test_a_batch_claim_leases_the_tasks_around_a_damaged_one(swarm: Swarm, raw: Any) -> None:
    real = swarm.post_tasks(
        [{"queue": Q, "description": f"c{i}", "pass_name": "p1"} for i in range(3)]
    )
    _damage(raw, real[1].id, "lease_s")
    got = swarm.claim(Q, worker="w4", n=3)
    assert isinstance(got, list)
    assert [t.id for t in got] == [real[0].id, real[2].id]
    assert swarm.get_task(real[1].id).status == TaskStatus.DEAD
    assert {s: n for s, n in swarm.queue_stats()[Q].items() if n} == {"claimed": 2, "dead": 1}
    assert {s: n for s, n in swarm.pass_stats("p1").items() if n} == {"claimed": 2, "dead": 1}


def _due_now(raw: Any, key: str, task_id: str) -> None:
    """Make the entry due at once (score 0), and drop the queue's due hint so that the next
    claim scans its delayed and lease sets (lua/_tasks.lua: due_field)."""
    raw.zadd(key, {task_id: 0})
    raw.hdel(KEYS.counts, f"due:{KEYS.delayed(Q)}")


def test_a_delayed_task_whose_record_lost_a_field_is_dead_lettered(swarm: Swarm, raw: Any) -> None:
    task = swarm.post_task(Q, "d", pass_name="p1", delay_s=3600)
    _damage(raw, task.id, "priority")
    _due_now(raw, KEYS.delayed(Q), task.id)
    assert swarm.claim(Q, worker="w4") is None
    assert raw.zcard(KEYS.delayed(Q)) == 0 and raw.zcard(KEYS.pending(Q)) == 0
    _buried(swarm, raw, task.id, "priority", "delayed")


def test_an_expired_lease_whose_record_lost_a_field_is_dead_lettered(
    swarm: Swarm, raw: Any
) -> None:
    swarm.post_task(Q, "d", pass_name="p1")
    task = must(swarm.claim(Q, worker="w1"))
    _damage(raw, task.id, "seq")
    _due_now(raw, KEYS.leases(Q), task.id)
    swarm.reap()
    assert raw.zcard(KEYS.leases(Q)) == 0 and raw.zcard(KEYS.pending(Q)) == 0
    _buried(swarm, raw, task.id, "seq", "claimed")
