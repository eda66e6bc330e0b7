"""A failed run's failure whose reply was lost, taken by Redis all the same: the pool's next
try of it (a request of its own, its own op id) is refused for the lease that failure ended.
The pool reads the task back and, finding the failure taken (``failure_taken``: one failure
more than its lease had, its error), says the run FAILED, recorded: its cost is held once, in
the task's ``failed_usage``, and a pipeline counts it once (not again as a run no record
holds, as it counts a LOST one).

The lost reply is played on a real server: the handle lets the failure's script run in
Redis, then raises ``ConnectionFailed`` (``sent``) as a reply lost to an outage does."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm._pipeline import Pipeline, load_plan
from redis_swarm._pipeline.report import read_passes, status_json
from redis_swarm._protocol import Batch, Call, items_of
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions

from .test_pipeline_uncounted_costs import _plan

PY = sys.executable
SWARM = "fail-lost-reply"
QUEUE = "work"

# An agent in Claude's JSON whose first run fails at a cost of $1 (exit code 1; a counter
# file counts its runs), and whose later runs find something for $0.10.
FAILING_ONCE = r"""
import json, os, sys
sys.stdin.read()
counter = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker-runs")
runs = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(runs + 1))
if runs == 0:
    print(json.dumps({"type": "result", "is_error": True, "result": "it broke",
                      "total_cost_usd": 1.0}))
    sys.exit(1)
print(json.dumps({"type": "result", "is_error": False, "total_cost_usd": 0.1,
                  "result": json.dumps({"summary": "found"})}))
"""


class _LosingFailReply(Swarm):
    """A handle whose first task failure runs in Redis and then has its reply lost: it
    raises ``ConnectionFailed`` (``sent``: the request reached the server) as an outage
    that hid the reply does. ``lost`` counts the replies it lost."""

    def __init__(self, url: str, *, swarm: str) -> None:
        super().__init__(url, swarm=swarm)
        self.lost = 0

    def _attempt(self, request: Any) -> Any:
        reply = super()._attempt(request)
        if self.lost or not isinstance(request, Call | Batch):
            return reply
        if any(_a_failure(item) for item in items_of(request)):
            self.lost += 1
            raise ConnectionFailed("the failure's reply was lost (the test's)", sent=True)
        return reply


def _a_failure(item: object) -> bool:
    # (task_update's ARGV[3] is its action: lua/task_update.lua)
    return isinstance(item, Call) and item.script == "task_update" and item.args[2] == "fail"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm=SWARM) as handle:
        yield handle


def test_a_failure_taken_whose_reply_was_lost_is_failed_and_held_once(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """The run fails ($1); its failure is taken and its reply lost; the next try is refused
    (the lease gone with the failure). The outcome is FAILED, not LOST, and the task holds
    one failure and the run's $1 once."""
    script = tmp_path / "agent.py"
    script.write_text(FAILING_ONCE)
    task = swarm.post_task(QUEUE, "the one task")
    notes: list[str] = []
    handle = _LosingFailReply(redis_url, swarm=SWARM)
    with handle:
        options = RunOptions(
            queues=(QUEUE,), command=f"{PY} {script}", max_tasks=1, poll_s=0.2, worker="pool"
        )
        pool = Runner(handle, options, on_progress=notes.append)
        pool.run()
        assert handle.lost == 1, notes
    [outcome] = pool.outcomes
    assert outcome.status is OutcomeStatus.FAILED, (outcome, notes)
    assert "it broke" in outcome.detail, outcome
    assert outcome.usage is not None and outcome.usage.cost_usd == pytest.approx(1.0)
    stored = swarm.get_task(task.id)
    assert stored.failures == 1, stored
    assert stored.failed_usage is not None, stored
    assert stored.failed_usage.cost_usd == pytest.approx(1.0), stored
    assert stored.last_error is not None and "it broke" in stored.last_error, stored


def test_a_pipeline_counts_a_failure_taken_whose_reply_was_lost_once(
    redis_url: str, swarm: Swarm, tmp_path: Path
) -> None:
    """The worker's first run fails ($1), its failure taken and its reply lost; its second
    run finds ($0.10), and the synthesis costs $0.50: the run spent $1.60, its failed runs
    $1, not $2 (the $1 again as a run no record holds)."""
    path = _plan(tmp_path, FAILING_ONCE, ["look at A"])
    said: list[str] = []
    handle = _LosingFailReply(redis_url, swarm="test")
    with handle:
        run = Pipeline(handle, load_plan(path), say=said.append)
        run.run()
        assert handle.lost == 1, said
        assert run.spent()[0] == pytest.approx(1.6), said
    with Swarm(redis_url, swarm="test") as reader:
        status = status_json(run.plan, read_passes(reader, run.plan))
    assert status["done"], said
    assert status["cost_usd"] == pytest.approx(1.6), said
    assert status["failed_cost_usd"] == pytest.approx(1.0), said
