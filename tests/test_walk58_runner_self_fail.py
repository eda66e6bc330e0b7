"""``swarm run`` when its agent failed its own task (``swarm task fail`` with the run's token)
and then printed what the run cost: the agent's fail stands (its last word), the run's cost
reaches the task's ``failed_usage`` (added to that failure when its fail gave none:
``add_failed_usage``), and the run's line says where that cost went. Before, it said "not
on its finding" (a failed task has none) whether or not the agent's fail recorded a cost,
and then that the cost was not in the task's. Real server, scripted agents."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from redis_swarm import Swarm, Task
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions, TaskOutcome

from ._cli import subprocess_env, swarm_bin

QUEUE = "work"
# Claude's JSON result, printed after the agent failed its task itself.
RESULT = '{"type": "result", "is_error": false, "result": "done", "total_cost_usd": 0.25}'


def _self_failing_pool(
    swarm: Swarm, task_id: str, agent_first: str, usage: str
) -> tuple[TaskOutcome, Task]:
    """One run of a pool whose agent runs ``agent_first``, then fails its task itself (with
    ``usage``, the flag, or none), then prints Claude's result: its outcome and the task."""
    agent = (
        f"cat >/dev/null; {agent_first}"
        f'swarm task fail "$SWARM_TASK_ID" --token "$SWARM_TASK_TOKEN" '
        f"--error boom{usage} >/dev/null; echo '{RESULT}'"
    )
    with swarm:
        pool = Runner(swarm, RunOptions(queues=(QUEUE,), command=agent, max_tasks=1))
        pool.run()
        (outcome,) = pool.outcomes
        return outcome, swarm.get_task(task_id)


@pytest.mark.parametrize("given", [None, '{"cost_usd": 0.25}'])
def test_a_self_failed_run_says_where_its_cost_went(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str | None
) -> None:
    """Without ``--usage`` on its fail, the pool adds the run's cost to that failure, and
    the line says it is in the task's failed cost; with it, the task records what the fail
    gave, and the line says only that the run's total counts it. Either way the outcome is
    the agent's: FAILED, retried, one failure."""
    name = f"selffail-{time.monotonic_ns()}"
    swarm = Swarm(redis_url, swarm=name)
    (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one", "max_attempts": 3}])
    _agent_env(redis_url, name, tmp_path, monkeypatch)
    usage = f" --usage '{given}'" if given else ""
    outcome, task = _self_failing_pool(swarm, posted.id, "", usage)
    assert outcome.status is OutcomeStatus.FAILED, outcome
    assert "the agent failed its task itself: boom; its queue retries it" in outcome.detail
    assert "finding" not in outcome.detail, outcome.detail
    assert "its run cost $0.2500, counted in this run's total" in outcome.detail
    assert task.failures == 1 and task.last_error == "boom", task
    assert task.failed_run_count == 1 and task.status.value == "delayed", task
    if given is None:
        assert task.failed_usage is not None and task.failed_usage.cost_usd == 0.25, task
        assert outcome.detail.endswith(
            "counted in this run's total and in its task's failed cost (failed_usage)"
        ), outcome.detail
    else:
        assert task.failed_usage is not None and task.failed_usage.cost_usd == 0.25, task
        assert outcome.detail.endswith("counted in this run's total"), outcome.detail


def test_another_attempts_late_cost_does_not_stand_for_this_runs(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt failed saying nothing of its cost, and its cost arrived late, while
    the pool's agent ran the second attempt (``add_failed_usage`` with the first lease); the
    agent then failed its own attempt without ``--usage``. The pool adds that run's cost:
    both runs are in ``failed_usage``. Before, the task's ``failed_usage`` having changed
    since the claim was read as this agent's fail having given its cost, and it was lost."""
    name = f"latecost-{time.monotonic_ns()}"
    swarm = Swarm(redis_url, swarm=name)
    (posted,) = swarm.post_tasks([{"queue": QUEUE, "description": "one", "max_attempts": 3}])
    first = swarm.claim(QUEUE, worker="earlier")
    assert first is not None and first.token is not None
    swarm.fail(first.id, first.token, "first run failed", retry_after_s=0)
    _agent_env(redis_url, name, tmp_path, monkeypatch)
    late = (
        f"from redis_swarm import Swarm, Usage; Swarm({redis_url!r}, swarm={name!r})"
        f".add_failed_usage({first.id!r}, {first.token!r}, "
        "Usage(source='claude-json', cost_usd=0.1))"
    )
    outcome, task = _self_failing_pool(
        swarm, posted.id, f'{sys.executable} -c "{late}" || exit 7; ', ""
    )
    assert outcome.status is OutcomeStatus.FAILED, outcome
    assert task.failures == 2 and task.failed_attempt == 2, task
    assert task.failed_usage is not None and task.failed_usage.cost_usd == pytest.approx(0.35)
    assert outcome.detail.endswith(
        "counted in this run's total and in its task's failed cost (failed_usage)"
    ), outcome.detail


def _agent_env(redis_url: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in subprocess_env(redis_url, name, swarm_bin(tmp_path / "bin").parent).items():
        monkeypatch.setenv(key, value)
