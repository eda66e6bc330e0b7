"""``add_failed_usage``: what a failed run cost, told after its failure said nothing of it
(an agent that failed its own task, then printed its cost), added to its task's
``failed_usage``. Only under the lease whose attempt failed last, only while that failure's
cost is unknown, once however often it is sent (a retry after a lost reply), changing
neither status nor counters. Before, no operation could: the cost was lost to the task's
failed cost (``swarm status --pass`` under-counted). Real servers, the four handles (sync,
async, on a standalone server and on a cluster: its one script call keeps every key in
KEYS)."""

from __future__ import annotations

from typing import Any

import pytest

from redis_swarm import InvalidState, LeaseLost, Swarm
from redis_swarm._usage import Usage

QUEUE = "q"
SPENT = Usage(source="claude", cost_usd=0.25, tokens_in=1000, tokens_out=10)
GIVEN = Usage(source="reported", cost_usd=0.5)


def _failed(swarm: Swarm, usage: Usage | None = None) -> tuple[str, str]:
    """A task posted, claimed and failed (to retry at once) with ``usage``: its id and the
    token of the attempt that failed."""
    swarm.configure_queue(QUEUE, retry_backoff_s=0)
    posted = swarm.post_task(QUEUE, "work", max_attempts=5)
    lease = swarm.claim(QUEUE, worker="w-1")
    assert lease is not None and lease.id == posted.id and lease.token is not None
    swarm.fail(lease.id, lease.token, "boom", usage=usage)
    return lease.id, lease.token


def test_the_cost_is_added_to_the_failure_once(swarm: Swarm) -> None:
    task_id, token = _failed(swarm)
    before = swarm.get_task(task_id)
    stats = swarm.queue_stats()
    assert before.failed_usage is None
    added = swarm.add_failed_usage(task_id, token, SPENT)
    assert added.failed_usage is not None
    assert (added.failed_usage.cost_usd, added.failed_usage.tokens_in) == (0.25, 1000)
    # neither status nor counters: one failure, one failed run, still pending
    for task in (added, swarm.get_task(task_id)):
        assert task.status is before.status and task.failures == before.failures == 1
        assert task.failed_run_count == 1 and task.attempts == 1
    assert swarm.queue_stats() == stats
    # sent again (its reply lost): adds nothing more, answers the task
    again = swarm.add_failed_usage(task_id, token, SPENT)
    assert again.failed_usage is not None and again.failed_usage.cost_usd == 0.25
    assert swarm.get_task(task_id).failed_usage == added.failed_usage


def test_a_failure_that_gave_its_cost_is_refused(swarm: Swarm) -> None:
    task_id, token = _failed(swarm, GIVEN)
    with pytest.raises(InvalidState, match="gave its cost with it") as refused:
        swarm.add_failed_usage(task_id, token, SPENT)
    assert "nothing was added" in str(refused.value)
    task = swarm.get_task(task_id)
    assert task.failed_usage is not None and task.failed_usage.cost_usd == 0.5


def test_only_the_attempt_that_failed_last_may_add(swarm: Swarm) -> None:
    task_id, first = _failed(swarm)
    second = swarm.claim(QUEUE, worker="w-2")
    assert second is not None and second.id == task_id and second.token is not None
    # attempt 2 has not failed: its token adds nothing
    with pytest.raises(InvalidState, match="attempt 2 has no failure to add a cost to") as why:
        swarm.add_failed_usage(task_id, second.token, SPENT)
    assert "its last failure is attempt 1's" in str(why.value)
    assert "only the run that failed last" in str(why.value)
    # once attempt 2 failed too, attempt 1's failure is no longer the last
    swarm.fail(task_id, second.token, "again")
    with pytest.raises(InvalidState, match="its last failure is attempt 2's"):
        swarm.add_failed_usage(task_id, first, SPENT)
    assert swarm.get_task(task_id).failed_usage is None
    swarm.add_failed_usage(task_id, second.token, SPENT)  # attempt 2's own may
    assert swarm.get_task(task_id).failed_usage == SPENT


def test_a_task_that_has_not_failed_is_refused(swarm: Swarm) -> None:
    swarm.post_task(QUEUE, "work")
    lease = swarm.claim(QUEUE, worker="w-1")
    assert lease is not None and lease.token is not None
    with pytest.raises(InvalidState, match="it has no failure"):
        swarm.add_failed_usage(lease.id, lease.token, SPENT)
    task = swarm.get_task(lease.id)
    assert task.failed_usage is None and task.status.value == "claimed"


def test_a_token_never_issued_is_refused(swarm: Swarm) -> None:
    task_id, token = _failed(swarm)
    with pytest.raises(LeaseLost, match="never issued"):
        swarm.add_failed_usage(task_id, "1.notitssecret0123456789abcdef", SPENT)
    assert swarm.get_task(task_id).failed_usage is None
    assert token  # (its own still may)
    assert swarm.add_failed_usage(task_id, token, SPENT).failed_usage is not None


def test_a_later_failure_without_usage_may_have_its_own_added(swarm: Swarm) -> None:
    """Each failure's cost is its own: the second failure of the same task, which said no
    cost either, takes its run's, summed with the first's."""
    task_id, first = _failed(swarm)
    swarm.add_failed_usage(task_id, first, SPENT)
    second = swarm.claim(QUEUE, worker="w-1")
    assert second is not None and second.token is not None
    swarm.fail(task_id, second.token, "again")
    total = swarm.add_failed_usage(task_id, second.token, SPENT).failed_usage
    assert total is not None and total.cost_usd == 0.5 and total.tokens_in == 2000


def test_a_record_whose_seals_are_damaged_is_refused_in_words(swarm: Swarm, raw: Any) -> None:
    """What ``issued`` reads (attempts, seals) is checked first: a record written around
    redis-swarm with seals that are no object was a raw Lua error."""
    from redis_swarm import CorruptRecord
    from redis_swarm._codec import dumps, loads
    from redis_swarm._keys import Keys

    task_id, token = _failed(swarm)
    key = Keys("test").tasks
    record = loads(raw.hget(key, task_id))
    record["seals"] = 5
    raw.hset(key, task_id, dumps(record))
    with pytest.raises(CorruptRecord, match="seals") as refused:
        swarm.add_failed_usage(task_id, token, SPENT)
    assert "no cost was added" in str(refused.value)
