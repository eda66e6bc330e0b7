"""``swarm lineage`` of a pipeline's records: a synthesis ends with what it cost in all (its
run, its synthesizer's refused runs, the findings it cites), a task shows what its failed
runs cost, a pass without a context says so; and the pipeline's planner and synthesizer
leave no agent name registered behind them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import load_plan, synthesis_id
from redis_swarm._usage import Usage

from ._cli import Cli
from .test_pipeline_cost import ONE_PASS, run_json, write_plan

TWO_TASKS = ONE_PASS.replace("max_cost_usd = 0.9", "").replace(
    'tasks = ["task X"]', 'tasks = ["a", "b"]'
)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_a_synthesis_ends_with_what_it_cost_in_all(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Two findings at $0.10 (1,000 in / 100 out), a refused synthesizer run and the
    synthesis at $0.50 each (5,000 in / 300 out): $1.20 in all, each part counted once."""
    path = write_plan(tmp_path, TWO_TASKS)
    assert run_json(cli, path, BAD_TRIES="1")["done"]
    sid = synthesis_id(load_plan(path), 0)
    tree = cli.json("lineage", sid)
    assert tree["failed_runs"] == {
        "cost_usd": 0.5, "tokens_in": 5000, "cached_in": None, "tokens_out": 300
    }  # fmt: skip
    total = {"cost_usd": 1.2, "tokens_in": 12000, "cached_in": None, "tokens_out": 800}
    assert tree["total"] == total
    assert cli.json("lineage", "cost")["passes"][0]["total"] == total
    lines = cli("lineage", sid).stdout.splitlines()
    assert lines[1] == "  failed runs: $0.5000 · 5,000 in / 300 out"
    assert lines[-2] == "  total: $1.2000 · 12,000 in / 800 out"
    # the pass reads no context: its findings say so
    assert sum("attempt 1, no context, $0.1000" in line for line in lines) == 2
    assert "@" not in "\n".join(lines)


def test_a_total_no_agent_reported_a_cost_for_is_unknown(cli: Cli, tmp_path: Path) -> None:
    """Codex reports tokens, no cost: the total's cost is null ('-'), its tokens summed."""
    codex = TWO_TASKS.replace("worker.py", "codex.py").replace("synth.py", "codex.py")
    path = write_plan(tmp_path, codex)
    assert run_json(cli, path)["done"]
    sid = synthesis_id(load_plan(path), 0)
    tree = cli.json("lineage", sid)
    assert tree["failed_runs"] is None
    assert tree["total"] == {
        "cost_usd": None, "tokens_in": 6000, "cached_in": 1500, "tokens_out": 300
    }  # fmt: skip
    text = cli("lineage", sid).stdout
    assert "\n  total: cost unknown · 6,000 in (1,500 cached) / 300 out\n" in text
    assert "failed runs:" not in text


def test_a_task_shows_what_its_failed_runs_cost(cli: Cli, swarm: Swarm) -> None:
    task = swarm.post_task("q", "look into it", parent="notes")
    assert cli.json("lineage", task.id)["failed_runs"] is None
    assert "failed runs" not in cli("lineage", task.id).stdout
    held = swarm.claim(["q"], worker="w1")
    assert held is not None and held.token is not None
    usage = Usage("claude-json", cost_usd=0.02, tokens_in=1500, tokens_out=40)
    swarm.fail(held.id, held.token, "is_error", usage=usage)
    tree = cli.json("lineage", task.id)
    failed = {"cost_usd": 0.02, "tokens_in": 1500, "cached_in": None, "tokens_out": 40}
    assert tree["failed_runs"] == failed == tree["total"]
    lines = cli("lineage", task.id).stdout.splitlines()
    assert lines[1] == "  failed runs: $0.0200 · 1,500 in / 40 out"
    assert lines[2] == "  total: $0.0200 · 1,500 in / 40 out"


def test_a_synthesis_total_counts_its_findings_tasks_failed_runs(cli: Cli, swarm: Swarm) -> None:
    """A finding that took a failed run first ($0.02) then its own ($0.10), cited by a
    synthesis ($0.50): $0.62 in all, the failed run shown under the finding's task."""
    swarm.configure_queue("q", retry_backoff_s=0.01)  # a short backoff: the retry matters
    task = swarm.post_task("q", "look into it")
    first = swarm.claim(["q"], worker="w1")
    assert first is not None and first.token is not None
    swarm.fail(first.id, first.token, "is_error", usage=Usage("claude-json", cost_usd=0.02,
               tokens_in=1500, tokens_out=40))  # fmt: skip
    second = swarm.claim(["q"], worker="w1", wait_s=3)  # after the backoff
    assert second is not None and second.token is not None and second.id == task.id
    finding = swarm.report(task.id, second.token, {"summary": "found"}, usage=Usage(
        "claude-json", cost_usd=0.1, tokens_in=1000, tokens_out=100))  # fmt: skip
    synthesis = swarm.synthesize("notes", "one", "Found [x]", [finding.id],
                                 usage=Usage("claude-json", cost_usd=0.5, tokens_in=5000,
                                             tokens_out=300))  # fmt: skip
    tree = cli.json("lineage", synthesis.id)
    failed = {"cost_usd": 0.02, "tokens_in": 1500, "cached_in": None, "tokens_out": 40}
    assert tree["findings"][0]["task"]["failed_runs"] == failed
    assert tree["total"] == {
        "cost_usd": 0.62, "tokens_in": 7500, "cached_in": None, "tokens_out": 440
    }  # fmt: skip
    lines = cli("lineage", synthesis.id).stdout.splitlines()
    assert "      failed runs: $0.0200 · 1,500 in / 40 out" in lines
    assert lines[-2] == "  total: $0.6200 · 7,500 in / 440 out"
    # the task's own lineage says its failed runs once, not again under its finding
    assert cli("lineage", task.id).stdout.count("failed runs:") == 1


PLANNED = '\n[planner]\nexec = "PY AGENTS/planner.py"\n\n[[passes]]\nname = "Two"\nplan = "Dig"\n'


@pytest.mark.parametrize("budget", [None, 0.8], ids=["done", "budget-spent"])
def test_the_planner_and_synthesizer_leave_no_agent_behind(
    cli: Cli, swarm: Swarm, tmp_path: Path, budget: float | None
) -> None:
    """A planner whose first answer is refused and a synthesizer whose first is refused
    both claim their pass's task under their own name: done, or stopped by the budget
    after the planner's refused run, neither name stays registered (nor the pool's)."""
    body = ONE_PASS.replace("max_cost_usd = 0.9", "") + PLANNED
    if budget is not None:
        body = f"max_cost_usd = {budget}\n" + body
    path = write_plan(tmp_path, body)
    bad = "1" if budget is None else "0"  # with a budget: pass 1 costs $0.60, not $1.10
    summary = run_json(cli, path, "--worker", "pl", expect=0 if budget is None else 1,
                       BAD_TRIES=bad)  # fmt: skip
    assert summary["done"] is (budget is None)
    assert (tmp_path / "planner-runs").read_text() == ("2" if budget is None else "1")
    assert [a.id for a in swarm.agents()] == []
