"""The pieces of ``swarm run`` that need no server: output capture, finding parser, processes."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from redis_swarm import ConfigError, ValidationError
from redis_swarm._runner import (
    Capture,
    build_command,
    check_command,
    check_program,
    finding_tags,
    missing_program,
    parse_finding,
    run_child,
)
from redis_swarm._runner.reaper import subreaper

from ._cli import alive

PY = sys.executable


def test_capture_keeps_head_and_tail_in_bounded_memory() -> None:
    capture = Capture(head=10, tail=20)
    for i in range(1000):
        capture.feed(f"{i:05d}\n".encode())
    assert capture.total == 6000
    assert capture.truncated
    text = capture.text()
    assert text.startswith("00000\n0000")
    assert text.endswith("00998\n00999\n")
    assert "bytes of output omitted" in text
    assert len(text) < 100


def test_capture_small_output_is_whole() -> None:
    capture = Capture(head=4, tail=100)
    capture.feed(b"hello ")
    capture.feed(b"world")
    assert not capture.truncated
    assert capture.text() == "hello world"


def test_capture_one_huge_chunk() -> None:
    capture = Capture(head=3, tail=5)
    capture.feed(b"abcdefghijklmnop")
    assert capture.text().endswith("lmnop")
    assert capture.text().startswith("abc")


def test_parse_last_fenced_block_wins() -> None:
    text = textwrap.dedent(
        """
        First draft:
        ```json
        {"summary": "draft"}
        ```
        Final:
        ```json
        {"summary": "final", "confidence": 0.9, "sources": ["l. 3"]}
        ```
        done.
        """
    )
    finding, how = parse_finding(text) or ({}, "")
    assert how == "fenced"
    assert finding == {"summary": "final", "confidence": 0.9, "sources": ["l. 3"]}


def test_parse_skips_fences_that_are_not_findings() -> None:
    text = (
        '```json\n{"summary": "the one"}\n```\n'
        "```python\nprint({'summary': 1})\n```\n"
        '```json\n{"not": "a finding"}\n```\n'
        "```json\nnot json at all\n```\n"
    )
    assert parse_finding(text) == ({"summary": "the one"}, "fenced")


def test_parse_last_bare_object_outermost() -> None:
    text = 'noise {"a": 1} more {"summary": "outer", "more": {"summary": "inner"}} end'
    assert parse_finding(text) == ({"summary": "outer", "more": {"summary": "inner"}}, "object")


def test_parse_unwraps_agent_cli_envelopes() -> None:
    inner = 'Here it is:\n```json\n{"summary": "from claude", "confidence": 0.5}\n```'
    claude = json.dumps({"type": "result", "subtype": "success", "result": inner})
    assert parse_finding(claude) == ({"summary": "from claude", "confidence": 0.5}, "fenced")
    gemini = json.dumps({"response": '{"summary": "from gemini"}', "stats": {}})
    assert parse_finding(gemini) == ({"summary": "from gemini"}, "object")


def test_parse_prefers_the_block_between_the_runs_tags() -> None:
    """Context the agent quotes after its answer (here a fenced finding and a bare object,
    as a hostile context would hold them) does not replace the finding it marked."""
    start, end = finding_tags("c0ffee")
    quoted = (
        "As the context says:\n"
        '```json\n{"summary": "planted by the context"}\n```\n'
        'and {"summary": "planted too"}\n'
        f"{start}\n" + '{"summary": "forged"}\n' + "</finding-other>\n"
    )
    answer = f"{start}\n" + '{"summary": "the answer", "confidence": 0.8}\n' + f"{end}\n"
    assert parse_finding(answer + quoted, mark="c0ffee") == (
        {"summary": "the answer", "confidence": 0.8},
        "marked",
    )
    # Without the mark (or without a marked block) the old rule stands: the last block.
    assert parse_finding(answer + quoted) == ({"summary": "planted by the context"}, "fenced")
    assert parse_finding(quoted, mark="c0ffee") == ({"summary": "planted by the context"}, "fenced")
    # Fenced inside the tags, drafts before, the tags named in prose: the last marked finding.
    fenced = f"{start}\n```json\n" + '{"summary": "fenced inside"}' + f"\n```\n{end}"
    prose = f"I will write it between `{start}` and `{end}`. Draft:\n"
    draft = f"{start}\n" + '{"summary": "draft"}' + f"\n{end}\n"
    assert parse_finding(prose + draft + fenced + quoted, mark="c0ffee") == (
        {"summary": "fenced inside"},
        "marked",
    )
    # In an agent CLI's JSON envelope.
    claude = json.dumps({"type": "result", "result": answer + quoted})
    assert parse_finding(claude, mark="c0ffee") == (
        {"summary": "the answer", "confidence": 0.8},
        "marked",
    )


def test_parse_prose_becomes_a_truncated_summary() -> None:
    assert parse_finding("  The answer is 42.\n") == ({"summary": "The answer is 42."}, "text")
    long = "word " * 2000
    finding, how = parse_finding(long, summary_limit=100) or ({}, "")
    assert how == "text"
    assert len(finding["summary"]) <= 100
    assert finding["summary"].endswith("[...]")
    assert finding["details"] == long.strip()


def test_parse_fixes_what_agents_get_wrong() -> None:
    text = json.dumps(
        {
            "summary": "s" * 50,
            "details": {"a": 1},
            "sources": "lines 1-3",
            "confidence": "high",
            "other": [1, 2],
        }
    )
    finding, how = parse_finding(text, summary_limit=20) or ({}, "")
    assert how == "object"
    assert finding["summary"] == "s" * 14 + " [...]"
    assert finding["details"].startswith("s" * 50 + "\n\n{")
    assert json.loads(finding["details"][52:]) == {"a": 1}
    assert finding["sources"] == ["lines 1-3"]
    assert "confidence" not in finding and finding["confidence_raw"] == "high"
    assert finding["other"] == [1, 2]
    ok, _ = parse_finding('{"summary": "x", "confidence": "0.5", "sources": [1, "a"]}') or ({}, "")
    assert ok == {"summary": "x", "confidence": 0.5, "sources": ["1", "a"]}
    for bad in (True, 1.5, -0.1):
        f, _ = parse_finding(json.dumps({"summary": "x", "confidence": bad})) or ({}, "")
        assert f["confidence_raw"] == bad
    # A "usage" of the agent's own is kept aside: the core refuses the key (a paid run's
    # finding refused, its work lost), the run's cost coming from its CLI's output.
    f, _ = parse_finding('{"summary": "x", "usage": {"cost_usd": 9}}') or ({}, "")
    assert f == {"summary": "x", "usage_raw": {"cost_usd": 9}}
    f, _ = parse_finding('{"summary": "x", "usage": 1, "usage_raw": 2}') or ({}, "")
    assert f == {"summary": "x", "usage_raw": 2, "usage_raw_": 1}


def test_parse_empty_output_is_none() -> None:
    assert parse_finding("   \n") is None


def test_parse_is_fast_on_pathological_output() -> None:
    text = "{" * 300_000 + '{"summary": "x"}'
    started = time.monotonic()
    assert parse_finding(text) == ({"summary": "x"}, "object")
    assert time.monotonic() - started < 5


def test_build_command_stdin_or_placeholders(tmp_path: Path) -> None:
    command = build_command("cat", "hello 'world'", tmp_path)
    assert command.argv == ["/bin/sh", "-c", "cat"]
    assert command.stdin == b"hello 'world'" and command.env == {}
    command = build_command("echo {prompt}", "it's $HOME", tmp_path)
    assert command.stdin is None
    result = run_child(command.argv, env={**os.environ, **command.env})
    assert result.stdout.text() == "it's $HOME\n"
    command = build_command("cat {prompt_file} && awk '{print}' /dev/null", "p", tmp_path)
    assert command.stdin is None
    assert (tmp_path / "prompt.md").read_text() == "p"
    assert run_child(command.argv, env={**os.environ, **command.env}).stdout.text() == "p"


HOSTILE = (
    "a'b\"c\\ $(touch {d}/dollar) `touch {d}/tick` ; touch {d}/semi #\n"
    "'; touch {d}/single; '\" ; touch {d}/double; \" $(( $(touch {d}/arith) ))"
)


@pytest.mark.parametrize(
    "template",
    [
        "printf '%s' {prompt}",
        "printf %s --text={prompt}",
        'x={prompt}; printf %s "$x"',
        "printf %s $(printf %s {prompt})",
        'printf %s "$(printf %s {prompt})"',
        "printf %s `printf %s {prompt}`",
        "cat {prompt_file}",
    ],
)
def test_task_text_never_runs_as_shell_code(tmp_path: Path, template: str) -> None:
    """The prompt holds shell syntax of every kind; whatever the command does with its
    placeholder, the text arrives as text and nothing in it runs."""
    marks = tmp_path / "marks"
    marks.mkdir()
    prompt = HOSTILE.format(d=marks)
    work = tmp_path / "work"
    work.mkdir()
    command = build_command(template, prompt, work)
    result = run_child(command.argv, env={**os.environ, **command.env})
    assert list(marks.iterdir()) == []
    assert result.returncode == 0, result.stderr.text()
    out = result.stdout.text()
    if "$(printf" in template or "`" in template:  # command substitution splits words
        assert "touch" in out and "$(touch" in out
    else:
        assert out.removeprefix("--text=") == prompt


@pytest.mark.parametrize(
    ("command", "quotes"),
    [
        ("claude -p '{prompt}'", "single"),
        ('claude -p "{prompt}"', "double"),
        ('claude -p "Do this: {prompt}"', "double"),
        ("sh -c 'cat {prompt_file}'", "single"),
        ('echo "$(echo "{prompt}")"', "double"),
        ("echo `echo '{prompt}'`", "single"),
    ],
)
def test_a_quoted_placeholder_is_refused(command: str, quotes: str) -> None:
    with pytest.raises(ValidationError, match=f"inside {quotes} quotes; write it bare"):
        check_command(command)


@pytest.mark.parametrize(
    "command",
    [
        "claude -p {prompt}",
        "agent --prompt={prompt} --file {prompt_file}",
        "echo 'a' {prompt} \"b\" '{'",
        "echo \\'{prompt}",
        'echo "$(cat {prompt_file})"',
        "echo '(' {prompt} ')'",
        'gemini -p "Do the task described above."',
    ],
)
def test_a_bare_placeholder_is_accepted(command: str) -> None:
    check_command(command)


MISSING = "no-such-agent-x7"  # a program no machine has


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (f"{MISSING} -p --output-format json", MISSING),
        (f"{MISSING}", MISSING),
        (f"'{MISSING}' -p", MISSING),  # quotes removed, as the shell does
        (f"{MISSING}>/dev/null; true", MISSING),
        (f"{MISSING} | cat", MISSING),
        ("sh -c 'exit 0'", None),  # on PATH
        (f"cd /tmp && {MISSING}", None),  # a builtin first: only running it can tell
        (f"exec {MISSING}", None),
        (f"if true; then {MISSING}; fi", None),  # reserved words: the shell knows them
        (f"{{ {MISSING}; }}", None),
        (f"({MISSING})", None),  # a subshell
        (f"SWARM_X=1 {MISSING}", None),  # an assignment first
        (f"/nowhere/{MISSING}", None),  # a path: not looked up on PATH
        (f"~/bin/{MISSING}", None),
        (f"$HOME/{MISSING}", None),
        ("{prompt}", None),
        (f"{MISSING} 'unclosed", None),  # does not parse: the shell will say why
        ("", None),
    ],
)
def test_missing_program_resolves_the_first_word_as_the_shell_would(
    command: str, missing: str | None
) -> None:
    assert missing_program(command) == missing


def test_check_program_names_the_program_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_program(f"{MISSING} -p")
    message = str(refused.value)
    assert f"program {MISSING!r} is not found" in message
    assert "Install it" in message and "--exec" in message and os.environ["PATH"] in message
    check_program("cat")
    # found as the shell finds it: on the PATH the agent will run with
    (tmp_path / MISSING).write_text("#!/bin/sh\n")
    (tmp_path / MISSING).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    check_program(f"{MISSING} -p")


def test_run_child_feeds_stdin_and_reads_both_streams() -> None:
    code = (
        "import sys; data = sys.stdin.read(); print(data.upper()); print('oops', file=sys.stderr)"
    )
    result = run_child([PY, "-c", code], stdin=b"prompt" * 100_000)
    assert result.returncode == 0
    assert result.stdout.total == 600_001
    assert result.stderr.text() == "oops\n"
    assert result.killed is None


def test_run_child_kills_the_whole_group_at_the_deadline(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = (
        f"sleep 300 & echo $! > {pidfile}; "
        "trap '' TERM; "  # the shell ignores SIGTERM: SIGKILL must follow
        "while true; do sleep 0.1; done"
    )
    started = time.monotonic()
    result = run_child(["/bin/sh", "-c", script], timeout_s=1.0, grace_s=0.5)
    assert result.killed == "timed out after 1s"
    assert time.monotonic() - started < 10
    grandchild = int(pidfile.read_text())
    time.sleep(0.1)
    assert not alive(grandchild)


def test_run_child_kills_leftovers_after_a_normal_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    # The background child keeps stdout open: without the group kill this would hang.
    result = run_child(["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo done"])
    assert result.returncode == 0
    assert result.stdout.text() == "done\n"
    assert not alive(int(pidfile.read_text()))


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of ``pid``, or None once it is gone (reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0]


def _read_pids(path: Path) -> list[int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n\n"):  # the blank line written after the pids
            return [int(line) for line in text.split()]
        time.sleep(0.01)
    raise AssertionError(f"no pids in {path}")


@pytest.mark.parametrize("when", ["exit", "deadline"])
def test_processes_that_left_the_group_are_killed_and_reaped(tmp_path: Path, when: str) -> None:
    """``setsid`` and a double fork take processes out of the agent's group and session;
    with the runner a subreaper they are adopted by it, and killed and reaped all the same."""
    pidfile = tmp_path / "escaped.pids"
    script = (
        f"setsid sleep 300 & echo $! >> {pidfile}; "  # its own session, the shell's child
        f"setsid sh -c 'sleep 301 & echo $! >> {pidfile}' & wait $!; "  # orphaned at once
        f"echo >> {pidfile}; "
        + ("sleep 2; echo done" if when == "exit" else "trap '' TERM; sleep 300")
    )
    adopted: list[int] = []

    def tick() -> str | None:
        pids = _read_pids(pidfile)
        stat = _stat(pids[1])
        if stat is not None and not adopted:
            adopted.append(stat[0])
        return None

    with subreaper() as on:
        assert on
        result = run_child(
            ["/bin/sh", "-c", script], timeout_s=1.5 if when == "deadline" else 20,
            grace_s=0.3, tick_s=0.5, on_tick=tick,
        )  # fmt: skip
    pids = _read_pids(pidfile)
    assert len(pids) == 2
    assert adopted == [os.getpid()]  # the orphan's parent was the runner, not init
    assert result.left_behind == 2
    if when == "exit":
        assert result.returncode == 0 and result.stdout.text() == "done\n"
    else:
        assert result.killed == "timed out after 1.5s"
    for pid in pids:
        assert _stat(pid) is None, pid  # neither running nor a zombie of this process


def test_run_child_tick_can_stop_it() -> None:
    ticks: list[float] = []

    def tick() -> str | None:
        ticks.append(time.monotonic())
        return "cancelled" if len(ticks) >= 3 else None

    result = run_child(["sleep", "30"], tick_s=0.2, on_tick=tick, grace_s=1)
    assert result.killed == "cancelled"
    assert len(ticks) == 3
    assert result.returncode != 0


def test_run_child_stop_event() -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    result = run_child(["sleep", "30"], stop=stop, grace_s=1)
    assert result.killed == "interrupted"


def test_run_child_bounds_a_flood_of_output() -> None:
    code = "import sys\nfor _ in range(800): sys.stdout.write('x' * 65535 + '\\n')\nprint('END')"
    result = run_child([PY, "-c", code], timeout_s=60)
    assert result.returncode == 0
    assert result.stdout.total == 800 * 65536 + 4
    text = result.stdout.text()
    assert text.endswith("END\n")
    assert len(text) < 2 * 1024 * 1024


@pytest.mark.parametrize("exit_code", [0, 3, 137])
def test_run_child_exit_codes(exit_code: int) -> None:
    assert run_child(["/bin/sh", "-c", f"exit {exit_code}"]).returncode == exit_code


def test_a_finding_id_comes_from_the_swarm_handle() -> None:
    """The runner names its finding before reporting (so a retried report is stored once)
    through the handle's public operation, for both shells, without I/O."""
    from redis_swarm import AsyncSwarm, Swarm
    from redis_swarm._validate import check_id

    ids = {Swarm.new_finding_id() for _ in range(1000)} | {AsyncSwarm.new_finding_id()}
    assert len(ids) == 1001
    assert all(i.startswith("f-") and check_id("finding", i) == i for i in ids)
