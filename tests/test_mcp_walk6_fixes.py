"""What a sixth walk of ``swarm mcp`` with real clients found:

1. A task cancelled while a worker session held it: report_finding said, rightly, "already
   settled ... kept as superseded (f-...)", but renew_task, fail_task and report_finding
   then said "task T was already completed: this session reported it": the session did not
   complete it. The answer path (a question cancelled before the shard answered) likewise.
2. Booleans took "yes", "no", 1 and 0 (``list_agents(alive="no")`` listed the stale agents);
   they take true and false (and the strings "true" and "false", as the MCP inspector's CLI
   sends every argument), numbers still their strings (``lease_s="10"``).
3. ``swarm mcp --transport http`` wrote uvicorn's access log to stdout.
4. ``swarm mcp install --http`` wrote port 99999, refused ``HTTP://`` (a scheme is
   case-insensitive: written lower-case now) and took ``/mcp/`` (answered with a redirect)
   and a ``#fragment``.
5. Wordings: ``answer_question(question_id="")`` said "no lease on question :"; a claim of
   one queue named 1000 times said "got 1000 queues"; ``priority=1e300`` said "Unable to
   parse input string as an integer, exceeded maximum size", not the range.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from redis_swarm import Swarm
from redis_swarm._keys import ask_queue
from redis_swarm._validate import MAX_PRIORITY, MAX_QUEUES

from ._servers import free_port
from .test_mcp_review_fixes import SRC, _server, _tool


def _findings_of(core: Swarm, task_id: str) -> list[Any]:
    return [f for f in core.findings(limit=1000).items if f.task_id == task_id]


# --- 1. a task (or a question) settled before the session's finding


def test_a_cancelled_tasks_late_report_is_never_said_to_have_completed_it(
    redis_url: str, swarm_home: Path
) -> None:
    with Swarm(redis_url, swarm="test") as core:
        posted = core.post_task("walk6", "the job")
        with _server(redis_url, swarm_home) as proc:
            failed, text = _tool(proc, 2, "claim_task", queue="walk6")
            assert not failed and posted.id in text, text
            core.cancel(posted.id)
            failed, late = _tool(proc, 3, "report_finding", task_id=posted.id, summary="done")
            assert failed and "kept as superseded" in late, late
            (kept,) = _findings_of(core, posted.id)
            assert kept.superseded
            calls: list[tuple[str, dict[str, Any]]] = [
                ("renew_task", {}), ("fail_task", {"error": "stuck"}),
                ("report_finding", {"summary": "done again"}),
            ]  # fmt: skip
            for rid, (name, args) in enumerate(calls, 4):
                failed, said = _tool(proc, rid, name, task_id=posted.id, **args)
                assert failed, said
                assert "already completed" not in said and "reported it" not in said, said
                assert f"task {posted.id} was settled before your report arrived" in said, said
                assert "cancelled" in said and f"kept as superseded ({kept.id})" in said, said
                assert "claim the next task with claim_task" in said, said
        assert len(_findings_of(core, posted.id)) == 1  # (nothing more stored)


def test_a_cancelled_questions_late_answer_is_never_said_to_have_answered_it(
    redis_url: str, swarm_home: Path
) -> None:
    with Swarm(redis_url, swarm="test") as core:
        core.publish_context("sh6", "a book\n", source="book.md")
        question = core.post_task(ask_queue("sh6"), "Who did it?")
        with _server(redis_url, swarm_home, "--role", "shard", "--name", "sh6") as proc:
            failed, text = _tool(proc, 2, "next_question")
            assert not failed and question.id in text, text
            core.cancel(question.id)
            failed, late = _tool(proc, 3, "answer_question", question_id=question.id, text="x")
            assert failed and "kept as superseded" in late, late
            failed, said = _tool(proc, 4, "answer_question", question_id=question.id, text="x")
            assert failed and "this session answered it" not in said, said
            assert f"question {question.id} was settled before your answer arrived" in said
            assert "next_question" in said and "claim_task" not in said, said


# --- 2. booleans strict, numbers still taken as strings


def test_a_boolean_takes_true_or_false_only_and_a_number_its_string(
    redis_url: str, swarm_home: Path
) -> None:
    with (
        Swarm(redis_url, swarm="test") as core,
        _server(redis_url, swarm_home, "--role", "all", "--name", "me6") as proc,
    ):
        rid = 2
        for given in ("yes", "no", 1, 0, "True", "on"):
            failed, said = _tool(proc, rid, "list_agents", alive=given)
            rid += 1
            assert failed, said
            assert f"alive: must be true or false (got {json.dumps(given)})" in said, said
        for given, alive in ((True, True), ("true", True), (False, False), ("false", False)):
            failed, said = _tool(proc, rid, "list_agents", alive=given)
            rid += 1
            assert not failed, said
            assert all(a["alive"] is alive for a in json.loads(said)["agents"]), said
        core.post_task("walk6b", "the job")
        failed, said = _tool(proc, rid, "claim_task", queue="walk6b", lease_s="10")
        assert not failed and json.loads(said)["task"]["lease_s"] == 10, said


# --- 3. uvicorn's log on stderr


def test_the_http_transport_writes_nothing_to_stdout(
    redis_url: str, swarm_home: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test",
           "SWARM_HOME": str(swarm_home), "PYTHONUNBUFFERED": "1"}  # fmt: skip
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--transport", "http", "--port",
            str(port), "--token", "walk6-token-0123456789abcdef"]  # fmt: skip
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.post(url + "?token=wrong", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.1)
        assert answer.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert out.read_text() == ""
    logged = err.read_text()
    assert '"POST /mcp?token=*** HTTP/1.1" 401' in logged, logged
    assert "Started server process" in logged, logged


# --- 4. mcp install --http


def test_an_http_url_is_checked_as_a_client_will_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ._cli import Cli

    monkeypatch.chdir(tmp_path)
    cli = Cli("redis://127.0.0.1:1/0")

    def install(url: str, expect: int | None = 0) -> Any:
        return cli("mcp", "install", "--client", "json", "--http", url, "--no-token",
                   expect=expect)  # fmt: skip

    for port in ("99999", "0", "65536", "x1"):
        out = install(f"http://127.0.0.1:{port}/mcp", expect=None)
        assert out.code == 2 and f"names port '{port}', which is no TCP port" in out.stderr, out
        assert out.stdout == ""
    out = install("http://h:8765/mcp#frag", expect=None)
    assert out.code == 2 and "pass the URL without it (http://h:8765/mcp)" in out.stderr, out
    for slashed, right in (("http://h:8765/mcp/", "http://h:8765/mcp"),
                           ("https://proxy/team/mcp/", "https://proxy/team/mcp")):  # fmt: skip
        out = install(slashed, expect=None)
        assert out.code == 2 and "answers with a redirect to /mcp" in out.stderr, out
        assert f"pass {right}, the address it printed" in out.stderr, out
    for given, written in (("HTTP://127.0.0.1:8765/mcp", "http://127.0.0.1:8765/mcp"),
                           ("Https://proxy:443/team/mcp", "https://proxy:443/team/mcp"),
                           ("http://[::1]:65535/mcp", "http://[::1]:65535/mcp")):  # fmt: skip
        server = json.loads(install(given).stdout)["mcpServers"]["swarm"]
        assert server == {"type": "http", "url": written}


# --- 5. wordings


def test_an_empty_id_is_refused_saying_what_to_give(redis_url: str, swarm_home: Path) -> None:
    with _server(redis_url, swarm_home, "--role", "shard", "--name", "sh6w") as proc:
        failed, said = _tool(proc, 2, "answer_question", question_id="", text="x")
        assert failed and 'question_id: must be the id of a question (got "")' in said, said
        assert "no lease" not in said and "next_question" in said, said
    with _server(redis_url, swarm_home, "--role", "all", "--name", "me6w") as proc:
        failed, said = _tool(proc, 2, "report_finding", task_id=" ", summary="x")
        assert failed and 'task_id: must be the id of a task (got " ")' in said, said


def test_a_queue_named_twice_is_counted_once(redis_url: str, swarm_home: Path) -> None:
    with (
        Swarm(redis_url, swarm="test") as core,
        _server(redis_url, swarm_home, "--name", "me6q") as proc,
    ):
        many = [f"walk6q{i}" for i in range(MAX_QUEUES + 1)] * 3
        failed, said = _tool(proc, 2, "claim_task", queue=many)
        assert failed and f"got {MAX_QUEUES + 1} queues ({len(many)} names, some given " \
            f"more than once); the limit is {MAX_QUEUES}" in said, said  # fmt: skip
        posted = core.post_task("walk6q", "the job")
        failed, said = _tool(proc, 3, "claim_task", queue=["walk6q"] * 1000)
        assert not failed and posted.id in said, said


def test_a_priority_out_of_range_says_the_range(redis_url: str, swarm_home: Path) -> None:
    with (
        Swarm(redis_url, swarm="test") as core,
        _server(redis_url, swarm_home, "--role", "all", "--name", "me6p") as proc,
    ):
        for rid, priority in enumerate((1e300, -1e300, 2**70), 2):
            failed, said = _tool(proc, rid, "post_task", queue="walk6p", description="d",
                                 priority=priority)  # fmt: skip
            assert failed and "Unable to parse" not in said, said
            assert f"must be between -{MAX_PRIORITY:,} and {MAX_PRIORITY:,}" in said, said
        failed, said = _tool(proc, 9, "post_tasks", tasks=[
            {"queue": "walk6p", "description": "d", "priority": 1e300}])  # fmt: skip
        assert failed and f"must be between -{MAX_PRIORITY:,} and" in said, said
        assert core.queue_stats().get("walk6p", {}).get("pending", 0) == 0
