"""What a pass cost, however it was run (``swarm task post --pass`` and ``swarm run``, the
seed's roles, not only a pipeline): ``Swarm.pass_costs`` sums every agent run behind it (its
findings, superseded ones too, its tasks' failed runs, its syntheses), per model and in all,
counting the runs that reported no cost; ``swarm status --pass`` and MCP ``swarm_status``
show it. A big pass is read a page at a time, up to a bound, saying whether it read it all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._errors import AlreadyCompleted, NotFound
from redis_swarm._models import PassCosts
from redis_swarm._ops import costs as cost_ops
from redis_swarm._ops._work import page
from redis_swarm._usage import Usage
from redis_swarm.mcp_server import build_server

from ._cli import Cli
from .mcp_server._helpers import connect

PASS = "day-3"

# What the pass's runs cost in all: $0.12 + $0.03 (late) + $0.05 (failed) + $0.20 (synthesis),
# the Codex run's tokens with no cost.
TOTAL = {"cost_usd": 0.4, "tokens_in": 6600, "cached_in": 400, "tokens_out": 465}
BY_MODEL = {
    "claude-opus": {"cost_usd": 0.2, "tokens_in": 3000, "cached_in": None, "tokens_out": 300},
    # the finding's per-model figures, and the late report's under its record's model
    "claude-sonnet": {"cost_usd": 0.15, "tokens_in": 1500, "cached_in": 400, "tokens_out": 110},
    "gpt-5-codex": {"cost_usd": None, "tokens_in": 2000, "cached_in": None, "tokens_out": 50},
    "unknown": {"cost_usd": 0.05, "tokens_in": 100, "cached_in": None, "tokens_out": 5},
}
FAILED = {"cost_usd": 0.05, "tokens_in": 100, "cached_in": None, "tokens_out": 5}


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


def _claimed(swarm: Swarm, worker: str) -> tuple[str, str]:
    task = swarm.claim(["q"], worker=worker)
    assert task is not None and task.token is not None
    return task.id, task.token


def _a_pass_run_by_hand(swarm: Swarm) -> None:
    """Pass ``PASS`` as ``swarm run`` leaves it: a Claude run's finding (with its cost per
    model), a Codex run's (tokens only), a late report on the first task (superseded), a
    failed run summed on a third task, and a synthesis; another pass's run besides."""
    swarm.post_tasks([{"queue": "q", "description": d, "pass_name": PASS} for d in "abc"])
    claude = Usage(
        "claude-json", cost_usd=0.12, tokens_in=1000, cached_in=400, tokens_out=100,
        models={"claude-sonnet": {"cost_usd": 0.12, "tokens_in": 1000, "cached_in": 400,
                                  "tokens_out": 100}},
    )  # fmt: skip
    first, token = _claimed(swarm, "w1")
    finding = swarm.report(first, token, {"summary": "a"}, model="claude-sonnet", usage=claude)
    codex = Usage("codex-jsonl", tokens_in=2000, tokens_out=50)
    second, second_token = _claimed(swarm, "w2")
    swarm.report(second, second_token, {"summary": "b"}, model="gpt-5-codex", usage=codex)
    late = Usage("claude-json", cost_usd=0.03, tokens_in=500, tokens_out=10)
    with pytest.raises(AlreadyCompleted):
        swarm.report(first, token, {"summary": "late"}, model="claude-sonnet", usage=late)
    third, third_token = _claimed(swarm, "w3")
    failed = Usage("claude-json", cost_usd=0.05, tokens_in=100, tokens_out=5)
    swarm.fail(third, third_token, "the CLI crashed", usage=failed)
    written = Usage("claude-json", cost_usd=0.2, tokens_in=3000, tokens_out=300)
    swarm.synthesize("shard-1", PASS, "all of it", [finding.id], model="claude-opus",
                     usage=written)  # fmt: skip
    other = swarm.post_task("q", "elsewhere", pass_name="day-4")
    other_id, other_token = _claimed(swarm, "w4")
    assert other_id == other.id
    swarm.report(other_id, other_token, {"summary": "x"}, usage=Usage("claude-json", cost_usd=9))


def _check(costs: PassCosts) -> None:
    assert costs.pass_name == PASS
    assert costs.total == TOTAL
    assert costs.by_model == BY_MODEL
    assert costs.failed == FAILED
    # the two findings, the late report, the failed run, the synthesis; the Codex run no cost
    assert (costs.runs, costs.runs_without_cost) == (5, 1)
    assert (costs.findings, costs.superseded, costs.tasks, costs.syntheses) == (3, 1, 3, 1)
    assert costs.searched_all and costs.scan_limit == cost_ops.SCAN_LIMIT
    assert costs.retired is None and costs.corrupt == 0 and costs.caveats() == []


def test_both_shells_sum_every_run_behind_a_pass(handle: Swarm, redis_url: str) -> None:
    _a_pass_run_by_hand(handle)
    _check(handle.pass_costs(PASS))

    async def read() -> PassCosts:
        async with AsyncSwarm(redis_url, swarm="test") as swarm:
            return await swarm.pass_costs(PASS)

    _check(asyncio.run(read()))


def test_an_unknown_pass_is_refused_and_a_retired_one_said(handle: Swarm) -> None:
    handle.post_task("q", "one", pass_name="day-1")
    with pytest.raises(NotFound) as raised:
        handle.pass_costs("day-l")  # a typo
    assert 'no task has ever been posted to pass "day-l": no agent run to count' in str(
        raised.value
    )
    assert '"day-1"' in str(raised.value)
    handle.post_task("r", "two", pass_name="day-2")
    claimed = handle.claim(["r"], worker="w")
    assert claimed is not None and claimed.token is not None
    handle.fail(claimed.id, claimed.token, "no", retry=False,
                usage=Usage("claude-json", cost_usd=0.5))  # fmt: skip
    handle.cancel(handle.post_task("r", "three", pass_name="day-2").id)
    assert handle.retire_pass("day-2").tasks == 2
    costs = handle.pass_costs("day-2")  # what it still holds: nothing
    assert costs.retired is not None and costs.retired.tasks == 2
    assert costs.runs == 0 and costs.total["cost_usd"] is None
    assert any("the pass was retired on " in c and "2 settled tasks" in c for c in costs.caveats())


def test_swarm_status_shows_a_passs_cost(handle: Swarm, redis_url: str) -> None:
    _a_pass_run_by_hand(handle)
    cli = Cli(redis_url)
    out = cli("status", "--pass", PASS).stdout
    assert (
        "pass cost: $0.4000 · 6,600 in (400 cached) / 465 out (1 of 5 runs reported no cost) "
        "(its findings (superseded ones too), its tasks' failed runs, its syntheses, "
        "a pipeline's planner and synthesizer runs and its runs no other record holds)"
    ) in out
    assert "  claude-opus    $0.2000 · 3,000 in / 300 out" in out
    assert "  claude-sonnet  $0.1500 · 1,500 in (400 cached) / 110 out" in out
    assert "  gpt-5-codex    cost unknown · 2,000 in / 50 out" in out
    assert "  unknown        $0.0500 · 100 in / 5 out" in out
    assert "  of it, failed and refused runs: $0.0500 · 100 in / 5 out" in out
    assert "note:" not in out
    report = cli.json("status", "--pass", PASS)
    costs = report["pass"]["costs"]
    assert costs["total"] == TOTAL and costs["by_model"] == BY_MODEL
    assert costs["failed"] == FAILED
    assert (costs["runs"], costs["runs_without_cost"], costs["searched_all"]) == (5, 1, True)
    spent = handle.pass_costs(PASS)
    assert costs == spent.shown()
    # a misspelt pass: the status is shown, the pass noted, no costs
    typo = cli("status", "--pass", "day-33")
    assert "no task has ever been posted to pass" in typo.stderr
    assert "pass cost" not in typo.stdout
    assert cli.json("status", "--pass", "day-33")["pass"]["costs"] is None
    assert "costs" not in cli.json("status").get("pass", {})


def test_the_mcp_status_tool_gives_a_passs_cost_when_asked(handle: Swarm) -> None:
    _a_pass_run_by_hand(handle)

    async def body() -> tuple[dict[str, Any], dict[str, Any], str]:
        async with connect(build_server(handle, role="worker")) as worker:
            plain, _ = await worker("swarm_status")
            asked, _ = await worker("swarm_status", pass_name=PASS)
            unknown = await worker.error("swarm_status", pass_name="day-33")
            return plain, asked, unknown

    plain, asked, unknown = anyio.run(body)
    assert "pass_costs" not in plain
    assert {k: v for k, v in asked.items() if k != "pass_costs"} == plain
    costs = asked["pass_costs"]
    assert costs["total"] == TOTAL and costs["by_model"] == BY_MODEL
    assert (costs["runs"], costs["runs_without_cost"]) == (5, 1)
    assert costs["caveats"] == [] and costs["searched_all"] is True
    assert 'no task has ever been posted to pass "day-33"' in unknown
    assert "swarm_status lists them" in unknown


def test_a_big_pass_is_read_a_page_at_a_time_up_to_a_bound(
    handle: Swarm, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = handle.post_tasks(
        [{"queue": "q", "description": f"t{i}", "pass_name": PASS} for i in range(10)]
    )
    for _ in tasks:
        task_id, token = _claimed(handle, "w")
        handle.report(task_id, token, {"summary": "s"}, usage=Usage("claude-json", cost_usd=0.01))
    pages: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = yield from page(*args, **kwargs)
        pages.append(len(found.items))
        return found

    monkeypatch.setattr(cost_ops, "page", counted)
    monkeypatch.setattr(cost_ops, "COST_PAGE", 3)
    monkeypatch.setattr(cost_ops, "SCAN_LIMIT", 7)
    part = handle.pass_costs(PASS)
    assert not part.searched_all and part.scan_limit == 7
    assert (part.findings, part.tasks, part.runs) == (7, 7, 7)
    assert part.total["cost_usd"] == 0.07  # the sums of what was read
    assert pages and max(pages) <= 3  # never one reply of the whole pass
    assert (
        "not every record of the pass was read (at most 7 findings, tasks and syntheses each)"
        in (" ".join(part.caveats()))
    )
    shown = Cli(redis_url)("status", "--pass", PASS).stdout
    assert "note: not every record of the pass was read" in " ".join(shown.split())
    monkeypatch.setattr(cost_ops, "SCAN_LIMIT", 10)  # exactly every one
    whole = handle.pass_costs(PASS)
    assert whole.searched_all and (whole.findings, whole.tasks, whole.runs) == (10, 10, 10)
    assert whole.total["cost_usd"] == 0.1 and whole.runs_without_cost == 0


def test_a_tiny_cost_is_not_summed_to_zero(handle: Swarm, redis_url: str) -> None:
    """A run that cost $1e-12 (a cheap model's few tokens): its pass's total kept it, and
    every face shows it as no zero (the sum was rounded to 10 decimal places: $0.0000)."""
    handle.post_task("q", "tiny", pass_name="tiny")
    task_id, token = _claimed(handle, "w1")
    handle.report(task_id, token, {"summary": "a"}, usage=Usage("claude-json", cost_usd=1e-12))
    assert handle.pass_costs("tiny").total["cost_usd"] == pytest.approx(1e-12, rel=1e-9)
    assert handle.pass_costs("tiny").total["cost_usd"] > 0
    shown = Cli(redis_url, "test")("status", "--pass", "tiny").stdout
    assert "$0.000000000001" in shown and "$0.0000 " not in shown, shown


# --- a model's line that sums runs some of which reported no cost says so, as the total does

MIXED = "mixed"


def _mixed_pass(swarm: Swarm) -> None:
    """Pass ``MIXED``, four runs: a priced Claude finding, an unpriced one of no usage, a
    Codex finding with tokens and no cost or model, and a failed Claude run at $0.01 naming
    no model (the walk that found the model lines read as whole sums)."""
    swarm.post_tasks([{"queue": "q", "description": d, "pass_name": MIXED} for d in "abcd"])
    task, token = _claimed(swarm, "w1")
    priced = Usage("claude-json", cost_usd=0.02, tokens_in=300, tokens_out=30)
    swarm.report(task, token, {"summary": "a"}, model="claude-sonnet", usage=priced)
    task, token = _claimed(swarm, "w2")
    swarm.report(task, token, {"summary": "b"}, model="claude-sonnet")
    task, token = _claimed(swarm, "w3")
    codex = Usage("codex-jsonl", tokens_in=500, cached_in=100, tokens_out=50)
    swarm.report(task, token, {"summary": "c"}, usage=codex)
    task, token = _claimed(swarm, "w4")
    failed = Usage("claude-json", cost_usd=0.01, tokens_in=10, tokens_out=5)
    swarm.fail(task, token, "the CLI crashed", usage=failed)


def test_a_model_line_summing_unpriced_runs_is_marked(handle: Swarm, redis_url: str) -> None:
    _mixed_pass(handle)
    out = Cli(redis_url)("status", "--pass", MIXED).stdout
    assert "(2 of 4 runs reported no cost)" in out  # the total line
    (line,) = [x for x in out.splitlines() if x.startswith("  unknown ")]
    assert "$0.0100 · 510 in (100 cached) / 55 out (1 of 2 runs reported no cost)" in line
    (sonnet,) = [x for x in out.splitlines() if x.startswith("  claude-sonnet ")]
    assert sonnet.endswith("(1 of 2 runs reported no cost)"), sonnet
    data = Cli(redis_url).json("status", "--pass", MIXED)
    assert data["pass"]["costs"]["model_runs"] == {
        "claude-sonnet": {"runs": 2, "runs_without_cost": 1},
        "unknown": {"runs": 2, "runs_without_cost": 1},
    }
