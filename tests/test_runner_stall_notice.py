"""``swarm run`` through a Redis that answers nothing, on real servers: paused (SIGSTOP), or
pausing writes (``CLIENT PAUSE WRITE``: reads are answered, the report is not). The client
waits for its timeout (10 s by default) and retries before the pool's ``waiting for Redis``
line; a person watching is told within seconds that Redis is not answering and that the
agent's work is kept, and the task is completed by its one run once Redis is back."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from redis_swarm import Swarm, Task
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions
from redis_swarm._runner.request_watch import READ_TASK, TAKE_REPORT, UNANSWERED_NOTICE_S

from ._servers import RedisServer

PY = sys.executable
QUEUE = "work"
# Well under the client's default socket timeout (10 s): the line that says the report waits
# comes before the client gives its request up.
TOLD_WITHIN_S = 6.0
NOTICE = "Redis has not answered for"

# One agent run: says it started, waits for the test to stall Redis, prints its finding.
AGENT = """
import json, os, sys, time
sys.stdin.read()
started, go = sys.argv[1], sys.argv[2]
open(started, "w").close()
while not os.path.exists(go):
    time.sleep(0.02)
print(json.dumps({"summary": "done " + os.environ["SWARM_TASK_ID"]}))
"""


@contextlib.contextmanager
def _pool_at_work(
    server: RedisServer, tmp_path: Path, lease_s: int, notes: Callable[[str], None], **more: Any
) -> Iterator[tuple[Swarm, Task, Runner, threading.Thread, Path]]:
    """One task posted and a pool running it, its agent started (it prints its finding once
    the yielded ``go`` file exists): the handle, the task, the pool, its thread, ``go``. The
    pool is aborted and its thread joined after the block."""
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    started, go = tmp_path / "started", tmp_path / "go"
    with Swarm(server.url, swarm="stall") as swarm:
        task = swarm.post_task(QUEUE, "work")
        options = RunOptions(
            queues=(QUEUE,), command=f"{PY} {script} {started} {go}", lease_s=lease_s,
            poll_s=0.5, **more,
        )  # fmt: skip
        pool = Runner(swarm, options, on_progress=notes)
        thread = threading.Thread(target=pool.run)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not started.exists():
                assert time.monotonic() < deadline, (pool.outcomes, pool.errors)
                time.sleep(0.02)
            yield swarm, task, pool, thread, go
        finally:
            pool.abort()
            thread.join(30)
        assert not thread.is_alive()


def _stalled_report(
    server: RedisServer, tmp_path: Path, stall: Callable[[], object], resume: Callable[[], object]
) -> tuple[list[tuple[float, str]], float, Runner, str]:
    """Run one task whose agent prints its finding once Redis is stalled (``stall``); return
    the pool's progress lines (with when each came, monotonic), when the agent was let print,
    the pool, and the task's id, after ``resume`` and the run's end."""
    notes: list[tuple[float, str]] = []

    def note(line: str) -> None:
        notes.append((time.monotonic(), line))

    # (a 120 s lease: no renewal falls in the stall, the report is what waits)
    at_work = _pool_at_work(server, tmp_path, 120, note, until_done=True)
    with at_work as (swarm, task, pool, thread, go):
        stall()
        try:
            go.touch()
            let_go = time.monotonic()
            while not any(NOTICE in line for _, line in notes):
                if time.monotonic() - let_go > TOLD_WITHIN_S + 4:
                    break
                time.sleep(0.05)
        finally:
            resume()
        thread.join(60)  # (until_done: it ends by itself once Redis is back)
        done = swarm.get_task(task.id)
    assert [o.status for o in pool.outcomes] == [OutcomeStatus.COMPLETED], pool.outcomes
    assert done.status == "completed" and done.finding_id == pool.outcomes[0].finding_id
    return notes, let_go, pool, task.id


def _told(notes: list[tuple[float, str]], let_go: float, task_id: str, what: str) -> str:
    """The one line saying Redis did not answer ``what`` (the read of the task before its
    finding is stored, or the report), checked to come in time."""
    told = [(at, line) for at, line in notes if NOTICE in line]
    assert told, f"nothing said within {TOLD_WITHIN_S + 4:g}s of the stall: {notes}"
    assert len(told) == 1, told  # (once per task and request, however long the stall)
    at, line = told[0]
    assert at - let_go < TOLD_WITHIN_S, (at - let_go, line)
    assert f"asked to {what} of {task_id}" in line, line
    assert "the work is kept" in line and "until Redis takes it" in line
    return line


def test_a_paused_server_is_said_within_seconds_and_the_work_kept(
    pausable_server: RedisServer, tmp_path: Path
) -> None:
    server = pausable_server

    def resume() -> None:
        time.sleep(1.0)  # (paused a little longer than the line took)
        os.kill(server.proc.pid, signal.SIGCONT)

    notes, let_go, pool, task_id = _stalled_report(
        server, tmp_path, lambda: os.kill(server.proc.pid, signal.SIGSTOP), resume
    )
    # (nothing is answered: the read of the task, before the finding is stored, waits first)
    line = _told(notes, let_go, task_id, READ_TASK)
    # A probe that times out says no more than the guess (it named the URL as one to check,
    # the server as not running: the probe's translated timeout had lost its cause)
    assert "it may be paused, busy or out of reach" in line, line
    assert "check that the server runs" not in line, line
    assert any(NOTICE in error for error in pool.errors)  # (kept with the run's errors too)


def test_writes_paused_are_said_within_seconds(
    pausable_server: RedisServer, tmp_path: Path
) -> None:
    server = pausable_server
    admin = server.client()
    try:
        notes, let_go, _, task_id = _stalled_report(
            server,
            tmp_path,
            lambda: admin.client_pause(60_000, all=False),  # (writes only)
            admin.client_unpause,
        )
    finally:
        admin.close()
    _told(notes, let_go, task_id, TAKE_REPORT)  # (reads are answered: the report waits)


def test_a_renewal_unanswered_while_the_agent_runs_is_said(
    pausable_server: RedisServer, tmp_path: Path
) -> None:
    """The server paused while the agent works (no report yet): its lease renewal (every
    second, a 3-second lease) goes unanswered, and the line says so, and that the agent runs
    on."""
    server = pausable_server
    notes: list[tuple[float, str]] = []

    def note(line: str) -> None:
        notes.append((time.monotonic(), line))

    at_work = _pool_at_work(server, tmp_path, 3, note, until_done=True)
    with at_work as (swarm, task, pool, thread, go):
        os.kill(server.proc.pid, signal.SIGSTOP)
        paused = time.monotonic()
        try:
            while not any(NOTICE in line for _, line in notes):
                if time.monotonic() - paused > TOLD_WITHIN_S + 4:
                    break
                time.sleep(0.05)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        go.touch()
        thread.join(60)
        done = swarm.get_task(task.id)
    told = [(at, line) for at, line in notes if NOTICE in line]
    assert told, f"nothing said within {TOLD_WITHIN_S + 4:g}s of the pause: {notes}"
    at, line = told[0]
    # (a renewal is due within a second of the pause, then unanswered for 3 s)
    assert at - paused < TOLD_WITHIN_S, (at - paused, line)
    assert f"asked to renew the lease of {task.id}" in line and "the agent runs on" in line
    assert [o.status for o in pool.outcomes] == [OutcomeStatus.COMPLETED], pool.outcomes
    assert done.status == "completed"


def test_no_line_says_the_work_is_kept_once_a_stop_gave_redis_up(
    pausable_server: RedisServer, tmp_path: Path
) -> None:
    """The pool aborted while its request waits on a stalled server: given up
    ``STOP_GRACE_S`` after the stop (the pool says nothing tries it again), its thread still
    blocked in it. No line comes after that saying the work is kept and sent again until
    Redis takes it, and nothing of the task is kept by the pool once it let go of it."""
    server = pausable_server
    notes: list[str] = []
    with _pool_at_work(server, tmp_path, 120, notes.append) as (_, _, pool, thread, go):
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            go.touch()  # (the agent prints its finding: the pool's next request waits)
            time.sleep(0.5)
            pool.abort()
            thread.join(30)
            assert not thread.is_alive()
            # (past UNANSWERED_NOTICE_S from the request, the server still stopped)
            time.sleep(UNANSWERED_NOTICE_S + 1.5)
            said = [line for line in [*notes, *pool.errors] if NOTICE in line]
            assert not said, said
            assert not pool._said, pool._said  # (let go of: nothing of it kept)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
