"""A walkthrough of docs/pipeline.md with scripted agents: a short ``lease_s`` is no time
limit (an agent that works longer than its lease, renewed meanwhile, completes its task);
a planner run that reported no cost is listed among its pass's other runs as "cost unknown"
(lineage, its ``--json``, the report), not left out; ``swarm pipeline retire`` of a finished
run keeps what its bookkeeping cost in the spend status and the report show, said retired."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline.plan import parse_plan
from redis_swarm._validate import DEFAULT_TIMEOUT_S

from ._cli import Cli
from .test_pipeline_run import plan_text, run_plan, three_passes

PY = sys.executable


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


# --- 1. a lease is renewed while the agent works: no time limit


def test_a_lease_given_is_no_timeout() -> None:
    text = """
name = "p"
[workers]
exec = "w"
lease_s = 5
[planner]
exec = "p"
lease_s = 7
[synthesizer]
exec = "s"
lease_s = 3
[[passes]]
name = "One"
tasks = ["a"]
"""
    plan = parse_plan(text, Path("plan.toml"))
    assert plan.planner is not None
    timeouts = [spec.timeout_s for spec in (plan.workers, plan.planner, plan.synthesizer)]
    assert timeouts == [DEFAULT_TIMEOUT_S] * 3
    given = parse_plan(text.replace("lease_s = 5", "lease_s = 5\ntimeout_s = 9"), Path("p"))
    assert given.workers.timeout_s == 9.0


def test_workers_longer_than_a_short_lease_complete(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """lease_s = 1 and agents that take 2.5 s: renewed while they work, none is killed."""
    path = plan_text(tmp_path, lease_s=1)
    text = path.read_text()
    first_pass = text.split("[[passes]]")[0] + "[[passes]]" + text.split("[[passes]]")[1]
    path.write_text(first_pass)
    summary = run_plan(cli, path, WORKER_SLEEP="2.5")
    assert summary["done"], summary
    (row,) = summary["passes"]
    assert row["completed"] == row["posted"] and row["dead"] == 0, row
    assert "timed out" not in json.dumps(summary)


# --- 3. a planner run with no cost reported is shown, "cost unknown"

# The planner of three_passes, printing its answer as text: no usage at all.
SILENT_PLANNER = r"""
import json, re, sys
prompt = sys.stdin.read()
previous = re.findall(r"^The synthesis of '([^']*)'", prompt, re.M)
tasks = ["Deeper look %d after %s" % (i, previous[-1]) for i in range(2)]
print("Here are the tasks:\n```json\n" + json.dumps(tasks) + "\n```")
"""


def test_a_planner_run_without_a_cost_is_an_other_run_of_its_pass(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    (tmp_path / "silent.py").write_text(SILENT_PLANNER)
    path = three_passes(tmp_path, planner=f"{PY} {tmp_path}/silent.py")
    assert run_plan(cli, path)["done"]
    name = "audit"
    tree = cli.json("lineage", name)
    second = tree["passes"][1]
    (planner,) = [r for r in second["other_runs"] if r["what"].startswith("planner")]
    assert planner["cost_usd"] is None and planner["usage"] is None
    text = cli("lineage", name).stdout
    block = text.split("Pass 2")[1].split("pass total")[0]
    assert "other runs of the pass:" in block, text
    assert "planner (its task list, finding f-" in block and "cost unknown" in block, text
    report = cli("pipeline", "report", name).stdout
    section = report.split("## Pass 2")[1].split("## Pass 3")[0]
    assert "### Other agent runs" in section, report
    assert "- planner (its task list, finding f-" in section, section
    # counted as a run that reported no cost, as before
    status = cli.json("pipeline", "status", name)
    assert status["passes"][1]["runs_without_cost"] >= 1


# --- 4. retiring a finished run's bookkeeping keeps what it cost


def test_retiring_the_bookkeeping_keeps_the_spend(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    path = three_passes(tmp_path)
    assert run_plan(cli, path)["done"]
    name = "audit"
    before = cli.json("pipeline", "status", name)
    spent = before["cost_usd"]
    assert spent is not None and before["bookkeeping_retired"] is None
    said = cli("pipeline", "status", name).stdout
    line = [ln for ln in said.splitlines() if "spent" in ln]

    out = cli("pipeline", "retire", name, "--older-than", "0").stdout
    assert "retired the bookkeeping of pipeline audit: 2 tasks" in out, out

    after = cli.json("pipeline", "status", name)
    assert after["cost_usd"] == pytest.approx(spent), (before, after)
    assert after["runs"] == before["runs"]
    assert after["runs_without_cost"] == before["runs_without_cost"]
    assert after["by_model"] == before["by_model"]
    for old, new in zip(before["passes"], after["passes"], strict=True):
        assert new["cost_usd"] == old["cost_usd"]
        assert new["failed_cost_usd"] == old["failed_cost_usd"]
    kept = after["bookkeeping_retired"]
    assert kept["tasks"] == 2 and kept["counted"] == 2
    assert kept["counted_cost_usd"] == pytest.approx(0.04)  # the two planner runs, $0.02 each
    text = cli("pipeline", "status", name).stdout
    assert [ln for ln in text.splitlines() if "spent" in ln] == line, text
    assert "is still counted in the costs shown, retired" in text, text
    assert "no longer count" not in text
    report = cli("pipeline", "report", name).stdout
    assert "still counted" in report and "no longer count" not in report, report
    section = report.split("## Pass 2")[1].split("## Pass 3")[0]
    assert "- planner (its task list, finding f-" in section
    assert "retired with the pipeline's bookkeeping (swarm pipeline retire), still counted" in (
        section
    )
    tree = cli.json("lineage", name)
    assert tree["total"]["cost_usd"] == pytest.approx(spent)
    # retired again: nothing counted twice
    cli("pipeline", "retire", name, "--older-than", "0")
    assert cli.json("pipeline", "status", name)["cost_usd"] == pytest.approx(spent)
