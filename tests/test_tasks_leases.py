"""Leases, expiry, fencing tokens and dead letters, on a fake clock (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from redis_swarm import AlreadyCompleted, LeaseLost, TaskStatus, Timeout, ValidationError
from redis_swarm._keys import Keys

from . import _clock
from ._clock import FakeClock
from ._raw import command_calls, reset_stats

clock = _clock.clock
clocked = _clock.clocked
KEYS = Keys("test")


def test_an_expired_lease_goes_to_another_worker_with_attempt_2(
    clocked: Any, clock: FakeClock
) -> None:
    posted = clocked.post_task("q", "d", lease_s=60)
    first = clocked.claim("q", worker="alice")
    assert first.attempts == 1 and first.lease_deadline == clock.now + 60_000
    clock.advance(59.999)
    assert clocked.claim("q", worker="bob") is None  # the lease still holds
    clock.advance(0.001)
    second = clocked.claim("q", worker="bob")
    assert second.id == posted.id and second.attempts == 2 and second.worker == "bob"
    with pytest.raises(LeaseLost) as info:
        clocked.renew(first.id, first.token)
    assert "attempt 2" in str(info.value)
    with pytest.raises(LeaseLost):
        clocked.fail(first.id, first.token, "x")
    with pytest.raises(LeaseLost):
        clocked.release(first.id, first.token)
    assert clocked.get_task(posted.id).worker == "bob"


def test_renew_prevents_expiry(clocked: Any, clock: FakeClock) -> None:
    clocked.post_task("q", "d", lease_s=60)
    task = clocked.claim("q", worker="alice")
    for _ in range(5):
        clock.advance(50)
        renewed = clocked.renew(task.id, task.token)
        assert renewed.lease_deadline == clock.now + 60_000
        assert clocked.claim("q", worker="bob") is None
    assert clocked.reap() == 0
    assert clocked.get_task(task.id).status is TaskStatus.CLAIMED
    # a renewal may ask for a different length
    assert clocked.renew(task.id, task.token, 5).lease_deadline == clock.now + 5_000


def test_renewals_default_to_the_length_the_claim_asked_for(clocked: Any, clock: FakeClock) -> None:
    clocked.post_task("q", "d", lease_s=600)
    task = clocked.claim("q", worker="w", lease_s=20)
    assert task.lease_deadline == clock.now + 20_000
    clock.advance(15)
    assert clocked.renew(task.id, task.token).lease_deadline == clock.now + 20_000


def test_a_lease_is_lost_when_reclaimed_not_at_the_deadline(clocked: Any, clock: FakeClock) -> None:
    # Past the deadline, the holder keeps its lease until a claim or reap reclaims it: no
    # one else holds the task meanwhile, so a late renewal is safe and saves the work.
    clocked.post_task("q", "d", lease_s=10)
    task = clocked.claim("q", worker="alice")
    clock.advance(11)
    assert clocked.renew(task.id, task.token).lease_deadline == clock.now + 10_000
    clock.advance(11)
    assert clocked.reap() == 1
    with pytest.raises(LeaseLost):
        clocked.renew(task.id, task.token)
    assert clocked.get_task(task.id).status is TaskStatus.PENDING


def test_max_abandons_expiries_dead_letter_with_the_reason(
    clocked: Any, clock: FakeClock, raw: redis.Redis
) -> None:
    posted = clocked.post_task("q", "d", lease_s=10, max_attempts=1, max_abandons=3)
    for attempt in (1, 2, 3):
        task = clocked.claim("q", worker=f"w{attempt}")
        assert task.attempts == attempt
        clock.advance(10)
    assert clocked.claim("q", worker="w4") is None  # the third expiry dead-lettered it
    dead = clocked.get_task(posted.id)
    assert dead.status is TaskStatus.DEAD and dead.attempts == 3
    assert (dead.abandons, dead.failures) == (3, 0)  # max_attempts 1 was never at stake
    assert dead.dead_reason == (
        "max_abandons reached: abandoned 3 times (the lease of attempt 3, worker w3, expired "
        "with no report)"
    )
    entries: list[tuple[str, dict[str, str]]] = raw.xrange(KEYS.events)  # type: ignore[assignment]
    types = [fields["type"] for _, fields in entries]
    assert types.count("task.expired") == 3 and types[-1] == "task.dead"
    assert clocked.queue_stats()["q"]["dead"] == 1
    assert raw.zscore(KEYS.dead("q"), posted.id) is not None


def test_reap_reclaims_without_a_claim(clocked: Any, clock: FakeClock) -> None:
    clocked.post_tasks([{"queue": q, "description": "d", "lease_s": 5} for q in "abc"])
    for q in "abc":
        clocked.claim(q, worker="w")
    clock.advance(4)
    assert clocked.reap() == 0
    clock.advance(1)
    assert clocked.reap() == 3
    assert clocked.reap() == 0
    stats = clocked.queue_stats()
    assert all(stats[q]["pending"] == 1 and stats[q]["claimed"] == 0 for q in "abc")


def test_wait_reaps_expired_leases(clocked: Any, clock: FakeClock) -> None:
    clocked.post_task("q", "d", lease_s=5, max_abandons=1, pass_name="P")
    clocked.claim("q", worker="w")
    with pytest.raises(Timeout):
        clocked.wait(pass_name="P", timeout_s=0.2)
    clock.advance(5)
    assert clocked.wait(pass_name="P", timeout_s=5)["dead"] == 1


def test_stale_token_report_is_accepted_while_the_task_is_open(
    clocked: Any, clock: FakeClock
) -> None:
    clocked.post_task("q", "d", lease_s=10, parent="shard")
    slow = clocked.claim("q", worker="slow")
    clock.advance(10)
    fast = clocked.claim("q", worker="fast")
    assert fast.attempts == 2
    # The slow worker finishes first, with its stale token: the work is real, it wins.
    finding = clocked.report(slow.id, slow.token, {"summary": "slow but first"})
    assert not finding.superseded and finding.worker == "slow" and finding.attempt == 1
    task = clocked.get_task(slow.id)
    assert task.status is TaskStatus.COMPLETED and task.finding_id == finding.id
    assert task.worker == "slow"
    # The current holder learns it lost: its lease is gone and its report is kept, superseded.
    with pytest.raises(LeaseLost):
        clocked.renew(fast.id, fast.token)
    with pytest.raises(AlreadyCompleted) as info:
        clocked.report(fast.id, fast.token, {"summary": "fast but second"})
    late = clocked.get_finding(info.value.finding_id)
    assert late.superseded and late.worker == "fast" and late.summary == "fast but second"
    assert [f.summary for f in clocked.findings(shard="shard")] == [
        "slow but first",
        "fast but second",
    ]
    assert clocked.queue_stats()["q"]["claimed"] == 0


def test_stale_token_report_on_a_reclaimed_pending_task(clocked: Any, clock: FakeClock) -> None:
    clocked.post_task("q", "d", lease_s=10)
    task = clocked.claim("q", worker="w")
    clock.advance(10)
    assert clocked.reap() == 1
    assert clocked.get_task(task.id).status is TaskStatus.PENDING
    # The lease's refusal says what the report below does: the finding is still taken.
    with pytest.raises(LeaseLost, match=r"is pending, no longer held by attempt 1: stop working "
                       r"on it \(a finding you already have can still be reported\)"):  # fmt: skip
        clocked.renew(task.id, task.token)
    clocked.report(task.id, task.token, {"summary": "done anyway"})
    assert clocked.get_task(task.id).status is TaskStatus.COMPLETED
    assert clocked.claim("q", worker="w") is None
    assert clocked.queue_stats()["q"]["pending"] == 0


def test_not_before_and_backoff_follow_the_clock(clocked: Any, clock: FakeClock) -> None:
    clocked.post_task("q", "d", not_before=clock.now + 30_000, max_attempts=4)
    assert clocked.claim("q", worker="w") is None
    clock.advance(30)
    task = clocked.claim("q", worker="w")
    # backoff: 1 s after the first failure, then 2 s, then 4 s
    for delay in (1, 2):
        failed = clocked.fail(task.id, task.token, "x")
        assert failed.status is TaskStatus.DELAYED and failed.not_before == clock.now + delay * 1000
        clock.advance(delay - 0.001)
        assert clocked.claim("q", worker="w") is None
        clock.advance(0.001)
        task = clocked.claim("q", worker="w")
        assert task is not None
    failed = clocked.fail(task.id, task.token, "x")
    assert failed.not_before == clock.now + 4000


def test_abandons_and_failures_are_counted_apart(clocked: Any, clock: FakeClock) -> None:
    posted = clocked.post_task("q", "d", lease_s=10, max_attempts=2)
    assert (posted.max_abandons, posted.failures, posted.abandons) == (10, 0, 0)
    for _ in range(5):  # five vanished workers use none of the two attempts
        clocked.claim("q", worker="gone")
        clock.advance(10)
    task = clocked.claim("q", worker="w")
    assert (task.abandons, task.failures, task.attempts) == (5, 0, 6)
    clocked.release(task.id, task.token)  # neither a failure nor an abandon
    task = clocked.claim("q", worker="w")
    failed = clocked.fail(task.id, task.token, "boom")
    assert (failed.status, failed.failures, failed.abandons) == (TaskStatus.DELAYED, 1, 5)
    clock.advance(1)
    task = clocked.claim("q", worker="w")
    dead = clocked.fail(task.id, task.token, "boom again")
    assert dead.status is TaskStatus.DEAD and dead.failures == 2
    reason = "max_attempts reached: failed on all 2 attempts; last error: boom again"
    assert dead.dead_reason == reason
    again = clocked.requeue_dead(dead.id)
    assert (again.failures, again.abandons) == (0, 0)


def test_a_queue_sets_max_abandons_for_the_tasks_posted_to_it(clocked: Any) -> None:
    assert clocked.configure_queue("q") == {"max_abandons": 10}
    before = clocked.post_task("q", "posted before")
    assert clocked.configure_queue("q", max_abandons=2) == {"max_abandons": 2}
    assert clocked.configure_queue("q") == {"max_abandons": 2}
    described = clocked.configure_queue("q", description="what q's tasks are for")
    assert described == {"max_abandons": 2, "description": "what q's tasks are for"}
    assert clocked.configure_queue("q") == described
    after = clocked.post_tasks(
        [{"queue": "q", "description": "after"}, {"queue": "r", "description": "other queue"}]
    )
    own = clocked.post_task("q", "its own", max_abandons=4)
    assert [t.max_abandons for t in (before, *after, own)] == [10, 2, 10, 4]
    assert [clocked.get_task(t.id).max_abandons for t in (before, *after, own)] == [10, 2, 10, 4]
    with pytest.raises(ValidationError, match="max_abandons"):
        clocked.configure_queue("q", max_abandons=0)


def _due(raw: redis.Redis, queue: str = "q") -> int | None:
    value = raw.hget(KEYS.counts, f"due:{KEYS.delayed(queue)}")
    return None if value is None else int(value)


def test_claims_scan_only_when_a_lease_or_a_delayed_task_can_be_due(
    clocked: Any, clock: FakeClock, raw: redis.Redis
) -> None:
    """The queue's due hint spares a claim its two scans until the first lease can end; then
    the expired lease is reclaimed as before, and the hint moves to the next one."""
    for i in range(3):
        clocked.post_task("q", f"d{i}", lease_s=60)
    first = clocked.claim("q", worker="alice")  # no hint yet: scans, then sets it
    assert _due(raw) == first.lease_deadline
    reset_stats(raw)
    second = clocked.claim("q", worker="bob")
    assert command_calls(raw).get("zrangebyscore", 0) == 0  # no scan
    assert _due(raw) == first.lease_deadline  # bob's lease ends later: the hint stays
    clocked.report(second.id, second.token, {"summary": "done"})
    clock.advance(60)
    again = clocked.claim("q", worker="carol")  # alice's lease has come: scanned, reclaimed
    assert (again.id, again.attempts) == (first.id, 2)
    assert command_calls(raw).get("zrangebyscore", 0) == 2  # the leases and the delayed
    assert _due(raw) == again.lease_deadline


def test_what_falls_due_earlier_lowers_the_hint(
    clocked: Any, clock: FakeClock, raw: redis.Redis
) -> None:
    """A shorter renewal, a failure's backoff and a delayed post each lower the hint, so that
    no claim skips what they made due."""
    for i in range(3):
        clocked.post_task("q", f"d{i}", lease_s=60)
    task = clocked.claim("q", worker="alice")
    renewed = clocked.renew(task.id, task.token, lease_s=5)
    assert _due(raw) == renewed.lease_deadline
    clock.advance(5)
    back = clocked.claim("q", worker="bob")
    assert (back.id, back.attempts) == (task.id, 2)  # reclaimed at the shorter deadline
    failed = clocked.fail(back.id, back.token, "x")  # back in 1 s
    assert _due(raw) == failed.not_before
    later = clocked.post_task("q", "soon", not_before=clock.now + 500, priority=5)
    assert _due(raw) == later.not_before
    clock.advance(0.5)
    assert clocked.claim("q", worker="carol").id == later.id  # promoted, the highest priority
    clock.advance(0.5)
    assert clocked.claim("q", worker="dave").id == failed.id


def test_without_a_hint_a_claim_scans(clocked: Any, clock: FakeClock, raw: redis.Redis) -> None:
    """A swarm written before the hint existed (or a hint lost) is scanned as before."""
    clocked.post_task("q", "d", lease_s=10)
    task = clocked.claim("q", worker="alice")
    raw.hdel(KEYS.counts, f"due:{KEYS.delayed('q')}")
    clock.advance(10)
    assert clocked.claim("q", worker="bob").attempts == task.attempts + 1


def test_reap_due_makes_what_fell_due_claimable_and_says_when_next(
    clocked: Any, clock: FakeClock, raw: redis.Redis
) -> None:
    """reap_due(queues): with nobody claiming, a delayed task whose time came is made pending
    (task.due) and a lease that ended unreported is reclaimed (task.expired, saying where the
    task went); it returns the seconds until the next thing of those queues falls due."""
    later = clocked.post_task("q", "later", not_before=clock.now + 5_000)
    again = clocked.post_task("q", "claimable again", lease_s=2)
    dies = clocked.post_task("q", "dead letter", lease_s=2, max_abandons=1)
    clocked.post_task("other", "elsewhere", not_before=clock.now + 1_000)
    assert {clocked.claim("q", worker=w).id for w in ("w1", "w2")} == {again.id, dies.id}
    assert clocked.reap_due("q") == 2.0  # the leases end first; "other" is not looked at
    clock.advance(2)
    assert clocked.reap_due(["q"]) == 3.0
    clock.advance(3)
    assert clocked.reap_due("q") is None  # nothing left to fall due
    statuses = {t: clocked.get_task(t).status for t in (later.id, again.id, dies.id)}
    assert statuses == {
        later.id: TaskStatus.PENDING,
        again.id: TaskStatus.PENDING,
        dies.id: TaskStatus.DEAD,
    }
    entries: list[tuple[str, dict[str, str]]] = raw.xrange(KEYS.events)  # type: ignore[assignment]
    seen = [f for _, f in entries if f["type"] in ("task.expired", "task.due")]
    assert sorted((f["type"], f["task"], f.get("status")) for f in seen) == sorted([
        ("task.expired", again.id, "pending"),
        ("task.expired", dies.id, "dead"),
        ("task.due", later.id, None),
    ])  # fmt: skip
    assert clocked.queue_stats()["other"]["delayed"] == 1  # its queue was not asked
    with pytest.raises(ValidationError):
        clocked.reap_due([])


def test_a_delay_counts_on_the_servers_clock(clocked: Any, clock: FakeClock) -> None:
    """``delay_s`` is added by the script to its own now (the clock every lease and due time
    uses), not to the poster's: here the fake clock the handle gives the scripts, which no
    client-side time.time() would match."""
    task = clocked.post_task("q", "later", delay_s=5)
    assert task.status is TaskStatus.DELAYED and task.not_before == clock.now + 5_000
    assert clocked.get_task(task.id).not_before == clock.now + 5_000
    (batched,) = clocked.post_tasks([{"queue": "q", "description": "too", "delay_s": 0.25}])
    assert clocked.get_task(batched.id).not_before == clock.now + 250
    assert clocked.claim("q", worker="w") is None
    clock.advance(5)
    claimed = {t.id for t in clocked.claim("q", worker="w", n=2)}
    assert claimed == {task.id, batched.id}
    with pytest.raises(ValidationError, match="not both"):
        clocked.post_task("q", "x", delay_s=1, not_before=clock.now)
    with pytest.raises(ValidationError, match="delay_s"):
        clocked.post_task("q", "x", delay_s=-1)
