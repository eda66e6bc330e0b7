"""What an agent run cost is formatted in one place, ``_usage.usage_line``, which takes the
``Usage`` itself (or a sum of its figures: one form, no other): ``swarm findings``,
``findings FINDING_ID``, ``synth show``, ``task show``, ``pipeline report``, the pipeline's
progress lines and ``Money`` (a view's decimals) all say one usage the same way, its cached
tokens included."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline.agents import run_cost
from redis_swarm._usage import Money, Usage, usage_figures, usage_line, usd

from ._cli import Cli

USAGES = [
    Usage("claude-json", cost_usd=0.0123, tokens_in=12_345, tokens_out=678, cached_in=12_000),
    Usage("codex-json", tokens_in=6_000, tokens_out=300),
    Usage("claude-json", cost_usd=0.5),
    Usage("claude-json", cost_usd=0.5, tokens_in=10),
    Usage("reported", cost_usd=0.0000123, tokens_out=7, cached_in=0),
]


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


@pytest.mark.parametrize("usage", USAGES, ids=lambda u: usage_line(u))
def test_a_usage_reads_one_way_however_it_is_given(usage: Usage) -> None:
    line = usage_line(usage)
    assert usage_line(usage_figures(usage)) == line  # a sum of its figures
    assert Money().line(usage) == Money().line(usage_figures(usage)) == line
    assert run_cost(usage) == f"(this run: {line})"


def test_the_cached_tokens_and_unknowns_are_said() -> None:
    assert usage_line(USAGES[0]) == "$0.0123 · 12,345 in (12,000 cached) / 678 out"
    assert usage_line(USAGES[1]) == "cost unknown · 6,000 in / 300 out"
    assert usage_line(USAGES[3]) == "$0.5000 · 10 in / - out"
    assert usage_line(None) == "cost unknown" == usage_line({})
    assert run_cost(None) == "(this run: cost unknown)"
    # a sum of token counts kept as floats (as the pipeline's sums are) reads as counts
    assert usage_line({"cost_usd": 0.25, "tokens_in": 1500.0, "tokens_out": 2.0}) == (
        "$0.2500 · 1,500 in / 2 out"
    )


def test_every_view_of_a_record_says_its_cost_alike(cli: Cli, handle: Swarm) -> None:
    """The same usage on a finding, on the synthesis citing it and on a task's failed run:
    every command that shows one says ``usage_line``'s words, cached tokens and all."""
    usage = USAGES[0]
    line = usage_line(usage)
    task = handle.post_task("q", "look")
    held = handle.claim(["q"], worker="w1")
    assert held is not None and held.token is not None
    handle.fail(held.id, held.token, "overloaded", usage=usage)
    again = handle.claim(["q"], worker="w1", wait_s=3)  # after the 1 s backoff
    assert again is not None and again.token is not None
    finding = handle.report(task.id, again.token, {"summary": "found"}, usage=usage)
    synthesis = handle.synthesize("shard", "p", "done [x]", [finding.id], usage=usage)

    def row(text: str, label: str) -> str:
        found = re.search(rf"^{re.escape(label)}\s{{2,}}(.+?)\s*$", text, re.M)
        assert found is not None, text
        return found.group(1)

    assert row(cli("findings", finding.id).stdout, "cost") == line
    assert row(cli("synth", "show", synthesis.id).stdout, "cost") == line
    assert line in cli("findings").stdout
    shown = cli("task", "show", task.id).stdout
    assert row(shown, "failed runs cost") == line
    assert row(shown, "finding cost") == line


def test_the_runner_says_a_self_reported_runs_cost_as_every_view_does() -> None:
    """``swarm run``'s line for an agent that reported its task itself said the run's
    tokens without the cached ones (a formatting of its own); now ``usage_line``'s."""
    from redis_swarm._runner.task_work import TaskWork

    said = TaskWork._self_reported_usage(USAGES[0])
    assert said.startswith(f"; its run cost {usage_line(USAGES[0])}, counted in this run's")
    assert "(12,000 cached)" in said


def test_a_cost_reads_alike_in_every_view() -> None:
    """One rule of decimals (``usd``'s): a view no longer takes more for its rows to add up
    (a pipeline's status showed a pass's cost with five, ``swarm status --pass`` with four),
    and a cost too small to read at four still reads as more than zero."""
    for cost in (0.00016, 1.585154, 0.0000166):
        assert Money()(cost) == usd(cost) == usage_line({"cost_usd": cost})
    assert usd(0.00016) == "$0.0002" and usd(0.0000166) == "$0.000017"
    assert Money().total([0.00016, 0.00016], 0.00032) == "≈$0.0003"
