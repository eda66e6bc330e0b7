"""What a finding cost, as every view says it: ``pipeline status`` with its totals and its
cost per model, totals that add up from the rows shown above them, tokens (and the cached
ones) beside every cost, lineage totals that say what they cover, a task's whole cost, the
model of a synthesis, and a cost on every progress line of the pipeline's own agents."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._errors import AlreadyCompleted
from redis_swarm._pipeline import load_plan, synthesis_id
from redis_swarm._usage import Money, Usage

from ._cli import Cli, Out
from ._servers import ServerFactory
from .test_pipeline_cost import CODEX, SYNTH
from .test_pipeline_run import short_backoff

PY = sys.executable

# A worker: Codex's events for a task saying CODEX, Claude's error costing $0.05 for one
# saying FAIL, else Claude's JSON costing the COST=x its task says, 2,000 tokens in (1,600
# of them cached) and 200 out, on claude-haiku-4-5.
WORKER = r"""
import json, re, subprocess, sys, os
prompt = sys.stdin.read()
if "CODEX" in prompt:
    here = os.path.dirname(os.path.abspath(__file__))
    print(subprocess.run([sys.executable, os.path.join(here, "codex.py")], input="",
                         capture_output=True, text=True).stdout, end="")
    sys.exit(0)
if "FAIL" in prompt:
    print(json.dumps({"type": "result", "is_error": True, "result": "overloaded",
                      "total_cost_usd": 0.05,
                      "usage": {"input_tokens": 100, "output_tokens": 10}}))
    sys.exit(0)
cost = float(re.search(r"COST=([0-9.]+)", prompt).group(1))
finding = {"summary": "found at " + str(cost)}
print(json.dumps({"type": "result", "is_error": False, "result": json.dumps(finding),
                  "total_cost_usd": cost,
                  "usage": {"input_tokens": 400, "cache_read_input_tokens": 1600,
                            "output_tokens": 200},
                  "modelUsage": {"claude-haiku-4-5": {"inputTokens": 400,
                                 "cacheReadInputTokens": 1600, "outputTokens": 200,
                                 "costUSD": cost}}}))
"""

# A synthesizer in plain text (no usage) citing every finding of its prompt.
PLAIN_SYNTH = r"""
import re, sys
ids = re.findall(r"^- \[(f-[a-z0-9]+)\]", sys.stdin.read(), re.M)
print("Synthesis: " + " ".join("[" + i + "]" for i in ids))
"""

# A planner whose first run the CLI reports as failed ($0.011), whose second answer is no
# task list ($0.013), and whose third plans one task ($0.017).
PLANNER = r"""
import json, os, sys
sys.stdin.read()
counter = os.path.join(os.path.dirname(os.path.abspath(__file__)), "planner-runs")
runs = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(runs + 1))
cost, text = [(0.011, "overloaded"), (0.013, "I think [maybe"),
              (0.017, json.dumps(["Dig COST=0.2"]))][min(runs, 2)]
print(json.dumps({"type": "result", "is_error": runs == 0, "result": text,
                  "total_cost_usd": cost,
                  "usage": {"input_tokens": 100, "output_tokens": 5}}))
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def write_agents(tmp_path: Path) -> None:
    for name, text in (("worker.py", WORKER), ("codex.py", CODEX), ("plain.py", PLAIN_SYNTH),
                       ("synth.py", SYNTH), ("planner.py", PLANNER)):  # fmt: skip
        (tmp_path / name).write_text(text)


TWO_PASSES = f"""
name = "views"

[workers]
exec = "{PY} AGENTS/worker.py"

[synthesizer]
exec = "{PY} AGENTS/plain.py"

[[passes]]
name = "One"
tasks = ["Look COST=1.585154"]

[[passes]]
name = "Two"
tasks = ["Look COST=0.364454"]
"""


def plan_file(tmp_path: Path, body: str) -> Path:
    write_agents(tmp_path)
    path = tmp_path / "plan.toml"
    path.write_text(body.replace("AGENTS", str(tmp_path)))
    return path


def dollars(text: str) -> list[Decimal]:
    return [Decimal(d.replace(",", "")) for d in re.findall(r"\$([0-9,]+\.[0-9]+)", text)]


def test_status_shows_totals_and_cost_per_model_in_every_views_decimals(
    cli: Cli, tmp_path: Path
) -> None:
    """$1.585154 and $0.364454 read $1.5852 + $0.3645 at four decimals, whose sum is not
    the total's $1.9496: the total says so ("≈"), in the totals row, the last line, the
    report and the end of the run alike, and each pass's cost reads as ``swarm status
    --pass`` says it (one rule of decimals for every view: it took six here, four there);
    the totals of tokens and the cost per model are shown, not only in --json."""
    path = plan_file(tmp_path, TWO_PASSES)
    ran = cli("pipeline", "run", str(path)).stdout
    assert ran.rstrip().endswith(  # (the plain synthesizer's 2 runs: no cost)
        "pipeline views: done, ≈$1.9496 spent (2 of 4 runs reported no cost)"
    )
    status = cli("pipeline", "status", "views").stdout
    rows = {line.split()[0]: line for line in status.splitlines() if line.strip()}
    one, two, total = (dollars(rows[name]) for name in ("One", "Two", "total"))
    assert (one[0], two[0], total[0]) == (Decimal("1.5852"), Decimal("0.3645"),
                                         Decimal("1.9496"))  # fmt: skip
    assert "≈$1.9496" in rows["total"]
    assert "4,000 (3,200 cached)/400" in rows["total"]  # the totals of tokens
    assert (
        "$1.9496" in rows["claude-haiku-4-5"]
        and "4,000 (3,200 cached)/400" in rows["claude-haiku-4-5"]
    )  # the cost per model
    assert "pipeline views: done, ≈$1.9496 spent" in status
    for label, cost in (("views: One", "$1.5852"), ("views: Two", "$0.3645")):
        assert f"pass cost: {cost} · " in cli("status", "--pass", label).stdout
    report = cli("pipeline", "report", "views").stdout
    assert "| **total** | 2 | 2 | 0 | 2 | ≈$1.9496 | - | 4,000 | 3,200 | 400 | |" in report
    assert "| claude-haiku-4-5 | $1.9496 | 4,000 | 3,200 | 400 |" in report


def test_a_total_whose_parts_do_not_add_up_reads_approximate() -> None:
    """Parts shown rounded apart that do not add up to their total as shown: the total says
    so ("≈") rather than contradict them; parts that add up read plain."""
    parts = [1.44444445, 1.44444445]
    money = Money()
    assert money(parts[0]) == "$1.4444"
    assert money.total(parts, sum(parts)) == "≈$2.8889"
    assert money.total([0.1, 0.2], 0.1 + 0.2) == "$0.3000"
    tokens = {"cost_usd": sum(parts), "tokens_in": 10, "tokens_out": 2, "cached_in": 4}
    assert money.line(tokens, parts) == "≈$2.8889 · 10 in (4 cached) / 2 out"


PLANNED = f"""
name = "views"
max_attempts = 1

[workers]
exec = "{PY} AGENTS/worker.py"

[synthesizer]
exec = "{PY} AGENTS/synth.py"

[planner]
exec = "{PY} AGENTS/planner.py"

[[passes]]
name = "One"
tasks = ["Look CODEX", "Look COST=0.1", "Look FAIL"]

[[passes]]
name = "Two"
plan = "Dig deeper"
"""


@dataclass(frozen=True)
class PlannedRun:
    """PLANNED run once (a refused synthesizer run, the planner's failed and refused runs)
    on a server of the module's own: its two tests only read what it left."""

    url: str
    path: Path
    out: Out


@pytest.fixture(scope="module")
def planned(
    servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlannedRun]:
    server = servers.start()
    tmp_path = tmp_path_factory.mktemp("planned")
    path = plan_file(tmp_path, PLANNED)
    with Swarm(server.url, swarm="test") as swarm:
        short_backoff(swarm, path)  # the refused and failed runs are retried at once
    with pytest.MonkeyPatch.context() as env:  # (as _private_swarm_home, for the module)
        env.setenv("SWARM_HOME", str(tmp_path_factory.mktemp("swarm-home")))
        out = Cli(server.url)("pipeline", "run", str(path), env={"BAD_TRIES": "1"})
    yield PlannedRun(server.url, path, out)
    server.stop()


@pytest.fixture
def planned_swarm(planned: PlannedRun) -> Iterator[Swarm]:
    with Swarm(planned.url, swarm="test") as handle:
        yield handle


def test_every_run_of_the_planner_and_synthesizer_says_its_cost(planned: PlannedRun) -> None:
    """A refused synthesizer run, a planner's failed and refused runs, and the good ones:
    each progress line ends with what that run cost (the runner's "(the run cost ...)" of a
    failed one not said twice)."""
    said = planned.out.stderr
    assert "pass 1/2 'One': synthesizer try 1: refused: it cited [f-bogus]" in said
    assert "(this run: $0.5000 · 5,000 in / 300 out)\n" in said
    assert re.search(r"'One': synthesis s-\S+ citing 2 findings \(this run: \$0\.5000 · "
                     r"5,000 in / 300 out\)", said)  # fmt: skip
    assert (
        "pass 2/2 'Two': planner try 1: the agent CLI reported an error: overloaded "
        "(this run: $0.0110 · 100 in / 5 out)\n" in said
    )  # said once, not also as "(the run cost $0.0110)"
    refused = "planner try 2: refused: it holds no JSON array (this run: $0.0130 · 100 in / 5 out)"
    assert refused in said
    assert "planner try 3: 1 task planned (this run: $0.0170 · 100 in / 5 out)" in said


def test_every_cost_is_said_with_its_tokens_and_every_total_what_it_covers(
    planned: PlannedRun, planned_swarm: Swarm
) -> None:
    """A Codex finding (tokens, no cost), a dead task ($0.05), a refused synthesizer run, a
    planner with a failed and a refused run: the lineage says each run's tokens (the cached
    ones too), its totals say what they cover (a synthesis's leaves out the dead task and the
    planner, its pass's total has them), and the pipeline's ends with what status counts;
    the report, a shown finding and a shown synthesis say the same, an unknown model "-"."""
    cli, swarm, path = Cli(planned.url), planned_swarm, planned.path
    plan = load_plan(path)
    sid = synthesis_id(plan, 0)
    text = cli("lineage", sid).stdout
    codex_line = "model -, attempt 1, no context, cost unknown · 2,000 in (500 cached) / 100 out"
    assert codex_line in text
    assert ", $0.1000 · 2,000 in (1,600 cached) / 200 out" in text
    head = f"synthesis {sid} (views: One, model claude-opus-4-1, $0.5000 · 5,000 in / 300 out)"
    assert head in text
    lines = text.splitlines()
    assert lines[-2] == (
        "  total: $1.1000 · 14,000 in (2,100 cached) / 900 out (1 of 4 runs reported no cost)"
    )
    assert lines[-1].startswith("  (total of its own runs (refused and failed ones too) and the ")
    assert "not the pass's other runs" in lines[-1]
    tree = cli.json("lineage", sid)
    assert tree["total_covers"] in lines[-1]
    codex = next(f for f in tree["findings"] if f["model"] is None)
    assert codex["usage"] == {
        "cost_usd": None, "tokens_in": 2000, "cached_in": 500, "tokens_out": 100
    }  # fmt: skip

    # the pipeline: each pass's whole cost (the planner's runs are pass Two's, not its
    # synthesis's) and the grand total, as pipeline status counts them
    status = cli.json("pipeline", "status", "views")
    whole = cli.json("lineage", "views")
    figures = ("cost_usd", "tokens_in", "cached_in", "tokens_out")
    assert whole["total"] == {k: status[k] for k in figures}
    for node, row in zip(whole["passes"], status["passes"], strict=True):
        assert node["pass_total"] == {k: row[k] for k in figures}
    one, two = whole["passes"]
    assert one["pass_total"]["cost_usd"] == pytest.approx(one["total"]["cost_usd"] + 0.05)
    assert two["pass_total"]["cost_usd"] == pytest.approx(two["total"]["cost_usd"] + 0.041)
    tree_text = cli("lineage", "views").stdout.splitlines()
    assert tree_text[-2] == (  # (the Codex worker's run: no cost)
        "  total: $1.8910 · 21,400 in (3,700 cached) / 1,425 out (1 of 10 runs reported no cost)"
    )
    assert "as swarm pipeline status counts it" in tree_text[-1]
    assert "    pass total: $0.7410 · 7,300 in (1,600 cached) / 515 out" in tree_text

    # the report's cited findings and syntheses say their tokens; an unknown model is "-"
    report = cli("pipeline", "report", "views").stdout
    assert "model -, task " in report and "cost unknown · 2,000 in (500 cached) / 100 out" in report
    assert "(model claude-opus-4-1, $0.5000 · 5,000 in / 300 out):" in report
    assert "(its failed runs: $0.0500 · 100 in / 10 out)" in report  # the dead task's
    # findings and synth show alike
    (found,) = [f for f in swarm.findings(pass_name="views: One").items if f.model is None]
    shown = cli("findings", found.id).stdout
    assert "cost unknown · 2,000 in (500 cached) / 100 out" in shown
    listed = cli("findings", "--pass", "views: One").stdout
    assert "500 cached" in listed
    synth = cli("synth", "show", sid).stdout
    assert re.search(r"^model\s+claude-opus-4-1\s*$", synth, re.M)


def test_a_task_shows_what_every_run_on_it_cost(cli: Cli, swarm: Swarm) -> None:
    """A failed run ($0.02), the finding ($0.10) and a late report superseded ($0.03):
    `task show` and `lineage TASK` say each part and the $0.15 in all; a completed task's
    one failure is counted against its limit, not read as a dead letter."""
    swarm.configure_queue("q", retry_backoff_s=0.01)  # a short backoff: the retry matters
    task = swarm.post_task("q", "look into it")
    first = swarm.claim(["q"], worker="w1")
    assert first is not None and first.token is not None
    failed = Usage("claude-json", cost_usd=0.02, tokens_in=1500, cached_in=1000, tokens_out=40)
    swarm.fail(first.id, first.token, "is_error", usage=failed)
    second = swarm.claim(["q"], worker="w2", wait_s=3)  # after the backoff
    assert second is not None and second.token is not None and second.id == task.id
    own = Usage("claude-json", cost_usd=0.1, tokens_in=1000, tokens_out=100)
    finding = swarm.report(task.id, second.token, {"summary": "found"}, usage=own)
    late_usage = Usage("claude-json", cost_usd=0.03, tokens_in=500, tokens_out=10)
    with pytest.raises(AlreadyCompleted) as raised:
        swarm.report(task.id, first.token, {"summary": "late"}, worker="w1", usage=late_usage)
    late = raised.value.finding_id
    shown = cli("task", "show", task.id).stdout
    pairs = (re.split(r"\s{2,}", line, maxsplit=1) for line in shown.splitlines())
    rows = {k: v.strip() for k, v in pairs}
    assert rows["failures"] == "1 of at most 3 (max_attempts)"
    assert "dead-lettered" not in shown
    assert rows["failed runs cost"] == "$0.0200 · 1,500 in (1,000 cached) / 40 out"
    assert rows["finding cost"] == "$0.1000 · 1,000 in / 100 out"
    assert rows[f"superseded {late} cost"] == "$0.0300 · 500 in / 10 out"
    assert rows["cost in all"].startswith("$0.1500 · 3,000 in (1,000 cached) / 150 out (its ")
    tree = cli.json("lineage", task.id)
    assert tree["total"] == {
        "cost_usd": 0.15, "tokens_in": 3000, "cached_in": 1000, "tokens_out": 150
    }  # fmt: skip
    assert tree["finding"]["id"] == finding.id
    assert [f["id"] for f in tree["superseded"]] == [late]
    lines = cli("lineage", task.id).stdout.splitlines()
    assert f"  finding {late} (superseded: reported after its task was settled): late" in lines
    assert lines[-2] == "  total: $0.1500 · 3,000 in (1,000 cached) / 150 out"
    assert lines[-1].startswith("  (total of its finding, the findings reported on it after")


def test_status_json_counts_the_cached_tokens(cli: Cli, tmp_path: Path) -> None:
    path = plan_file(tmp_path, TWO_PASSES)
    summary = json.loads(cli("--json", "pipeline", "run", str(path)).stdout)
    assert summary["cached_in"] == 3200 and summary["passes"][0]["cached_in"] == 1600
    assert summary["by_model"]["claude-haiku-4-5"]["cached_in"] == 3200
