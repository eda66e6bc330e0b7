"""``swarm ask`` against a real server: the answer from another process, exit 3 on timeout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm, Task, TaskStatus
from redis_swarm.cli._ask import _interrupt_once
from redis_swarm.cli._common import signals

from ._answers import answer_one
from ._cli import Cli, run_swarm, subprocess_env


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", "a big book\n", source="book.md")
        yield handle


def test_ask_from_another_process(swarm: Swarm, redis_url: str, tmp_path: Path) -> None:
    answerer = answer_one(swarm, "ask.lib", "In chapter 9.\nThe butler did it.", model="m-3")
    env = subprocess_env(redis_url, "test", tmp_path)
    args = ["ask", "lib", "Where is the twist?", "--data", '{"page": 3}', "--json"]
    proc = run_swarm(args, env, timeout=60)
    answerer.join(5)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["text"] == "In chapter 9.\nThe butler did it." and got["model"] == "m-3"
    question = swarm.get_task(got["question_id"])
    assert question.data["data"] == {"page": 3} and question.description == "Where is the twist?"


def test_human_output_and_the_task_from_swarm_run(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("main", "write it up")
    mine = swarm.claim("main", worker="w-1")
    assert mine is not None
    answerer = answer_one(swarm, "ask.lib", "chapter 9", model="m-3")
    out = cli("ask", "lib", "-", input="where?\n", env={"SWARM_TASK_ID": mine.id})
    answerer.join(5)
    assert out.stdout == "chapter 9\n"
    assert "answered by librarian, model m-3" in out.stderr
    finding = swarm.findings(queue="ask.lib").items[0]
    assert finding.extra["asker_task"] == mine.id


def test_timeout_exits_3_and_bad_targets_exit_1(cli: Cli, swarm: Swarm) -> None:
    out = cli("ask", "lib", "anyone?", "--timeout", "0.2", expect=3)
    assert "no answerer claimed it" in out.stderr and "cancelled" in out.stderr
    out = cli("ask", "lib", "anyone?", "--timeout", "0.1", "--keep", "--json", expect=3)
    assert json.loads(out.stderr)["error"] == "Timeout" and "stays queued" in out.stderr
    out = cli("ask", "nobody", "hello?", expect=1)
    assert "unknown target 'nobody'" in out.stderr
    out = cli("ask", "lib", "q", "--data", "[1", expect=2)
    assert "--data" in out.stderr


def _asking(
    swarm: Swarm, env: dict[str, str], args: list[str]
) -> tuple[subprocess.Popen[bytes], Task]:
    """``swarm ARGS`` (an ask of lib) as a real process, once its question is posted."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not swarm.list_tasks(queue="ask.lib").items and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        (question,) = swarm.list_tasks(queue="ask.lib").items
    except ValueError:
        proc.kill()
        raise
    return proc, question


@pytest.mark.parametrize("keep", [False, True])
def test_ctrl_c_withdraws_the_question_unless_kept(
    swarm: Swarm, redis_url: str, tmp_path: Path, keep: bool
) -> None:
    """An asker that gives up with Ctrl-C is a timeout come early: its question is cancelled
    (nobody answers, or pays for, it later), or left queued with --keep."""
    env = subprocess_env(redis_url, "test", tmp_path)
    args = ["ask", "lib", "anyone there?", "--timeout", "60", *(["--keep"] if keep else [])]
    proc, question = _asking(swarm, env, args)
    try:
        time.sleep(0.3)  # (waiting for the answer, not posting)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    expected = TaskStatus.PENDING if keep else TaskStatus.CANCELLED
    assert swarm.get_task(question.id).status is expected
    # One error line saying what became of the question (not click's bare "Aborted!"), after
    # the line naming the question once posted.
    posted, message = err.decode().split("\n", 1)
    assert posted.startswith(f"question {question.id} asked; "), posted
    assert message.startswith("error: interrupted while asking 'lib': "), message
    assert message.count("\n") == 1 and "Aborted" not in message
    if keep:
        assert f"it stays queued as {question.id}" in message
        assert (
            f"its answer will be the finding that completes it, named once it is answered "
            f"(swarm task show {question.id}): swarm findings FINDING_ID prints its text"
        ) in message
    else:
        assert f"it was cancelled ({question.id})" in message and "ask again" in message


@pytest.mark.parametrize(
    "signals",
    [("INT", 0.0, "INT"), ("INT", 0.01, "INT"), ("INT", 0.05, "INT"), ("TERM", 0.05, "INT")],
)
def test_a_second_ctrl_c_does_not_cut_the_withdrawal_short(
    swarm: Swarm, redis_url: str, tmp_path: Path, signals: tuple[str, float, str]
) -> None:
    """Ctrl-C pressed twice (or SIGTERM, as ``timeout`` sends, then Ctrl-C): the question is
    withdrawn all the same and the command ends as documented, exit 1 with its one error line,
    not killed by the second signal (exit 130) nor with a traceback."""
    first, gap, second = signals
    env = subprocess_env(redis_url, "test", tmp_path)
    proc, question = _asking(swarm, env, ["ask", "lib", "anyone?", "--timeout", "60"])
    try:
        time.sleep(0.3)  # (waiting for the answer, not posting)
        proc.send_signal(getattr(signal, f"SIG{first}"))
        time.sleep(gap)
        proc.send_signal(getattr(signal, f"SIG{second}"))
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    message = err.decode().split("\n", 1)[1]  # (after the line naming the question)
    assert proc.returncode == 1, (proc.returncode, message)
    assert message.startswith("error: interrupted while asking 'lib': "), message
    assert message.count("\n") == 1 and f"it was cancelled ({question.id})" in message
    assert swarm.get_task(question.id).status is TaskStatus.CANCELLED


@pytest.mark.parametrize("first", ["SIGINT", "SIGTERM"])
def test_ask_s_interrupt_handler_holds_the_next_past_its_signals_block(first: str) -> None:
    """The race behind the test above, made certain on ``ask``'s own handler and block (the
    command's run is the test above's): the second Ctrl-C arrives just as the interrupted
    wait's block ends. It found Ctrl-C's default handler restored there (before
    the command held its signals), and click's "Aborted!" cut the withdrawal short."""
    interrupt = _interrupt_once()
    with pytest.raises(KeyboardInterrupt), signals(interrupt, interrupt):
        signal.raise_signal(getattr(signal, first))
    try:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
    except KeyboardInterrupt:
        pytest.fail("an interrupt right after the interrupted wait's block was not held")
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_later_asker_giving_up_leaves_the_first_one_s_question(
    cli: Cli, swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """The user tour: two askers share a question through --dedupe; the later one times out
    first (exit 3) and the first one still gets the answer."""
    env = subprocess_env(redis_url, "test", tmp_path)
    args = ["ask", "lib", "shared q", "--dedupe", "dk", "--timeout", "30", "--json"]
    first, question = _asking(swarm, env, args)
    try:
        out = cli("ask", "lib", "shared q", "--dedupe", "dk", "--timeout", "0.3", expect=3)
        assert f"it stays open as {question.id}, shared with the asker" in out.stderr
        assert swarm.get_task(question.id).status is TaskStatus.PENDING
        answer_one(swarm, "ask.lib", "shared answer").join(10)
        stdout, err = first.communicate(timeout=30)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert json.loads(stdout)["question_id"] == question.id


def test_the_timeout_bound_is_the_core_s(cli: Cli, swarm: Swarm) -> None:
    out = cli("ask", "lib", "q", "--timeout", "1e9", expect=2)
    assert "'1e9' is not a number of seconds above 0 to 86,400" in out.stderr
    assert swarm.queue_stats() == {}  # nothing was asked


def test_every_wait_option_is_bounded_as_the_core_bounds_it(cli: Cli) -> None:
    """A wait the core would refuse is a usage error (exit 2) naming the core's bound."""
    for args, most in (
        (("task", "wait", "--timeout", "1e9"), "604,800"),
        (("task", "claim", "q", "--wait", "1e9"), "86,400"),
        (("msg", "inbox", "a", "--wait", "1e9"), "86,400"),
    ):
        out = cli(*args, expect=2)
        assert f"is not a number of seconds from 0 to {most}" in out.stderr, args
