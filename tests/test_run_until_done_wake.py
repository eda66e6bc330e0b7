"""``swarm run --until-done`` ends as its last task settles: an idle slot waiting while only
leased tasks are open is woken by the pool's own slots letting go of a task, not by the end
of its poll (which kept every such run going up to a poll interval, 1 s, after its work);
``--poll`` sets that interval, for what the pool cannot see itself."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._runner import Runner, RunOptions

from ._cli import Cli

PY = sys.executable


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _agent(tmp_path: Path, body: str) -> str:
    """A scripted agent: Python reading its prompt on stdin, then ``body``."""
    path = tmp_path / "agent.py"
    path.write_text("import json, os, pathlib, sys, time\nsys.stdin.read()\n" + body)
    return f"{PY} {path}"


def test_a_run_ends_as_its_last_task_settles_not_a_poll_later(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Two slots, two quick tasks, the second ending 0.2 s after the first: the slot that ran
    the first waits while the second runs. It waited in a claim for its poll (1 s, the
    default) before it looked again, so the run ended about 0.8 s after its last task; it is
    now woken when that task settles."""
    first, second = swarm.post_tasks([{"queue": "q", "description": f"t{i}"} for i in range(2)])
    done, ended = tmp_path / "first-done", tmp_path / "second-ended"
    body = f"""
task = os.environ["SWARM_TASK_ID"]
if task == {second.id!r}:
    deadline = time.monotonic() + 20
    while not os.path.exists({str(done)!r}) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the other slot is idle by now: it reported the first task
print(json.dumps({{"summary": "done"}}))
mark = {str(done)!r} if task == {first.id!r} else {str(ended)!r}
pathlib.Path(mark).write_text(repr(time.time()))
"""
    out = cli("--json", "run", "--queue", "q", "--exec", _agent(tmp_path, body),
              "--concurrency", "2", "--until-done")  # fmt: skip
    returned = time.time()
    summary = json.loads(out.stdout)
    assert (summary["completed"], summary["failed"]) == (2, 0)
    after_last = returned - float(ended.read_text())
    # (the report of the last task and the run's end take milliseconds; the poll was 1 s)
    assert after_last < 0.5, f"the run ended {after_last:.2f}s after its last agent"


def test_the_waiting_claimer_is_woken_whatever_the_poll(swarm: Swarm) -> None:
    """A poll of 10 s: a slot left idle by a one-task queue waited the whole 10 s in its claim
    after the task was done. The pool's own slot letting go of the task wakes it."""
    swarm.post_task("q", "the only task")
    agent = 'cat >/dev/null; sleep 0.3; echo \'{"summary": "done"}\''
    options = RunOptions(queues=("q",), command=agent, concurrency=2, until_done=True, poll_s=10)
    started = time.monotonic()
    outcomes = Runner(swarm, options).run()
    took = time.monotonic() - started
    assert [o.status.value for o in outcomes] == ["completed"]
    assert took < 5, f"the pool ran {took:.1f}s for a 0.3 s task"


def test_a_drain_ends_a_claimer_waiting_on_leased_tasks(swarm: Swarm) -> None:
    """Only another worker's task open, a poll of 30 s: the idle slot waits on the pool, and
    a drain (Ctrl-C) ends that wait at once instead of at the end of the poll."""
    swarm.post_task("q", "held by another worker")
    assert swarm.claim("q", worker="elsewhere", lease_s=60) is not None
    agent = 'cat >/dev/null; echo \'{"summary": "x"}\''
    options = RunOptions(queues=("q",), command=agent, until_done=True, poll_s=30)
    runner = Runner(swarm, options)
    threading.Timer(0.5, runner.drain).start()
    started = time.monotonic()
    assert runner.run() == []
    took = time.monotonic() - started
    assert took < 5, f"the drained pool ran {took:.1f}s (its poll is 30 s)"


def test_a_task_settled_elsewhere_is_seen_at_the_next_poll(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """What the pool cannot see itself (another worker's task settled) it sees at its next
    look: every --poll seconds."""
    swarm.post_task("q", "held by another worker")
    held = swarm.claim("q", worker="elsewhere", lease_s=30)
    assert held is not None
    reported: list[float] = []

    def report_later() -> None:
        time.sleep(0.6)
        swarm.report(held.id, held.token, {"summary": "done elsewhere"})
        reported.append(time.time())

    reporter = threading.Thread(target=report_later)
    reporter.start()
    out = cli("--json", "run", "--queue", "q", "--exec", _agent(tmp_path, "print('x')"),
              "--until-done", "--poll", "0.2", expect=3)  # fmt: skip
    returned = time.time()
    reporter.join()
    assert json.loads(out.stdout)["claimed"] == 0
    after = returned - reported[0]
    assert after < 0.7, f"the run ended {after:.2f}s after the task settled (--poll 0.2)"


@pytest.mark.parametrize("value", ["0", "-1", "61", "nan"])
def test_poll_takes_seconds_above_zero_to_sixty(cli: Cli, swarm: Swarm, value: str) -> None:
    swarm.post_task("q", "not claimed")
    out = cli("run", "--queue", "q", "--exec", "true", "--poll", value, expect=2)
    assert f"{value!r} is not a number of seconds above 0 to 60" in out.stderr
    assert swarm.queue_stats()["q"]["pending"] == 1


@pytest.mark.parametrize("poll_s", [0.0, -1.0, 61.0, float("nan")])
def test_a_pool_refuses_a_poll_out_of_bounds(swarm: Swarm, poll_s: float) -> None:
    """Zero spun the slots on claims that never wait; a negative poll failed every claim."""
    options = RunOptions(queues=("q",), command="true", poll_s=poll_s)
    with pytest.raises(ValidationError, match="give seconds above 0, at most 60"):
        Runner(swarm, options)
