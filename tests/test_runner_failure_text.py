"""What a failed agent run said reaches its task's last error and the run's console line
(stderr's end, else what it printed as text on stdout), and a pool whose runs all fail alike
from the start stops rather than burn every task's attempts in seconds."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._hints import said_of
from redis_swarm._runner import REQUEUE_DEAD, Runner, RunOptions
from redis_swarm._runner.output import QUOTE_CHARS, quote_tail, read_output
from redis_swarm._runner.pool_state import ALIKE_FAILURES_STOP

from ._cli import Cli

PY = sys.executable
NOT_LOGGED_IN = "Not logged in · Please run /login"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.configure_queue("q", retry_backoff_s=30)  # a failed task stays out of the way
        yield handle


def agent(tmp_path: Path, body: str) -> str:
    """A scripted agent reading its prompt on stdin; returns its command line."""
    path = tmp_path / "agent.py"
    path.write_text("import json, os, sys\nsys.stdin.read()\n" + textwrap.dedent(body))
    return f"{PY} {path}"


def run(cli: Cli, command: str, *args: str, expect: int = 1) -> Any:
    return cli("run", "--queue", "q", "--exec", command, "--until-done", *args, expect=expect)


def test_a_plain_agent_saying_why_on_stdout_is_quoted(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Claude Code not logged in prints its complaint on stdout and exits 1: the error names
    it, not the exit code alone, the same on the console line as in the task."""
    t = swarm.post_task("q", "d", max_attempts=1)
    out = run(cli, agent(tmp_path, f"print({NOT_LOGGED_IN!r}); sys.exit(1)"))
    error = f"exit code 1; stdout: {NOT_LOGGED_IN}"
    assert swarm.get_task(t.id).last_error == error
    dead = f"; out of attempts, it is dead now {said_of(REQUEUE_DEAD, t.id)}"  # (max_attempts 1)
    assert f"{t.id} " in out.stdout and out.stdout.rstrip().splitlines()[0].endswith(error + dead)


def test_stderr_is_quoted_first_its_end_bounded_and_printable(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    t = swarm.post_task("q", "d", max_attempts=1)
    body = """
    print("stdout is not quoted when stderr says something")
    for i in range(40):
        print(f"line {i} " + "x" * 30, file=sys.stderr)
    print("", file=sys.stderr)
    print("Error: \\x1b]52;c;aGk=\\x07bad key", file=sys.stderr)
    sys.exit(2)
    """
    out = run(cli, agent(tmp_path, body))
    error = swarm.get_task(t.id).last_error or ""
    assert error.startswith("exit code 2; stderr: ") and "stdout" not in error
    said = error.removeprefix("exit code 2; stderr: ")
    assert said.endswith(" | Error: \\x1b]52;c;aGk=\\x07bad key")  # escaped, not obeyed
    assert said.startswith("line 36 ") and "line 35" not in said  # its last lines only
    assert "\x1b" not in error and len(said) <= QUOTE_CHARS
    dead = f"; out of attempts, it is dead now {said_of(REQUEUE_DEAD, t.id)}"  # (max_attempts 1)
    assert out.stdout.rstrip().splitlines()[0].endswith(error + dead)


def test_what_a_machine_format_printed_besides_its_events_is_quoted(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A CLI in a JSON mode that fails with a line of text among its events (or with a
    result object saying its error) has that quoted."""
    codex = swarm.post_task("q", "codex", max_attempts=1)
    events = [{"type": "thread.started", "thread_id": "th"}, {"type": "turn.started"}]
    lines = [json.dumps(e) for e in events] + ["Error: you are not signed in (codex login)"]
    data = tmp_path / "codex.jsonl"
    data.write_text("\n".join(lines) + "\n")
    run(cli, agent(tmp_path, f"print(open({str(data)!r}).read()); sys.exit(1)"))
    said = "stdout: Error: you are not signed in (codex login)"
    assert swarm.get_task(codex.id).last_error == (
        f"exit code 1; the agent CLI printed no agent_message; {said}"
    )
    claude = swarm.post_task("q", "claude", max_attempts=1)
    result = {"type": "result", "subtype": "success", "is_error": True, "result": NOT_LOGGED_IN}
    run(cli, agent(tmp_path, f"print(json.dumps({result!r})); sys.exit(1)"))
    error = swarm.get_task(claude.id).last_error or ""
    assert error.startswith(f"exit code 1; the agent CLI reported an error: {NOT_LOGGED_IN}")
    assert "stdout" not in error  # its result object said it: nothing else to quote
    stream = read_output(json.dumps(result) + "\nwarning: session not saved\n")
    assert stream.error is not None and stream.text == "warning: session not saved"


def test_quote_tail() -> None:
    assert quote_tail(" \n\n  \n") == ""
    assert quote_tail("a\n\n b \n\tc\x00") == "a | b | c\\x00"
    long = quote_tail("y" * 2000 + "\nthe reason")
    assert len(long) == QUOTE_CHARS and long.startswith("…y") and long.endswith(" | the reason")


def test_a_pool_whose_runs_all_fail_alike_stops(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Every run failing the same way before any succeeded stops the pool once
    ALIKE_FAILURES_STOP tasks did, saying why once: the rest keep their attempts."""
    tasks = [swarm.post_task("q", f"d{i}") for i in range(ALIKE_FAILURES_STOP + 3)]
    out = run(cli, agent(tmp_path, f"print({NOT_LOGGED_IN!r}); sys.exit(1)"))
    said = f"every run fails with: exit code 1; stdout: {NOT_LOGGED_IN} ({ALIKE_FAILURES_STOP} "
    assert said in out.stderr and out.stderr.count("every run fails with") == 1
    assert "Fix the agent command (--exec)" in out.stderr
    failures = sorted(swarm.get_task(t.id).failures for t in tasks)
    assert failures == [0] * 3 + [1] * ALIKE_FAILURES_STOP
    # Slots failing side by side: the first slot to take a task once ALIKE_FAILURES_STOP
    # tasks failed alike gives it back unrun.
    more = [swarm.post_task("q", f"e{i}") for i in range(3)]
    summary = json.loads(
        cli("--json", "run", "--queue", "q", "--exec", agent(tmp_path, "sys.exit(7)"),
            "--until-done", "--concurrency", "3", expect=1).stdout
    )  # fmt: skip
    assert ALIKE_FAILURES_STOP <= summary["failed"] < 6 and summary["completed"] == 0
    assert summary["fatal"].startswith("every run fails with: exit code 7 (")
    assert any(swarm.get_task(t.id).failures == 0 for t in [*tasks, *more])


def test_failures_of_the_tasks_own_do_not_stop_the_pool(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    tasks = [swarm.post_task("q", f"d{i}", max_attempts=1) for i in range(5)]
    body = 'print("cannot do " + os.environ["SWARM_TASK_ID"]); sys.exit(1)'
    out = run(cli, agent(tmp_path, body))
    assert "every run fails" not in out.stderr
    for t in tasks:
        assert swarm.get_task(t.id).last_error == f"exit code 1; stdout: cannot do {t.id}"


def test_a_pool_that_succeeded_once_goes_on_through_alike_failures(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Once a run succeeded, the agent command works: later failures alike are the tasks'."""
    first = swarm.post_task("q", "first", priority=9)
    rest = [swarm.post_task("q", f"d{i}", max_attempts=1) for i in range(4)]
    body = f"""
    if os.environ["SWARM_TASK_ID"] == {first.id!r}:
        print(json.dumps({{"summary": "done"}}))
        sys.exit(0)
    print("the page is gone"); sys.exit(1)
    """
    out = run(cli, agent(tmp_path, body), expect=0)
    assert "every run fails" not in out.stderr
    assert swarm.get_task(first.id).status == "completed"
    assert all(swarm.get_task(t.id).status == "dead" for t in rest)


def test_a_pool_whose_agent_cannot_be_started_stops_naming_what(
    swarm: Swarm, tmp_path: Path
) -> None:
    """Runs that never started (their shell is not there: an OSError at spawn, no exit code)
    fail alike, so the pool stops as it does for a command that fails alike; the error names
    what could not be run, not a bare "No such file or directory"."""
    tasks = [swarm.post_task("q", f"d{i}") for i in range(ALIKE_FAILURES_STOP + 2)]
    shell = str(tmp_path / "no-such-sh")
    runner = Runner(swarm, RunOptions(queues=("q",), command="cat", until_done=True, shell=shell))
    outcomes = runner.run()
    said = (
        f"cannot start the agent: its shell {shell!r} could not be run: No such file or directory"
    )
    assert [o.detail for o in outcomes] == [said] * ALIKE_FAILURES_STOP
    assert runner.fatal is not None
    assert runner.fatal.startswith(f"every run fails with: {said} ({ALIKE_FAILURES_STOP} tasks")
    failures = sorted(swarm.get_task(t.id).failures for t in tasks)
    assert failures == [0] * 2 + [1] * ALIKE_FAILURES_STOP
