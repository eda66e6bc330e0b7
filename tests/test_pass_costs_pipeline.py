"""What a pipeline's pass cost, as ``Swarm.pass_costs`` says it: its planner's runs (the
task lists it reported, its refused ones) and its synthesizer's refused runs count, though
their records carry no pass name, each said as such (``planning``, ``synthesis``), and the
pass's total is what ``swarm pipeline status`` shows for it. And a swarm wait that timed
out is a builtin TimeoutError."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm, SwarmError, Timeout

from ._cli import Cli
from .test_pipeline_cost import ONE_PASS, run_json, write_plan

# Pass One: a $0.10 worker, a $0.50 synthesizer run refused then one taken. Pass Two,
# planned: a $0.50 planner run refused then one taken (one task), its $0.10 worker, and
# its synthesizer's $0.50 run, taken at once.
PLAN = (
    ONE_PASS.replace("max_cost_usd = 0.9", "")
    + '\n[planner]\nexec = "PY AGENTS/planner.py"\n\n[[passes]]\nname = "Two"\nplan = "Dig"\n'
)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_a_pipeline_pass_costs_its_planner_and_synthesizer_runs(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = write_plan(tmp_path, PLAN)
    done = run_json(cli, path, BAD_TRIES="1")
    assert done["done"] and (tmp_path / "planner-runs").read_text() == "2"
    status = json.loads(cli("--json", "pipeline", "status", "cost").stdout)
    one, two = (swarm.pass_costs(f"cost: {name}") for name in ("One", "Two"))

    assert one.planning_runs == 0 and one.planning["cost_usd"] is None
    assert one.synthesis_runs == 2 and one.synthesis["cost_usd"] == 1.0  # a refused run too
    assert one.failed["cost_usd"] == 0.5 and one.syntheses == 1
    assert one.total["cost_usd"] == pytest.approx(1.1)
    assert two.planning_runs == 2 and two.planning["cost_usd"] == 1.0  # a refused run too
    assert two.synthesis_runs == 1 and two.synthesis["cost_usd"] == 0.5
    assert two.failed["cost_usd"] == 0.5
    assert two.total["cost_usd"] == pytest.approx(1.6)
    assert (two.tasks, two.findings) == (1, 1)  # the workers' (the planner's are apart)
    # the same sums as the pipeline's own status, pass by pass
    for costs, row in zip((one, two), status["passes"], strict=True):
        assert costs.total["cost_usd"] == pytest.approx(row["cost_usd"])
        assert costs.failed["cost_usd"] == pytest.approx(row["failed_cost_usd"])
        assert (costs.runs, costs.runs_without_cost) == (row["runs"], row["runs_without_cost"])
    assert sum(c.by_model["claude-opus-4-1"]["cost_usd"] for c in (one, two)) == 1.5

    out = cli("status", "--pass", "cost: Two").stdout
    assert "pass cost: $1.6000" in out
    assert "  of it, planning: $1.0000 (2 runs)" in out, out
    assert "  of it, synthesis: $0.5000 · 5,000 in / 300 out (1 run)" in out
    shown = json.loads(cli("--json", "status", "--pass", "cost: One").stdout)["pass"]["costs"]
    assert shown["synthesis"]["cost_usd"] == 1.0 and shown["synthesis_runs"] == 2


def test_a_pass_run_by_hand_has_no_planning_or_synthesizer_part(swarm: Swarm) -> None:
    """A synthesis written by hand counts as the pass's synthesis; no task is looked for
    behind it (its id is no pipeline's)."""
    swarm.post_tasks([{"queue": "q", "description": "a", "pass_name": "P"}])
    held = swarm.claim(["q"], worker="w")
    assert held is not None and held.token is not None
    finding = swarm.report(held.id, held.token, {"summary": "found"})
    swarm.synthesize("lead", "P", "all of it", [finding.id])
    costs = swarm.pass_costs("P")
    assert (costs.planning_runs, costs.synthesis_runs, costs.runs) == (0, 1, 2)


def test_a_timed_out_wait_is_a_builtin_timeout_error(swarm: Swarm) -> None:
    swarm.post_tasks([{"queue": "q", "description": "never done", "pass_name": "slow"}])
    with pytest.raises(TimeoutError) as caught:
        swarm.wait("slow", timeout_s=0.2)
    assert isinstance(caught.value, Timeout) and isinstance(caught.value, SwarmError)
    with pytest.raises(TimeoutError) as asked:  # as user code catches it
        swarm.ask("q", "anyone?", timeout_s=0.2)
    assert isinstance(asked.value, Timeout) and asked.value.task_id is not None


def test_a_hand_synthesis_given_a_pipelines_id_is_not_charged_its_synthesizer(
    swarm: Swarm,
) -> None:
    """A pipeline's synthesizer task names its pass: a synthesis of another pass written
    by hand under that pipeline's synthesis id does not take its synthesizer's runs."""
    from redis_swarm._models import synthesizer_task_of
    from redis_swarm._usage import Usage

    def usage(cost: float) -> Usage:
        return Usage(source="claude", cost_usd=cost, tokens_in=10, tokens_out=1)

    sid = "s-pl-" + "0123456789abcdef01234567"
    swarm.post_task(
        "pipeline.synth", "Synthesize a", {"synthesis": sid, "pass": "pipe: a"},
        task_id=synthesizer_task_of(sid), max_attempts=5,
    )  # fmt: skip
    held = swarm.claim("pipeline.synth", worker="pipe")
    assert held is not None and held.token is not None
    swarm.fail(held.id, held.token, "refused", usage=usage(10.0), retry_after_s=0)
    swarm.post_task("hand", "x", pass_name="mine")
    mine = swarm.claim("hand", worker="w")
    assert mine is not None and mine.token is not None
    finding = swarm.report(mine.id, mine.token, {"summary": "s"}, worker="w", usage=usage(2.0))
    swarm.synthesize("lead", "mine", "all", [finding.id], synthesis_id=sid, usage=usage(3.0))
    costs = swarm.pass_costs("mine")
    assert costs.total["cost_usd"] == pytest.approx(5.0)
    assert (costs.synthesis_runs, costs.synthesis["cost_usd"]) == (1, 3.0)
