"""A walkthrough of docs/live.md and docs/ask.md: the SessionStart claimable line counts
what has fallen due, as the channel does; ``swarm serve`` refuses slot names too long to be
a worker, and a --lease beyond the core's bound, before it starts, and knows a registered
agent is askable; ``swarm ask`` hints to withdraw only a question it posted, and says that
the question and --data cannot both read stdin; the core's bounds read as numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Settings, Swarm, ValidationError
from redis_swarm._validate import MAX_LEASE_S, MAX_NAME

from ._cli import SRC, Cli

CANCEL_HINT = "should this ask be killed, withdraw it"


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        handle.publish_context("lib", "the butler did it\n", source="book.md")
        yield handle


@pytest.fixture
def cli(redis_url: str, swarm_home: Path) -> Cli:
    return Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)})


def _env(redis_url: str, home: Path) -> dict[str, str]:
    return {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "test", "PYTHONPATH": SRC,
            "SWARM_HOME": str(home), "SWARM_AGENT": ""}  # fmt: skip


def _session_start(cli: Cli, queue: str) -> str:
    body = {"session_id": "dq1", "hook_event_name": "SessionStart", "source": "startup"}
    out = cli("hook", "SessionStart", "--client", "claude", "--queue", queue,
              input=json.dumps(body))  # fmt: skip
    answer: dict[str, Any] = json.loads(out.stdout)
    return str(answer["hookSpecificOutput"]["additionalContext"])


def _until_due(swarm: Swarm, task_id: str) -> None:
    """Wait until the delayed task's time has come (it stays delayed: nobody claims)."""
    task = swarm.get_task(task_id)
    assert task.not_before is not None
    while time.time() * 1000 < task.not_before + 50:
        time.sleep(0.05)


def test_session_start_counts_a_due_delayed_task_as_claimable(cli: Cli, swarm: Swarm) -> None:
    task = swarm.post_task("dq", "delayed one", delay_s=0.2)
    _until_due(swarm, task.id)
    context = _session_start(cli, "dq")
    assert "Claimable: dq: 1 pending (" in context, context
    claimed = swarm.claim("dq", worker="zz")
    assert claimed is not None and claimed.id == task.id


def test_session_start_counts_a_failed_task_past_its_backoff(cli: Cli, swarm: Swarm) -> None:
    swarm.configure_queue("rq", retry_backoff_s=0.2)
    task = swarm.post_task("rq", "flaky")
    claimed = swarm.claim("rq", worker="w1")
    assert claimed is not None
    swarm.fail(claimed.id, claimed.token, "boom")
    assert swarm.get_task(task.id).status.value == "delayed"
    _until_due(swarm, task.id)
    context = _session_start(cli, "rq")
    assert "Claimable: rq: 1 pending (" in context, context


def test_serve_refuses_slot_names_too_long_before_it_starts(
    redis_url: str, swarm: Swarm, swarm_home: Path
) -> None:
    owner = "o" * 121  # askable (at most 124), but serve-OWNER-1 is 129 characters
    swarm.publish_context(owner, "notes\n", source="notes.md")
    done = subprocess.run(
        [sys.executable, "-m", "redis_swarm", "serve", owner, "--exec", "cat"],
        env=_env(redis_url, swarm_home), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "serving the questions" not in done.stderr
    assert f"a worker has at most {MAX_NAME}" in done.stderr
    assert "--worker PREFIX of at most 126 characters" in done.stderr, done.stderr


def test_serve_refuses_a_lease_beyond_the_core_s_bound_before_it_starts(
    redis_url: str, swarm: Swarm, swarm_home: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "redis_swarm", "serve", "lib", "--exec", "cat",
         "--lease", "99999999"],
        env=_env(redis_url, swarm_home), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "serving the questions" not in done.stderr
    assert f"{MAX_LEASE_S:,.0f}" in done.stderr and "--lease" in done.stderr, done.stderr


def test_serve_does_not_warn_of_a_registered_agent_with_no_context(
    redis_url: str, swarm: Swarm, swarm_home: Path
) -> None:
    swarm.register("worker", name="bob")
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", "serve", "bob", "--exec", "cat"],
        env=_env(redis_url, swarm_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # answered: the server is past its warnings
        answer = swarm.ask("bob", "are you there?", timeout_s=60)
        assert answer.text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "serving the questions of bob" in err
    assert "published no context" not in err, err


def test_ask_hints_to_withdraw_only_a_question_it_posted(cli: Cli, swarm: Swarm) -> None:
    first = cli("ask", "lib", "shared q", "--dedupe", "rp1", "--keep", "--timeout", "0.3",
                expect=3)  # fmt: skip
    assert CANCEL_HINT in first.stderr, first.stderr
    [qid] = [w for w in first.stderr.split() if w.startswith("t-")][:1]
    second = cli("ask", "lib", "something else", "--dedupe", "rp1", "--timeout", "0.3", expect=3)
    assert CANCEL_HINT not in second.stderr, second.stderr
    assert f"question {qid} asked before with this dedupe key" in second.stderr, second.stderr
    assert swarm.get_task(qid).status.value == "pending"  # (left to the asker that posted it)


def test_ask_says_the_question_and_data_cannot_both_read_stdin(cli: Cli, swarm: Swarm) -> None:
    out = cli("ask", "lib", "-", "--data", "-", input='{"a":1}', expect=2)
    assert "QUESTION and --data cannot both read stdin" in out.stderr, out.stderr
    assert "stdin was empty" not in out.stderr
    assert swarm.queue_stats().get("ask.lib") is None  # nothing asked


def test_the_core_s_bounds_read_as_numbers(cli: Cli, swarm: Swarm) -> None:
    with pytest.raises(ValidationError) as caught:
        swarm.post_task("q", "t", lease_s=99_999_999)
    assert "is 99,999,999; it must be between 0.001 and 2,592,000" in str(caught.value)
    out = cli("retire", "--questions", "lib", "--older-than", "1e10", expect=2)
    assert "from 0 to 1,000,000,000:" in out.stderr, out.stderr
