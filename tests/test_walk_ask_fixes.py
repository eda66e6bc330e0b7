"""A walkthrough of docs/ask.md and docs/agents.md: lineage of a task whose question timed
out unanswered and was retired says it was cancelled with no answer (not "retired with its
answer"); a ``swarm serve --session`` stopped cleanly (drained, SIGINT, SIGTERM) reads gone
in ``swarm agents`` at once, so that no ``swarm run`` prompt offers ``swarm ask OWNER`` of a
server that stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import RetiredAsk, Swarm, TaskStatus
from redis_swarm._keys import ask_queue
from redis_swarm._prompts import answered_targets
from redis_swarm._runner import ServeOptions, Server

from . import _fake_claude
from ._answers import answer_one
from ._cli import SRC, Cli


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", "a big book\n", source="book.md")
        yield handle


# --- a question that timed out unanswered, then retired


def test_lineage_says_a_retired_question_that_timed_out_was_never_answered(
    cli: Cli, swarm: Swarm
) -> None:
    cli("task", "post", "research", "look it up")
    claimed = cli.json("task", "claim", "research", "--worker", "w3")
    task_id = claimed["id"]
    # nobody serves lib: the question times out (exit 3), withdrawn (cancelled) unanswered
    cli("ask", "lib", "nobody answers?", "--task", task_id, "--timeout", "1",
        env={"SWARM_AGENT": "w3"}, expect=3)  # fmt: skip
    # a second one is answered
    answerer = answer_one(swarm, "ask.lib", "chapter 9")
    out = cli("ask", "lib", "where?", "--task", task_id, "--timeout", "30",
              env={"SWARM_AGENT": "w3"})  # fmt: skip
    answerer.join(10)
    assert out.stdout == "chapter 9\n"
    asked = swarm.list_tasks(queue=ask_queue("lib"), limit=10).items
    by_text = {q.description: q.id for q in asked}
    cancelled, answered = by_text["nobody answers?"], by_text["where?"]
    cli("task", "report", task_id, "--token", claimed["token"], "--summary", "done")
    (finding,) = [f for f in swarm.findings(queue="research").items if f.task_id == task_id]

    cli("retire", "--questions", "lib", "--older-than", "0")

    text = cli("lineage", finding.id).stdout
    assert f"asked: question {cancelled} (cancelled, no answer; retired on " in text, text
    assert f"question {cancelled} (retired with its answer" not in text, text
    assert f"asked: question {answered} (retired with its answer on " in text, text
    tree = cli.json("lineage", finding.id)
    ended = {q["id"]: q["ended"] for q in tree["retired_questions"]}
    assert ended == {cancelled: "cancelled", answered: "completed"}
    gone = swarm.retired_asked(task_id)
    assert gone[cancelled] == RetiredAsk(gone[cancelled].at, TaskStatus.CANCELLED)
    assert gone[answered].outcome == "completed" and gone[answered].at is not None


# --- a swarm serve --session stopped cleanly reads gone at once


def _claude(extra: str = "") -> str:
    return f"{sys.executable} {_fake_claude.SOURCE} -p --output-format json {extra}".strip()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fake"
    folder.mkdir()
    monkeypatch.setenv("FAKE_STATE", str(folder))
    return folder


def _offers_ask(swarm: Swarm) -> bool:
    """Whether a ``swarm run`` worker's prompt for a task of lib's offers ``swarm ask lib``
    (``answered_targets``: what the pool gives ``render_task_prompt``)."""
    task = swarm.post_task("research", "look in lib", parent="lib")
    return "lib" in answered_targets(swarm, task, ("research",))


def test_a_drained_serve_with_session_reads_gone_at_once(swarm: Swarm, state: Path) -> None:
    server = Server(
        swarm, ServeOptions(owner="lib", command=_claude("--resume {session}"), session=True,
                            poll_s=0.2),
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        swarm.ask("lib", "Q1: who?", timeout_s=30)
        (slot,) = swarm.agents()
        assert slot.id == "serve-lib-1" and slot.alive
        assert _offers_ask(swarm)
    finally:
        server.drain()
        thread.join(30)
    assert not thread.is_alive() and server.crash is None
    # kept registered (its conversation, for a restart), and gone now, not in a minute
    (slot,) = swarm.agents()
    assert slot.id == "serve-lib-1" and slot.alive is False and slot.left_at is not None
    assert swarm.agents(alive=True) == []
    assert not _offers_ask(swarm)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_stopped_by_a_signal_reads_gone_at_once(
    swarm: Swarm, state: Path, redis_url: str, tmp_path: Path, sig: int
) -> None:
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "test", "PYTHONPATH": SRC,
           "FAKE_STATE": str(state), "SWARM_HOME": str(tmp_path / "home")}  # fmt: skip
    args = ["serve", "lib", "--exec", _claude("--resume {session}"), "--session"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        swarm.ask("lib", "Q2: who?", timeout_s=30)
        deadline = time.monotonic() + 10
        while not swarm.agents(alive=True):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    (slot,) = swarm.agents()
    assert slot.id == "serve-lib-1" and slot.alive is False and slot.left_at is not None, err
    assert not _offers_ask(swarm)
