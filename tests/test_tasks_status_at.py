"""When a task took its status: ``status_at``, written by every change of status but the hot
path's post, claim and report (whose times are created_at, claimed_at, completed_at), and
``Task.status_since``, the one time to read for any status. On a fake clock: exact times."""

from __future__ import annotations

import json
from typing import Any

import redis

from redis_swarm import Swarm, TaskStatus
from redis_swarm._codec import iso
from redis_swarm._keys import Keys

from . import _clock
from ._cli import Cli
from ._clock import FakeClock
from ._handles import must

clock = _clock.clock
clocked = _clock.clocked
KEYS = Keys("test")


def _settled(swarm: Any, task_id: str, status: TaskStatus, at: int) -> None:
    """The task is in ``status`` since ``at``, as both its field and ``status_since`` say,
    read one by one and in a listing."""
    got = swarm.get_task(task_id)
    assert (got.status, got.status_at, got.status_since) == (status, at, at)
    listed = {t.id: t for t in swarm.list_tasks(limit=100)}[task_id]
    assert (listed.status, listed.status_at) == (status, at)


def test_every_status_change_off_the_hot_path_records_its_time(
    clocked: Any, clock: FakeClock
) -> None:
    posted = clocked.post_task("q", "d", lease_s=5, max_attempts=2, max_abandons=2)
    assert posted.status_at is None and posted.status_since == posted.created_at == clock.now

    clock.advance(1)
    first = clocked.claim("q", worker="w")
    assert first.status_at is None and first.status_since == first.claimed_at == clock.now

    clock.advance(1)  # release: back to pending
    clocked.release(first.id, first.token)
    _settled(clocked, posted.id, TaskStatus.PENDING, clock.now)
    released_at = clock.now

    clock.advance(1)  # a claim writes no status_at: the earlier one stays, claimed_at is read
    second = clocked.claim("q", worker="w")
    stored = clocked.get_task(posted.id)
    assert (stored.status_at, stored.status_since) == (released_at, second.claimed_at)

    clock.advance(1)  # fail with a retry: delayed
    clocked.fail(second.id, second.token, "boom")
    _settled(clocked, posted.id, TaskStatus.DELAYED, clock.now)

    clock.advance(10)  # its backoff over, a reap makes it pending
    clocked.reap()
    _settled(clocked, posted.id, TaskStatus.PENDING, clock.now)

    clock.advance(1)  # the lease expires and a reap gives it back: pending (an abandon)
    clocked.claim("q", worker="w")
    clock.advance(6)
    assert clocked.reap() == 1
    _settled(clocked, posted.id, TaskStatus.PENDING, clock.now)

    clock.advance(1)  # expires again: max_abandons reached, dead
    clocked.claim("q", worker="w")
    clock.advance(6)
    assert clocked.reap() == 1
    _settled(clocked, posted.id, TaskStatus.DEAD, clock.now)

    clock.advance(1)  # requeued: pending again
    clocked.requeue_dead(posted.id)
    _settled(clocked, posted.id, TaskStatus.PENDING, clock.now)

    clock.advance(1)  # failed without a retry: dead
    third = clocked.claim("q", worker="w")
    clocked.fail(third.id, third.token, "no", retry=False)
    _settled(clocked, posted.id, TaskStatus.DEAD, clock.now)

    clock.advance(1)  # requeued, then cancelled while claimed
    clocked.requeue_dead(posted.id)
    clocked.claim("q", worker="w")
    clock.advance(1)
    clocked.cancel(posted.id)
    _settled(clocked, posted.id, TaskStatus.CANCELLED, clock.now)
    clock.advance(1)
    clocked.cancel(posted.id)  # cancelled already: nothing changes, its time neither
    _settled(clocked, posted.id, TaskStatus.CANCELLED, clock.now - 1000)


def test_the_last_failure_dead_letters_at_its_time_and_a_report_reads_completed_at(
    clocked: Any, clock: FakeClock
) -> None:
    last = clocked.post_task("q", "d", max_attempts=1)
    task = clocked.claim("q", worker="w")
    clock.advance(1)
    clocked.fail(task.id, task.token, "boom")
    _settled(clocked, last.id, TaskStatus.DEAD, clock.now)

    clock.advance(1)  # a late report completes it: completed_at is its time
    clocked.report(task.id, task.token, {"summary": "late"})
    done = clocked.get_task(last.id)
    assert done.status is TaskStatus.COMPLETED
    assert done.status_since == done.completed_at == clock.now


def test_a_delayed_task_falling_due_and_a_pending_one_cancelled(
    clocked: Any, clock: FakeClock
) -> None:
    later = clocked.post_task("q", "d", delay_s=5)
    assert later.status is TaskStatus.DELAYED and later.status_since == later.created_at
    clock.advance(5)
    assert clocked.reap_due("q") is None
    _settled(clocked, later.id, TaskStatus.PENDING, clock.now)

    waiting = clocked.post_task("q", "d2")
    clock.advance(2)
    clocked.cancel(waiting.id)
    _settled(clocked, waiting.id, TaskStatus.CANCELLED, clock.now)


def test_a_record_stored_before_status_at_still_reads(swarm: Swarm, raw: redis.Redis) -> None:
    """An older version's record has no status_at: it reads, with no time for a status it
    cannot tell (cancelled here), and its posting for a task never moved since."""
    cancelled = swarm.post_task("q", "old, cancelled")
    swarm.cancel(cancelled.id)
    fresh = swarm.post_task("q", "old, pending")
    for task_id in (cancelled.id, fresh.id):
        state = json.loads(raw.hget(KEYS.tasks, task_id) or "{}")
        state.pop("status_at", None)
        raw.hset(KEYS.tasks, task_id, json.dumps(state))
    old = swarm.get_task(cancelled.id)
    assert (old.status, old.status_at, old.status_since) == (TaskStatus.CANCELLED, None, None)
    assert swarm.get_task(fresh.id).status_since == fresh.created_at
    assert {t.id for t in swarm.list_tasks()} == {cancelled.id, fresh.id}


def test_task_show_says_since_when_a_task_was_cancelled(cli: Cli, redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        posted = swarm.post_task("q", "d")
        cancelled = swarm.cancel(posted.id)
    assert cancelled.status_at is not None
    shown = cli("task", "show", posted.id).stdout
    row = next(line for line in shown.splitlines() if "status since" in line)
    assert must(iso(cancelled.status_at)) in row
    assert json.loads(cli("task", "show", posted.id, "--json").stdout)["status_at"] == (
        cancelled.status_at
    )
