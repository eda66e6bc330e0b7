"""What an agent run cost, recorded whatever became of it: a run whose result is empty, a
finding the core refused, a run that exits non-zero with the CLI's error, an agent that
reported its task itself (counted in the run's total, its finding left as reported), Gemini
CLI's JSON, and the pool's summary
(``swarm run``: the cost and tokens of its runs, each outcome's usage)."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import InvalidState, Swarm
from redis_swarm._keys import ask_queue
from redis_swarm._runner import ServeOptions, Server, read_output

from ._cli import Cli

PY = sys.executable
FINDING = {"summary": "three retries", "sources": ["notes.md:4"]}


def claude(result: str, cost: float | None, **fields: Any) -> dict[str, Any]:
    """The result object of ``claude -p --output-format json`` (its documented fields)."""
    out: dict[str, Any] = {
        "type": "result", "subtype": "success", "is_error": False, "duration_ms": 1234,
        "num_turns": 3, "result": result, "session_id": "sess-1", "total_cost_usd": cost,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 100, "output_tokens": 10},
        "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 10, "outputTokens": 10,
                                             "cacheReadInputTokens": 100,
                                             "cacheCreationInputTokens": 0, "costUSD": cost}},
        **fields,
    }  # fmt: skip
    if cost is None:
        del out["total_cost_usd"]
        del out["modelUsage"]
    return out


# `gemini -p --output-format json`: the answer, and per model its tokens; no cost.
GEMINI: dict[str, Any] = {
    "response": "Looked.\n```json\n" + json.dumps(FINDING) + "\n```\n",
    "stats": {
        "models": {
            "gemini-2.5-pro": {
                "api": {"totalRequests": 2, "totalErrors": 0, "totalLatencyMs": 5053},
                "tokens": {"prompt": 24939, "candidates": 20, "total": 25113, "cached": 21263,
                           "thoughts": 154, "tool": 0},
            },
            "gemini-2.5-flash": {
                "api": {"totalRequests": 1, "totalErrors": 0, "totalLatencyMs": 800},
                "tokens": {"prompt": 1200, "candidates": 40, "total": 1300, "cached": 0,
                           "thoughts": 60, "tool": 0},
            },
        },
        "tools": {"totalCalls": 1, "totalSuccess": 1, "totalFail": 0, "totalDurationMs": 40,
                  "totalDecisions": {"accept": 0, "reject": 0, "modify": 0, "auto_accept": 1},
                  "byName": {}},
        "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
    },
}  # fmt: skip


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


def agent(tmp_path: Path, name: str, body: str) -> str:
    """A fake agent CLI: ``body``, run with the prompt on stdin."""
    script = tmp_path / f"{name}.py"
    script.write_text("import json, os, sys\nsys.stdin.read()\n" + textwrap.dedent(body))
    return f"{PY} {script}"


def printer(tmp_path: Path, name: str, value: Any, code: int = 0) -> str:
    """A fake agent CLI that prints ``value`` as JSON and exits ``code``."""
    data = tmp_path / f"{name}.json"
    data.write_text(json.dumps(value))
    return agent(tmp_path, name, f"print(open({str(data)!r}).read())\nsys.exit({code})\n")


def run(cli: Cli, command: str, *args: str, expect: int = 0) -> dict[str, Any]:
    out = cli(
        "--json", "run", "--queue", "q", "--exec", command, "--idle-exit", "0.5", *args,
        expect=expect,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out.stdout)
    return data


# --- 1. failures that have the run's usage keep it (failed_usage)


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({}, "the CLI returned an empty result (exit code 0)"),
        ({"subtype": "error_max_turns"}, "the CLI returned an empty result (error_max_turns, "),
    ],
)
def test_an_empty_result_fails_with_its_cost_kept(
    cli: Cli, handle: Swarm, tmp_path: Path, fields: dict[str, Any], said: str
) -> None:
    """Claude prints ``"result": ""`` (as after its turns ran out), exits 0: the task fails,
    and what the run cost is kept on it, counted against a pipeline's budget."""
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    summary = run(cli, printer(tmp_path, "empty", claude("", 0.04, **fields)), expect=1)
    assert summary["failed"] == 1
    task = handle.get_task(t.id)
    assert said in (task.last_error or "") and "(the run cost $0.0400)" in (task.last_error or "")
    assert "printed nothing" not in (task.last_error or "")
    assert task.failed_usage is not None and task.failed_usage.cost_usd == 0.04
    assert task.failed_usage.tokens_in == 110
    # plain text that is empty still says the agent printed nothing, with no usage
    t2 = handle.post_task("q", "Again", max_attempts=1)
    run(cli, agent(tmp_path, "silent", "print()\n"), expect=1)
    silent = handle.get_task(t2.id)
    assert "the agent printed nothing" in (silent.last_error or "")
    assert silent.failed_usage is None


def test_a_refused_finding_keeps_what_its_run_cost(cli: Cli, handle: Swarm, tmp_path: Path) -> None:
    nested: Any = "x"
    for _ in range(250):  # deeper than findings may nest: the core refuses it
        nested = [nested]
    answer = json.dumps({"summary": "deep", "deep": nested})
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    run(cli, printer(tmp_path, "deep", claude(answer, 0.07)), expect=1)
    task = handle.get_task(t.id)
    assert "the finding was refused" in (task.last_error or "")
    assert task.failed_usage is not None and task.failed_usage.cost_usd == 0.07


# --- 4. a non-zero exit keeps what the CLI said


def test_a_non_zero_exit_keeps_the_cli_error_and_cost(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    failed = claude(
        "API Error: 401 invalid x-api-key", 0.01, is_error=True, subtype="error_during_execution"
    )
    summary = run(cli, printer(tmp_path, "401", failed, code=1), expect=1)
    task = handle.get_task(t.id)
    error = task.last_error or ""
    assert error.startswith("exit code 1; ") and "API Error: 401 invalid x-api-key" in error
    assert "(the run cost $0.0100)" in error
    assert task.failed_usage is not None and task.failed_usage.cost_usd == 0.01
    assert "401 invalid x-api-key" in summary["tasks"][0]["detail"]
    # a CLI's error is cut as an exit-0 one is
    long = claude("E" * 5000, 0.01, is_error=True)
    t2 = handle.post_task("q", "Again", max_attempts=1)
    run(cli, printer(tmp_path, "long", long, code=1), expect=1)
    assert len(handle.get_task(t2.id).last_error or "") < 700
    # a result that is no error, printed before exit 1: its cost is said
    t3 = handle.post_task("q", "Once more", max_attempts=1)
    run(cli, printer(tmp_path, "exit1", claude(json.dumps(FINDING), 0.02), code=1), expect=1)
    assert (handle.get_task(t3.id).last_error or "").startswith(
        "exit code 1 (the run cost $0.0200)"
    )


# --- 2. an agent that reported its task itself


SELF_REPORT = """
from redis_swarm import Swarm, Usage
own = Usage("reported", cost_usd=0.01) if "OWN" in os.environ.get("SWARM_TASK_QUEUE", "") else None
with Swarm(os.environ["SWARM_URL"], swarm=os.environ["SWARM_NAME"]) as swarm:
    swarm.report(os.environ["SWARM_TASK_ID"], os.environ["SWARM_TASK_TOKEN"],
                 {"summary": "reported by the agent itself"}, usage=own)
print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                  "result": "done, reported it", "total_cost_usd": 0.33,
                  "usage": {"input_tokens": 100, "output_tokens": 100}}))
"""


def test_an_agent_that_reported_itself_has_its_runs_cost_counted_not_written(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """The CLI's figure, printed after the agent's own report, is said and summed by the run;
    the finding keeps what its report gave (a worker may not rewrite a finding)."""
    t = handle.post_task("q", "Find the retries", pass_name="P")
    summary = run(cli, agent(tmp_path, "self", SELF_REPORT))
    (outcome,) = summary["tasks"]
    assert outcome["status"] == "completed"
    assert outcome["detail"].startswith("the agent reported it itself; its run cost $0.3300"), (
        outcome["detail"]
    )
    assert outcome["usage"]["cost_usd"] == 0.33
    assert summary["usage"]["cost_usd"] == 0.33
    finding = handle.get_finding(handle.get_task(t.id).finding_id or "")
    assert finding.summary == "reported by the agent itself" and finding.usage is None
    # an agent that passes its cost with its report has it on its finding
    t2 = handle.post_task("q-OWN", "Report with your usage")
    run(cli, agent(tmp_path, "own", SELF_REPORT), "--queue", "q-OWN")
    kept = handle.get_finding(handle.get_task(t2.id).finding_id or "")
    assert kept.usage is not None and kept.usage.cost_usd == 0.01


# --- 3. Gemini CLI


def test_gemini_json_output() -> None:
    out = read_output(json.dumps(GEMINI))
    assert out.answer == GEMINI["response"] and out.error is None
    assert out.model == "gemini-2.5-pro"  # the one with the most tokens
    u = out.usage
    assert u is not None and u.source == "gemini-json" and u.faults() == []
    assert u.cost_usd is None  # Gemini reports no cost: unknown, never 0
    assert (u.tokens_in, u.cached_in, u.tokens_out) == (24939 + 1200, 21263, 20 + 154 + 40 + 60)
    assert u.models == {
        "gemini-2.5-pro": {"tokens_in": 24939, "cached_in": 21263, "tokens_out": 174},
        "gemini-2.5-flash": {"tokens_in": 1200, "cached_in": 0, "tokens_out": 100},
    }
    with_session = read_output(json.dumps({"session_id": "g-1", **GEMINI}))
    assert with_session.usage is not None and with_session.usage.session_id == "g-1"
    failed = read_output(
        json.dumps({"error": {"type": "Error", "message": "quota exceeded", "code": 1}})
    )
    assert failed.error == "the agent CLI reported an error: quota exceeded"
    assert failed.usage is not None and failed.usage.tokens_in is None
    odd = dict(GEMINI, stats={"models": {"g": {"tokens": {"prompt": 5, "cached": 9,
                                                          "candidates": -1}}}})  # fmt: skip
    bad = read_output(json.dumps(odd))
    assert bad.usage is not None and bad.usage.faults() == []
    assert (bad.usage.tokens_in, bad.usage.cached_in, bad.usage.tokens_out) == (5, None, None)
    assert 'stats.models["g"].tokens.candidates -1' in bad.dropped
    # a finding printed as JSON is no Gemini output
    plain = json.dumps({"summary": "s", "response": "r"})
    assert read_output(plain).usage is None


def test_gemini_usage_lands_on_the_finding(cli: Cli, handle: Swarm, tmp_path: Path) -> None:
    t = handle.post_task("q", "Find the retries")
    run(cli, printer(tmp_path, "gemini", GEMINI))
    finding = handle.get_finding(handle.get_task(t.id).finding_id or "")
    assert finding.summary == "three retries" and finding.model == "gemini-2.5-pro"
    assert finding.usage is not None and finding.usage.tokens_in == 26139
    assert finding.usage.cost_usd is None and finding.usage.tokens_out == 274
    t2 = handle.post_task("q", "Again", max_attempts=1)
    run(cli, printer(tmp_path, "gemini-empty", {**GEMINI, "response": ""}), expect=1)
    task = handle.get_task(t2.id)
    assert "the CLI returned an empty result (exit code 0)" in (task.last_error or "")
    assert task.failed_usage is not None and task.failed_usage.tokens_in == 26139


# --- 5. the pool's summary


def test_the_summary_adds_up_what_the_runs_cost(cli: Cli, handle: Swarm, tmp_path: Path) -> None:
    for i in range(2):
        handle.post_task("q", f"task {i}")
    command = printer(tmp_path, "paid", claude(json.dumps(FINDING), 0.1))
    summary = run(cli, command)
    assert summary["usage"] == {"cost_usd": 0.2, "tokens_in": 220, "cached_in": 200,
                                "tokens_out": 20, "runs": 2, "runs_without_cost": 0}  # fmt: skip
    for outcome in summary["tasks"]:
        assert outcome["usage"]["cost_usd"] == 0.1 and outcome["usage"]["source"] == "claude-json"
    handle.post_task("q", "one more")
    out = cli("run", "--queue", "q", "--exec", command, "--idle-exit", "0.5")
    assert out.stdout.splitlines()[-1].endswith(
        "; agent runs: $0.1000 · 110 in (100 cached) / 10 out"
    )
    # runs that report no cost: unknown, never $0
    handle.post_task("q", "plain")
    plain = agent(tmp_path, "plain", f"print(json.dumps({FINDING!r}))\n")
    out = cli("run", "--queue", "q", "--exec", plain, "--idle-exit", "0.5")
    assert out.stdout.splitlines()[-1].endswith(
        "; agent runs: cost unknown (1 of 1 runs reported no cost)"
    )
    handle.post_task("q", "plain")
    assert run(cli, plain)["usage"] == {"cost_usd": None, "tokens_in": None, "cached_in": None,
                                        "tokens_out": None, "runs": 1,
                                        "runs_without_cost": 1}  # fmt: skip
    # some said, some did not
    handle.post_task("q-mixed", "paid")
    handle.post_task("q-mixed", "unpaid")
    paid = tmp_path / "paid.json"  # (written by printer above)
    mixed = agent(
        tmp_path,
        "mixed",
        f"""
        paid = os.environ["SWARM_TASK_ID"] == sys.argv[1]
        print(open({str(paid)!r}).read() if paid else json.dumps({FINDING!r}))
        """,
    )
    first = handle.list_tasks(queue="q-mixed").items[0].id
    out = cli("run", "--queue", "q-mixed", "--exec", f"{mixed} {first}", "--idle-exit", "0.5")
    assert (
        "; agent runs: $0.1000 · 110 in (100 cached) / 10 out (1 of 2 runs reported no cost)"
        in out.stdout
    )


def test_serve_keeps_what_an_empty_answer_cost(handle: Swarm, tmp_path: Path) -> None:
    """``swarm serve``: the same failures keep their usage on the question's task."""
    handle.publish_context("lib", "retry 3 times\n", source="notes.md")
    command = printer(tmp_path, "empty-answer", claude("", 0.04, subtype="error_max_turns"))
    server = Server(handle, ServeOptions(owner="lib", command=command, poll_s=0.2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with pytest.raises(InvalidState, match=r"died unanswered.*returned an empty result"):
            handle.ask("lib", "Q1: anything?", timeout_s=30)
    finally:
        server.drain()
        thread.join(30)
    (question,) = handle.list_tasks(queue=ask_queue("lib")).items
    assert question.failed_usage is not None
    assert question.failed_usage.cost_usd == pytest.approx(0.04 * question.attempts)
    assert all(o.usage is not None and o.usage.cost_usd == 0.04 for o in server.outcomes)
