"""Batch claims (``claim(..., n=K)``): up to K leases in one script and one round trip, each
task with its own lease and token, in priority and posting order; on a fake clock, on both
shells, on the standalone server and on the cluster. And reports that lease the next task
(``report(..., claim_next=QUEUES)``) in the same script and round trip."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from redis_swarm import (
    AlreadyCompleted,
    Finding,
    LeaseLost,
    Swarm,
    Task,
    TaskStatus,
    ValidationError,
)
from redis_swarm._validate import MAX_CLAIM_BATCH

from . import _clock
from ._clock import FakeClock
from ._handles import make_swarm, must

clock = _clock.clock
clocked = _clock.clocked


def test_a_batch_takes_the_best_tasks_in_priority_then_posting_order(clocked: Swarm) -> None:
    low = clocked.post_task("a", "low", priority=-1)
    first = clocked.post_task("a", "first")
    urgent = clocked.post_task("b", "urgent", priority=5)
    second = clocked.post_task("b", "second")
    third = clocked.post_task("a", "third")
    batch = clocked.claim(["a", "b"], worker="w", n=4)
    assert [t.id for t in batch] == [urgent.id, first.id, second.id, third.id]
    assert [t.description for t in batch] == ["urgent", "first", "second", "third"]
    assert {t.status for t in batch} == {TaskStatus.CLAIMED}
    assert {(t.attempts, t.worker) for t in batch} == {(1, "w")}
    assert len({t.token for t in batch}) == 4  # a secret of its own for each lease
    rest = clocked.claim(["a", "b"], worker="w", n=4)
    assert [t.id for t in rest] == [low.id]
    assert clocked.claim(["a", "b"], worker="w", n=4) == []
    assert clocked.queue_stats()["a"]["claimed"] == 3
    assert clocked.queue_stats()["b"]["claimed"] == 2


def test_each_lease_of_a_batch_is_fenced_by_its_own_token(clocked: Swarm) -> None:
    clocked.post_tasks([{"queue": "q", "description": f"t{i}", "data": {"i": i}} for i in range(3)])
    one, two, three = clocked.claim("q", worker="w", n=3, lease_s=30)
    assert [t.data for t in (one, two, three)] == [{"i": 0}, {"i": 1}, {"i": 2}]
    # the same attempt number on each task: only the secret tells the leases apart
    with pytest.raises(LeaseLost):
        clocked.renew(two.id, one.token)
    with pytest.raises(LeaseLost):
        clocked.report(two.id, one.token, {"summary": "not mine"})
    clocked.renew(two.id, two.token, lease_s=60)
    clocked.release(three.id, three.token)
    assert clocked.get_task(three.id).status is TaskStatus.PENDING
    found = clocked.report(one.id, one.token, {"summary": "done"})
    assert clocked.get_task(one.id).finding_id == found.id
    with pytest.raises(AlreadyCompleted):  # exactly once: the second report is superseded
        clocked.report(one.id, one.token, {"summary": "again"})


def test_dedupe_holds_for_every_task_of_a_batch(clocked: Swarm) -> None:
    specs = [{"queue": "q", "description": f"t{i}", "dedupe_key": f"k{i}"} for i in range(3)]
    posted = clocked.post_tasks(specs + specs)  # each key twice: three tasks
    assert len({t.id for t in posted}) == 3
    batch = clocked.claim("q", worker="w", n=10)
    assert sorted(t.id for t in batch) == sorted({t.id for t in posted})
    again = clocked.post_tasks(specs)  # the keys name the claimed tasks: nothing new
    assert [t.id for t in again] == [t.id for t in batch]
    assert {t.status for t in again} == {TaskStatus.CLAIMED}
    assert clocked.claim("q", worker="w", n=10) == []


def test_a_crash_after_a_batch_claim_gives_every_task_back(
    clocked: Swarm, clock: FakeClock
) -> None:
    posted = clocked.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(3)])
    batch = clocked.claim("q", worker="crashed", n=3, lease_s=10)
    assert len(batch) == 3
    clock.advance(9.999)
    assert clocked.claim("q", worker="next", n=3) == []  # the leases still hold
    clock.advance(0.001)
    again = clocked.claim("q", worker="next", n=5)
    assert [t.id for t in again] == [t.id for t in posted]  # FIFO kept after the reclaim
    assert {(t.attempts, t.abandons, t.failures, t.worker) for t in again} == {(2, 1, 0, "next")}
    with pytest.raises(LeaseLost):
        clocked.report(batch[0].id, batch[1].token, {"summary": "a forged report"})


def test_a_batch_claim_waits_for_the_first_task(clocked: Swarm, redis_url: str) -> None:
    poster = Swarm(redis_url, swarm="test")
    timer = threading.Timer(0.2, lambda: poster.post_task("q", "late"))
    timer.start()
    try:
        got = clocked.claim("q", worker="w", n=3, wait_s=5)
    finally:
        timer.join()
        poster.close()
    assert [t.description for t in got] == ["late"]
    assert clocked.claim("q", worker="w", n=3, wait_s=0.05) == []


@pytest.mark.parametrize("n", [0, -1, MAX_CLAIM_BATCH + 1, 1.5])
def test_a_batch_size_out_of_range_is_refused(clocked: Swarm, n: Any) -> None:
    with pytest.raises(ValidationError, match=r"^n "):
        clocked.claim("q", worker="w", n=n)


def test_concurrent_batch_claims_never_share_a_task(server_url: str) -> None:
    handles = [make_swarm("sync", server_url) for _ in range(4)]
    handles[0].post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(60)])
    got: list[list[Task]] = [[] for _ in handles]

    def drain(i: int) -> None:
        while batch := handles[i].claim("q", worker=f"w{i}", n=4):
            got[i].extend(batch)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [t.id for tasks in got for t in tasks]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert handles[0].queue_stats()["q"]["claimed"] == 60
    for handle in handles:
        handle.close()


# --- report(..., claim_next=QUEUES): complete one task and lease the next in one script


def test_a_report_leases_the_best_next_task_of_its_queues(clocked: Swarm, clock: FakeClock) -> None:
    clocked.post_task("a", "first")
    later = clocked.post_task("a", "later")
    urgent = clocked.post_task("b", "urgent", priority=3, data={"k": 1})
    task = must(clocked.claim("a", worker="w"))
    found, nxt = clocked.report(
        task.id, task.token, {"summary": "done"}, claim_next=["a", "b"], next_lease_s=20
    )
    assert found.task_id == task.id and not found.superseded
    assert clocked.get_task(task.id).status is TaskStatus.COMPLETED
    assert nxt is not None and nxt.id == urgent.id and nxt.data == {"k": 1}
    assert (nxt.status, nxt.worker, nxt.attempts) == (TaskStatus.CLAIMED, "w", 1)
    assert nxt.lease_deadline == clock.now + 20_000
    found, after = clocked.report(nxt.id, nxt.token, {"summary": "2"}, claim_next=["a", "b"])
    assert after is not None and after.id == later.id
    found, last = clocked.report(after.id, after.token, {"summary": "3"}, claim_next="a")
    assert last is None  # the queues are empty: the report stands, nothing is leased
    assert clocked.get_task(after.id).finding_id == found.id
    assert clocked.queue_stats()["a"]["completed"] == 2


def test_a_refused_or_superseded_report_claims_nothing(clocked: Swarm) -> None:
    clocked.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(3)])
    one, two = clocked.claim("q", worker="w", n=2)
    with pytest.raises(LeaseLost):  # another task's token: refused, nothing stored
        clocked.report(one.id, two.token, {"summary": "x"}, claim_next="q")
    with pytest.raises(LeaseLost):  # no token while a live lease holds the task
        clocked.report(one.id, None, {"summary": "x"}, worker="shard", claim_next="q")
    assert clocked.queue_stats()["q"]["pending"] == 1
    clocked.report(one.id, one.token, {"summary": "first"})
    with pytest.raises(AlreadyCompleted):  # kept superseded; the pending task stays pending
        clocked.report(one.id, one.token, {"summary": "late"}, claim_next="q")
    assert clocked.queue_stats()["q"]["pending"] == 1
    with pytest.raises(ValidationError, match="worker"):
        clocked.report(two.id, None, {"summary": "x"}, claim_next="q")


def test_a_report_on_a_lost_lease_still_completes_and_claims(
    clocked: Swarm, clock: FakeClock
) -> None:
    clocked.post_tasks([{"queue": "q", "description": f"t{i}", "lease_s": 5} for i in range(2)])
    slow = must(clocked.claim("q", worker="slow"))
    clock.advance(5)
    taken = must(clocked.claim("q", worker="fast"))  # the expired lease is reclaimed: attempt 2
    assert taken.id == slow.id and taken.attempts == 2
    found, nxt = clocked.report(slow.id, slow.token, {"summary": "real work"}, claim_next="q")
    assert found.attempt == 1 and found.worker == "slow"
    assert nxt is not None and nxt.worker == "slow" and nxt.id != slow.id
    with pytest.raises(LeaseLost):
        clocked.renew(taken.id, taken.token)


def test_a_retried_report_gets_the_same_next_lease(clocked: Swarm) -> None:
    clocked.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(3)])
    task = must(clocked.claim("q", worker="w"))
    fid = clocked.new_finding_id()

    def report() -> tuple[Finding, Task | None]:
        return clocked.report(task.id, task.token, {"summary": "s"}, finding_id=fid, claim_next="q")

    first, nxt = report()
    again, same = report()
    assert again.id == first.id and nxt is not None and same is not None
    assert (same.id, same.token, same.attempts) == (nxt.id, nxt.token, 1)
    assert clocked.queue_stats()["q"]["claimed"] == 1  # one lease, not two
    clocked.release(same.id, same.token)
    _, gone = report()
    assert gone is None  # that lease no longer holds: nothing is given back, nothing leased


def test_a_crash_after_report_and_claim_gives_the_next_task_back(
    clocked: Swarm, clock: FakeClock
) -> None:
    clocked.post_tasks([{"queue": "q", "description": f"t{i}", "lease_s": 10} for i in range(2)])
    task = must(clocked.claim("q", worker="crashing"))
    _, nxt = clocked.report(task.id, task.token, {"summary": "s"}, claim_next="q")
    assert nxt is not None
    clock.advance(10)
    back = must(clocked.claim("q", worker="next"))
    assert (back.id, back.attempts, back.abandons, back.failures) == (nxt.id, 2, 1, 0)
