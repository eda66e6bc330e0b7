"""Edges of reading an agent CLI's output (docs/agents.md, "Output cut short"): Claude Code's
stream-json cut at a line's end (every line whole, no result line last: the CLI killed
between two events, in its first turn or a later one) fails the run like a cut result
object, with what an earlier turn's result line says it cost; a pretty-printed finding
bigger than the end searched for an object, after prose holding many '{', is found whole
(and refused for its size) rather than stored as cut text; a failure quotes the lines of
what the agent printed split on newlines alone (not on U+2028 or U+0085)."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, TaskStatus
from redis_swarm._finding_text import OBJECT_SEARCH, parse_finding
from redis_swarm._runner import Capture, quote_tail, read_output
from redis_swarm._runner.child import OUTPUT_TAIL

from ._cli import Cli

PY = sys.executable
CUT = "the agent's output was cut: it begins as Claude Code's stream-json events"
ASK = "--output-format stream-json --verbose"
STREAM = f"claude -p {ASK}"
SESSION = "0b9e7c1d-2f3a-4b5c-8d6e-7f8091a2b3c4"

INIT = {
    "type": "system", "subtype": "init", "cwd": "/repo", "session_id": SESSION,
    "tools": ["Bash", "Read"], "model": "claude-sonnet-4-5", "permissionMode": "default",
}  # fmt: skip


def assistant(text: str) -> dict[str, Any]:
    """An assistant event of Claude Code's stream-json, saying ``text``."""
    return {
        "type": "assistant",
        "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": 12, "output_tokens": 40},
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
    }  # fmt: skip


def result(answer: str, cost: float) -> dict[str, Any]:
    """The result line ending a turn of Claude Code's stream-json."""
    return {
        "type": "result", "subtype": "success", "is_error": False, "duration_ms": 900,
        "num_turns": 1, "result": answer, "session_id": SESSION, "total_cost_usd": cost,
        "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 40},
        "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 12, "outputTokens": 40,
                                             "cacheReadInputTokens": 0,
                                             "cacheCreationInputTokens": 0, "costUSD": cost}},
    }  # fmt: skip


def jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


FINDING = '{"summary": "three retries in fetch()", "sources": ["net.py:40"]}'
# Killed in its first turn, after the model said its finding (no result line yet).
FIRST_TURN = [INIT, assistant("Checking.\n" + FINDING)]
# Killed in its second turn (a session fed more input), the first turn's result line kept.
SECOND_TURN = [INIT, assistant("first"), result("first turn's answer", 0.25), INIT,
               assistant(FINDING)]  # fmt: skip


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        swarm.configure_queue("q", retry_backoff_s=0.05)
        yield swarm


def agent(
    tmp_path: Path, name: str, stdout: str, stderr: str = "", code: int = 0, option: str = ASK
) -> str:
    """A scripted agent CLI: prints ``stdout`` and ``stderr`` as they are (a stream-json CLI
    killed mid-run behind a pipe whose last program exits 0: ``claude ... | tee log``), and
    exits ``code``; ``option`` on its command line (by default, asking for stream-json)."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    out.write_text(stdout)
    err.write_text(stderr)
    script = tmp_path / f"{name}.py"
    script.write_text(
        textwrap.dedent(f"""
            import sys
            sys.stdin.read()
            sys.stdout.write(open({str(out)!r}).read())
            sys.stderr.write(open({str(err)!r}).read())
            sys.exit({code})
            """)
    )
    return f"{PY} {script} {option}".strip()


def run(cli: Cli, command: str, expect: int) -> dict[str, Any]:
    out = cli("--json", "run", "--queue", "q", "--exec", command, "--idle-exit", "1", expect=expect)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def captured(data: bytes) -> Capture:
    capture = Capture()
    for at in range(0, len(data), 65536):
        capture.feed(data[at : at + 65536])
    return capture


@pytest.mark.parametrize(
    ("events", "cost"), [(FIRST_TURN, None), (SECOND_TURN, 0.25)], ids=["first", "second"]
)
def test_stream_json_cut_at_a_line_end_fails_its_runs(
    cli: Cli, handle: Swarm, tmp_path: Path, events: list[dict[str, Any]], cost: float | None
) -> None:
    """Exit 0 and whole event lines but no result line last: each run fails as cut (its
    events never the finding, nor an earlier turn's answer), retried, then dead; what an
    earlier turn's result line says the run cost is kept as the failed runs' cost."""
    t = handle.post_task("q", "Find the retries", max_attempts=2)
    summary = run(cli, agent(tmp_path, "cut", jsonl(events)), expect=1)
    task = handle.get_task(t.id)
    assert task.status is TaskStatus.DEAD and task.attempts == 2, task
    assert task.finding_id is None and not handle.findings().items
    error = task.last_error or ""
    assert error.startswith(CUT) and "ends before its result line" in error
    assert [o["status"] for o in summary["tasks"]] == ["failed", "failed"]
    if cost is None:
        assert "what the run cost is unknown" in error and task.failed_usage is None
        assert all(o["usage"] is None for o in summary["tasks"])
    else:
        assert "(the run cost $0.2500 up to its last result line)" in error
        assert task.failed_usage is not None
        assert task.failed_usage.cost_usd == pytest.approx(2 * cost)


def test_stream_json_cut_at_a_line_end_is_read_as_cut() -> None:
    """``read_output``: every cut stream fails (``error`` and ``cut`` set, no answer), its
    cost the last result line's; killed after its first line too, or after hooks' and
    ``init``'s ``system`` events. Whole streams are read as before, a ``system`` event after
    the result line too (hooks', thinking tokens': informational), as is a stream longer
    than the runner keeps whose last line is its result; one whose end kept holds an
    earlier turn's result then more events fails as cut, that result's cost kept."""
    for events in (FIRST_TURN, SECOND_TURN, [INIT]):
        output = read_output(jsonl(events), command=STREAM)
        assert output.error is not None and output.error.startswith(CUT)
        assert output.cut == output.error and output.answer == ""
    cut = read_output(jsonl(SECOND_TURN), command=STREAM)
    assert cut.usage is not None and cut.usage.cost_usd == pytest.approx(0.25)
    assert cut.model == "claude-sonnet-4-5"
    hook: dict[str, Any] = {"type": "system", "subtype": "hook_started", "hook_name": "x"}
    thinking: dict[str, Any] = {"type": "system", "subtype": "thinking_tokens"}
    for stream in ([hook, *FIRST_TURN], [hook, INIT, thinking]):
        assert (read_output(jsonl(stream)).error or "").startswith(CUT)
    whole = [hook, *FIRST_TURN, result(FINDING, 0.5), thinking]
    for printed in (jsonl(whole), jsonl(whole).replace("\n", "\r\n")):
        read = read_output(printed, command=STREAM)
        assert (read.answer, read.error, read.cut) == (FINDING, None, None)

    big = assistant("T" * (OUTPUT_TAIL + 200_000))
    ended = jsonl([INIT, big, result("the answer", 0.5)]).encode()
    read = read_output(captured(ended), command=STREAM)
    assert (read.answer, read.error, read.cut) == ("the answer", None, None)
    later = jsonl([INIT, big, result("first turn's answer", 0.25), assistant(FINDING)])
    read = read_output(captured(later.encode()))
    assert read.error is not None and read.cut is not None and read.answer == ""
    assert "$0.2500" in read.error
    assert read.usage is not None and read.usage.cost_usd == pytest.approx(0.25)


def pretty_finding() -> dict[str, Any]:
    """A finding over the core's limit (256 KiB) and the end searched for an object, its
    sources objects: pretty-printed, many lines of it begin with '{'."""
    sources = [{"file": f"src/mod{n}.py", "line": n, "note": "x" * 3000} for n in range(100)]
    return {"summary": "the retries", "details": "see the sources", "items": sources}


# Prose before the finding holding many '{' (code, templates, JSON quoted inline).
PROSE = 'I read fetch() { retry(); } and the template {name} {{x}} and {"a": 1}. ' * 20


def test_a_pretty_printed_finding_after_many_braces_is_found_whole() -> None:
    """``parse_finding``: a pretty-printed object begun before the last ``OBJECT_SEARCH``
    characters, after prose holding many '{' and with more lines begun with '{' in it than
    the early starts tried, is found whole (indented by 2 or 4, after prose on its opening
    line, text after it); an example quoted early is still not the finding."""
    finding = pretty_finding()
    for indent in (2, 4):
        body = json.dumps(finding, indent=indent)
        assert len(body) > OBJECT_SEARCH and len(re.findall(r"^ *\{$", body, re.M)) > 100
        for text in (
            f"{PROSE}\n{body}\n",
            f"{PROSE}\nHere it is: {body}\nThat is all {{x}}.\n}}\n",
            f"{PROSE}\n" + textwrap.indent(body, "  ") + "\n",
        ):
            parsed = parse_finding(text)
            assert parsed is not None and parsed[1] == "object", text[-200:]
            assert parsed[0]["items"] == finding["items"]
    early = 'Reply as {\n  "summary": "<one line>"\n}\n' + PROSE + "x" * OBJECT_SEARCH
    parsed = parse_finding(early)
    assert parsed is not None and parsed[1] == "text"


def test_a_pretty_printed_finding_too_big_fails_its_runs(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """The runner: that finding, printed as text by an agent, is refused for its size (each
    run fails saying the size and the limit), never stored cut as text."""
    printed = f"{PROSE}\n{json.dumps(pretty_finding(), indent=2)}\n"
    command = agent(tmp_path, "pretty", printed, option="")
    t = handle.post_task("q", "Find the retries", max_attempts=2)
    run(cli, command, expect=1)
    task = handle.get_task(t.id)
    assert task.status is TaskStatus.DEAD and task.finding_id is None
    assert "the finding was refused" in (task.last_error or "")
    assert "bytes encoded; the limit is 262,144" in (task.last_error or "")
    assert not handle.findings().items


def test_a_failure_quotes_lines_split_on_newlines_alone(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """``quote_tail`` splits on "\\n" (a "\\r" before it dropped) alone, as the JSON-lines
    reader does: U+2028, U+0085 and U+001E inside a line leave it one line (shown as
    escapes); a failed run's error quotes its stderr so."""
    said = "one\u2028still one\x85and\x1eone\r\ntwo\nthree"
    assert quote_tail(said) == "one\\u2028still one\\x85and\\x1eone | two | three"
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    command = agent(tmp_path, "fails", "", stderr="boom\u2028at fetch()\nexit now\n", code=3)
    run(cli, command, expect=1)
    error = handle.get_task(t.id).last_error or ""
    assert error.endswith("stderr: boom\\u2028at fetch() | exit now"), error


# Events Claude Code prints on its own schedule, after a turn's result line too: a rate limit's
# state (2.x), and a type no version printed yet (read as any other: it carries no turn).
RATE_LIMIT = {
    "type": "rate_limit_event", "session_id": SESSION,
    "rate_limit_info": {"status": "allowed", "resetsAt": 1767225600, "rateLimitType": "five_hour"},
}  # fmt: skip
UNKNOWN = {"type": "tool_use_summary", "summary": "read net.py", "session_id": SESSION}


def test_events_after_the_result_line_cut_only_when_they_begin_a_turn() -> None:
    """``read_output``: after the last result line, an event that carries no turn (a
    ``rate_limit_event``, a type unknown, several) cuts nothing: the result's answer and
    cost are read, also from an output longer than the runner keeps; an ``assistant`` or
    ``user`` event, or a ``system`` ``init``, is a later turn, cut."""
    done = [INIT, assistant(FINDING), result(FINDING, 0.5)]
    for after in ([RATE_LIMIT], [UNKNOWN], [RATE_LIMIT, UNKNOWN, {"type": "system"}]):
        read = read_output(jsonl([*done, *after]), command=STREAM)
        assert (read.answer, read.error, read.cut) == (FINDING, None, None), after
        assert read.usage is not None and read.usage.cost_usd == pytest.approx(0.5)
    big = assistant("T" * (OUTPUT_TAIL + 200_000))
    long = jsonl([INIT, big, result("the answer", 0.5), RATE_LIMIT, UNKNOWN]).encode()
    read = read_output(captured(long), command=STREAM)
    assert (read.answer, read.error, read.cut) == ("the answer", None, None)
    assert read.usage is not None and read.usage.cost_usd == pytest.approx(0.5)
    user = {"type": "user", "message": {"role": "user", "content": "more"}, "session_id": SESSION}
    for turn in ([RATE_LIMIT, assistant("more")], [user], [RATE_LIMIT, INIT, UNKNOWN]):
        read = read_output(jsonl([*done, *turn]), command=STREAM)
        assert read.error is not None and read.error.startswith(CUT), turn
        assert (
            read.answer == "" and "(the run cost $0.5000 up to its last result line)" in read.error
        )
    cut = jsonl([INIT, big, result("first turn's answer", 0.25), RATE_LIMIT, assistant("x")])
    read = read_output(captured(cut.encode()))
    assert read.error is not None and read.cut is not None and read.answer == ""


def test_a_run_with_a_rate_limit_event_after_its_result_completes(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """The runner: Claude Code 2.x printing a ``rate_limit_event`` (and an event type
    unknown) after its result line completes the task, the result's finding stored and its
    cost counted."""
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    events = [INIT, assistant(FINDING), result(FINDING, 0.5), RATE_LIMIT, UNKNOWN]
    summary = run(cli, agent(tmp_path, "ended", jsonl(events)), expect=0)
    task = handle.get_task(t.id)
    assert task.status is TaskStatus.COMPLETED and task.finding_id is not None, task
    assert handle.get_finding(task.finding_id).summary == "three retries in fetch()"
    [outcome] = summary["tasks"]
    assert outcome["status"] == "completed"
    assert outcome["usage"]["cost_usd"] == pytest.approx(0.5)


def test_a_pretty_printed_finding_before_code_with_many_closing_lines_is_found_whole() -> None:
    """A pretty-printed finding begun before the last ``OBJECT_SEARCH`` characters, after
    prose holding more '{"' than the early starts tried, is found whole when code after it
    holds more lines begun with '}' than those starts (each closing line is walked)."""
    finding = pretty_finding()
    code = "".join(f"function f{n}() {{\n  retry({n});\n}}\n" for n in range(12))
    for indent in (2, 4):
        body = json.dumps(finding, indent=indent)
        text = f"{PROSE}\n{body}\n\nThe fix:\n```js\n{code}```\n"
        assert len(re.findall(r'\{"', PROSE)) > 8
        parsed = parse_finding(text)
        assert parsed is not None and parsed[1] == "object", text[-200:]
        assert parsed[0]["items"] == finding["items"]


def test_a_finding_before_json_nested_deeper_than_the_parser_goes_is_found() -> None:
    """A finding followed by JSON nested deeper than the parser goes (1,100 levels of
    objects; or several such runs, arrays nested in an object, each one start), as by JSON
    nested 1,000 or 100 levels: the starts of a deep run are skipped, the finding's is still
    tried."""
    arrays = '{"a": ' + "[" * 1100 + "1" + "]" * 1100 + "}\n"
    for depth, after in ((100, ""), (1000, ""), (1100, ""), (1100, arrays * 3)):
        deep = '{"a": ' * depth + "1" + "}" * depth
        text = f"Found it.\n{FINDING}\nThe dump:\n{deep}\n{after}"
        parsed = parse_finding(text)
        assert parsed == (json.loads(FINDING), "object"), (depth, after[:10])


def test_a_command_the_shell_cannot_run_is_quoted_as_a_terminal_shows_its_last_line(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """Exit code 127: the pool stops quoting the last line the shell said, its control
    characters shown as escapes (never obeyed on a terminal, nor a raw "\\r"), and of a
    line a progress bar redrew with "\\r", what follows its last one."""
    handle.post_task("q", "Find the retries", max_attempts=1)
    said = "fetching model " + "#" * 200 + "\rfetching 99%\r\x1b[31magent: model not found\x1b[0m\n"
    command = agent(tmp_path, "missing", "", stderr=said, code=127, option="")
    out = cli("--json", "run", "--queue", "q", "--exec", command, "--idle-exit", "1", expect=1)
    [outcome] = json.loads(out.stdout)["tasks"]
    shown = "(\\x1b[31magent: model not found\\x1b[0m)"
    assert outcome["detail"].startswith("exit code 127, the shell's 'not found' " + shown)
    message = json.loads(out.stderr)["message"]
    assert shown in message and "fetching" not in message and "\r" not in message


HOOK = {"type": "system", "subtype": "hook_response", "session_id": SESSION,
        "hook_name": "SessionStart:Callback", "stdout": "", "stderr": ""}  # fmt: skip
# Claude Code's --output-format json in verbose mode (--verbose, or "viewMode": "verbose" in
# its settings): the session's events in one JSON array, its result object last.
VERBOSE = [HOOK, INIT, assistant(FINDING), result(FINDING, 0.5)]


def test_claude_s_verbose_json_array_is_read_as_its_result_object() -> None:
    """The array's result object is the answer and says the cost; an array cut short (killed
    as it wrote) fails, an earlier turn's cost kept; a JSON array no CLI's is text."""
    read = read_output(json.dumps(VERBOSE, indent=2), command="claude -p --output-format json")
    assert read.machine and read.error is None and read.cut is None
    assert read.answer == FINDING and read.usage is not None
    assert read.usage.cost_usd == pytest.approx(0.5)
    assert read.warning is None

    whole = json.dumps([*VERBOSE, INIT, assistant("second turn")])
    cut = read_output(whole[: whole.rindex('"second turn"')])
    assert cut.cut is not None and "Claude Code's JSON array of events" in cut.cut, cut.cut
    assert "the run cost $0.5000 up to its last result line" in cut.cut, cut.cut
    early = read_output(json.dumps(VERBOSE)[:300])
    assert early.cut is not None and "the run cost is unknown" in early.cut, early.cut

    tool = {
        "type": "user",
        "session_id": SESSION,
        "message": {"content": [{"type": "tool_result", "content": "x" * 60_000}]},
    }
    long = [HOOK, INIT, *([tool] * (OUTPUT_TAIL // 60_000 + 80)), result(FINDING, 0.5)]
    data = json.dumps(long).encode()
    assert captured(data).truncated  # (longer than the runner keeps: its middle dropped)
    big = read_output(captured(data), command="claude -p --output-format json --verbose")
    assert big.machine and big.error is None and big.answer == FINDING, big.error
    assert big.usage is not None and big.usage.cost_usd == pytest.approx(0.5)

    for answer in ('[{"summary": "a list"}]', "[1, 2, 3]", '["not", "closed"'):
        plain = read_output(answer)
        assert not plain.machine and plain.cut is None and plain.answer == answer


def test_a_run_printing_claude_s_verbose_array_stores_its_finding_and_cost(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """The runner: an agent whose Claude Code prints the verbose array completes its task
    with the result's finding, its cost counted (it was read as text, the cost unknown)."""
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    command = agent(tmp_path, "verbose", json.dumps(VERBOSE), option="--output-format json")
    summary = run(cli, command, expect=0)
    task = handle.get_task(t.id)
    assert task.status is TaskStatus.COMPLETED and task.finding_id is not None, task
    assert handle.get_finding(task.finding_id).summary == "three retries in fetch()"
    [outcome] = summary["tasks"]
    assert outcome["usage"]["cost_usd"] == pytest.approx(0.5)


CODEX_THREAD: dict[str, Any] = {
    "type": "thread.started",
    "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53",
}
CODEX_PLAN: dict[str, Any] = {
    "type": "item.completed",
    "item": {"id": "item_1", "type": "agent_message", "text": "I'll grep for retry."},
}
CODEX_DONE: dict[str, Any] = {
    "type": "turn.completed",
    "usage": {"input_tokens": 900, "cached_input_tokens": 0, "output_tokens": 40},
}
CODEX_ANSWER: dict[str, Any] = {"type": "item.completed",
                "item": {"id": "item_3", "type": "agent_message", "text": FINDING}}  # fmt: skip


def test_codex_events_killed_mid_turn_after_a_message_are_cut() -> None:
    """Codex's events killed after an agent_message of a turn that did not end (its first
    words, "I'll grep for retry.", not its answer) fail the run as cut, kept whole or past
    what the runner keeps; a turn ended (or with no message: its own error) reads as before."""
    begun: list[dict[str, Any]] = [CODEX_THREAD, {"type": "turn.started"}, CODEX_PLAN]
    tool: dict[str, Any] = {
        "type": "item.started",
        "item": {"id": "item_2", "type": "command_execution"},
    }
    for events in (begun, [*begun, tool]):
        read = read_output(jsonl(events), command="codex exec --json")
        assert read.cut is not None and "Codex's JSON events" in read.cut, read
        assert "turn.completed" in read.cut and read.error == read.cut
    whole = read_output(jsonl([*begun, tool, CODEX_ANSWER, CODEX_DONE]))
    assert whole.cut is None and whole.answer == FINDING and whole.error is None
    filtered = read_output(jsonl([CODEX_ANSWER]))  # (jq kept the messages alone)
    assert filtered.cut is None and filtered.answer == FINDING
    quiet = read_output(jsonl([CODEX_THREAD, {"type": "turn.started"}]))
    assert quiet.cut is None and quiet.error == "the agent CLI printed no agent_message"

    padding: dict[str, Any] = {"type": "item.completed",
               "item": {"id": "item_9", "type": "reasoning", "text": "x" * 60_000}}  # fmt: skip
    long = jsonl([*begun, *([padding] * (OUTPUT_TAIL // 60_000 + 80)), CODEX_PLAN]).encode()
    assert captured(long).truncated
    cut = read_output(captured(long), command="codex exec --json")
    assert cut.error is not None and cut.answer == "", cut
    ended = read_output(captured(long + jsonl([CODEX_ANSWER, CODEX_DONE]).encode()))
    assert ended.error is None and ended.answer == FINDING, ended
