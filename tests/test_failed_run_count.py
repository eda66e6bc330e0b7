"""A task's count of its failed runs (``failed_run_count``): kept through a requeue, seeded for
a task stored before it by the one rule Python reads such a task by (``failed_runs_of``), read
only as a count (a record holding anything else is stored corrupt, as ``swarm doctor`` says);
and ``failure_taken``, the read-back of a failure whose reply was lost, which neither another
worker's failure nor a requeue fools."""

from __future__ import annotations

import json
import time

import pytest
import redis

from redis_swarm import Swarm
from redis_swarm._keys import Keys
from redis_swarm._models import runs_of
from redis_swarm._runner import failure_taken
from redis_swarm._usage import Usage

ONE_DOLLAR = Usage(source="claude", cost_usd=1.0)


def _rewrite(raw: redis.Redis, task_id: str, **fields: object) -> None:
    """Set ``fields`` of the task's stored record (None: drop the field), as an older
    version or a hand would have written it."""
    key = Keys("test").tasks
    stored = raw.hget(key, task_id)
    assert stored is not None, task_id
    record = json.loads(stored)
    for name, value in fields.items():
        if value is None:
            record.pop(name, None)
        else:
            record[name] = value
    raw.hset(key, task_id, json.dumps(record))


def test_an_older_record_failed_again_counts_every_run(swarm: Swarm, raw: redis.Redis) -> None:
    """A task of an older version, requeued (failures 0) with $1 of failed runs, is one run;
    failed again for $1 it is two (the script started from its failures, 0: one run of the
    $2 went missing)."""
    task = swarm.post_task("q", "t")
    held = swarm.claim("q", worker="w")
    assert held is not None
    swarm.fail(task.id, held.token, "broke", usage=ONE_DOLLAR, retry_after_s=0)
    _rewrite(raw, task.id, failures=0, failed_run_count=None)
    assert runs_of([swarm.get_task(task.id)]) == (1, 0)
    again = swarm.claim("q", worker="w")
    assert again is not None
    swarm.fail(task.id, again.token, "broke", usage=ONE_DOLLAR)
    stored = swarm.get_task(task.id)
    assert stored.failed_usage is not None and stored.failed_usage.cost_usd == 2.0
    assert (stored.failed_run_count, runs_of([stored])) == (2, (2, 0))


def test_a_requeue_keeps_the_count(swarm: Swarm) -> None:
    task = swarm.post_task("q", "t", max_attempts=1)
    held = swarm.claim("q", worker="w")
    assert held is not None
    swarm.fail(task.id, held.token, "broke", usage=ONE_DOLLAR)
    back = swarm.requeue_dead(task.id)
    assert (back.failures, back.failed_run_count, runs_of([back])) == (0, 1, (1, 0))


@pytest.mark.parametrize("count", ["x", -1, 1.5, True, 1e300, 2**60])
def test_a_count_stored_as_no_count_is_named_by_doctor_and_crashes_nothing(
    swarm: Swarm, raw: redis.Redis, count: object
) -> None:
    """Not a traceback of whatever sums the runs (task show, lineage), nor a claim that
    fails after Redis leased the task: the count is left out where the task is read, and
    swarm doctor names the record."""
    task = swarm.post_task("q", "t")
    _rewrite(raw, task.id, failed_run_count=count, failures=count)
    read = swarm.get_task(task.id)
    assert (read.failures, read.failed_run_count, runs_of([read])) == (0, None, (0, 0))
    assert swarm.corrupt_records()["task"] == [task.id]
    claimed = swarm.claim("q", worker="w", n=2)
    assert [t.id for t in claimed] == [task.id]


def test_a_big_count_cjson_wrote_as_a_float_is_its_whole_number(
    swarm: Swarm, raw: redis.Redis
) -> None:
    """Redis's cjson writes a number past 14 digits as 1e+14: still a count (it read as
    corrupt, and a claim of such a task raised after Redis had leased it)."""
    task = swarm.post_task("q", "t")
    _rewrite(raw, task.id, failed_run_count=1e14)
    assert swarm.get_task(task.id).failed_run_count == 10**14
    assert swarm.corrupt_records()["task"] == []
    claimed = swarm.claim("q", worker="w")
    assert claimed is not None and claimed.failed_run_count == 10**14


def test_another_workers_failure_after_the_lease_ran_out_is_not_ours(swarm: Swarm) -> None:
    """The lease held ran out; another worker claimed the task and failed it with the same
    error: one failure more, the same error, but not the failure of the lease held."""
    task = swarm.post_task("q", "t", lease_s=1)
    held = swarm.claim("q", worker="w1")
    assert held is not None
    time.sleep(1.3)
    other = swarm.claim("q", worker="w2")
    assert other is not None and other.attempts == held.attempts + 1
    swarm.fail(task.id, other.token, "broke")
    assert not failure_taken(held, swarm.get_task(task.id), "broke")


def test_a_failure_taken_then_requeued_is_still_taken(swarm: Swarm) -> None:
    """A requeue before the read-back sets failures back to 0: the count of failed runs
    still shows the failure taken (read by failures, it was counted again as lost)."""
    task = swarm.post_task("q", "t", max_attempts=1)
    held = swarm.claim("q", worker="w")
    assert held is not None
    swarm.fail(task.id, held.token, "x" * 9_000)  # (stored cut: the rule compares the cut)
    swarm.requeue_dead(task.id)
    assert failure_taken(held, swarm.get_task(task.id), "x" * 9_000)
    assert not failure_taken(held, swarm.get_task(task.id), "y" * 9_000)


def test_a_failure_taken_then_claimed_by_another_is_still_taken(swarm: Swarm) -> None:
    """The failure was taken (its reply lost), the task went back to its queue after its
    backoff and another worker claimed it before the read-back: the failure is still the
    lease's (counted by attempts, it read as not taken, and a pipeline counted it twice)."""
    task = swarm.post_task("q", "t")
    held = swarm.claim("q", worker="pool-1")
    assert held is not None
    swarm.fail(task.id, held.token, "boom", retry_after_s=0)  # (back at once: no backoff)
    other = swarm.claim("q", worker="other-1")
    assert other is not None and other.attempts == held.attempts + 1
    assert failure_taken(held, swarm.get_task(task.id), "boom")
