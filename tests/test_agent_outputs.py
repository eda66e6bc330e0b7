"""Agent CLIs' output formats: Claude Code's ``--output-format json`` result object and Codex's
``exec --json`` events, read for the answer, the cost and the tokens; scripted fake agents
printing those shapes through ``swarm run``; the usage on findings and syntheses."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, Usage, ValidationError
from redis_swarm._runner import read_output

from ._cli import Cli
from ._handles import must

PY = sys.executable

FINDING = {"summary": "three retries", "sources": ["notes.md:4"], "confidence": 0.7}
ANSWER = "Looked.\n```json\n" + json.dumps(FINDING) + "\n```\n"

# The result object of `claude -p --output-format json` (its documented fields).
CLAUDE: dict[str, Any] = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 4200,
    "num_turns": 3,
    "result": ANSWER,
    "session_id": "9ab5afaa-ca36-4b1c-ad62-29ae7f887865",
    "total_cost_usd": 0.0421,
    "usage": {
        "input_tokens": 18,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 20000,
        "output_tokens": 512,
        "server_tool_use": {"web_search_requests": 0},
        "service_tier": "standard",
    },
    "modelUsage": {
        "claude-haiku-4-5": {
            "inputTokens": 300, "outputTokens": 12, "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0, "webSearchRequests": 0, "costUSD": 0.0011,
            "contextWindow": 200000,
        },
        "claude-sonnet-4-5": {
            "inputTokens": 18, "outputTokens": 500, "cacheReadInputTokens": 20000,
            "cacheCreationInputTokens": 1000, "webSearchRequests": 0, "costUSD": 0.041,
            "contextWindow": 200000,
        },
    },
    "permission_denials": [],
    "uuid": "aa74be35-3fd4-4164-8d6e-39deef9a634e",
}  # fmt: skip

# The events of `codex exec --json`, one per line.
CODEX: list[dict[str, Any]] = [
    {"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "hmm"}},
    {"type": "item.completed", "item": {"id": "item_1", "type": "command_execution",
                                        "command": "swarm context search shard-a retry"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": "draft"}},
    {"type": "item.completed", "item": {"id": "item_3", "type": "agent_message", "text": ANSWER}},
    {"type": "turn.completed",
     "usage": {"input_tokens": 26549, "cached_input_tokens": 22272, "output_tokens": 1590}},
]  # fmt: skip


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


# --- the parser


def test_claude_result_object() -> None:
    out = read_output(json.dumps(CLAUDE))
    assert out.answer == ANSWER and out.error is None
    assert out.model == "claude-sonnet-4-5"  # the one that cost the most
    u = out.usage
    assert u is not None and u.source == "claude-json"
    # the run's tokens: modelUsage's, both models (usage holds the main model's alone)
    assert u.cost_usd == 0.0421 and u.tokens_in == 21318 and u.cached_in == 20000
    assert u.tokens_out == 512 and u.session_id == CLAUDE["session_id"]
    assert u.models["claude-haiku-4-5"] == {
        "cost_usd": 0.0011, "tokens_in": 300, "cached_in": 0, "tokens_out": 12
    }  # fmt: skip
    assert u.models["claude-sonnet-4-5"]["tokens_in"] == 21018


def test_claude_error_and_stream_json() -> None:
    failed = {**CLAUDE, "is_error": True, "subtype": "error_max_turns", "result": ""}
    out = read_output(json.dumps(failed))
    assert out.error is not None and "error_max_turns" in out.error
    assert "(the run cost $0.0421)" in out.error
    assert out.usage is not None and out.usage.cost_usd == 0.0421  # a failed run costs too
    # stream-json: events, then the same result object on the last line
    stream = jsonl([{"type": "system", "subtype": "init", "session_id": "s1"}, CLAUDE])
    assert read_output(stream).answer == ANSWER


def test_codex_events() -> None:
    out = read_output(jsonl(CODEX))
    assert out.answer == ANSWER and out.error is None and out.model is None
    u = out.usage
    assert u is not None and u.source == "codex-jsonl" and u.cost_usd is None
    assert (u.tokens_in, u.cached_in, u.tokens_out) == (26549, 22272, 1590)
    assert u.session_id == CODEX[0]["thread_id"]
    # two turns add up
    two = read_output(jsonl(CODEX + CODEX[-1:]))
    assert two.usage is not None and two.usage.tokens_out == 3180


def test_codex_failures() -> None:
    failed = [
        *CODEX[:2],
        {"type": "error", "message": "You've hit your usage limit"},
        {"type": "turn.failed", "error": {"message": "You've hit your usage limit"}},
    ]
    out = read_output(jsonl(failed))
    assert out.error is not None and "usage limit" in out.error
    silent = read_output(jsonl(CODEX[:2] + CODEX[-1:]))
    assert silent.error is not None and "agent_message" in silent.error


def claude_with(usage: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """The Claude result object with some usage figures (``usage``) or fields replaced;
    with ``usage`` figures, without its ``modelUsage`` (whose tokens would be read instead)."""
    out = {**CLAUDE, "usage": {**CLAUDE["usage"], **(usage or {})}, **fields}
    if usage is not None:
        del out["modelUsage"]
    return out


@pytest.mark.parametrize(
    ("cost", "shown"),
    [(1e30, "1e+30"), (float("inf"), "Infinity"), (-1.0, "-1.0"), (float("nan"), "NaN"),
     ("0.5", '"0.5"'), (True, "true")],
)  # fmt: skip
def test_an_implausible_cost_is_unknown_and_named(cost: Any, shown: str) -> None:
    out = read_output(json.dumps(claude_with(total_cost_usd=cost)))
    assert out.answer == ANSWER and out.error is None
    u = out.usage
    assert u is not None and u.cost_usd is None and u.faults() == []
    assert (u.tokens_in, u.tokens_out) == (21318, 512)  # the rest is kept
    assert out.dropped == (f"total_cost_usd {shown}",)
    assert out.warning == f"usage figures no run reports, kept as unknown: total_cost_usd {shown}"


@pytest.mark.parametrize("tokens", [-500, "many", 1.5, 10**30, None])
def test_a_total_with_an_unusable_part_is_unknown(tokens: Any) -> None:
    """Claude's input tokens are three counts added: with one unusable, the total is
    unknown, never the sum of the others (a wrong number read as right)."""
    out = read_output(json.dumps(claude_with({"input_tokens": tokens})))
    u = out.usage
    assert u is not None and u.tokens_in is None and u.faults() == []
    assert u.cached_in == 20000 and u.cost_usd == 0.0421  # what is plausible is kept
    dropped = () if tokens is None else (f"usage.input_tokens {json.dumps(tokens)}",)
    assert out.dropped == dropped  # a count not given is unknown, and no error
    cached = read_output(json.dumps(claude_with({"cache_read_input_tokens": -1})))
    assert cached.usage is not None and (cached.usage.tokens_in, cached.usage.cached_in) == (
        None, None
    )  # fmt: skip
    assert cached.dropped == ("usage.cache_read_input_tokens -1",)  # said once
    # each part plausible, their sum too big for a run
    huge = read_output(
        json.dumps(claude_with({"input_tokens": 6e14, "cache_read_input_tokens": 6e14}))
    )
    assert huge.usage is not None and huge.usage.tokens_in is None
    assert huge.usage.faults() == [] and len(huge.dropped) == 1


def test_implausible_figures_per_model_and_model_names() -> None:
    models = {
        "claude-sonnet-4-5": {"inputTokens": -3, "outputTokens": 1.5, "costUSD": 1e99},
        "claude-haiku-4-5": {"inputTokens": 300, "outputTokens": 12, "costUSD": 0.0011},
        "\ud800": {"inputTokens": 1},  # a lone surrogate: no name the swarm can store
        " ": {"inputTokens": 1},
        **{f"m{i}": {"costUSD": 0.0} for i in range(70)},
    }
    out = read_output(json.dumps(claude_with(modelUsage=models)))  # "\\ud800" in the JSON
    u = out.usage
    assert u is not None and u.faults() == []
    assert u.models["claude-sonnet-4-5"] == {}
    assert u.models["claude-haiku-4-5"] == {"cost_usd": 0.0011, "tokens_in": 300, "tokens_out": 12}
    assert len(u.models) == 64 and "\ud800" not in u.models and " " not in u.models
    assert out.model == "claude-haiku-4-5"
    assert 'modelUsage["claude-sonnet-4-5"].inputTokens -3' in out.dropped
    assert 'modelUsage["claude-sonnet-4-5"].costUSD 1e+99' in out.dropped
    assert 'modelUsage name "\\ud800"' in out.dropped
    assert "modelUsage beyond its first 64 models" in out.dropped


def test_implausible_codex_counts_are_unknown() -> None:
    turn = CODEX[-1]
    bad = {"type": "turn.completed",
           "usage": {"input_tokens": -1, "cached_input_tokens": 5, "output_tokens": 7}}  # fmt: skip
    out = read_output(jsonl([*CODEX, bad]))
    u = out.usage
    assert u is not None and u.faults() == []
    # one turn's input unusable: the sum over the turns is unknown; the others add up
    assert (u.tokens_in, u.cached_in, u.tokens_out) == (None, 22277, 1597)
    assert out.dropped == ("turn.completed usage.input_tokens -1",)
    # more cached tokens than input tokens (Codex counts them within): the cached are unknown
    over = {**turn, "usage": {"input_tokens": 10, "cached_input_tokens": 400, "output_tokens": 1}}
    odd = read_output(jsonl([*CODEX[:-1], over]))
    assert odd.usage is not None and (odd.usage.tokens_in, odd.usage.cached_in) == (10, None)
    assert odd.dropped == ("cached_input_tokens 400 above input_tokens 10",)


@pytest.mark.parametrize(
    "text",
    [
        "just prose",
        json.dumps(FINDING),  # a bare JSON finding
        '{"type": "result"} is how I would start',  # not JSON after all
        '{"a": 1}\n{"b": 2}\n',  # JSON lines of no known format
        "",
    ],
)
def test_other_output_is_the_answer_as_it_is(text: str) -> None:
    out = read_output(text)
    assert out.answer == text and out.usage is None and out.error is None


# --- through swarm run


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def printer(tmp_path: Path, name: str, text: str, code: int = 0) -> str:
    """A fake agent CLI that reads its prompt and prints ``text``."""
    data = tmp_path / f"{name}.out"
    data.write_text(text)
    script = tmp_path / f"{name}.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.stdin.read()
        sys.stdout.write(open({str(data)!r}).read())
        sys.exit({code})
        """)
    )
    return f"{PY} {script}"


def run(cli: Cli, command: str, *args: str, expect: int = 0) -> dict[str, Any]:
    out = cli(
        "--json", "run", "--queue", "q", "--exec", command, "--idle-exit", "0.5", *args,
        expect=expect,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_claude_and_codex_agents_put_cost_tokens_and_model_on_findings(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    swarm.publish_context("shard-a", "retry 3 times\n", source="notes.md")
    t1 = swarm.post_task("q", "Find the retries", parent="shard-a", pass_name="P")
    run(cli, printer(tmp_path, "claude", json.dumps(CLAUDE)))
    t2 = swarm.post_task("q", "Find them again", parent="shard-a", pass_name="P")
    run(cli, printer(tmp_path, "codex", jsonl(CODEX)), "--model", "gpt-5-codex")
    f1 = swarm.get_finding(swarm.get_task(t1.id).finding_id or "")
    f2 = swarm.get_finding(swarm.get_task(t2.id).finding_id or "")
    version = swarm.context_info("shard-a").version
    for f in (f1, f2):
        assert f.summary == "three retries" and f.sources == ("notes.md:4",)
        assert f.context_version == version
    assert f1.model == "claude-sonnet-4-5" and f2.model == "gpt-5-codex"
    assert f1.usage is not None and f1.usage.cost_usd == 0.0421 and f1.usage.tokens_out == 512
    assert f2.usage is not None and f2.usage.tokens_in == 26549 and f2.usage.cost_usd is None
    listed = json.loads(cli("--json", "findings").stdout)["items"]
    assert listed[0]["usage"]["cost_usd"] == 0.0421
    assert listed[1]["usage"]["source"] == "codex-jsonl"
    human = cli("findings", f1.id).stdout
    assert "$0.0421" in human and "21,318 in (20,000 cached) / 512 out" in human
    assert "$0.0421" in cli("findings").stdout


def test_a_cli_reported_error_is_a_failed_attempt(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    t = swarm.post_task("q", "Try", max_attempts=1)
    failed = {**CLAUDE, "is_error": True, "subtype": "error_during_execution", "result": "boom"}
    summary = run(cli, printer(tmp_path, "claude-err", json.dumps(failed)), expect=1)
    assert summary["failed"] == 1 and summary["completed"] == 0
    task = swarm.get_task(t.id)
    assert task.status == "dead" and "boom" in (task.last_error or "")
    t2 = swarm.post_task("q", "Try codex", max_attempts=1)
    limit = [*CODEX[:2], {"type": "turn.failed", "error": {"message": "usage limit reached"}}]
    run(cli, printer(tmp_path, "codex-err", jsonl(limit)), expect=1)
    assert "usage limit reached" in (swarm.get_task(t2.id).last_error or "")


@pytest.mark.parametrize("mode", ["huge", "inf", "neg", "str"])
def test_an_implausible_usage_never_fails_the_task(
    cli: Cli, swarm: Swarm, tmp_path: Path, mode: str
) -> None:
    """The answer is the work, its usage metadata: a cost of 1e30 (refused by the core) made
    the task fail and run again, paid again; now every implausible figure is unknown."""
    cost = {"huge": 1e30, "inf": float("inf"), "neg": -1.0, "str": "0.5"}[mode]
    tokens = {"huge": 10**30, "neg": -500, "str": "many"}.get(mode, 1000)
    t = swarm.post_task("q", "Find the retries", max_attempts=1)
    output = claude_with({"input_tokens": tokens}, total_cost_usd=cost)
    summary = run(cli, printer(tmp_path, mode, json.dumps(output)))
    assert summary["completed"] == 1 and summary["failed"] == 0
    finding = swarm.get_finding(swarm.get_task(t.id).finding_id or "")
    assert finding.summary == "three retries" and finding.usage is not None
    assert finding.usage.cost_usd is None and finding.usage.tokens_out == 512
    assert finding.usage.tokens_in == (22000 if mode == "inf" else None)


def test_usage_on_a_synthesis_and_old_records_without_it(swarm: Swarm) -> None:
    t = swarm.post_task("q", "x", pass_name="P")
    plain = swarm.report(t.id, None, {"summary": "no usage"})
    assert swarm.get_finding(plain.id).usage is None
    usage = Usage("claude-json", cost_usd=0.5, tokens_in=10, tokens_out=2)
    s = swarm.synthesize("shard", "P", f"Done [{plain.id}]", [plain.id], usage=usage)
    assert swarm.get_synthesis(s.id).usage == usage
    with pytest.raises(ValidationError, match="cost_usd"):
        swarm.synthesize("shard", "P", "x", [plain.id], usage=Usage("x", cost_usd=-1.0))


def test_the_runner_says_which_usage_figures_it_kept_as_unknown(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    swarm.post_task("q", "Find the retries")
    output = claude_with({"input_tokens": 1000}, total_cost_usd=1e30)
    command = printer(tmp_path, "huge-said", json.dumps(output))
    out = cli("run", "--queue", "q", "--exec", command, "--idle-exit", "0.5")
    said = out.stdout + out.stderr
    assert "completed" in said and "kept as unknown: total_cost_usd 1e+30" in said, out


def test_a_run_that_prints_its_cost_and_exits_non_zero_is_paid_for(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The failed run's cost is kept on its task (failed_usage), as a run Claude reports as
    failed is: a CLI that prints its result and exits 1 spent it all the same."""
    t = swarm.post_task("q", "Find the retries", max_attempts=1)
    run(cli, printer(tmp_path, "exit-1", json.dumps(CLAUDE), code=1), expect=1)
    spent = swarm.get_task(t.id).failed_usage
    assert spent is not None and spent.cost_usd == CLAUDE["total_cost_usd"]


def test_json_nested_deeper_than_the_parser_goes_is_read_as_text() -> None:
    # An agent may print anything: nesting past the parser's recursion limit is text, not a
    # RecursionError out of the runner.
    deep = '{"a":' + "[" * 100_000
    output = read_output(deep)
    assert output.answer == deep and output.usage is None and output.error is None


@pytest.mark.parametrize("written", ["NaN", "Infinity", "-Infinity"])
def test_a_finding_whose_agent_wrote_nan_is_kept_not_failed(
    cli: Cli, swarm: Swarm, tmp_path: Path, written: str
) -> None:
    """Python's parser takes NaN and Infinity, which no JSON encoder writes back: the report
    refused the whole finding, every retry alike, until the task died. The words the agent
    wrote are kept instead: a confidence of NaN as confidence_raw, as any other out of 0-1."""
    t = swarm.post_task("q", "Rate it")
    said = '{"summary": "rated", "confidence": W, "details": {"score": W}}'.replace("W", written)
    run(cli, printer(tmp_path, "nan", said))
    finding = swarm.get_finding(must(swarm.get_task(t.id).finding_id))
    assert finding.summary == "rated" and finding.confidence is None
    assert finding.extra["confidence_raw"] == written, finding
    assert f'"score": "{written}"' in (finding.details or ""), finding
