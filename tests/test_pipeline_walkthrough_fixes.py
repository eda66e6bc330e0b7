"""A fresh-clone walkthrough of docs/pipeline.md, its defects in a pipeline's bookkeeping and
costs: ``swarm pipeline retire`` frees a synthesizer task (it is bookkeeping, of no shard);
every cost view counts a synthesizer's runs exactly, those of a task given back after it
died too (``Task.failed_run_count``: a requeue sets ``failures`` back to 0); a synthesizer
task's own costs count its synthesis as its run that was taken, and its closing finding as
none; a refusal cut in a progress line says it was cut; ``pipeline check`` says a missing
program once, naming every role that runs it; the warning that no run reported a cost says
why from what the plan's commands are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import Swarm
from redis_swarm._models import RetiredQuestions
from redis_swarm._pipeline import load_plan
from redis_swarm._pipeline.agents import ERROR_SHOWN, _with_cost
from redis_swarm._pipeline.names import synthesis_id, synthesis_queue, synthesis_task_id
from redis_swarm._pipeline.retiring import PipelineRetired
from redis_swarm._usage import Usage
from redis_swarm.cli._pipeline import _retired_line

from ._cli import Cli
from ._invariants import check_swarm
from .test_pipeline_cost import ONE_PASS, write_plan

# ``ONE_PASS`` without a budget, its pass reading a context (as docs/pipeline.md's do)
PLAN = (
    ONE_PASS.replace("max_cost_usd = 0.9\n", "")
    .replace("[[passes]]", '[[contexts]]\nowner = "notes"\npaths = ["notes.md"]\n\n[[passes]]')
    .replace('tasks = ["task X"]', 'tasks = ["task X"]\ncontext = "notes"')
)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _synthesized_after_refusals(cli: Cli, swarm: Swarm, tmp_path: Path, bad: int) -> Path:
    """Pipeline "cost" run until its synthesizer's run ``bad + 1`` (each $0.50) is taken:
    its first ``bad`` runs cite a bogus id; three refused in one run kill its synthesizer
    task, which the next run gives back."""
    (tmp_path / "notes.md").write_text("# Notes\n\nWhat the workers read.\n")
    path = write_plan(tmp_path, PLAN)
    swarm.configure_queue(synthesis_queue(load_plan(path)), retry_backoff_s=0.05)
    env = {"BAD_TRIES": str(bad)}
    while not json.loads(cli("--json", "pipeline", "run", str(path), expect=None, env=env).stdout)[
        "done"
    ]:
        assert int((tmp_path / "synth-runs").read_text()) <= bad
    assert (tmp_path / "synth-runs").read_text() == str(bad + 1)
    return path


def test_pipeline_retire_frees_the_synthesizer_task(
    cli: Cli, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    """A synthesizer refused once, then taken: its task (completed once the synthesis is
    written, with a finding saying so) is the pipeline's bookkeeping, and goes with it; no
    task is left in the synthesizer's queue, none said to be a pass's."""
    path = _synthesized_after_refusals(cli, swarm, tmp_path, bad=1)
    plan = load_plan(path)
    task = swarm.get_task(synthesis_task_id(plan, 0))
    assert task.status == "completed"
    out = cli.json("pipeline", "retire", "cost", "--older-than", "0")
    assert (out["tasks"], out["other"]) == (1, 0)  # (the one lease task: kept, the last)
    assert "of a pass kept" not in cli("pipeline", "retire", "cost", "--older-than", "0").stdout
    assert not any(swarm.queue_stats().get(synthesis_queue(plan), {}).values())
    assert not swarm.list_tasks(queue=synthesis_queue(plan)).items
    check_swarm(raw, "test")
    # (it named no context: no shard counted it, nor its finding)
    assert task.parent is None


def test_the_retire_line_says_the_records_of_runs_no_other_record_held() -> None:
    queue = RetiredQuestions("pipeline.cost.plan", 1, 1)
    done = PipelineRetired("cost", 1, False, [queue], unrecorded=2)
    assert _retired_line(done).startswith(
        "retired the bookkeeping of pipeline cost: 1 task, 1 finding, 2 records of runs no "
        "other record held ("
    )


def test_runs_of_a_synthesizer_task_given_back_are_counted_exactly(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Three refused runs kill the synthesizer task; the next run gives it back (its
    failures set back to 0) and its fourth run is taken: 4 synthesizer runs at $0.50 and a
    worker's at $0.10, 5 runs, in every view."""
    path = _synthesized_after_refusals(cli, swarm, tmp_path, bad=3)
    plan = load_plan(path)
    status = cli.json("pipeline", "status", "cost")
    assert (status["runs"], status["runs_without_cost"]) == (5, 0)
    assert status["passes"][0]["runs"] == 5
    costs = swarm.pass_costs("cost: One")
    assert (costs.runs, costs.synthesis_runs) == (5, 4)
    assert costs.synthesis["cost_usd"] == pytest.approx(2.0)
    shown = cli("status", "--pass", "cost: One").stdout
    assert "of it, synthesis: $2.0000" in shown and "(4 runs)" in shown
    task = swarm.get_task(synthesis_task_id(plan, 0))
    assert (task.failures, task.failed_run_count) == (0, 3)


def test_a_synthesizer_tasks_costs_are_its_runs(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Its costs: the refused runs and the synthesis (the run that was taken), every one
    with its cost; the finding that closed it (no run: it says the synthesis is written) is
    none of them. A pass's costs count the synthesis once."""
    path = _synthesized_after_refusals(cli, swarm, tmp_path, bad=1)
    plan = load_plan(path)
    shown = cli("task", "show", synthesis_task_id(plan, 0)).stdout
    assert "reported no cost" not in shown
    assert "$1.0000" in shown and f"synthesis {synthesis_id(plan, 0)}" in shown
    spent = swarm.task_costs(synthesis_task_id(plan, 0))
    assert spent.runs() == (2, 0)
    assert spent.total["cost_usd"] == pytest.approx(1.0)
    assert spent.synthesis is not None and spent.synthesis.id == synthesis_id(plan, 0)
    tree = cli.json("lineage", synthesis_task_id(plan, 0))
    assert (tree["runs"], tree["runs_without_cost"]) == (2, 0)
    assert tree["total"]["cost_usd"] == pytest.approx(1.0)
    # the pass: a worker ($0.10) and two synthesizer runs, the synthesis counted once
    assert swarm.pass_costs("cost: One").total["cost_usd"] == pytest.approx(1.1)
    assert cli.json("pipeline", "status", "cost")["cost_usd"] == pytest.approx(1.1)


def test_a_reason_cut_in_a_progress_line_says_it_was_cut() -> None:
    reason = "refused: it cited the 2 finding(s) (" + "x" * ERROR_SHOWN + ")\nand more"
    usage = Usage("claude", cost_usd=0.0123)
    said = _with_cost(reason, usage)
    cut, _, cost = said.partition(" (this run: ")
    assert cut.endswith("…") and len(cut) == ERROR_SHOWN and "\n" not in said
    assert cost == "$0.0123)"


MISSING = """
name = "nowhere"

[workers]
exec = "no-such-agent-cli -p"

[planner]
exec = "no-such-agent-cli -p"

[synthesizer]
exec = "no-such-agent-cli -p"

[[passes]]
name = "One"
plan = "Look"
"""


def test_pipeline_check_says_a_missing_program_once(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(MISSING)
    out = cli("pipeline", "check", str(path), expect=2)
    assert out.stderr.count("'no-such-agent-cli' is not found") == 1, out.stderr
    assert out.stderr.count("PATH (") == 1
    assert "has 1 problem(s)" in out.stderr
    assert "([workers] exec, [planner] exec and [synthesizer] exec)" in out.stderr


FAILING = """
name = "failing"
max_cost_usd = 5
max_attempts = 1

[workers]
exec = "sh -c 'cat >/dev/null; exit 1'"
concurrency = 1

[synthesizer]
exec = "sh -c 'cat >/dev/null; exit 1'"

[[passes]]
name = "One"
tasks = ["a", "b", "c", "d"]
"""


def test_the_no_cost_warning_says_why_from_the_plans_commands(cli: Cli, tmp_path: Path) -> None:
    """Workers of ``sh -c '...; exit 1'``: no word of Codex or Gemini CLI; the warning names
    sh and why a run of it may report no cost."""
    path = tmp_path / "plan.toml"
    path.write_text(FAILING)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "cannot stop this run" in out.stderr, out.stderr
    assert "Codex" not in out.stderr and "Gemini" not in out.stderr
    assert "a run of sh reports one only when its output says it" in out.stderr
