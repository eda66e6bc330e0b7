"""``ask``'s note that nobody has claimed the question yet (``on_unclaimed``), and ``swarm
ask`` printing it on stderr while it goes on waiting: before it, an ask of a shard nobody
serves printed nothing until its timeout, and looked hung."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, Timeout, _hints
from redis_swarm._keys import ask_queue
from redis_swarm._ops import ask as ask_ops

from ._cli import subprocess_env
from .test_ask_steps import _gated

QUEUE = ask_queue("lib")
NOTE = "waiting: no answerer has claimed question t-"


@pytest.fixture
def owned(swarm: Swarm) -> Swarm:
    swarm.publish_context("lib", "the answer is in chapter 42\n", source="book.md")
    return swarm


class _Notes:
    """An ``on_unclaimed`` that records each call and when it came."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.calls: list[tuple[str, float]] = []

    def __call__(self, queue: str) -> None:
        self.calls.append((queue, time.monotonic() - self.started))


def test_the_note_comes_once_at_its_time_and_the_wait_goes_on(owned: Swarm) -> None:
    """The wait wakes at the note's moment (its first wait was a whole chunk of 3.3 s, past
    this timeout), says it once, and still times out as before."""
    notes = _Notes()
    with pytest.raises(Timeout) as raised:
        owned.ask("lib", "anyone?", timeout_s=2.5, on_unclaimed=notes, unclaimed_after_s=0.3)
    assert [queue for queue, _ in notes.calls] == [QUEUE]
    assert 0.29 <= notes.calls[0][1] < 1.5, notes.calls
    assert not raised.value.claimed and "no answerer claimed it" in str(raised.value)


def test_a_question_claimed_in_time_gets_no_note_though_its_answer_is_slow(
    owned: Swarm,
) -> None:
    def slow_answerer() -> None:
        task = owned.claim(QUEUE, worker="librarian", wait_s=20)
        assert task is not None
        time.sleep(1.0)  # well past the note's moment
        owned.answer(task.id, task.token, "chapter 42", worker="librarian")

    answerer = threading.Thread(target=slow_answerer, daemon=True)
    answerer.start()
    notes = _Notes()
    got = owned.ask("lib", "where?", timeout_s=20, on_unclaimed=notes, unclaimed_after_s=0.3)
    answerer.join(10)
    assert got.text == "chapter 42" and notes.calls == []


def test_no_note_when_the_timeout_comes_first(owned: Swarm) -> None:
    notes = _Notes()
    with pytest.raises(Timeout):
        owned.ask("lib", "anyone?", timeout_s=0.3, on_unclaimed=notes, unclaimed_after_s=0.3)
    assert notes.calls == []


def test_what_the_note_raises_ends_the_wait_and_withdraws_the_question(owned: Swarm) -> None:
    def refuse(_queue: str) -> None:
        raise RuntimeError("not waiting for nobody")

    with pytest.raises(RuntimeError) as raised:
        owned.ask("lib", "anyone?", timeout_s=20, on_unclaimed=refuse, unclaimed_after_s=0.1)
    assert "cancelled" in " ".join(getattr(raised.value, "__notes__", []))
    (question,) = owned.list_tasks(queue=QUEUE).items
    assert question.status.value == "cancelled"


def test_an_ask_answered_before_the_note_costs_no_more_requests(redis_url: str) -> None:
    """The same ask, answered while it waits, sends the same requests with a note asked for
    as without: the note costs a read only when its moment comes."""
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", "chapter 42\n", source="book.md")

        def answer_now() -> None:  # before its first wait blocks: the wait ends at once
            task = handle.claim(QUEUE, worker="librarian")
            if task is not None:
                handle.answer(task.id, task.token, "chapter 42", worker="librarian")

        def requests(**note: Any) -> list[str]:
            sent: list[str] = []
            op = ask_ops.ask(handle._ctx, "lib", "where?", timeout_s=20, **note)
            gated = _gated(op, lambda _n: None, answer_now, sending=lambda r: sent.append(repr(r)))
            assert handle._run(gated).text == "chapter 42"
            return sent

        plain = requests()
        noted = requests(on_unclaimed=_Notes(), unclaimed_after_s=5.0)
    assert len(noted) == len(plain), (plain, noted)


def _swarm_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("shard-1", "the answer is in chapter 42\n", source="book.md")
    return subprocess_env(redis_url, "test", tmp_path)


def test_swarm_ask_says_it_waits_for_nobody_then_times_out_and_is_quiet_when_served(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Nobody serves shard-1: the note comes on stderr while the ask still waits.
    asking = _swarm_process(env, "ask", "shard-1", "why?", "--timeout", "4")
    assert asking.stderr is not None
    posted = asking.stderr.readline()  # the question's id, once posted
    first = asking.stderr.readline()
    still_waiting = asking.poll() is None
    _, rest = asking.communicate(timeout=30)
    assert posted.startswith("question t-") and " asked; " in posted, posted
    assert first.startswith(NOTE), first + rest
    assert posted.split()[1] in first  # (the note names the question)
    assert "is anyone serving queue 'ask.shard-1'?" in first and _hints.SERVE_QUESTIONS in first
    assert still_waiting, "the note came only with the timeout"
    assert asking.returncode == 3 and "error: no answer from 'shard-1' after 4 s" in rest
    assert NOTE not in rest  # once

    # With --json, stderr holds the one JSON error alone.
    asking = _swarm_process(env, "ask", "shard-1", "why?", "--timeout", "2.5", "--json")
    _, err = asking.communicate(timeout=30)
    assert asking.returncode == 3 and json.loads(err)["error"] == "Timeout"

    # Served, the question is claimed at once and answered: no note.
    answer = tmp_path / "answer.sh"
    answer.write_text("#!/bin/sh\ncat >/dev/null\necho 'in chapter 42'\n")
    answer.chmod(0o755)
    serving = _swarm_process(env, "serve", "shard-1", "--exec", str(answer))
    try:
        assert serving.stderr is not None
        assert "serving the questions of shard-1" in serving.stderr.readline()
        asked = _swarm_process(env, "ask", "shard-1", "why?", "--timeout", "30")
        out, err = asked.communicate(timeout=60)
    finally:
        serving.terminate()
        serving.communicate(timeout=30)
    assert asked.returncode == 0, err
    assert out == "in chapter 42\n" and NOTE not in err and "answered by" in err
