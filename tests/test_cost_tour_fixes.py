"""What a tour of a multi-vendor swarm's costs (Claude, Codex, Gemini) found wrong, fixed:
Claude's tokens read from ``modelUsage`` (the whole run), not its partial ``usage``; a
budget of nan or inf refused at the option as in the plan; the unknown-cost note on a
budget's stop line and on a synthesis's lineage total; a warning when no agent can spend a
budget in USD; per-model rows inside the decimals of status, and the report showing every
cost with one set of decimals; per-model cached tokens; a failed Codex run kept under its
``--model``; a pass whose every task died stopping the run for that; ``swarm run``'s cached
tokens."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._runner.output import read_output

from ._cli import Cli

PY = sys.executable

# A real result of `claude -p --output-format json` (a run that called two models): its
# `usage` covers the last iteration of the main model only, `modelUsage` the whole run.
RECORDED_CLAUDE: dict[str, Any] = json.loads("""
{
  "type": "result", "subtype": "success", "is_error": false,
  "result": "{\\"summary\\": \\"what the recorded run found\\"}",
  "total_cost_usd": 1.83086345,
  "usage": {"input_tokens": 7, "cache_creation_input_tokens": 27892,
            "cache_read_input_tokens": 95114, "output_tokens": 3996},
  "modelUsage": {
    "claude-haiku-4-5-20251001": {"inputTokens": 10508, "outputTokens": 15,
                                  "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0,
                                  "costUSD": 0.010583},
    "claude-sonnet-4-6": {"inputTokens": 48, "outputTokens": 40418,
                          "cacheReadInputTokens": 2218994, "cacheCreationInputTokens": 129443,
                          "costUSD": 1.82028045}
  }
}
""")

# A worker: Codex's events (tokens, no cost) when its task says "codex"; else Claude's
# result, costing the task's "cost X" on model "model M"; "recorded": RECORDED_CLAUDE.
WORKER = r"""
import json, os, re, sys
prompt = sys.stdin.read()
finding = json.dumps({"summary": "found for " + os.environ["SWARM_TASK_ID"]})
if "recorded run" in prompt:
    result = json.loads(open(os.path.join(os.path.dirname(__file__), "recorded.json")).read())
    result["result"] = finding
    print(json.dumps(result))
elif "codex" in prompt:
    for event in [{"type": "thread.started", "thread_id": "th1"},
                  {"type": "item.completed",
                   "item": {"id": "i1", "type": "agent_message", "text": finding}},
                  {"type": "turn.completed",
                   "usage": {"input_tokens": 2000, "cached_input_tokens": 500,
                             "output_tokens": 100}}]:
        print(json.dumps(event))
else:
    cost, model = re.search(r"cost ([0-9.]+) model (\S+)", prompt).groups()
    print(json.dumps({"type": "result", "is_error": False, "result": finding,
                      "total_cost_usd": float(cost),
                      "usage": {"input_tokens": 10, "output_tokens": 5},
                      "modelUsage": {model: {"inputTokens": 10, "outputTokens": 5,
                                             "cacheReadInputTokens": 3,
                                             "costUSD": float(cost)}}}))
"""

# A synthesizer citing every finding of its prompt, costing argv[1] on model argv[2].
SYNTH = r"""
import json, re, sys
prompt = sys.stdin.read()
ids = re.findall(r"^- \[(f-[a-z0-9]+)\]", prompt, re.M)
cost, model = float(sys.argv[1]), sys.argv[2]
print(json.dumps({"type": "result", "is_error": False,
                  "result": " ".join("[" + i + "]" for i in ids), "total_cost_usd": cost,
                  "modelUsage": {model: {"inputTokens": 20, "outputTokens": 5,
                                         "cacheReadInputTokens": 0, "costUSD": cost}}}))
"""

# Codex failing: a turn.failed after some tokens spent.
CODEX_FAILING = r"""
import json, sys
sys.stdin.read()
for event in [{"type": "thread.started", "thread_id": "th1"},
              {"type": "turn.completed",
               "usage": {"input_tokens": 900, "cached_input_tokens": 100, "output_tokens": 9}},
              {"type": "turn.failed", "error": {"message": "stream disconnected"}}]:
    print(json.dumps(event))
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def agents(tmp_path: Path) -> None:
    for name, text in (("worker.py", WORKER), ("synth.py", SYNTH), ("cxfail.py", CODEX_FAILING)):
        (tmp_path / name).write_text(text)
    (tmp_path / "recorded.json").write_text(json.dumps(RECORDED_CLAUDE))


def plan_file(tmp_path: Path, name: str, tasks: list[str], *, synth: str = "0.001 ms",
              extra: str = "", passes: str = "") -> Path:  # fmt: skip
    agents(tmp_path)
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\n{extra}\n[workers]\nexec = "{PY} {tmp_path}/worker.py"\n'
        f'concurrency = 1\n\n[synthesizer]\nexec = "{PY} {tmp_path}/synth.py {synth}"\n\n'
        f'[[passes]]\nname = "One"\ntasks = {json.dumps(tasks)}\n{passes}'
    )
    return path


def status(cli: Cli, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli("--json", "pipeline", "status", name).stdout)
    return data


# --- 1 and 6: Claude's tokens from modelUsage, cached tokens per model


def test_claude_tokens_are_the_sums_of_model_usage() -> None:
    out = read_output(json.dumps(RECORDED_CLAUDE))
    u = out.usage
    assert u is not None and u.faults() == [] and out.dropped == ()
    # every input token (input, cache read, cache creation) of both models
    assert u.tokens_in == 10508 + 48 + 2218994 + 129443 == 2358993
    assert (u.cached_in, u.tokens_out, u.cost_usd) == (2218994, 40433, 1.83086345)
    assert u.models == {
        "claude-haiku-4-5-20251001": {"cost_usd": 0.010583, "tokens_in": 10508, "cached_in": 0,
                                      "tokens_out": 15},
        "claude-sonnet-4-6": {"cost_usd": 1.82028045, "tokens_in": 2348485,
                              "cached_in": 2218994, "tokens_out": 40418},
    }  # fmt: skip
    for key in ("tokens_in", "cached_in", "tokens_out"):
        assert sum(m[key] for m in u.models.values()) == getattr(u, key)
    # no modelUsage: the usage it has
    bare = read_output(json.dumps({**RECORDED_CLAUDE, "modelUsage": None})).usage
    assert bare is not None and (bare.tokens_in, bare.cached_in, bare.tokens_out) == (
        123013, 95114, 3996
    )  # fmt: skip
    # a modelUsage with costs and no tokens: the usage's tokens too
    costs_only = {"claude-sonnet-4-6": {"costUSD": 1.83086345}}
    priced = read_output(json.dumps({**RECORDED_CLAUDE, "modelUsage": costs_only})).usage
    assert priced is not None and priced.tokens_in == 123013
    # a model's count no run reports: the sum is unknown, not the usage's part
    bad = json.loads(json.dumps(RECORDED_CLAUDE))
    bad["modelUsage"]["claude-sonnet-4-6"]["outputTokens"] = -1
    odd = read_output(json.dumps(bad))
    assert odd.usage is not None and odd.usage.tokens_out is None
    assert odd.usage.tokens_in == 2358993


def test_gemini_keeps_its_cached_tokens_per_model() -> None:
    stats = {"models": {"gemini-2.5-pro": {"tokens": {"prompt": 1000, "candidates": 80,
                                                       "cached": 300, "thoughts": 20}},
                        "gemini-2.5-flash": {"tokens": {"prompt": 276, "candidates": 2,
                                                         "cached": 0, "thoughts": 0}}}}  # fmt: skip
    u = read_output(json.dumps({"response": "ok", "stats": stats})).usage
    assert u is not None and u.cached_in == 300
    assert u.models["gemini-2.5-pro"]["cached_in"] == 300
    assert u.models["gemini-2.5-flash"]["cached_in"] == 0


def test_a_pipeline_of_the_recorded_run_agrees_per_model(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = plan_file(tmp_path, "recorded", ["the recorded run"], synth="0.001 ms")
    cli("pipeline", "run", str(path))
    data = status(cli, "recorded")
    models = data["by_model"]
    for key in ("tokens_in", "cached_in", "tokens_out"):
        assert sum(m[key] for m in models.values()) == data[key], key
    assert data["tokens_in"] == 2358993 + 20 and data["cached_in"] == 2218994
    assert models["claude-sonnet-4-6"]["cached_in"] == 2218994
    assert models["claude-haiku-4-5-20251001"]["cached_in"] == 0
    assert sum(m["cost_usd"] for m in models.values()) == pytest.approx(data["cost_usd"])


# --- 2: a budget of nan or inf is refused at the option


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e10", "-1", "lots"])
def test_max_cost_usd_takes_what_the_plan_takes(cli: Cli, tmp_path: Path, value: str) -> None:
    path = plan_file(tmp_path, "budget", ["codex A"])
    out = cli("pipeline", "run", str(path), "--max-cost-usd", value, expect=2)
    assert "--max-cost-usd" in out.stderr and "max_cost_usd" in out.stderr
    if value != "lots":
        assert "must be a number from 0 to 1e+09" in out.stderr
    # the plan says the same of the same value
    (tmp_path / "nan.toml").write_text(
        path.read_text().replace('name = "budget"', 'name = "budget"\nmax_cost_usd = nan')
    )
    refused = cli("pipeline", "check", str(tmp_path / "nan.toml"), expect=1)
    assert "max_cost_usd: must be a number from 0 to 1e+09" in refused.stderr


# --- 3 and 9: what a cost leaves out, on the budget's stop line and a synthesis's total


def test_a_budget_stop_and_a_synthesis_total_name_the_runs_without_cost(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = plan_file(
        tmp_path, "mixed", ["codex A", "cost 0.01 model ma", "cost 0.01 model ma"],
        synth="0.05 ms", extra="max_cost_usd = 0.021",
        passes='\n[[passes]]\nname = "Two"\ntasks = ["cost 0.01 model ma"]\n',
    )  # fmt: skip
    out = cli("pipeline", "run", str(path), expect=1)
    last = out.stdout.splitlines()[-1]
    assert last.startswith("pipeline mixed: stopped: the budget is spent: $0.0700 "), last
    assert "(1 of 4 runs reported no cost) of max_cost_usd $0.021" in last
    synthesis = status(cli, "mixed")["passes"][0]["synthesis"]
    tree = cli("lineage", synthesis).stdout.splitlines()
    total = [line for line in tree if line.startswith("  total: ")]
    assert total and total[0].endswith("(1 of 4 runs reported no cost)"), tree
    assert cli.json("--json", "lineage", synthesis)["runs_without_cost"] == 1


# --- 4: a budget no agent can spend is said


def test_a_budget_no_agent_reports_a_cost_for_is_warned_once(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    # known CLIs that report no cost: said by check and by run, before anything runs
    bindir = tmp_path / "bin"
    bindir.mkdir()
    codex = bindir / "codex"
    codex.write_text(f"#!/bin/sh\nexec {PY} {tmp_path}/worker.py\n")
    codex.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    known = tmp_path / "known.toml"
    agents(tmp_path)
    known.write_text(
        'name = "known"\nmax_cost_usd = 5\n[workers]\nexec = "codex exec --json -"\n'
        '[synthesizer]\nexec = "codex exec --json -"\n[[passes]]\nname = "One"\n'
        'tasks = ["codex A"]\n'
    )
    checked = cli("pipeline", "check", str(known), env=env)
    assert "every agent command of the plan runs codex" in checked.stderr
    assert "cannot stop this pipeline" in checked.stderr
    assert "warning" not in checked.stdout
    # another program: said once its first runs reported no cost
    path = plan_file(tmp_path, "unknown", ["codex A", "codex B"], extra="max_cost_usd = 5")
    out = cli("pipeline", "run", str(path))
    said = [line for line in out.stderr.splitlines() if "cannot stop this run" in line]
    assert len(said) == 1 and "agent run(s) recorded so far reported a cost" in said[0], said
    assert "max_cost_usd $5 cannot stop this run while none does" in said[0]
    # a budget some agent spends: no warning
    paid = plan_file(tmp_path, "paid", ["cost 0.01 model ma"], extra="max_cost_usd = 5")
    assert "cannot stop" not in cli("pipeline", "run", str(paid)).stderr


# --- 5: the model rows add up in status; the report shows every cost one way


def test_status_model_rows_add_up_to_the_total(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    path = plan_file(
        tmp_path, "rows", ["cost 0.00014 model ma", "cost 0.00014 model mb"], synth="0 ms"
    )
    cli("pipeline", "run", str(path))
    text = cli("pipeline", "status", "rows").stdout
    # $0.0001 + $0.0001 (+ $0.0000) under $0.0003 would not add up: five decimals
    assert text.count("$0.00014") == 2 and "$0.00028" in text, text
    assert "$0.0001 " not in text


def test_the_report_shows_every_cost_with_one_set_of_decimals(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = plan_file(
        tmp_path, "dec", ["cost 0.00014 model mw", "cost 0.00014 model mw"], synth="0.001 ms"
    )
    cli("pipeline", "run", str(path))
    shown = cli("pipeline", "status", "dec").stdout
    assert "$0.0013" in shown and "$0.00128" not in shown  # models add up at four
    report = cli("pipeline", "report", "dec").stdout
    passes, tables = report.split("## Cost")
    # the pass's runs take the decimals they need to add up to its cost, and the whole
    # report takes them: one cost never reads $0.00128 above and $0.0013 below
    assert "Pass cost, the runs above: $0.00128" in passes
    money = re.findall(r"\$\d+\.(\d+)", report)
    assert money and {len(m) for m in money} == {5}, report
    assert "$0.00128" in tables and "$0.0013 " not in tables


# --- 7: a failed Codex run keeps its --model; a pass whose tasks died says so


def test_a_failed_codex_run_is_kept_under_its_model(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    agents(tmp_path)
    task = swarm.post_task("q", "Find the retries", max_attempts=1)
    command = f"{PY} {tmp_path}/cxfail.py"
    cli("run", "--queue", "q", "--exec", command, "--model", "gpt-5-codex", "--idle-exit", "0.5",
        expect=1)  # fmt: skip
    failed = swarm.get_task(task.id).failed_usage
    assert failed is not None and failed.models == {
        "gpt-5-codex": {"tokens_in": 900, "cached_in": 100, "tokens_out": 9}
    }


def test_a_pass_whose_tasks_all_died_is_what_stops_the_run(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = plan_file(tmp_path, "died", ["A", "B"], extra="max_tasks = 4\nmax_attempts = 2")
    text = path.read_text().replace("worker.py", "cxfail.py")
    path.write_text(text.replace("concurrency = 1", 'concurrency = 1\nmodel = "gpt-5-codex"'))
    out = cli("pipeline", "run", str(path), expect=1)
    assert "task budget" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert "pipeline died: stopped by the error that follows" in out.stdout
    assert "every task died" in out.stderr
    models = status(cli, "died")["by_model"]
    assert set(models) == {"gpt-5-codex"} and models["gpt-5-codex"]["tokens_in"] == 3600


# --- 8: swarm run's summary says the cached tokens, and the runs without a cost


def test_the_run_summary_says_its_cached_tokens(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    agents(tmp_path)
    command = f"{PY} {tmp_path}/worker.py"
    swarm.post_task("q", "codex one")
    out = cli("run", "--queue", "q", "--exec", command, "--idle-exit", "0.5")
    assert out.stdout.splitlines()[-1].endswith(
        "; agent runs: cost unknown · 2,000 in (500 cached) / 100 out"
    )
    swarm.post_task("q", "codex two")
    swarm.post_task("q", "cost 0.01 model ma")
    data = json.loads(
        cli("--json", "run", "--queue", "q", "--exec", command, "--idle-exit", "0.5").stdout
    )
    assert data["usage"] == {"cost_usd": 0.01, "tokens_in": 2013, "cached_in": 503,
                             "tokens_out": 105, "runs": 2, "runs_without_cost": 1}  # fmt: skip
