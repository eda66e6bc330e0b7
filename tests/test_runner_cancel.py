"""A cancelled task (``swarm task cancel``, a question withdrawn by its asker) stops its agent
within about a second, whatever the lease: the pool follows the event log for cancels
(``_runner/cancels``) instead of waiting for its next lease renewal, a third of the lease."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import Swarm, Timeout
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions, ServeOptions, Server
from redis_swarm._runner.cancels import CancelWatch

from ._cli import alive
from ._raw import command_calls, reset_stats

LEASE_S = 120  # renewed every 40 s: a cancel noticed by the renewal would take that long


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def sleeper(pidfile: Path) -> str:
    """An agent that writes its pid and sleeps a minute (``exec``: the pid is the sleep's)."""
    return f"echo $$ > {pidfile}; exec sleep 60"


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def started_pid(pidfile: Path) -> int:
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    return int(pidfile.read_text())


def gone_within(pid: int, limit_s: float) -> float:
    """How long ``pid`` took to end, failing the test past ``limit_s``."""
    since = time.monotonic()
    while alive(pid):
        took = time.monotonic() - since
        assert took < limit_s, f"the agent still runs {took:.1f}s after the cancel"
        time.sleep(0.02)
    return time.monotonic() - since


class Pool:
    """A pool running in a thread; aborted at the end should a test fail first."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.thread = threading.Thread(target=runner.run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(20)
        assert not self.thread.is_alive()
        assert self.runner.crash is None and self.runner.fatal is None

    def close(self) -> None:
        self.runner.abort()
        self.thread.join(20)


def test_a_cancelled_task_s_agent_is_killed_within_a_second_whatever_the_lease(
    swarm: Swarm, tmp_path: Path
) -> None:
    """The user's tour: a 30 s lease, the agent killed 9.5 s after the cancel."""
    pidfile = tmp_path / "pid"
    t = swarm.post_task("q", "long", lease_s=LEASE_S)
    options = RunOptions(queues=("q",), command=sleeper(pidfile), max_tasks=1, grace_s=0.5)
    pool = Pool(Runner(swarm, options))
    try:
        pid = started_pid(pidfile)
        swarm.cancel(t.id)
        gone_within(pid, 2.0)
        pool.join()
    finally:
        pool.close()
    (outcome,) = pool.runner.outcomes
    assert outcome.status is OutcomeStatus.LOST and outcome.task_id == t.id
    assert outcome.detail == f"stopped the agent: task {t.id} was cancelled"
    assert outcome.duration_s < 10
    assert swarm.get_task(t.id).status.value == "cancelled"


def test_only_the_cancelled_task_s_agent_stops(swarm: Swarm, tmp_path: Path) -> None:
    """Two agents of one pool: the cancel of one leaves the other running."""
    body = "echo $$ > {dir}/$SWARM_TASK_ID; exec sleep 60"
    a, b = swarm.post_tasks(
        [{"queue": "q", "description": d, "lease_s": LEASE_S} for d in ("a", "b")]
    )
    options = RunOptions(
        queues=("q",), command=body.format(dir=tmp_path), concurrency=2, max_tasks=2,
        grace_s=0.5,
    )  # fmt: skip
    pool = Pool(Runner(swarm, options))
    try:
        pid_a, pid_b = started_pid(tmp_path / a.id), started_pid(tmp_path / b.id)
        swarm.cancel(a.id)
        gone_within(pid_a, 2.0)
        time.sleep(0.5)
        assert alive(pid_b)
        pool.runner.abort()
        pool.join()
    finally:
        pool.close()
    by_task = {o.task_id: o.status for o in pool.runner.outcomes}
    assert by_task == {a.id: OutcomeStatus.LOST, b.id: OutcomeStatus.RELEASED}


def test_a_withdrawn_question_s_answerer_is_killed_within_a_second(
    swarm: Swarm, tmp_path: Path
) -> None:
    """The user's tour: ``swarm serve --lease 60``, ``swarm ask --timeout 2``: the answerer
    ran 20 s after the asker gave up (and cancelled the question)."""
    swarm.publish_context("lib", "line 1: tea\n", source="book.md")
    pidfile = tmp_path / "pid"
    options = ServeOptions(owner="lib", command=sleeper(pidfile), lease_s=LEASE_S, poll_s=0.2)
    server = Server(swarm, options)
    pool = Pool(server)
    try:
        with pytest.raises(Timeout):
            swarm.ask("lib", "who did it?", timeout_s=1.5)
        pid = started_pid(pidfile)
        gone_within(pid, 2.0)
        wait_for(lambda: bool(server.outcomes))
        server.drain()
        pool.join()
    finally:
        pool.close()
    (outcome,) = server.outcomes
    assert outcome.status is OutcomeStatus.LOST and "was cancelled" in outcome.detail


def test_a_cancel_read_before_the_agent_starts_stops_it_at_once(swarm: Swarm) -> None:
    """A task leased for a slot (a batch claim, a report's next task) may be cancelled
    before its agent starts: the follower, busy with another task, reads the cancel first;
    the watch of the late task knows it at once."""
    errors: list[str] = []
    watch = CancelWatch(swarm, errors.append)
    busy, late = swarm.post_tasks([{"queue": "q", "description": d} for d in ("busy", "late")])
    watch.start()
    try:
        with watch.watch(busy.id) as busy_check:
            swarm.cancel(late.id)
            swarm.cancel(busy.id)
            wait_for(lambda: busy_check() is not None, 3.0)
            with watch.watch(late.id) as late_check:
                assert late_check() == f"task {late.id} was cancelled"
    finally:
        watch.stop()
    assert errors == []


def test_the_follower_reads_nothing_while_no_agent_runs_and_little_while_one_does(
    swarm: Swarm, raw: redis.Redis
) -> None:
    watch = CancelWatch(swarm, lambda _: None)
    watch.start()
    try:
        reset_stats(raw)
        time.sleep(1.0)
        idle = command_calls(raw)
        t = swarm.post_task("q", "d")
        with watch.watch(t.id):
            time.sleep(2.0)  # a quiet swarm: one blocking read a second
        running = command_calls(raw)
    finally:
        watch.stop()
    assert idle == {}, idle
    reads = sum(n for name, n in running.items() if name in ("xread", "xrange", "xrevrange"))
    assert 1 <= reads <= 8, running


def test_the_follower_rides_out_failed_reads_and_reports_them_once(
    swarm: Swarm, redis_url: str, raw: Any
) -> None:
    """Its reads refused for a while (here: the user's rights withdrawn, as an outage would
    fail them): the error is reported once, the follower retries, and a later cancel is
    still read."""
    user = "cancels-follower"
    raw.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all")
    try:
        url = redis_url.replace("redis://", f"redis://{user}:pw@")
        with Swarm(url, swarm="test") as mine:
            errors: list[str] = []
            watch = CancelWatch(mine, errors.append)
            t = swarm.post_task("q", "d")
            watch.start()
            try:
                with watch.watch(t.id) as check:
                    raw.execute_command("ACL", "SETUSER", user, "-xrange", "-xread")
                    wait_for(lambda: bool(errors), 5.0)
                    raw.execute_command("ACL", "SETUSER", user, "+@all")
                    swarm.cancel(t.id)
                    wait_for(lambda: check() is not None, 5.0)
            finally:
                watch.stop()
        assert len(errors) == 1 and "cannot read the event log for cancels" in errors[0]
        assert "retrying" in errors[0]
    finally:
        raw.execute_command("ACL", "DELUSER", user)
