"""The requests of ``swarm run``'s pool that waited through an outage unsaid, on a real server
paused (SIGSTOP): the reads of the event log that learn of a cancel while an agent runs
(``cancels.CancelWatch``), and the release of a newer lease of a task no slot runs
(``PoolState._let_go``). Each waited in the client's retries (its timeout, 10 s by default,
then its retries) with no line; each is now watched as the pool's other requests are
(``RequestWatch.told_if_unanswered``): said within seconds, as a request of the pool (once per
outage), and the end of the outage said once Redis answers again."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm._runner import Runner, RunOptions
from redis_swarm._runner.cancels import BLOCK_S
from redis_swarm._runner.request_watch import (
    READ_CANCELS,
    RELEASE_UNRUN,
    UNANSWERED_NOTICE_S,
    WATCH_TICK_S,
)

from ._servers import RedisServer
from .test_runner_stall_notice import NOTICE, QUEUE, TOLD_WITHIN_S, _pool_at_work

BACK = "Redis answers again"
# How long after the pause the line must come: the request's own wait, the notice, a tick
# of the watcher and the probe's one second (a paused server: a timeout, said as a guess).
SAID_WITHIN_S = TOLD_WITHIN_S + BLOCK_S


def _until(found: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not found():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_cancel_followers_read_unanswered_is_said(
    pausable_server: RedisServer, tmp_path: Path
) -> None:
    """The server paused while an agent runs, its lease renewal and its slot's next beat
    far off (a 120 s lease): the one request the pool makes meanwhile is the follower's
    read of the log for cancels. Within seconds a line says Redis has not answered it, and
    that the agent runs on; once the server goes on, one says Redis answers again."""
    server = pausable_server
    notes: list[tuple[float, str]] = []

    def note(line: str) -> None:
        notes.append((time.monotonic(), line))

    def said(words: str) -> list[tuple[float, str]]:
        return [(at, line) for at, line in notes if words in line]

    with _pool_at_work(server, tmp_path, 120, note, until_done=True) as (_, _, pool, thread, go):
        time.sleep(1.5)  # (past the run's first beat: the follower alone reads now)
        os.kill(server.proc.pid, signal.SIGSTOP)
        paused = time.monotonic()
        try:
            _until(lambda: bool(said(NOTICE)), SAID_WITHIN_S + 2)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        back = _until(lambda: bool(said(BACK)), 15)
        go.touch()
        thread.join(60)
    told = said(NOTICE)
    assert told, f"nothing said within {SAID_WITHIN_S + 2:g}s of the pause: {notes}"
    assert len(told) == 1, told  # (a request of the pool: once per outage)
    at, line = told[0]
    assert at - paused < SAID_WITHIN_S, (at - paused, line)
    assert f"(asked to {READ_CANCELS})" in line, line
    assert "the agents run on" in line, line
    assert back, notes
    assert len(said(BACK)) == 1, notes
    assert len(pool.outcomes) == 1, pool.outcomes


def test_the_release_of_a_lease_no_slot_runs_unanswered_is_said(
    pausable_server: RedisServer,
) -> None:
    """A slot done with its task holds a newer lease of it no slot runs (a claim of the pool
    leased it again once the slot's lease ran out: ``_adopted``): letting go of it releases
    that lease. The server paused, the release waits, and a line says so within seconds;
    once the server goes on, the lease is released and a line says Redis answers again."""
    server = pausable_server
    notes: list[tuple[float, str]] = []

    def note(line: str) -> None:
        notes.append((time.monotonic(), line))

    with Swarm(server.url, swarm="letgo") as swarm:
        posted = swarm.post_task(QUEUE, "work")
        options = RunOptions(queues=(QUEUE,), command=f"{sys.executable} -c pass", lease_s=60)
        pool = Runner(swarm, options, on_progress=note)
        first = swarm.claim([QUEUE], worker="slot-1", lease_s=1)
        assert first is not None and pool._adopted(first)
        time.sleep(1.2)  # (its lease runs out: the next claim leases the task again)
        newer = swarm.claim([QUEUE], worker="slot-1", lease_s=60)
        assert newer is not None and newer.id == posted.id and newer.token != first.token
        assert not pool._adopted(newer)  # (handed to the slot working on it)
        os.kill(server.proc.pid, signal.SIGSTOP)
        paused = time.monotonic()
        letting_go = threading.Thread(target=pool._let_go, args=(first,), daemon=True)
        letting_go.start()
        try:
            _until(lambda: any(NOTICE in line for _, line in notes), TOLD_WITHIN_S + 2)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        letting_go.join(30)
        assert not letting_go.is_alive()
        _until(lambda: any(BACK in line for _, line in notes), 2 * WATCH_TICK_S + 2)
        released = swarm.get_task(posted.id)
    told = [(at, line) for at, line in notes if NOTICE in line]
    assert told, f"nothing said within {TOLD_WITHIN_S + 2:g}s of the pause: {notes}"
    at, line = told[0]
    assert UNANSWERED_NOTICE_S <= at - paused < TOLD_WITHIN_S, (at - paused, line)
    assert f"(asked to {RELEASE_UNRUN})" in line, line
    assert "a lease not released runs out" in line, line
    assert [line for _, line in notes if BACK in line], notes
    assert released.status == "pending", released
