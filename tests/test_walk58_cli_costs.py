"""A docs walk found: a per-model cost line of ``swarm status --pass`` may sum priced runs and
runs that reported no cost (a Codex finding naming no model and a failed Claude run, both
``unknown``), and shows the sum as if whole, while the total line says how many runs
reported no cost. The core counts the runs behind each model's figures and those of them unpriced
(``PassCosts.model_runs``), and the line says so as the total does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._usage import Usage

from ._cli import Cli

PASS = "walk58"


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


def _claimed(swarm: Swarm, worker: str) -> tuple[str, str]:
    task = swarm.claim(["q"], worker=worker)
    assert task is not None and task.token is not None
    return task.id, task.token


def _mixed_pass(swarm: Swarm) -> None:
    """Four runs: a priced Claude finding, an unpriced one of no usage, a Codex finding with
    tokens and no cost or model, and a failed Claude run at $0.01 naming no model."""
    swarm.post_tasks([{"queue": "q", "description": d, "pass_name": PASS} for d in "abcd"])
    task, token = _claimed(swarm, "w1")
    priced = Usage("claude-json", cost_usd=0.02, tokens_in=300, tokens_out=30)
    swarm.report(task, token, {"summary": "a"}, model="claude-sonnet", usage=priced)
    task, token = _claimed(swarm, "w2")
    swarm.report(task, token, {"summary": "b"}, model="claude-sonnet")
    task, token = _claimed(swarm, "w3")
    codex = Usage("codex-jsonl", tokens_in=500, cached_in=100, tokens_out=50)
    swarm.report(task, token, {"summary": "c"}, usage=codex)
    task, token = _claimed(swarm, "w4")
    failed = Usage("claude-json", cost_usd=0.01, tokens_in=10, tokens_out=5)
    swarm.fail(task, token, "the CLI crashed", usage=failed)


def test_a_model_line_summing_unpriced_runs_is_marked(handle: Swarm, redis_url: str) -> None:
    _mixed_pass(handle)
    out = Cli(redis_url)("status", "--pass", PASS).stdout
    assert "(2 of 4 runs reported no cost)" in out  # the total line
    (line,) = [x for x in out.splitlines() if x.startswith("  unknown ")]
    assert "$0.0100 · 510 in (100 cached) / 55 out (1 of 2 runs reported no cost)" in line
    (sonnet,) = [x for x in out.splitlines() if x.startswith("  claude-sonnet ")]
    assert sonnet.endswith("(1 of 2 runs reported no cost)"), sonnet
    data = Cli(redis_url).json("status", "--pass", PASS)
    assert data["pass"]["costs"]["model_runs"] == {
        "claude-sonnet": {"runs": 2, "runs_without_cost": 1},
        "unknown": {"runs": 2, "runs_without_cost": 1},
    }
