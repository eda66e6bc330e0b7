"""A walkthrough of docs/pipeline.md and docs/agents.md with scripted agents printing Claude
Code's JSON result: a worker that reports its task itself has its run's cost counted by the
pipeline (set on its finding, once, a rerun too); the runner's warning about an agent's
output is said in a pipeline's progress, once per kind; tasks cancelled by hand are counted;
an error names the plan's ``[workers] exec`` and says when a planner's answer is at fault;
``swarm run`` with no agent run says so; an unknown pipeline's name lists near matches first."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline.names import plan_owner

from ._cli import Cli
from .test_pipeline_run import SYNTH, short_backoff, three_passes

PY = sys.executable

# A worker that reports its task itself (no usage of its own, unless its task says OWN),
# then prints Claude's result with what the run cost ($0.01). CANCEL_ON: the worker of a
# task holding that text cancels its task instead.
SELF_REPORT = r"""
import json, os, sys
from redis_swarm import Swarm, Usage
prompt = sys.stdin.read()
task = os.environ["SWARM_TASK_ID"]
cancel = os.environ.get("CANCEL_ON")
with Swarm(os.environ["SWARM_URL"], swarm=os.environ["SWARM_NAME"]) as swarm:
    if cancel and cancel in prompt:
        swarm.cancel(task)
    else:
        own = Usage("reported", cost_usd=0.5) if "OWN" in prompt else None
        swarm.report(task, os.environ["SWARM_TASK_TOKEN"],
                     {"summary": "found for " + task}, usage=own)
print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                  "result": "reported it", "total_cost_usd": 0.01,
                  "usage": {"input_tokens": 100, "output_tokens": 10}}))
"""

# A worker answering in text though its command asks for JSON output.
TEXT_WORKER = r"""
import json, os, sys
sys.stdin.read()
print(json.dumps({"summary": "found for " + os.environ["SWARM_TASK_ID"]}))
"""


def write_plan(tmp_path: Path, worker: str, tasks: list[str], name: str = "walk") -> Path:
    (tmp_path / "synth.py").write_text(SYNTH)
    path = tmp_path / "plan.toml"
    path.write_text(
        f"""
name = "{name}"
question = "Where?"
max_attempts = 2

[workers]
exec = "{worker}"
concurrency = 2

[synthesizer]
exec = "{PY} {tmp_path}/synth.py"

[[passes]]
name = "One"
tasks = {json.dumps(tasks)}
"""
    )
    return path


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- 1. a worker that reports its task itself


def test_a_worker_reporting_itself_has_its_runs_cost_counted_once(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    (tmp_path / "worker.py").write_text(SELF_REPORT)
    path = write_plan(tmp_path, f"{PY} {tmp_path}/worker.py", ["Find A", "Find B", "Find OWN"])
    out = cli("pipeline", "run", str(path))
    # 3 worker runs ($0.01 each by their CLI; the one that gave its own $0.50 keeps it) and
    # the synthesis ($0.05): every run with a cost
    assert "pipeline walk: done, $0.5700 spent" in out.stdout, out.stdout
    assert "reported no cost" not in out.stdout
    status = cli.json("pipeline", "status", "walk")
    assert status["cost_usd"] == pytest.approx(0.57)
    assert (status["runs"], status["runs_without_cost"]) == (4, 0)
    # the core's sum of the pass says the same: each kept run prices its finding (not one
    # finding without a cost and a run more)
    costs = swarm.pass_costs(status["passes"][0]["label"])
    assert costs.total["cost_usd"] == pytest.approx(0.57)
    assert (costs.runs, costs.runs_without_cost, costs.unrecorded_runs) == (4, 0, 0)
    # the report shows each run's cost on its finding
    report = cli("pipeline", "report", "walk").stdout
    assert report.count("$0.0100") >= 2, report
    # a rerun counts nothing twice
    again = cli.json("pipeline", "run", str(path))
    assert again["done"] and again["cost_usd"] == pytest.approx(0.57)
    assert (again["runs"], again["runs_without_cost"]) == (4, 0)


def test_a_budget_counts_the_runs_of_workers_that_reported_themselves(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A budget of $0.015 is spent by the second worker run: the pass's other tasks are
    not claimed (one at a time)."""
    (tmp_path / "worker.py").write_text(SELF_REPORT)
    tasks = [f"Find {n}" for n in range(6)]
    path = write_plan(tmp_path, f"{PY} {tmp_path}/worker.py", tasks)
    text = path.read_text().replace("concurrency = 2", "concurrency = 1")
    path.write_text("max_cost_usd = 0.015\n" + text)  # (a top-level key: before the tables)
    out = cli("--json", "pipeline", "run", str(path), expect=1)
    summary = json.loads(out.stdout)
    assert "the budget is spent" in (summary["stopped_by"] or ""), summary
    assert summary["passes"][0]["completed"] == 2


def test_swarm_run_counts_a_self_reported_runs_cost(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """``swarm run``'s last line counts the run of an agent that reported its task itself
    (its outcome keeps what its CLI said)."""
    (tmp_path / "worker.py").write_text(SELF_REPORT)
    swarm.post_task("q", "Find A")
    out = cli("run", "--queue", "q", "--until-done", "--exec", f"{PY} {tmp_path}/worker.py")
    assert "agent runs: $0.0100" in out.stdout, out.stdout


# --- 2. the runner's warnings in a pipeline's progress


def test_a_pipeline_says_the_runners_warning_once(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(TEXT_WORKER)
    worker = f"{PY} {tmp_path}/worker.py --output-format json"
    path = write_plan(tmp_path, worker, ["Find A", "Find B", "Find C"])
    out = cli("pipeline", "run", str(path))
    said = [line for line in out.stderr.splitlines() if "asks for JSON output" in line]
    assert len(said) == 1, out.stderr
    assert said[0].startswith("warning: pass 1/1 'One': a worker run's output: the agent "), said
    assert "what the run cost unknown" in said[0]


# --- 3. tasks cancelled by hand


def test_tasks_cancelled_by_hand_are_counted(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(SELF_REPORT)
    path = write_plan(tmp_path, f"{PY} {tmp_path}/worker.py", ["Find A", "Find ZAP"])
    out = cli("pipeline", "run", str(path), env={"CANCEL_ON": "ZAP"})
    assert "settled, 1 completed, 0 dead, 1 cancelled, 1 finding" in out.stderr, out.stderr
    header = next(line for line in out.stdout.splitlines() if "posted" in line)
    assert "cancelled" in header, out.stdout
    status = cli.json("pipeline", "status", "walk")
    assert (status["posted"], status["completed"], status["cancelled"]) == (2, 1, 1)
    assert status["passes"][0]["cancelled"] == 1 and status["open"] == 0
    report = cli("pipeline", "report", "walk").stdout
    assert "### Cancelled tasks" in report and "Find ZAP" in report
    assert "| completed | dead | cancelled | findings |" in report


# --- 4. wording


def test_every_run_failing_names_the_plans_workers_exec(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    (tmp_path / "worker.py").write_text("import sys\nsys.exit('not logged in')\n")
    path = write_plan(tmp_path, f"{PY} {tmp_path}/worker.py", [f"Find {n}" for n in range(5)])
    short_backoff(swarm, path)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "every run fails with" in out.stderr, out.stderr
    assert "Fix the agent command (the plan's [workers] exec)" in out.stderr
    assert "--exec" not in out.stderr


def test_a_planner_answer_with_no_task_list_is_said_to_be_the_fault(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = three_passes(tmp_path, planner="echo 'no tasks today'")
    short_backoff(swarm, path)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "tries 1 to 3: refused: it holds no JSON array" in out.stderr
    assert "Its answer was refused, not its run: check the model it runs" in out.stderr
    assert "the pass's plan" in out.stderr and "Fix the planner command" not in out.stderr


# --- 5. cosmetic


def test_swarm_run_with_no_agent_run_says_so(cli: Cli, tmp_path: Path) -> None:
    out = cli("run", "--queue", "empty.q", "--until-done", "--exec", "true", expect=None)
    assert "no agent ran" in out.stdout and "cost unknown" not in out.stdout, out.stdout


def test_an_unknown_pipelines_near_match_is_listed_first(cli: Cli, swarm: Swarm) -> None:
    names = [f"audit-{n:02d}" for n in range(12)] + ["stdlib-audit"]
    for name in names:
        swarm.publish_context(plan_owner(name), f'name = "{name}"\n', source="plan.toml")
    out = cli("pipeline", "status", "stdlib-audi", expect=1)
    assert "(the pipelines: 'stdlib-audit', " in out.stderr, out.stderr
