"""The pool of ``swarm run`` saves round trips: a slot's report leases its next task
(``claim_next``), and idle slots claim together, one for all (``claim(..., n=)``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import EventType, Swarm
from redis_swarm._runner import Runner, RunOptions, TaskOutcome

from ._raw import command_calls, reset_stats, script_calls

AGENT = 'cat >/dev/null; echo \'{"summary": "done"}\''


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_a_slot_reports_and_claims_its_next_task_in_one_call(
    swarm: Swarm, raw: redis.Redis
) -> None:
    swarm.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(6)])
    options = RunOptions(queues=("q",), command=AGENT, until_done=True, poll_s=0.05)
    reset_stats(raw)
    outcomes = Runner(swarm, options).run()
    assert [o.status.value for o in outcomes] == ["completed"] * 6
    # six reports, each leasing the next task; the first claim and the last, empty one
    # (one claim per task, and a report, would be twelve or more)
    assert script_calls(command_calls(raw)) <= 6 + 3
    assert swarm.queue_stats()["q"]["completed"] == 6


def test_idle_slots_take_a_batch_in_one_claim(swarm: Swarm) -> None:
    options = RunOptions(queues=("q",), command=AGENT, concurrency=3, max_tasks=3, poll_s=0.1)
    pool = Runner(swarm, options)
    timer = threading.Timer(0.4, lambda: swarm.post_tasks(
        [{"queue": "q", "description": f"t{i}"} for i in range(3)]
    ))  # fmt: skip
    timer.start()
    outcomes = pool.run()
    timer.join()
    assert sorted(o.status.value for o in outcomes) == ["completed"] * 3
    assert len({o.worker for o in outcomes}) == 3  # each slot ran one
    claims = [e for e in swarm.events() if e.type is EventType.TASK_CLAIMED]
    # one slot leased the three for the idle three (the claim names it), in one claim
    assert len(claims) == 3 and len({e.fields["worker"] for e in claims}) == 1


def test_a_task_leased_for_a_stopping_slot_goes_back(swarm: Swarm) -> None:
    posted = swarm.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(2)])
    options = RunOptions(queues=("q",), command=AGENT, poll_s=0.05)
    # Drained once the first task is done: its report leased the second for the slot.
    pool = Runner(swarm, options, on_outcome=lambda _: pool.drain())
    done = pool.run()
    assert [o.task_id for o in done] == [posted[0].id]
    back = swarm.get_task(posted[1].id)
    assert (back.status.value, back.attempts, back.abandons, back.failures) == ("pending", 1, 0, 0)


@pytest.mark.parametrize("tasks", [0, 1], ids=["empty", "one-task"])
def test_until_done_ends_within_a_poll_interval_whatever_the_concurrency(
    swarm: Swarm, tasks: int
) -> None:
    """Twelve slots, a poll interval of 3 s: an empty queue ends the pool at once (within
    less than one poll), and one quick task within about a poll interval of its end (each
    slot used to wait its own poll, in turn, before looking: 36 s either way). (A poll of
    3 s, not the default 1 s: a loaded machine's start of twelve slots took over 0.9 s.)"""
    swarm.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(tasks)])
    poll = 3.0
    options = RunOptions(queues=("q",), command=AGENT, concurrency=12, until_done=True, poll_s=poll)
    started = time.monotonic()
    outcomes = Runner(swarm, options).run()
    took = time.monotonic() - started
    assert [o.status.value for o in outcomes] == ["completed"] * tasks
    assert took < (0.9 * poll if tasks == 0 else poll + 2.0), took
    assert swarm.queue_stats().get("q", {}).get("completed", 0) == tasks


def test_a_slot_does_not_stop_while_a_batch_claim_holds_the_last_tickets(
    swarm: Swarm, tmp_path: Path
) -> None:
    """With ``max_tasks``, an idle slot's batch claim takes a ticket for every idle slot.
    A slot that looked for a ticket meanwhile (here: while its outcome was handled) found
    none and stopped, although the claim was taking one for it: the pool ran on with fewer
    slots (and a task the batch handed over waited, leased, for a busy slot)."""
    meet = tmp_path / "meet"
    meet.mkdir()
    # The two "work" tasks meet: each waits (3 s at most) until both run at once.
    agent = (
        'cat >/dev/null; if [ "$SWARM_TASK_QUEUE" = work ]; then '
        f'touch "{meet}/$SWARM_TASK_ID"; n=0; '
        f'while [ "$(ls "{meet}" | wc -l)" -lt 2 ]; do '
        "sleep 0.05; n=$((n+1)); [ $n -gt 60 ] && exit 3; done; fi; "
        'echo \'{"summary": "done"}\''
    )
    warm = swarm.post_task("warm", "first")
    options = RunOptions(
        queues=("warm", "work"), command=agent, concurrency=2, max_tasks=3, poll_s=0.1
    )
    work = threading.Timer(1.0, lambda: swarm.post_tasks(
        [{"queue": "work", "description": f"t{i}"} for i in range(2)]
    ))  # fmt: skip

    def on_outcome(outcome: TaskOutcome) -> None:
        # Only the warm task's: a timer ended is not alive either, and a second start()
        # raised in the slot, which stopped the pool, killing a work task's agent when it
        # had not yet exited (a loaded machine: 'released', interrupted).
        if outcome.task_id == warm.id:
            work.start()
            time.sleep(0.5)  # the other slot claims for both meanwhile, again and again

    pool = Runner(swarm, options, on_outcome=on_outcome)
    outcomes = pool.run()
    work.join()
    assert pool.crash is None, pool.crash
    assert [o.status.value for o in outcomes] == ["completed"] * 3, outcomes
    assert len({o.worker for o in outcomes[1:]}) == 2  # the two work tasks ran side by side
