"""An agent that prints more than the runner keeps of its stdout (``child.Capture``: its first
and last bytes, the middle dropped): the run fails with why, never storing the cut output as
a finding or an answer, and what it cost is read from the end kept (Claude's result object
puts its cost after ``result``; Codex's last events carry the tokens), recorded as the
failed run's usage. And a command asking for JSON that prints text gets a warning."""

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
from redis_swarm._runner import Capture, ServeOptions, Server, read_output
from redis_swarm._runner.child import OUTPUT_HEAD, OUTPUT_TAIL
from redis_swarm._runner.output import machine_option

from ._cli import Cli
from .test_pipeline_run import short_backoff, three_passes

PY = sys.executable
HUGE = 3_000_000  # characters of answer: well over what the runner keeps
CUT = "bytes on stdout, more than the"
TO_DO = "ask the agent for a shorter answer"


@pytest.fixture
def handle(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as swarm:
        yield swarm


def claude_result(answer: str, cost: float) -> dict[str, Any]:
    """Claude Code's ``--output-format json`` result object, its keys in Claude's order
    (``result`` before ``session_id``, ``total_cost_usd``, ``usage``, ``modelUsage``)."""
    return {
        "type": "result", "subtype": "success", "is_error": False, "duration_ms": 1200,
        "num_turns": 2, "result": answer, "session_id": "sess-huge", "total_cost_usd": cost,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 100, "output_tokens": 20},
        "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 10, "outputTokens": 20,
                                             "cacheReadInputTokens": 100,
                                             "cacheCreationInputTokens": 0, "costUSD": cost}},
        "permission_denials": [], "uuid": "u-1",
    }  # fmt: skip


CODEX_USAGE = {"input_tokens": 400, "cached_input_tokens": 300, "output_tokens": 50}


def codex_events(answer: str) -> list[dict[str, Any]]:
    """``codex exec --json``'s events for one turn answering ``answer``."""
    return [
        {"type": "thread.started", "thread_id": "th-huge"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "i1", "type": "agent_message", "text": answer}},
        {"type": "turn.completed", "usage": CODEX_USAGE},
    ]


def agent(tmp_path: Path, name: str, body: str) -> str:
    """A fake agent CLI running ``body`` with its prompt read from stdin (as ``prompt``)."""
    script = tmp_path / f"{name}.py"
    script.write_text("import json, re, sys\nprompt = sys.stdin.read()\n" + textwrap.dedent(body))
    return f"{PY} {script}"


def huge_claude(tmp_path: Path, cost: float = 0.003) -> str:
    return agent(
        tmp_path,
        "huge-claude",
        f"""
        out = {json.dumps(claude_result("", cost))!r}
        value = json.loads(out)
        value["result"] = "X" * {HUGE}
        sys.stdout.write(json.dumps(value) + "\\n")
        """,
    )


def huge_codex(tmp_path: Path) -> str:
    return agent(
        tmp_path,
        "huge-codex",
        f"""
        events = json.loads({json.dumps(codex_events(""))!r})
        events[2]["item"]["text"] = "Y" * {HUGE}
        sys.stdout.write("".join(json.dumps(e) + "\\n" for e in events))
        """,
    )


def run(cli: Cli, command: str, expect: int) -> dict[str, Any]:
    out = cli(
        "--json", "run", "--queue", "q", "--exec", command, "--idle-exit", "0.5", expect=expect
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_a_huge_claude_result_fails_the_task_with_its_cost(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """3 MB of Claude JSON: no finding (not the cut JSON as text), the task failed saying
    the size, the limit and what to do, the run's cost read from the end of the object and
    kept as its failed usage, and the run's summary counting it."""
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    summary = run(cli, huge_claude(tmp_path), expect=1)
    task = handle.get_task(t.id)
    error = task.last_error or ""
    assert CUT in error and f"{OUTPUT_HEAD + OUTPUT_TAIL:,}" in error and TO_DO in error
    assert "(the run cost $0.0030)" in error
    assert task.finding_id is None and not handle.findings().items
    assert task.failed_usage is not None and task.failed_usage.cost_usd == pytest.approx(0.003)
    assert task.failed_usage.tokens_in == 110 and task.failed_usage.tokens_out == 20
    (outcome,) = summary["tasks"]
    assert outcome["status"] == "failed" and CUT in outcome["detail"]
    assert outcome["usage"]["cost_usd"] == pytest.approx(0.003)
    assert outcome["usage"]["session_id"] == "sess-huge"
    assert summary["usage"]["runs_without_cost"] == 0


def test_a_huge_codex_answer_fails_the_task_with_its_tokens(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """The same for Codex's JSON lines: the whole lines of the end kept give the tokens."""
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    run(cli, huge_codex(tmp_path), expect=1)
    task = handle.get_task(t.id)
    assert CUT in (task.last_error or "") and TO_DO in (task.last_error or "")
    assert "agent_message" not in (task.last_error or "")  # (the cut, not a missing answer)
    assert not handle.findings().items
    usage = task.failed_usage
    assert usage is not None and usage.source == "codex-jsonl"
    assert (usage.tokens_in, usage.cached_in, usage.tokens_out) == (400, 300, 50)


def test_a_huge_text_output_keeps_a_finding_found_in_its_end_not_the_text(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """Plain text cut in its middle: a finding between the run's tags, whole in the end
    kept, is stored (as a fenced one is: test_cli_run's flood); without one the cut text
    is not made the finding (the task fails saying why)."""
    chatter = f"sys.stdout.write('log line\\n' * {HUGE // 9})\n"
    marked = agent(
        tmp_path,
        "marked",
        chatter
        + textwrap.dedent("""
            mark = re.search(r"<finding-([0-9a-f]+)>", prompt).group(1)
            print(f"<finding-{mark}>")
            print(json.dumps({"summary": "three retries"}))
            print(f"</finding-{mark}>")
            """),
    )
    t1 = handle.post_task("q", "Find the retries", max_attempts=1)
    run(cli, marked, expect=0)
    done = handle.get_task(t1.id)
    assert done.finding_id is not None
    assert handle.get_finding(done.finding_id).summary == "three retries"
    t2 = handle.post_task("q", "Again", max_attempts=1)
    run(cli, agent(tmp_path, "unmarked", chatter), expect=1)
    task = handle.get_task(t2.id)
    assert task.finding_id is None and CUT in (task.last_error or "")
    assert len(handle.findings().items) == 1


def test_serve_fails_a_huge_answer_with_its_cost(handle: Swarm, tmp_path: Path) -> None:
    """``swarm serve``: a huge answer is not offered to the core (refused for its size, the
    cost lost); each try fails saying why, its cost on the question's failed usage and on
    the server's outcomes (its summary counts them)."""
    handle.publish_context("lib", "retry 3 times\n", source="notes.md")
    server = Server(handle, ServeOptions(owner="lib", command=huge_claude(tmp_path), poll_s=0.2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with pytest.raises(InvalidState, match=r"died unanswered.*bytes on stdout"):
            handle.ask("lib", "huge?", timeout_s=60)
    finally:
        server.drain()
        thread.join(30)
    (question,) = handle.list_tasks(queue=ask_queue("lib")).items
    assert "refused" not in (question.last_error or "")
    assert question.failed_usage is not None
    assert question.failed_usage.cost_usd == pytest.approx(0.003 * question.attempts)
    assert server.outcomes and all(
        o.usage is not None and o.usage.cost_usd == pytest.approx(0.003) for o in server.outcomes
    )
    assert server.spent()["runs_without_cost"] == 0


def test_text_from_a_json_command_is_stored_with_a_warning(
    cli: Cli, handle: Swarm, tmp_path: Path
) -> None:
    """A command asking for ``--output-format json`` that prints plain text: its text is the
    finding, as for any agent, and the outcome warns that the run's cost is unknown."""
    script = agent(tmp_path, "text", 'print(json.dumps({"summary": "three retries"}))\n')
    t = handle.post_task("q", "Find the retries", max_attempts=1)
    summary = run(cli, f"{script} --output-format json", expect=0)
    assert handle.get_task(t.id).finding_id is not None
    (outcome,) = summary["tasks"]
    assert "asks for JSON output (--output-format json)" in outcome["detail"]
    # the same text from a command asking for no machine format: no warning
    handle.post_task("q", "Again", max_attempts=1)
    (plain,) = run(cli, script, expect=0)["tasks"]
    assert plain["status"] == "completed" and "asks for JSON output" not in plain["detail"]


def captured(data: bytes) -> Capture:
    capture = Capture()
    for at in range(0, len(data), 65536):
        capture.feed(data[at : at + 65536])
    return capture


def test_the_end_of_a_cut_output_is_read_in_each_format() -> None:
    """What ``read_output`` makes of a cut output: Gemini's object (pretty-printed) gives
    its tokens from ``stats``; Claude's stream-json whose result line is whole in the end
    kept is read as usual; Codex's whose answer is whole there too, with a note that the
    tokens of turns in the middle are not counted; escaped quotes in the cut string are no
    end of it."""
    gemini = {
        "session_id": "g-1", "response": "R" * HUGE,
        "stats": {"models": {"gemini-2.5-pro": {"tokens": {
            "prompt": 900, "candidates": 40, "cached": 500, "thoughts": 10}}}},
    }  # fmt: skip
    read = read_output(captured(json.dumps(gemini, indent=2).encode()))
    assert read.error is not None and CUT in read.error and read.cut is not None
    assert read.usage is not None and (read.usage.tokens_in, read.usage.tokens_out) == (900, 50)

    quoted = claude_result('say \\"x\\", then' * (HUGE // 16), 0.25)
    read = read_output(captured(json.dumps(quoted).encode()))
    assert read.usage is not None and read.usage.cost_usd == 0.25 and read.answer == ""

    stream = [
        {"type": "system", "subtype": "init", "session_id": "s"},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": "T" * HUGE}]}},
        claude_result("the answer", 0.5),
    ]
    read = read_output(captured("".join(json.dumps(e) + "\n" for e in stream).encode()))
    assert (read.answer, read.error, read.cut) == ("the answer", None, None)
    assert read.usage is not None and read.usage.cost_usd == 0.5

    events = codex_events("the answer")
    big = {"type": "item.completed", "item": {"type": "command_execution", "out": "C" * HUGE}}
    events.insert(2, big)
    read = read_output(captured("".join(json.dumps(e) + "\n" for e in events).encode()))
    assert (read.answer, read.error, read.cut) == ("the answer", None, None)
    assert read.usage is not None and read.usage.session_id == "th-huge"
    assert read.warning is not None and "turns that ended in its middle" in read.warning


def test_a_pipeline_fails_a_cut_text_answer(cli: Cli, handle: Swarm, tmp_path: Path) -> None:
    """A planner printing 1.5 MB of text whose end kept holds a task list: the pipeline does
    not plan the pass from that end (a planner's answer is the whole text, and the cut one
    is not stored); each try fails saying the output was cut and what to do."""
    planner = tmp_path / "huge_planner.py"
    planner.write_text(
        textwrap.dedent("""
            import json, sys
            sys.stdin.read()
            sys.stdout.write("thinking it over\\n" * 90_000)
            print("```json\\n" + json.dumps(["Look deeper", "Look again"]) + "\\n```")
            """)
    )
    path = three_passes(tmp_path, planner=f"{PY} {planner}")
    short_backoff(handle, path)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "planner of pass 'Pass 2' gave no usable task list in 3 tries" in out.stderr
    assert CUT in out.stderr and TO_DO in out.stderr
    assert handle.list_tasks(queue="pipeline.audit", pass_name="audit: Pass 2").items == ()


def test_a_cut_text_answer_sets_no_cost() -> None:
    """A cut answer printed as JSON text, its own keys naming a cost after its long string:
    cut text (its end the answer, no usage), not a cost of $999 charged to the run. Read as
    Claude's object only when the command asks for it; Claude's stream-json whose result
    line was cut (begun in the head) is read for its cost without asking."""
    spoof = {
        "summary": "s", "details": "y" * 1_300_000, "total_cost_usd": 999,
        "modelUsage": {"m": {"inputTokens": 1, "outputTokens": 1, "costUSD": 999}},
    }  # fmt: skip
    printed = json.dumps(spoof).encode()
    read = read_output(captured(printed))
    assert (read.usage, read.error) == (None, None) and read.cut is not None
    assert read.answer.endswith('"costUSD": 999}}}')
    asked = read_output(captured(printed), command="claude -p --output-format json")
    assert asked.usage is not None and asked.usage.cost_usd == 999 and asked.error is not None

    stream = [
        {"type": "system", "subtype": "init", "session_id": "s"},
        claude_result("Z" * HUGE, 0.5),
    ]
    read = read_output(captured("".join(json.dumps(e) + "\n" for e in stream).encode()))
    assert read.usage is not None and read.usage.cost_usd == 0.5
    assert read.error is not None and CUT in read.error


@pytest.mark.timeout(20)
def test_a_cut_answer_of_backslashes_is_read_in_linear_time() -> None:
    """Claude's object cut inside an answer ending in a megabyte of backslashes (each
    printed escaped, ``\\\\``): its cost is read from the end of the object at once (a
    regex retrying the run of backslashes from each of its characters took hours, holding
    the GIL)."""
    answer = "\\" * OUTPUT_TAIL + "\nthe end"
    read = read_output(captured(json.dumps(claude_result(answer, 0.25)).encode()))
    assert read.usage is not None and read.usage.cost_usd == 0.25
    assert read.error is not None and CUT in read.error


def test_machine_option_names_the_program() -> None:
    """``-o json`` and ``--json`` count only for ``gemini`` and ``codex`` run as the program
    (by name or path), and each value only as a word of its own."""
    asks = {
        "claude -p --output-format json": "--output-format json",
        "claude -p --output-format=stream-json --verbose": "--output-format=stream-json",
        'claude -p --output-format "json"': "--output-format json",
        "gemini -p hi -o json": "-o json",
        "npx @google/gemini-cli -m gemini-2.5-pro -o json": "-o json",
        "codex exec --json": "--json",
        "/usr/local/bin/codex exec --json -": "--json",
        "cd repo && codex exec --json": "--json",
    }
    for command, option in asks.items():
        assert machine_option(command) == option, command
    for command in (
        "mytool --codex-compat --json",
        "~/codex/run.sh --json",
        "mytool --model gemini-2.5 -o json.txt",
        "gemini -p hi -o json.txt",
        "claude -p --output-format json-pretty",
        "codex exec --json-schema s.json",
        "echo codex; mytool --json",
    ):
        assert machine_option(command) is None, command
