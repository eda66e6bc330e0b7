"""A pipeline's agent runs that no other record holds (a worker's run lost to a cancel, a
refused synthesis: ``Swarm.record_unrecorded_run``, kept per run of the pipeline) count in
what ``Swarm.pass_costs`` says the pass cost, once each, apart (``unrecorded``), by the rule
``swarm pipeline status`` counts them by: those of the pass that name a record it holds (or
none). So the two agree on what the pass cost."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._models import PassCosts, unrecorded_owner_of
from redis_swarm._pipeline import load_plan, pipeline_queue
from redis_swarm._pipeline.names import pass_label, unrecorded_owner
from redis_swarm._pipeline.plan import Plan
from redis_swarm._pipeline.records import anchor_of, read_pass, runs_without_cost, spending
from redis_swarm._usage import Usage

from ._cli import Cli
from .test_pipeline_cost import WORKER
from .test_pipeline_uncounted_costs import CANCELLED_WORKER, _plan, _run


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _status_of_pass(swarm: Swarm, plan: Plan) -> tuple[float, int]:
    """What ``swarm pipeline status`` counts in pass 0 of ``plan``: its cost and runs."""
    result = read_pass(swarm, plan, 0)
    cost = sum((s.usage.cost_usd if s.usage else None) or 0.0 for s in spending(result))
    return cost, runs_without_cost(result)[0]


def _unrecorded(costs: PassCosts) -> tuple[int, Any]:
    return costs.unrecorded_runs, costs.unrecorded.get("cost_usd")


def test_a_worker_run_lost_to_a_cancel_counts_in_pass_costs(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The $2 run lost to a cancel (kept by the pipeline as no other record's) is in the
    pass's cost as ``swarm pipeline status`` shows it: $0.10 + $2 + the synthesizer's
    $0.50, three runs, the $2 failed and unrecorded; ``swarm status --pass`` says it."""
    path = _plan(tmp_path, CANCELLED_WORKER, ["CANCEL-ME please", "look at B"])
    assert _run(cli, path, expect=0)["cost_usd"] == pytest.approx(2.6)
    status = json.loads(cli("--json", "pipeline", "status", "uncounted").stdout)
    label = status["passes"][0]["label"]
    costs = swarm.pass_costs(label)
    assert costs.total["cost_usd"] == pytest.approx(status["cost_usd"]) == pytest.approx(2.6)
    assert costs.failed["cost_usd"] == pytest.approx(status["failed_cost_usd"])
    assert costs.runs == status["passes"][0]["runs"] == 3
    assert costs.unrecorded_runs == 1
    assert costs.unrecorded["cost_usd"] == pytest.approx(2.0)
    shown = cli("status", "--pass", label).stdout
    assert "of it, runs no other record holds: $2.0000 (1 run)" in shown, shown
    assert (
        json.loads(cli("--json", "status", "--pass", label).stdout)["pass"]["costs"][
            "unrecorded_runs"
        ]
        == 1
    )


@pytest.mark.parametrize("run", [1, 3])
def test_pass_costs_counts_each_kept_run_once_as_pipeline_status_does(
    swarm: Swarm, tmp_path: Path, run: int
) -> None:
    """Runs recorded as the pipeline records them (its owner, the pass's label, a record of
    the pass as anchor) count once each (a write sent again adds nothing), whatever run of
    the pipeline; not one of another pass, nor one naming a record the pass does not hold
    (a swarm emptied since); one naming none counts. pass_costs and the pipeline's status
    say the same cost and runs."""
    plan = dataclasses.replace(load_plan(_plan(tmp_path, WORKER, ["A"])), run=run)
    label = pass_label(plan, 0)
    owner = unrecorded_owner(plan.name, plan.run)
    assert unrecorded_owner_of(label) == owner  # (the core's rule is the pipeline's)
    task = swarm.post_task(pipeline_queue(plan), "A", pass_name=label)
    assert _unrecorded(swarm.pass_costs(label)) == (0, None)

    def keep(key: str, cost: float, *, pass_name: str = label, anchor: str | None) -> bool:
        usage = Usage(source="claude", cost_usd=cost)
        return swarm.record_unrecorded_run(
            owner, key, pass_name, f"run {key}", usage=usage, anchor=anchor
        )

    assert keep("lost", 2.0, anchor=anchor_of(task))
    assert not keep("lost", 2.0, anchor=anchor_of(task))  # (sent again: nothing added)
    costs = swarm.pass_costs(label)
    assert _unrecorded(costs) == (1, pytest.approx(2.0))
    assert costs.runs == 1 and costs.tasks == 1
    assert costs.total["cost_usd"] == costs.failed["cost_usd"] == pytest.approx(2.0)
    assert costs.by_model["unknown"]["cost_usd"] == pytest.approx(2.0)
    assert _status_of_pass(swarm, plan) == pytest.approx((2.0, 1))

    assert keep("no anchor", 0.25, anchor=None)
    assert keep("emptied since", 4.0, anchor=f"{task.id}@{task.created_at - 1}")
    assert keep("another pass", 8.0, pass_name=f"{label}-other", anchor=anchor_of(task))
    costs = swarm.pass_costs(label)
    assert _unrecorded(costs) == (2, pytest.approx(2.25))
    assert (costs.total["cost_usd"], costs.runs) == _status_of_pass(swarm, plan)
    assert costs.runs == 2 and costs.runs_without_cost == 0


def test_a_pass_named_like_no_pipeline_reads_no_kept_runs(swarm: Swarm) -> None:
    """A pass named by hand (no pipeline's label) is summed as before; a pipeline's label
    is found only as a pipeline writes it (no `` run1``, no name a pipeline may not have)."""
    swarm.post_task("q", "x", pass_name="by hand")
    assert _unrecorded(swarm.pass_costs("by hand")) == (0, None)
    for label in ("by hand", "p run1: x", "p run02: x", "p run 2: x", "a/b: x", ": x", "p run: x"):
        assert unrecorded_owner_of(label) is None, label
    assert unrecorded_owner_of("p run12: x: y") == "pipeline p run 12"
    assert unrecorded_owner_of("p.run-2: x") == "pipeline p.run-2 run 1"
