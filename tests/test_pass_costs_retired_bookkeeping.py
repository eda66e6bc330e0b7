"""What a pipeline's pass cost reads the same before and after ``swarm pipeline retire``
removed its bookkeeping: ``Swarm.pass_costs`` (``swarm status --pass``) counts the costs the
retirement kept of its planners' task lists and of the failed runs of its planning and
synthesizer tasks, each as its record counted (planning or synthesis, failed or not). The
kept record says whether its runs failed and how many in fields of its own; one an older
version kept with them in its key is read as before, and counted once beside one kept
again since."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import PassCosts, Swarm, ValidationError
from redis_swarm._keys import Keys

from ._cli import Cli
from .test_pass_costs_pipeline import PLAN
from .test_pipeline_cost import run_json, write_plan

PASSES = ("cost: One", "cost: Two")  # (the labels of PLAN's passes: its pipeline is "cost")
KEPT_OWNER = "pipeline cost run 1 retired bookkeeping"  # (whose the kept costs are)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _spend(costs: PassCosts) -> dict[str, Any]:
    """What a pass's spend reads as: every sum and count of runs but the records read."""
    return {
        "total": costs.total, "failed": costs.failed, "by_model": costs.by_model,
        "runs": costs.runs, "runs_without_cost": costs.runs_without_cost,
        "planning": costs.planning, "planning_runs": costs.planning_runs,
        "synthesis": costs.synthesis, "synthesis_runs": costs.synthesis_runs,
    }  # fmt: skip


def _cost_lines(cli: Cli, label: str) -> list[str]:
    out = cli("status", "--pass", label).stdout
    return [ln for ln in out.splitlines() if ln.startswith(("pass cost:", "  "))]


def _run_and_retire(cli: Cli, swarm: Swarm, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """PLAN run to its end, then its bookkeeping retired: the passes' spend before."""
    assert run_json(cli, write_plan(tmp_path, PLAN), BAD_TRIES="1")["done"]
    before = {label: _spend(swarm.pass_costs(label)) for label in PASSES}
    out = cli("pipeline", "retire", "cost", "--older-than", "0").stdout
    assert "retired the bookkeeping of pipeline cost: 2 tasks" in out, out
    return before


def test_a_pass_costs_the_same_after_its_pipeline_is_retired(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Pass One: a synthesizer run refused ($0.50, on its synthesizer task); Pass Two: a
    planner run refused ($0.50, on its planning task) and its task list ($0.50). Both tasks
    go with the retirement: their costs, kept, still count, each in its part."""
    assert run_json(cli, write_plan(tmp_path, PLAN), BAD_TRIES="1")["done"]
    before = {label: _spend(swarm.pass_costs(label)) for label in PASSES}
    lines = {label: _cost_lines(cli, label) for label in PASSES}
    cli("pipeline", "retire", "cost", "--older-than", "0")

    one, two = (swarm.pass_costs(label) for label in PASSES)
    assert (_spend(one), _spend(two)) == (before["cost: One"], before["cost: Two"])
    assert one.retired_bookkeeping_runs == 1 and one.retired_bookkeeping["cost_usd"] == 0.5
    assert two.retired_bookkeeping_runs == 2 and two.retired_bookkeeping["cost_usd"] == 1.0
    assert (two.tasks, two.findings) == (1, 1)  # (the workers' records: the planner's went)
    # as the pipeline's own status reads them, pass by pass
    status = json.loads(cli("--json", "pipeline", "status", "cost").stdout)
    for costs, row in zip((one, two), status["passes"], strict=True):
        assert costs.total["cost_usd"] == pytest.approx(row["cost_usd"])
        assert costs.failed["cost_usd"] == pytest.approx(row["failed_cost_usd"])
        assert (costs.runs, costs.runs_without_cost) == (row["runs"], row["runs_without_cost"])

    kept = "  of it, kept as its pipeline's bookkeeping was retired (swarm pipeline retire): "
    for label, runs in zip(PASSES, ("1 run", "2 runs"), strict=True):
        after = _cost_lines(cli, label)
        assert [ln for ln in after if not ln.startswith(kept)] == lines[label], after
        (said,) = [ln for ln in after if ln.startswith(kept)]
        assert said.endswith(f"({runs})"), after
    shown = json.loads(cli("--json", "status", "--pass", "cost: Two").stdout)["pass"]["costs"]
    assert shown["retired_bookkeeping_runs"] == 2 and shown["planning_runs"] == 2
    # retired again: nothing counted twice
    cli("pipeline", "retire", "cost", "--older-than", "0")
    assert _spend(swarm.pass_costs("cost: Two")) == before["cost: Two"]


def test_the_kept_record_says_its_runs_in_fields_not_in_its_key(
    cli: Cli, swarm: Swarm, raw: Any, tmp_path: Path
) -> None:
    _run_and_retire(cli, swarm, tmp_path)
    stored = raw.hgetall(Keys("test").unrecorded_runs(KEPT_OWNER))
    fields = sorted((json.loads(v)["failed"], json.loads(v)["runs"]) for v in stored.values())
    # a task list (one run, not failed), and two tasks' one refused run each
    assert fields == [(False, 1), (True, 1), (True, 1)], stored
    assert all(key.startswith("bk:") for key in stored), stored  # (no count, no kind)
    runs = swarm.unrecorded_runs(KEPT_OWNER)
    assert sorted((run.failed, run.runs) for run in runs) == fields


def test_a_run_kept_says_whether_it_failed_and_how_many(swarm: Swarm) -> None:
    """The op stores them when given; without them a run is one failed run, as before."""
    owner = "pipeline p run 1 retired bookkeeping"
    assert swarm.record_unrecorded_run(owner, "bk:a", "p: P", "a task", failed=True, runs=3)
    assert swarm.record_unrecorded_run(owner, "bk:b", "p: P", "a task list", failed=False)
    assert swarm.record_unrecorded_run(owner, "plain", "p: P", "a run")
    got = {run.key: (run.failed, run.runs) for run in swarm.unrecorded_runs(owner)}
    assert got == {"bk:a": (True, 3), "bk:b": (False, 1), "plain": (True, 1)}
    for bad in ({"runs": 0}, {"runs": True}, {"runs": "2"}, {"failed": "no"}):
        with pytest.raises(ValidationError):
            swarm.record_unrecorded_run(owner, "bk:c", "p: P", "a task", **bad)


def _as_the_previous_version_kept(raw: Any) -> dict[str, str]:
    """Every kept cost rewritten as the version before kept it: whether its runs failed and
    how many in its key (``bkf3:DIGEST``, ``bkr1:DIGEST``), not in its record. The records
    as they were (this version's), by key."""
    key = Keys("test").unrecorded_runs(KEPT_OWNER)
    now: dict[str, str] = raw.hgetall(key)
    for name, value in now.items():
        record = json.loads(value)
        failed, runs = record.pop("failed", True), record.pop("runs", 1)
        digest = name.partition(":")[2]
        raw.hdel(key, name)
        raw.hset(key, f"bk{'f' if failed else 'r'}{runs}:{digest}", json.dumps(record))
    return now


def test_costs_kept_by_the_previous_version_still_count(
    cli: Cli, swarm: Swarm, raw: Any, tmp_path: Path
) -> None:
    before = _run_and_retire(cli, swarm, tmp_path)
    status = json.loads(cli("--json", "pipeline", "status", "cost").stdout)
    ours = _as_the_previous_version_kept(raw)
    assert not any(key.startswith("bk:") for key in raw.hkeys(Keys("test").unrecorded_runs(
        KEPT_OWNER)))  # fmt: skip
    runs = swarm.unrecorded_runs(KEPT_OWNER)
    assert sorted((run.failed, run.runs) for run in runs) == [(False, 1), (True, 1), (True, 1)]
    assert {label: _spend(swarm.pass_costs(label)) for label in PASSES} == before
    assert json.loads(cli("--json", "pipeline", "status", "cost").stdout) == status

    # one kept again by this version beside the old one (a record the retirement kept, then
    # kept again later): counted once, by either reader
    name, value = next(iter(ours.items()))
    raw.hset(Keys("test").unrecorded_runs(KEPT_OWNER), name, value)
    assert len(swarm.unrecorded_runs(KEPT_OWNER)) == 4
    assert {label: _spend(swarm.pass_costs(label)) for label in PASSES} == before
    assert json.loads(cli("--json", "pipeline", "status", "cost").stdout) == status
