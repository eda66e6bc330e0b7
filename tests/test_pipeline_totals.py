"""A pipeline's totals count every agent run it paid for, those of a pass the plan no longer
has (renamed since it ran) too, alike in ``pipeline status`` (human and ``--json``),
``pipeline report`` and ``lineage``; the report's total row has the counts status has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import MAX_PAGE, Swarm
from redis_swarm._pipeline import Pipeline
from redis_swarm._pipeline.report import stored_plan

from ._cli import Cli
from .test_pipeline_run import plan_text, run_plan, short_backoff, three_passes


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def paid(swarm: Swarm) -> float:
    """Every cost the swarm holds of pipeline ``audit``'s run 1, read apart from the
    pipeline's views: its workers' and planners' findings, its syntheses, its tasks' failed
    runs."""
    queues = ("pipeline.audit", "pipeline.audit.plan", "pipeline.audit.synth")
    costs = [f.usage.cost_usd for q in queues for f in swarm.findings(queue=q, limit=MAX_PAGE).items
             if f.usage is not None]  # fmt: skip
    costs += [
        s.usage.cost_usd for s in swarm.syntheses(limit=MAX_PAGE).items if s.usage is not None
    ]
    costs += [t.failed_usage.cost_usd for q in queues
              for t in swarm.list_tasks(queue=q, limit=MAX_PAGE).items
              if t.failed_usage is not None]  # fmt: skip
    return sum(c for c in costs if c is not None)


def test_renamed_passes_still_count(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Pass 1 (static, its synthesizer refused once) and pass 2 (planned) renamed after a
    finished run, then run again: the old passes' workers, planner, synthesizer runs and
    syntheses count in every total, each old pass in a row of its own."""
    path = three_passes(tmp_path)
    short_backoff(swarm, path)
    first = run_plan(cli, path, BAD_FIRST=str(tmp_path / "synth-tries"))
    assert first["done"] and first["cost_usd"] == pytest.approx(0.34)
    text = path.read_text()
    path.write_text(
        text.replace('name = "Pass 1"', 'name = "Pass One"').replace(
            'name = "Pass 2"', 'name = "Pass Two"'
        )
    )
    again = run_plan(cli, path)
    assert again["done"] and again["resumed"] == ["Pass 3"]
    # 16 workers at $0.01, 3 planners at $0.02, 5 syntheses and a refused try at $0.05
    expected = paid(swarm)
    assert expected == pytest.approx(0.16 + 0.06 + 0.30)
    status = cli.json("pipeline", "status", "audit")
    assert again["cost_usd"] == status["cost_usd"] == pytest.approx(expected)
    assert status["done"] and status["failed_cost_usd"] == pytest.approx(0.05)
    rows = {(p["name"], p["earlier"]): p for p in status["passes"]}
    # (the JSON name is the old pass's alone: "earlier" says it is no longer in the plan)
    assert [p["name"] for p in status["passes"]] == [
        "Pass One", "Pass Two", "Pass 3", "Pass 1", "Pass 2",
    ]  # fmt: skip
    old1, old2 = rows[("Pass 1", True)], rows[("Pass 2", True)]
    assert old1["earlier"] and old2["earlier"] and not rows[("Pass 3", False)]["earlier"]
    assert old1["label"] == "audit: Pass 1" and old1["synthesis"]
    assert (old1["posted"], old1["findings"]) == (3, 3)
    assert old1["cost_usd"] == pytest.approx(0.03 + 0.05 + 0.05)  # the refused try too
    assert old1["failed_cost_usd"] == pytest.approx(0.05)
    assert (old2["posted"], old2["findings"]) == (3, 3)  # (max_tasks)
    assert old2["cost_usd"] == pytest.approx(0.02 + 0.03 + 0.05)  # its planner's too
    assert (status["posted"], status["completed"], status["dead"], status["findings"]) == (
        16, 16, 0, 16,
    )  # fmt: skip
    assert status["by_model"]["claude-haiku-4-5"]["cost_usd"] == pytest.approx(0.16)
    human = cli("pipeline", "status", "audit").stdout
    assert "Pass 1 (no longer in the plan)" in human
    assert "pipeline audit: done, $0.5200 spent" in human
    report = cli("pipeline", "report", "audit").stdout
    assert "## Pass 2 (no longer in the plan)" in report
    assert "| **total** | 16 | 16 | 0 | 16 | $0.5200 | $0.0500 |" in report
    tree = cli.json("lineage", "audit")
    assert tree["total"]["cost_usd"] == pytest.approx(expected)
    assert "no longer in the plan" in tree["total_covers"]
    assert [p.get("earlier", False) for p in tree["passes"]] == [False] * 3 + [True] * 2
    text = cli("lineage", "audit").stdout
    assert "pass audit: Pass 1 (no longer in the plan)" in text
    assert "  total: $0.5200" in text
    # The budget (max_cost_usd) counts what status counts: the old passes' runs too.
    assert Pipeline(swarm, stored_plan(swarm, "audit")).spent()[0] == pytest.approx(expected)


def test_the_reports_total_row_has_the_counts(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """The report's total row: tasks, completed, dead and findings as status sums them."""
    path = plan_text(tmp_path)
    short_backoff(swarm, path)
    assert run_plan(cli, path, FAIL_ON="backoff")["done"]
    status = cli.json("pipeline", "status", "audit")
    keys = ("posted", "completed", "dead", "findings")
    counts = [sum(p[k] for p in status["passes"]) for k in keys]
    assert counts == [5, 4, 1, 4]
    report = cli("pipeline", "report", "audit").stdout
    assert f"| **total** | 5 | 4 | 1 | 4 | ${status['cost_usd']:.4f} |" in report
    assert [status[k] for k in keys] == counts  # (the figures the row is made of)
    assert all(not p["earlier"] for p in status["passes"])
