"""Agent output that must not be stored as a finding although the agent exited 0: a machine
format cut short (Claude's result object, Codex's events, Gemini's object ending mid-way: the
CLI killed, its pipe broken, the disk full) and a finding too big to store (found whole even
when it starts before the end searched for a JSON object). Each fails the run, retried, then
dead with that reason; a plain-text answer that merely begins with ``{`` is still stored."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, TaskStatus
from redis_swarm._finding_text import OBJECT_SEARCH, parse_finding
from redis_swarm._runner import read_output

from ._cli import Cli

PY = sys.executable
CUT = "the agent's output was cut"
CLAUDE_START = (
    '{"type":"result","subtype":"success","is_error":false,"result":"{\\"summary\\": \\"half'
)
CODEX_CUT = (
    '{"type":"thread.started","thread_id":"th-1"}\n'
    '{"type":"item.completed","item":{"id":"i1","type":"agent_message","text":"done"}}\n'
    '{"type":"turn.completed","usage":{"input_tokens":4'
)


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.configure_queue("q", retry_backoff_s=0.05)
        yield swarm


def agent(tmp_path: Path, name: str, printed: str, option: str = "") -> str:
    """A fake agent CLI printing ``printed`` as it is and exiting 0; ``option`` is added to
    its command line (the option by which a command asks for a machine format)."""
    data = tmp_path / f"{name}.out"
    data.write_text(printed)
    script = tmp_path / f"{name}.py"
    script.write_text(
        textwrap.dedent(f"""
            import sys
            sys.stdin.read()
            sys.stdout.write(open({str(data)!r}).read())
            """)
    )
    return f"{PY} {script} {option}".strip()


def run(cli: Cli, command: str, expect: int) -> dict[str, Any]:
    out = cli("--json", "run", "--queue", "q", "--exec", command, "--idle-exit", "1", expect=expect)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def assert_dead(handle: Swarm, task_id: str, said: str) -> None:
    """The task failed on each of its 2 attempts saying ``said``, and nothing was stored."""
    task = handle.get_task(task_id)
    assert task.status is TaskStatus.DEAD, task
    assert task.attempts == 2
    assert said in (task.last_error or "")
    assert task.finding_id is None and not handle.findings().items


@pytest.mark.parametrize(
    ("printed", "option", "what"),
    [
        (CLAUDE_START, "", "Claude Code's JSON result object"),
        (CODEX_CUT, "", "Codex's JSON events"),
        ('{\n  "session_id": "s-1",\n  "response": "{\\"summary', "", "Gemini CLI's JSON"),
    ],
    ids=["claude", "codex", "gemini"],
)
def test_a_cut_machine_output_fails_its_runs(
    cli: Cli, handle: Swarm, tmp_path: Path, printed: str, option: str, what: str
) -> None:
    """Exit 0 and the start of a format's JSON: each run fails (its cost unknown), the task
    is retried, then dead with why; its cut text is never the finding."""
    t = handle.post_task("q", "Find the retries", max_attempts=2)
    summary = run(cli, agent(tmp_path, "cut", printed, option), expect=1)
    assert_dead(handle, t.id, CUT)
    task = handle.get_task(t.id)
    assert what in (task.last_error or "") and task.failed_usage is None
    assert [o["status"] for o in summary["tasks"]] == ["failed", "failed"]
    assert all(o["usage"] is None for o in summary["tasks"])
    # Dead, its reason never says it is tried again (the failure's budget decides that).
    assert "tried again" not in (task.last_error or "") + (task.dead_reason or "")


def test_a_plain_answer_beginning_with_a_brace_is_still_stored(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """Text beginning with ``{`` that is no format's is read as text, as before: JSON cut
    short by the model itself (no format's keys, no JSON asked for), text that is no JSON,
    and JSON followed by text from a command that asks for JSON (its answer piped out); an
    answer cut short by the model from a command that asks for JSON and pipes the answer out
    (``claude -p --output-format json | jq -r .result``: the command asks, its output is the
    answer's text), stored as text, not failed as cut and retried to death."""
    answers = [
        ('{"summary": "half an answer', ""),
        ('{"summary": "half an answer', "--output-format json"),
        ("{not json} but an answer", "--output-format json"),
        ('{"summary": "three retries"}\n\nAnything else? {', "--output-format json"),
    ]
    for n, (printed, option) in enumerate(answers):
        t = handle.post_task("q", f"Find the retries {n}", max_attempts=1)
        run(cli, agent(tmp_path, f"plain{n}", printed, option), expect=0)
        task = handle.get_task(t.id)
        assert task.status is TaskStatus.COMPLETED and task.finding_id is not None
        summary = handle.get_finding(task.finding_id).summary
        assert summary == ("three retries" if n == 3 else printed)


def test_a_finding_too_big_fails_its_runs(cli: Cli, handle: Swarm, tmp_path: Path) -> None:
    """A Claude result holding a JSON finding of 400 KB (bigger than the end of the text
    searched for an object): not stored cut as text; each run fails saying the size and the
    limit, then the task is dead."""
    finding = {"summary": "S" * 400_000, "sources": ["a.py:1"]}
    result = {"type": "result", "subtype": "success", "is_error": False,
              "result": "Here it is:\n" + json.dumps(finding), "total_cost_usd": 0.01}  # fmt: skip
    t = handle.post_task("q", "Find the retries", max_attempts=2)
    run(cli, agent(tmp_path, "big", json.dumps(result)), expect=1)
    assert_dead(handle, t.id, "the finding was refused")
    error = handle.get_task(t.id).last_error or ""
    assert "bytes encoded; the limit is 262,144" in error
    usage = handle.get_task(t.id).failed_usage
    assert usage is not None and usage.cost_usd == pytest.approx(0.02)


def test_a_long_summary_in_a_finding_is_moved_to_details(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """A summary too long in a finding that fits is fixed without losing anything: cut, the
    whole of it opening ``details``, the rest of the finding kept."""
    long = "L" * 5000
    printed = json.dumps({"summary": long, "details": "more", "sources": ["b.py:2"]})
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    run(cli, agent(tmp_path, "long", printed), expect=0)
    task = handle.get_task(t.id)
    assert task.finding_id is not None
    stored = handle.get_finding(task.finding_id)
    assert len(stored.summary) <= 2000 and stored.details == long + "\n\nmore"
    assert list(stored.sources) == ["b.py:2"]


def test_a_finding_is_found_whole_before_the_end_searched() -> None:
    """``parse_finding``: an object starting before the last ``OBJECT_SEARCH`` characters is
    found whole (in a line of its own, or after prose), never made a cut text."""
    big = json.dumps({"summary": "S" * (OBJECT_SEARCH + 10), "sources": ["a"]})
    for text in ("Here:\n" + big + "\nbye", "As {said}: " + big):
        parsed = parse_finding(text)
        assert parsed is not None
        finding, how = parsed
        assert how == "object" and finding["sources"] == ["a"]
        assert finding["details"] == "S" * (OBJECT_SEARCH + 10)


def test_read_output_tells_a_cut_format_from_text() -> None:
    """The rule of ``read_output`` (docs/agents.md): a cut format fails (also for the
    pipeline's agents, which read it alike); text beginning with ``{`` is an answer."""
    for printed in (CLAUDE_START, CODEX_CUT, '{"type":"result","result":"ok","usage":{"in'):
        output = read_output(printed)
        assert output.error is not None and output.error.startswith(CUT)
        assert output.usage is None and output.answer == "" and output.cut == output.error
    for printed, command in [
        ('{"summary": "half', None),
        ('{"summary": "half', "mytool --json"),
        ('{"summary": "half', "claude -p --output-format json | jq -r .result"),
        ('{"a": 1}\n{"b": "half', None),  # (JSON lines, but no events)
        ('{"type":"thread.started"}\n{"type":"turn.started"}\nError: boom', None),
    ]:
        assert read_output(printed, command=command).error in (
            None,
            "the agent CLI printed no agent_message",
        )


def test_an_example_quoted_early_in_a_long_answer_is_not_the_finding() -> None:
    """A text answer longer than ``OBJECT_SEARCH`` quoting the prompt's format early (an
    object that ends before the end searched) has no JSON finding: the text is the answer;
    an object begun early is taken only when it ends in the end searched (the last one)."""
    prose = 'Reply as {"summary": "<one line>"} I looked at it all. ' + "x" * OBJECT_SEARCH
    parsed = parse_finding(prose)
    assert parsed is not None and parsed[1] == "text"
    assert parsed[0]["summary"].startswith("Reply as {")
    big = json.dumps({"summary": "S" * (OBJECT_SEARCH + 10), "sources": ["a"]})
    parsed = parse_finding('Reply as {"summary": "<one line>"}\n' + big)
    assert parsed is not None and parsed[1] == "object" and parsed[0]["sources"] == ["a"]


def test_read_output_reads_json_lines_holding_line_separators() -> None:
    """Claude's stream-json whose result holds U+2028 or U+0085 (left raw in a string by
    Node's JSON.stringify) is read as the format, split on newlines alone (a "\\r" before
    one dropped), not taken for text and its raw JSON stored."""
    answer = "one\u2028two\u0085three"
    result = {"type": "result", "subtype": "success", "is_error": False,
              "result": answer, "total_cost_usd": 0.5}  # fmt: skip
    init = json.dumps({"type": "system", "subtype": "init"})
    for newline in ("\n", "\r\n"):
        printed = init + newline + json.dumps(result, ensure_ascii=False) + newline
        output = read_output(printed, command="claude -p --output-format stream-json")
        assert output.machine and output.answer == answer and output.error is None
        assert output.usage is not None and output.usage.cost_usd == pytest.approx(0.5)
