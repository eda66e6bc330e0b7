"""Every slot of ``swarm run`` running an agent is an agent of the swarm, alive and working on
its task, whichever slot's batch claim leased the task (the task's ``worker``: the lease
holder), for as long as the run lasts; a slot gone idle names no task."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_swarm import Agent, Swarm
from redis_swarm._keys import ask_queue
from redis_swarm._models import QUESTION_KIND
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions, ServeOptions, Server

from .test_runner_outages import ANSWERER, WAITING_AGENT

PY = sys.executable
SLOTS = 4
PREFIX = "slot"
STALE_S = 1.5  # the views' stale threshold here (60 s by default): the runs outlast it


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _slots(swarm: Swarm) -> dict[str, Agent]:
    return {a.id: a for a in swarm.agents(stale_after_s=STALE_S) if a.id.startswith(PREFIX)}


def _until(what: Callable[[], bool], timeout_s: float, why: Callable[[], object]) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, why()
        time.sleep(0.05)


def test_every_running_slot_is_alive_on_its_task_whoever_claimed_it(
    swarm: Swarm, tmp_path: Path
) -> None:
    script = tmp_path / "agent.py"
    script.write_text(WAITING_AGENT)
    options = RunOptions(
        queues=("q",),
        command=f"{PY} {script} {tmp_path}",
        concurrency=SLOTS,
        lease_s=2,  # renewed every 2/3 s: the slots' beats come as often
        timeout_s=60,
        worker=PREFIX,
        poll_s=0.2,
    )
    pool = Runner(swarm, options)
    thread = threading.Thread(target=pool.run)
    thread.start()
    try:
        time.sleep(0.4)  # every slot idle, one claiming for all: the four come in one batch
        tasks = [{"queue": "q", "description": f"t{i}"} for i in range(SLOTS)]
        posted = {t.id for t in swarm.post_tasks(tasks)}
        log = tmp_path / "runs.log"
        _until(
            lambda: log.exists() and len(log.read_text().split()) == SLOTS,
            20,
            lambda: (pool.outcomes, pool.errors),
        )
        holders = [swarm.get_task(tid).worker for tid in posted]
        assert len(set(holders)) < SLOTS, holders  # a batch claim: a slot holds another's task

        def each_on_its_task() -> bool:
            slots = _slots(swarm)
            return (
                len(slots) == SLOTS
                and all(a.alive for a in slots.values())
                and {a.current_task for a in slots.values()} == posted
            )

        _until(each_on_its_task, 10, lambda: (_slots(swarm), holders))
        time.sleep(2 * STALE_S)  # the runs outlast the stale threshold: their slots beat
        assert each_on_its_task(), (_slots(swarm), holders)

        (tmp_path / "go").touch()
        _until(lambda: len(pool.outcomes) == SLOTS, 20, lambda: (pool.outcomes, pool.errors))
        # Done, the pool running on: each slot is idle, its record names no task.
        _until(
            lambda: all(a.current_task is None for a in _slots(swarm).values()),
            10,
            lambda: _slots(swarm),
        )
    finally:
        (tmp_path / "go").touch()
        pool.drain()
        thread.join(30)
    assert not thread.is_alive()
    assert [o.status for o in pool.outcomes] == [OutcomeStatus.COMPLETED] * SLOTS
    assert {o.task_id for o in pool.outcomes} == posted
    assert _slots(swarm) == {}  # the pool left: every slot deregistered


def test_swarm_serve_slots_are_alive_on_their_questions_and_kept_idle(
    swarm: Swarm, tmp_path: Path
) -> None:
    """``swarm serve`` is the same pool: each answering slot is alive on its question while
    its answer takes longer than the stale threshold, whichever slot's batch claim leased it;
    with ``--session`` their records outlive the server (a restart resumes their
    conversations), naming no task."""
    script = tmp_path / "answerer.py"
    script.write_text(ANSWERER)
    swarm.publish_context("lib", "line 1: the butler\n", source="book.md")
    options = ServeOptions(
        owner="lib",
        command=f"{PY} {script} {tmp_path} {{session}}",
        concurrency=2,
        session=True,
        lease_s=2,
        worker=PREFIX,
        poll_s=0.2,
    )
    serving = Server(swarm, options)
    thread = threading.Thread(target=serving.run)
    thread.start()
    try:
        time.sleep(0.4)  # both slots idle, one claiming for both: the two come in one batch
        asked = [
            {"queue": ask_queue("lib"), "description": q, "data": {"kind": QUESTION_KIND}}
            for q in ("Q1: who?", "Q2: where?")
        ]
        questions = {t.id for t in swarm.post_tasks(asked)}
        log = tmp_path / "runs.log"
        _until(
            lambda: log.exists() and len(log.read_text().split()) == 2,
            20,
            lambda: (serving.outcomes, serving.errors),
        )
        holders = [swarm.get_task(tid).worker for tid in questions]
        assert len(set(holders)) == 1, holders  # one slot holds both leases

        def each_on_its_question() -> bool:
            slots = _slots(swarm)
            return (
                len(slots) == 2
                and all(a.alive for a in slots.values())
                and {a.current_task for a in slots.values()} == questions
            )

        _until(each_on_its_question, 10, lambda: (_slots(swarm), holders))
        time.sleep(2 * STALE_S)
        assert each_on_its_question(), (_slots(swarm), holders)
        (tmp_path / "go").touch()
        _until(lambda: len(serving.outcomes) == 2, 20, lambda: serving.outcomes)
    finally:
        (tmp_path / "go").touch()
        serving.drain()
        thread.join(30)
    assert [o.status for o in serving.outcomes] == [OutcomeStatus.COMPLETED] * 2
    kept = _slots(swarm)
    assert sorted(kept) == [f"{PREFIX}-1", f"{PREFIX}-2"]
    assert all(a.current_task is None for a in kept.values()), kept
