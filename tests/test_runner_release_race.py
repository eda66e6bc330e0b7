"""A task a slot of the pool gives back (a release, as after an agent command the shell could
not run: exit code 127) can be leased again by another slot of the same pool before the first
one let go of it. That is a new lease of the task, the claiming slot's own: not a lease that
"came back to this pool" (only a lease that ran out does), which was handed to the first slot
and released unrun, the task's claims counting a run that never was."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions

PY = sys.executable
QUEUE = "race"
CAME_BACK = "came back to this pool"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    handle = Swarm(redis_url, swarm="release-race")
    yield handle
    handle.close()


def _pool(swarm: Swarm, command: str, notes: list[str], **options: object) -> Runner:
    return Runner(
        swarm,
        RunOptions(queues=(QUEUE,), command=command, **options),  # type: ignore[arg-type]
        on_progress=notes.append,
    )


def test_a_task_given_back_and_leased_again_at_once_is_the_new_slots_work(swarm: Swarm) -> None:
    """The interleaving itself, driven through the pool's parts: slot 1 releases its task,
    slot 2 leases it again before slot 1 lets go of it. Slot 2 runs it (a new lease, the
    task's second claim), with its own token; slot 1 letting go releases nothing of it."""
    notes: list[str] = []
    pool = _pool(swarm, f"{PY} -c pass", notes)
    task = swarm.post_task(QUEUE, "the task")
    first = swarm.claim([QUEUE], worker="w-1", lease_s=30)
    assert first is not None
    assert pool._adopted(first)
    pool._release(first)  # what _cannot_run does after an exit code 127
    again = swarm.claim([QUEUE], worker="w-2", lease_s=30)
    assert again is not None
    assert again.attempts == 2 and again.abandons == 0

    assert pool._adopted(again)  # its slot runs it
    assert pool._token(again) == again.token
    assert pool._token(first) == first.token
    pool._let_go(first)
    stored = swarm.get_task(task.id)
    assert stored.status == "claimed" and stored.worker == "w-2"  # not released under it
    assert pool._token(again) == again.token
    swarm.release(again.id, pool._token(again))
    pool._let_go(again)
    assert not [n for n in notes if CAME_BACK in n], notes
    assert pool._working == {} and pool._leases == {}


def test_a_lease_that_ran_out_still_comes_back_to_its_slot(swarm: Swarm) -> None:
    """The case ``_adopted`` is for: the lease slot 1 holds runs out (an abandon) and slot
    2 leases the task again; the new lease is handed to slot 1, its agent not run twice, and
    slot 1's last word settles it."""
    notes: list[str] = []
    pool = _pool(swarm, f"{PY} -c pass", notes)
    task = swarm.post_task(QUEUE, "the task")
    first = swarm.claim([QUEUE], worker="w-1", lease_s=30)
    assert first is not None
    assert pool._adopted(first)
    swarm.renew(first.id, first.token, lease_s=1)
    deadline = time.monotonic() + 10
    again = None
    while again is None:
        assert time.monotonic() < deadline
        again = swarm.claim([QUEUE], worker="w-2", lease_s=30, wait_s=0.5)
    assert again.abandons == 1

    assert not pool._adopted(again)  # slot 1 keeps it
    assert pool._token(first) == again.token
    assert [n for n in notes if CAME_BACK in n], notes
    swarm.release(first.id, pool._token(first))  # slot 1's last word, with the newest lease
    pool._let_go(first)
    assert swarm.get_task(task.id).status == "pending"
    assert pool._working == {} and pool._leases == {}


@pytest.mark.parametrize("round_", range(4))
def test_an_agent_command_that_cannot_be_run_gives_every_task_back_unadopted(
    swarm: Swarm, round_: int
) -> None:
    """The tour's run: ``--concurrency 8`` with fewer tasks than slots, so idle slots wait
    in their claims, and an agent command the shell cannot run (exit code 127). The pool
    stops; every task goes back to its queue, none said to have come back to the pool, and
    every claim of a task that is not the run's own is given back by the slot that made it."""
    tasks = [swarm.post_task(QUEUE, f"task {i}") for i in range(3)]
    notes: list[str] = []
    pool = _pool(
        swarm,
        f"{PY} -c 'import sys; sys.exit(127)'",
        notes,
        concurrency=8,
        until_done=True,
        poll_s=2.0,
    )
    pool.run()
    assert pool.fatal is not None and "could not be run" in pool.fatal
    assert not [n for n in notes if CAME_BACK in n], notes
    assert {o.status for o in pool.outcomes} == {OutcomeStatus.RELEASED}, pool.outcomes
    runs = {o.task_id for o in pool.outcomes}
    assert len(runs) == len(pool.outcomes)  # each task run once at most
    for task in tasks:
        stored = swarm.get_task(task.id)
        assert stored.status == "pending", stored
        assert stored.abandons == 0 and stored.failures == 0, stored
