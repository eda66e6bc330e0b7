"""A run's cost broken down by model is checked against the run's own figures: an unknown
field in a model, more cached tokens than input tokens in a model, and models whose figures
add up to more than the run's are refused wherever a usage is given (``swarm task report
--usage``, ``Swarm.report``), as at the top level; an agent CLI's own output that disagrees
so (Claude's ``total_cost_usd`` under its ``modelUsage`` costs) keeps the run, its total
raised to its models' sum and the disagreement said; a record stored before the check is
summed per model without contradicting its total. A cost too small for the decimals reads
in exponent form, never as zero, and one no run costs (1e-320) is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, ValidationError
from redis_swarm._runner import read_output
from redis_swarm._usage import Usage, add_model_figures, usd

from ._cli import Cli
from .test_run_costs import claude, printer, run

BAD_MODELS: list[tuple[dict[str, Any], str]] = [
    (
        {"cost_usd": 1, "tokens_in": 10, "models": {"m": {"foo": 123, "tokens_in": 1}}},
        "usage of m has no field foo",
    ),
    (
        {"cost_usd": 1, "tokens_in": 10, "cached_in": 9,
         "models": {"m": {"tokens_in": 1, "cached_in": 9}}},
        "usage of m: cached_in (9) is more than tokens_in (1)",
    ),
    (
        {"cost_usd": 1, "tokens_in": 10, "models": {"m": {"tokens_in": 1, "cost_usd": 5}}},
        "usage models' cost_usd add up to 5, more than the run's cost_usd (1)",
    ),
    (
        {"cost_usd": 1, "tokens_in": 10,
         "models": {"a": {"tokens_in": 6}, "b": {"tokens_in": 6}}},
        "usage models' tokens_in add up to 12, more than the run's tokens_in (10)",
    ),
]  # fmt: skip


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


@pytest.mark.parametrize(("given", "said"), BAD_MODELS)
def test_a_models_breakdown_that_contradicts_the_run_is_a_usage_error(
    cli: Cli, handle: Swarm, given: dict[str, Any], said: str
) -> None:
    handle.post_task("q", "x", pass_name="P")
    task = handle.claim(["q"], worker="wu")
    assert task is not None and task.token is not None
    out = cli(
        "task", "report", task.id, "--token", task.token, "--worker", "wu", "--summary", "s",
        "--usage", json.dumps(given), expect=2,
    )  # fmt: skip
    assert said in out.stderr, out
    with pytest.raises(ValidationError) as caught:
        Usage.parse(given)
    assert said in str(caught.value)
    with pytest.raises(ValidationError) as caught:  # (the core's check, whatever the face)
        handle.report(task.id, task.token, {"summary": "s"}, usage=Usage.from_dict(
            {"source": "reported", **given}))  # fmt: skip
    assert said in str(caught.value)
    assert handle.pass_costs("P").findings == 0  # nothing stored


def test_claudes_total_under_its_models_keeps_the_run_and_takes_the_larger(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """Claude's ``total_cost_usd`` (0.5) under its ``modelUsage`` costs (0.9): the run is kept
    (no user controls what the CLI prints), the run's cost raised to its models' sum (it
    cost at least what its parts did, and a budget counts the larger), the pass's cost and
    its cost per model agree, and the run's warning says what was changed."""
    printed = claude(
        "done\n" + json.dumps({"summary": "found"}), 0.5,
        modelUsage={"claude-opus": {"inputTokens": 10, "outputTokens": 10, "costUSD": 0.9}},
    )  # fmt: skip
    read = read_output(json.dumps(printed))
    assert read.usage is not None and read.usage.faults() == []
    assert read.usage.cost_usd == 0.9 and read.usage.models["claude-opus"]["cost_usd"] == 0.9
    assert read.warning == (
        "usage figures below their models' sum, the sum taken: cost_usd $0.5000 under the "
        "models' $0.9000"
    )
    # (0.1 + 0.2 is not 0.3 in floats: models adding up to the run's are taken, unsaid)
    noise = claude("done", 0.3, modelUsage={"a": {"costUSD": 0.1}, "b": {"costUSD": 0.2}})
    fine = read_output(json.dumps(noise))
    assert fine.usage is not None and fine.usage.cost_usd == 0.3 and fine.warning is None
    assert (
        Usage.parse(
            {"cost_usd": 0.3, "models": {"a": {"cost_usd": 0.1}, "b": {"cost_usd": 0.2}}}
        ).cost_usd
        == 0.3
    )
    handle.post_task("q", "x", pass_name="P")
    ran = run(cli, printer(tmp_path, "claude", printed))
    assert ran["completed"] == 1, ran
    shown = cli("status", "--pass", "P").stdout
    assert "pass cost: $0.9000 · " in shown, shown
    assert "$0.9000" in next(line for line in shown.splitlines() if "claude-opus" in line)
    assert "$0.5000" not in shown and "≈" not in shown, shown


def test_a_stored_breakdown_that_contradicts_its_run_is_not_summed_per_model() -> None:
    """A record stored before the check (its models' cost above its own): the cost per
    model never says more than the total; a lone model takes all of it."""
    stored = Usage.from_dict(
        {"source": "reported", "cost_usd": 1.0, "tokens_in": 10,
         "models": {"m": {"tokens_in": 1, "cached_in": 9, "cost_usd": 5.0}}}
    )  # fmt: skip
    by_model: dict[str, dict[str, float | None]] = {}
    add_model_figures(by_model, stored, None)
    assert by_model == {"m": {"cost_usd": 1.0, "tokens_in": 10.0, "cached_in": None,
                              "tokens_out": None}}  # fmt: skip
    two = Usage.from_dict(
        {"source": "reported", "cost_usd": 1.0,
         "models": {"a": {"cost_usd": 5.0}, "b": {"cost_usd": 1.0}}}
    )  # fmt: skip
    by_model = {}
    add_model_figures(by_model, two, "claude-x")
    assert list(by_model) == ["claude-x"] and by_model["claude-x"]["cost_usd"] == 1.0


@pytest.mark.parametrize("cost", [1e-13, 4.9e-13, 1e-320, 5e-324])
def test_a_cost_too_small_for_the_decimals_never_reads_as_zero(cost: float) -> None:
    shown = usd(cost)
    assert shown == f"${cost:.1e}" and any(c in "123456789" for c in shown), shown
    assert usd(1e-12) == "$0.000000000001"  # (the smallest the decimals show, as before)


def test_a_cost_no_run_costs_is_refused(cli: Cli, handle: Swarm) -> None:
    with pytest.raises(ValidationError, match="0 or from 1e-12 to 1e15"):
        Usage.parse({"cost_usd": 1e-320})
    assert Usage.parse({"cost_usd": 0}).cost_usd == 0
    handle.post_task("q", "x")
    task = handle.claim(["q"], worker="wu")
    assert task is not None and task.token is not None
    out = cli(
        "task", "report", task.id, "--token", task.token, "--worker", "wu", "--summary", "s",
        "--usage", '{"cost_usd":1e-320}', expect=2,
    )  # fmt: skip
    assert "usage cost_usd is 1e-320" in out.stderr, out


def test_a_reconciliation_the_core_would_refuse_keeps_the_runs_figures() -> None:
    """Raising a run's figures to its models' sum may make what no report takes (cached
    tokens above the input ones, a cost past the bound): the run's figures as printed are
    kept, without the breakdown, never a usage the report then refuses (the finding lost)."""
    cached = Usage("claude-json", tokens_in=100, cached_in=10, models={"a": {"cached_in": 200}})
    kept, notes = cached.reconciled()
    assert kept.faults() == [] and kept.models == {} and kept.cached_in == 10
    assert notes == ["usage by model left out: it contradicts the run's figures"]
    huge = Usage(
        "claude-json", cost_usd=1.0, models={"a": {"cost_usd": 9e14}, "b": {"cost_usd": 9e14}}
    )
    kept, notes = huge.reconciled()
    assert kept.faults() == [] and kept.models == {} and kept.cost_usd == 1.0
