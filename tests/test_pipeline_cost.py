"""What ``swarm pipeline`` counts as spent: every agent run, the synthesizer's and planner's
refused ones too, kept in the swarm so that a resumed run (a new Pipeline) still counts
them against ``max_cost_usd``; why each refused try was refused; a cost no agent reported
shown as unknown, never as $0.0000; sums of money without float noise."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import Pipeline, load_plan
from redis_swarm._pipeline.names import synthesis_queue, synthesis_task_id

from ._cli import Cli

PY = sys.executable

# A worker in Claude's JSON: a finding costing $0.10 on claude-haiku-4-5.
WORKER = r"""
import json, os, sys
sys.stdin.read()
finding = {"summary": "found for " + os.environ["SWARM_TASK_ID"]}
print(json.dumps({"type": "result", "is_error": False, "result": json.dumps(finding),
                  "total_cost_usd": 0.1, "usage": {"input_tokens": 1000, "output_tokens": 100},
                  "modelUsage": {"claude-haiku-4-5": {"inputTokens": 1000, "outputTokens": 100,
                                                      "costUSD": 0.1}}}))
"""

# A synthesizer costing $0.50 a run whose first BAD_TRIES answers cite [f-bogus] (a counter
# file counts its runs); it keeps each prompt it was given (prompt-N.txt).
SYNTH = r"""
import json, os, re, sys
prompt = sys.stdin.read()
here = os.path.dirname(os.path.abspath(__file__))
counter = os.path.join(here, "synth-runs")
runs = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(runs + 1))
open(os.path.join(here, "prompt-%d.txt" % (runs + 1)), "w").write(prompt)
ids = re.findall(r"^- \[(f-[a-z0-9]+)\]", prompt, re.M)
bad = runs < int(os.environ.get("BAD_TRIES", "0"))
text = "Synthesis: " + ("[f-bogus]" if bad else " ".join("[" + i + "]" for i in ids))
print(json.dumps({"type": "result", "is_error": False, "result": text, "total_cost_usd": 0.5,
                  "usage": {"input_tokens": 5000, "output_tokens": 300},
                  "modelUsage": {"claude-opus-4-1": {"inputTokens": 5000, "outputTokens": 300,
                                                     "costUSD": 0.5}}}))
"""

# Codex's `exec --json` events: tokens, no cost (as a worker: a finding; as a synthesizer:
# every finding of its prompt cited).
CODEX = r"""
import json, re, sys
prompt = sys.stdin.read()
ids = re.findall(r"^- \[(f-[a-z0-9]+)\]", prompt, re.M)
answer = " ".join("[" + i + "]" for i in ids) if ids else json.dumps({"summary": "codex found"})
for event in [{"type": "thread.started", "thread_id": "th1"}, {"type": "turn.started"},
              {"type": "item.completed",
               "item": {"id": "i1", "type": "agent_message", "text": answer}},
              {"type": "turn.completed",
               "usage": {"input_tokens": 2000, "cached_input_tokens": 500,
                         "output_tokens": 100}}]:
    print(json.dumps(event))
"""

# A planner costing $0.50 a run whose first answer is no task list.
PLANNER = r"""
import json, os, sys
sys.stdin.read()
counter = os.path.join(os.path.dirname(os.path.abspath(__file__)), "planner-runs")
runs = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(runs + 1))
text = "I think [maybe" if runs == 0 else json.dumps(["Look deeper"])
print(json.dumps({"type": "result", "is_error": False, "result": text, "total_cost_usd": 0.5}))
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def write_plan(tmp_path: Path, body: str) -> Path:
    for name, text in (("worker.py", WORKER), ("synth.py", SYNTH), ("codex.py", CODEX),
                       ("planner.py", PLANNER)):  # fmt: skip
        (tmp_path / name).write_text(text)
    path = tmp_path / "plan.toml"
    path.write_text(body.replace("AGENTS", str(tmp_path)).replace("PY", PY))
    return path


ONE_PASS = """
name = "cost"
max_cost_usd = 0.9

[workers]
exec = "PY AGENTS/worker.py"
concurrency = 1

[synthesizer]
exec = "PY AGENTS/synth.py"

[[passes]]
name = "One"
tasks = ["task X"]
"""


def run_json(cli: Cli, path: Path, *args: str, expect: int = 0, **env: str) -> dict[str, Any]:
    out = cli("--json", "pipeline", "run", str(path), *args, expect=expect, env=env)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_refused_synthesizer_runs_count_and_survive_a_restart(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A $0.50 synthesizer citing a bogus id twice, under max_cost_usd 0.9: its second
    refused run spends the budget, so the run stops before a third; a new run still counts
    both (they are kept on the synthesizer task in the swarm) and, with the budget raised,
    finishes at $1.60 (a worker at $0.10 and three synthesizer runs)."""
    path = write_plan(tmp_path, ONE_PASS)
    runs = tmp_path / "synth-runs"
    first = run_json(cli, path, expect=1, BAD_TRIES="2")
    assert runs.read_text() == "2" and not first["done"]
    assert "max_cost_usd $0.9" in first["stopped_by"] and "$1.1000" in first["stopped_by"]
    assert first["cost_usd"] == pytest.approx(1.1) and first["failed_cost_usd"] == 1.0
    assert first["passes"][0]["cost_usd"] == pytest.approx(1.1)
    assert first["by_model"]["claude-opus-4-1"]["cost_usd"] == 1.0
    plan = load_plan(path)
    task = swarm.get_task(synthesis_task_id(plan, 0))
    assert task.queue == synthesis_queue(plan) and task.pass_name is None
    assert task.failed_usage is not None and task.failed_usage.cost_usd == 1.0
    assert task.last_error is not None and "[f-bogus]" in task.last_error
    # a new run of the same budget counts them: it runs no synthesizer
    out = cli("pipeline", "run", str(path), expect=1, env={"BAD_TRIES": "2"})
    assert runs.read_text() == "2" and "the budget is spent: $1.1000" in out.stdout + out.stderr
    # the budget raised: the third try is good
    done = run_json(cli, path, "--max-cost-usd", "5", BAD_TRIES="2")
    assert runs.read_text() == "3" and done["done"]
    assert done["cost_usd"] == pytest.approx(1.6) and done["failed_cost_usd"] == 1.0
    assert done["by_model"]["claude-opus-4-1"]["cost_usd"] == 1.5
    assert swarm.get_task(task.id).status == "completed"  # its synthesis is written
    status = cli("pipeline", "status", "cost").stdout
    assert "pipeline cost: done, $1.6000 spent" in status
    report = cli("pipeline", "report", "cost").stdout
    assert "| **total** | 1 | 1 | 0 | 1 | $1.6000 | $1.0000 |" in report


def test_each_refused_try_says_why(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """The error names the bogus id and the pass's findings for each try; the next try is
    told the same."""
    path = write_plan(tmp_path, ONE_PASS.replace("max_cost_usd = 0.9", ""))
    out = cli("pipeline", "run", str(path), expect=1, env={"BAD_TRIES": "3"})
    (finding,) = swarm.findings(pass_name="cost: One").items
    why = (
        f"refused: it cited [f-bogus], which is not among the 1 finding(s) of this pass "
        f"([{finding.id}])"
    )
    assert f"gave no usable synthesis in 3 tries: tries 1 to 3: {why}" in out.stderr
    assert f"pass 1/1 'One': synthesizer try 2: {why}" in out.stderr  # said as it goes
    assert "Your previous answer was refused" not in (tmp_path / "prompt-1.txt").read_text()
    assert f"Your previous answer was {why}" in (tmp_path / "prompt-2.txt").read_text()


def test_a_refused_planner_run_counts_against_the_budget(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A $0.50 planner whose first answer is refused, under max_cost_usd 0.8 (pass 1 cost
    $0.60): the run stops before the planner's second run, its first counted on pass 2."""
    path = write_plan(
        tmp_path,
        ONE_PASS.replace("max_cost_usd = 0.9", "max_cost_usd = 0.8")
        + '\n[planner]\nexec = "PY AGENTS/planner.py"\n\n[[passes]]\nname = "Two"\n'
        'plan = "Dig"\n',
    )
    first = run_json(cli, path, expect=1)
    assert (tmp_path / "planner-runs").read_text() == "1"
    assert "max_cost_usd $0.8" in first["stopped_by"]
    two = first["passes"][1]
    assert two["cost_usd"] == 0.5 == two["failed_cost_usd"] and two["posted"] == 0
    assert first["cost_usd"] == pytest.approx(0.1 + 0.5 + 0.5)
    done = run_json(cli, path, "--max-cost-usd", "5")
    assert done["done"] and (tmp_path / "planner-runs").read_text() == "2"
    two = done["passes"][1]
    assert two["cost_usd"] == pytest.approx(0.5 + 0.5 + 0.1 + 0.5)  # 2 planner runs
    assert two["failed_cost_usd"] == 0.5


def test_a_cost_nobody_reported_is_unknown(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Codex reports tokens, no cost: the cost is null in JSON and '-' or 'no agent reported
    a cost' for people, never $0.0000; the tokens are counted."""
    path = write_plan(
        tmp_path,
        ONE_PASS.replace("max_cost_usd = 0.9", "")
        .replace("worker.py", "codex.py")
        .replace("synth.py", "codex.py")
        .replace('tasks = ["task X"]', 'tasks = ["a", "b"]'),
    )
    summary = run_json(cli, path)
    assert summary["done"] and summary["cost_usd"] is None
    assert summary["failed_cost_usd"] is None and summary["passes"][0]["cost_usd"] is None
    assert summary["tokens_in"] == 3 * 2000 and summary["tokens_out"] == 3 * 100
    assert summary["cached_in"] == 3 * 500
    assert summary["by_model"] == {
        "unknown": {"cost_usd": None, "tokens_in": 6000, "cached_in": 1500, "tokens_out": 300}
    }
    status = cli("pipeline", "status", "cost").stdout
    assert "$0.0000" not in status and "pipeline cost: done, no agent reported a cost" in status
    report = cli("pipeline", "report", "cost").stdout
    # no cost column (every cell would be '-'), said in one line; the tokens are shown
    assert "$0.0000" not in report
    assert "| **total** | 2 | 2 | 0 | 2 | 6,000 | 1,500 | 300 | |" in report
    assert "No agent reported a cost" in report and "| cost |" not in report
    assert "| model | tokens in | cached in | tokens out |" in report
    assert "| unknown | 6,000 | 1,500 | 300 |" in report
    ran = cli("pipeline", "run", str(path)).stdout
    assert "pipeline cost: done, no agent reported a cost" in ran
    # the live line while a pool runs
    pipeline = Pipeline(swarm, load_plan(path))
    pipeline.current = "pass 1/1 'One'"
    assert pipeline.progress() == "pass 1/1 'One' · no cost reported"
    pipeline.cost = 0.0
    assert pipeline.progress() == "pass 1/1 'One' · $0.0000 so far"


def test_sums_of_money_carry_no_float_noise(cli: Cli, tmp_path: Path) -> None:
    """Three workers at $0.10 make $0.30 (in floats 0.30000000000000004)."""
    path = write_plan(
        tmp_path,
        ONE_PASS.replace("max_cost_usd = 0.9", "").replace(
            'tasks = ["task X"]', 'tasks = ["a", "b", "c"]'
        ),
    )
    out = cli("--json", "pipeline", "status", "cost", expect=1)  # no run yet
    assert "no pipeline 'cost'" in out.stderr
    cli("pipeline", "run", str(path))
    text = cli("--json", "pipeline", "status", "cost").stdout
    status = json.loads(text)
    assert status["by_model"]["claude-haiku-4-5"]["cost_usd"] == 0.3
    assert status["passes"][0]["cost_usd"] == 0.8 and status["cost_usd"] == 0.8
    assert "0000000" not in text
