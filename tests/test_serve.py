"""``swarm serve``: the answering loop of a shard's ask queue, with scripted agents that print
what ``claude -p --output-format json`` prints (tests/_fake_claude.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Answer, ConfigError, InvalidState, Swarm
from redis_swarm._keys import ask_queue
from redis_swarm._runner import (
    Runner,
    RunOptions,
    ServeOptions,
    Server,
    TaskOutcome,
    session_command,
)

from . import _fake_claude
from ._cli import SRC, alive
from ._raw import command_calls, raw_client, reset_stats, script_calls

BOOK = "".join(f"line {i}: {'the butler' if i == 42 else 'tea'}\n" for i in range(1, 200))


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", BOOK, source="book.md")
        yield handle


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fake"
    folder.mkdir()
    monkeypatch.setenv("FAKE_STATE", str(folder))
    return folder


def claude(extra: str = "") -> str:
    return f"{sys.executable} {_fake_claude.SOURCE} -p --output-format json {extra}".strip()


def calls(state: Path) -> list[dict[str, Any]]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Serving:
    """A Server running in a thread, drained and joined at the end."""

    def __init__(self, swarm: Swarm, **options: Any) -> None:
        self.server = Server(swarm, ServeOptions(owner="lib", poll_s=0.2, **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.drain()
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert self.server.crash is None and self.server.fatal is None


def test_session_command_fills_or_leaves_out_the_session() -> None:
    cmd = "claude -p --output-format json --resume {session}"
    assert session_command(cmd, None) == ("claude -p --output-format json", {})
    assert session_command("agent --resume={session} -x", None)[0] == "agent -x"
    codex = "codex exec --json resume {session} -"
    assert session_command(codex, None)[0] == "codex exec --json -"
    assert session_command(codex, "th-1")[0] == 'codex exec --json resume "$SWARM_SESSION" -'
    filled, env = session_command(cmd, "abc-1")
    assert filled == 'claude -p --output-format json --resume "$SWARM_SESSION"'
    assert env == {"SWARM_SESSION": "abc-1"}


def test_serve_answers_with_the_agent_s_result_and_cost(swarm: Swarm, state: Path) -> None:
    serving = Serving(swarm, command=claude())
    try:
        got = swarm.ask("lib", "Q7: who did it?", asker="w-1", timeout_s=30)
    finally:
        serving.stop()
    assert isinstance(got, Answer)
    assert got.text == "A7: from the context." and got.answerer == "serve-lib-1"
    assert got.model == "claude-fake-1" and got.cost_usd is not None and got.cost_usd > 0
    assert got.usage is not None and got.usage.tokens_in and got.usage.session_id
    (call,) = calls(state)
    assert call["resume"] is None and call["prompt_chars"] > len(BOOK)  # small: inline


def test_a_stopped_server_deregisters_its_slots_unless_they_keep_a_session(
    swarm: Swarm, state: Path
) -> None:
    """Its claims registered them; stopped, it leaves none counted alive. With --session a
    slot's record is its conversation, kept for a restart (the next test)."""
    # Asked before the server starts, so that its first claim takes the question: that is
    # the claim that registers the slot (one that finds nothing registers nobody, and the
    # claims of the next second do not try again).
    asker = threading.Thread(target=lambda: swarm.ask("lib", "Q1: who?", timeout_s=30))
    asker.start()
    deadline = time.monotonic() + 10
    while not swarm.queue_stats().get(ask_queue("lib"), {}).get("pending"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    serving = Serving(swarm, command=claude(), concurrency=2)
    try:
        asker.join(30)
        assert "serve-lib-1" in {a.id for a in swarm.agents()}
    finally:
        serving.stop()
    assert [a.id for a in swarm.agents()] == []
    kept = Serving(swarm, command=claude("--resume {session}"), session=True)
    try:
        swarm.ask("lib", "Q2: who?", timeout_s=30)
    finally:
        kept.stop()
    assert [a.id for a in swarm.agents()] == ["serve-lib-1"]


def test_the_prompt_has_the_question_the_asker_s_task_and_the_context(
    swarm: Swarm, tmp_path: Path
) -> None:
    dump = tmp_path / "prompt.md"
    swarm.post_task("main", "audit the tea supply")
    mine = swarm.claim("main", worker="w-9")
    assert mine is not None
    serving = Serving(swarm, command=f"cat > {dump}; echo 'line 42'", inline_max_tokens=10)
    try:
        got = swarm.ask("lib", "Q1: where is the butler?", data={"hint": "tea"}, asker=mine)
    finally:
        serving.stop()
    assert got.text == "line 42"
    prompt = dump.read_text()
    assert "Q1: where is the butler?" in prompt and '"hint": "tea"' in prompt
    assert f"`w-9` while working on the task `{mine.id}`: audit the tea supply" in prompt
    assert "swarm context search lib" in prompt and "line 42: the butler" not in prompt


def test_session_resumes_the_conversation_and_replaces_a_failing_one(
    swarm: Swarm, state: Path
) -> None:
    serving = Serving(swarm, command=claude("--resume {session}"), session=True)
    try:
        first = swarm.ask("lib", "Q1: first?", timeout_s=30)
        second = swarm.ask("lib", "Q2: second?", timeout_s=30)
        assert first.usage is not None and second.usage is not None
        sid = first.usage.session_id
        assert sid and second.usage.session_id == sid
        assert second.usage.cached_in and second.usage.cached_in > len(BOOK) // 4
        (state / "broken").write_text(str(sid))
        third = swarm.ask("lib", "Q3: third?", timeout_s=30)
        assert third.text == "A3: from the context."
        assert third.usage is not None and third.usage.session_id not in (None, sid)
        assert serving.server.session_of("serve-lib-1") == third.usage.session_id
    finally:
        serving.stop()
    made = calls(state)
    assert [c["resume"] for c in made] == [None, sid, sid, None]
    assert "--resume" not in made[0]["argv"] and made[1]["argv"][-2:] == ["--resume", sid]
    assert made[1]["prompt_chars"] < len(BOOK)  # the context is not sent again


def test_session_needs_the_placeholder(swarm: Swarm) -> None:
    with pytest.raises(Exception, match=r"--session needs \{session\}"):
        Server(swarm, ServeOptions(owner="lib", command="claude -p", session=True))


def test_an_answer_leases_the_next_question_in_the_same_call(swarm: Swarm, redis_url: str) -> None:
    """Three questions waiting: one claim, then each answer leases the next question (the
    pool's claim_next), so no claim of its own between answers."""
    questions = swarm.post_tasks(
        [{"queue": "ask.lib", "description": f"Q{i}", "data": {"kind": "question"}}
         for i in range(3)]
    )  # fmt: skip
    raw = raw_client(redis_url, decode_responses=True)

    def drain_after_three(_: TaskOutcome) -> None:
        if len(server.outcomes) >= 3:
            server.drain()

    try:
        reset_stats(raw)
        options = ServeOptions(owner="lib", command="cat > /dev/null; echo A", poll_s=0.2)
        server = Server(swarm, options, on_outcome=drain_after_three)
        outcomes = server.run()
        scripts = script_calls(command_calls(raw))
    finally:
        raw.close()
    assert [o.status.value for o in outcomes] == ["completed"] * 3
    assert {swarm.get_task(q.id).status.value for q in questions} == {"completed"}
    # the slot's registration as an answerer, the first claim, then three answers, each
    # asking for the next question, and the slot's deregistration on the way out; a claim
    # of its own per question would make it 8
    assert scripts == 6, scripts


def test_an_answerer_that_prints_nothing_is_a_clear_error(swarm: Swarm) -> None:
    serving = Serving(swarm, command="cat > /dev/null")
    try:
        with pytest.raises(InvalidState, match=r"died unanswered.*printed nothing"):
            swarm.ask("lib", "Q1: anything?", timeout_s=30)
    finally:
        serving.stop()


# Codex's `exec --json` exiting 0 though the run failed: an error event, and why in a line of
# text among its events (nothing on stderr).
CODEX_FAILED = [
    {"type": "thread.started", "thread_id": "th-1"},
    {"type": "turn.started"},
    "Error: you are not signed in (codex login)",
    {"type": "error", "message": "unauthorized"},
]


def test_an_answerer_whose_cli_says_it_failed_is_quoted_as_swarm_run_quotes_it(
    swarm: Swarm, tmp_path: Path
) -> None:
    """An agent CLI that exits 0 but says the run failed: the question's error is the one
    ``swarm run`` gives a task, the text it printed besides its events quoted."""
    lines = [e if isinstance(e, str) else json.dumps(e) for e in CODEX_FAILED]
    printed = tmp_path / "codex.jsonl"
    printed.write_text("\n".join(lines) + "\n")
    command = f"cat > /dev/null; cat {printed}"
    task = swarm.post_task("q", "d", max_attempts=1)
    Runner(swarm, RunOptions(queues=("q",), command=command, until_done=True)).run()
    ran = swarm.get_task(task.id).last_error
    assert ran == (
        "the agent CLI reported an error: unauthorized; "
        "stdout: Error: you are not signed in (codex login)"
    )
    question = swarm.post_task(ask_queue("lib"), "Q1", data={"kind": "question"}, max_attempts=1)
    serving = Serving(swarm, command=command)
    try:
        deadline = time.monotonic() + 30
        while swarm.get_task(question.id).status.value != "dead":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        serving.stop()
    assert swarm.get_task(question.id).last_error == ran


# An answerer that answers the question itself (with the lease's token), then prints
# another answer: the one the server reports comes after the question was answered.
ANSWERED_FIRST = (
    "cat > /dev/null; "
    f"PYTHONPATH={SRC} {sys.executable} -c 'import os; from redis_swarm import Swarm; "
    'e = os.environ; s = Swarm(e["SWARM_URL"], swarm=e["SWARM_NAME"]); '
    's.answer(e["SWARM_TASK_ID"], e["SWARM_TASK_TOKEN"], "first", worker="other")\'; '
    "echo late"
)


def test_a_late_answer_is_kept_superseded(swarm: Swarm) -> None:
    """An answer that comes after the question was answered is kept, superseded. (One that
    comes after its asker gave up is rare now: the answerer is stopped within about a
    second of the question being withdrawn, see test_runner_cancel.)"""
    serving = Serving(swarm, command=ANSWERED_FIRST)
    try:
        got = swarm.ask("lib", "Q1: slow?", timeout_s=30)
        deadline = time.monotonic() + 20
        while not serving.server.outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        serving.stop()
    assert got.text == "first"
    (outcome,) = serving.server.outcomes
    assert outcome.status == "lost" and "kept superseded" in outcome.detail
    late = swarm.get_finding(str(outcome.finding_id))
    assert late.superseded and late.summary == "late"


def _serve_process(redis_url: str, state: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "test", "PYTHONPATH": SRC,
           "FAKE_STATE": str(state)}  # fmt: skip
    args = ["serve", "lib", "--exec", claude(), "--lease", "2", "--json"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "redis_swarm", *args], env=env, stdout=out, stderr=out
        )


def test_serve_killed_mid_answer_then_restarted_answers_within_the_timeout(
    swarm: Swarm, state: Path, redis_url: str, tmp_path: Path
) -> None:
    (state / "slow-once").write_text("")
    first = _serve_process(redis_url, state, tmp_path / "serve.log")
    result: dict[str, Any] = {}

    def asker() -> None:
        try:
            result["answer"] = swarm.ask("lib", "Q5: survive?", timeout_s=40)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=asker)
    thread.start()
    deadline = time.monotonic() + 20
    while not calls(state):  # the agent runs: the question is claimed and being answered
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = _serve_process(redis_url, state, tmp_path / "serve.log")
    try:
        thread.join(45)
        assert "error" not in result, result
        answer = result["answer"]
        assert answer.text == "A5: from the context."
        question = swarm.get_task(answer.question_id)
        assert question.attempts == 2 and question.abandons == 1
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(20)
        orphan = calls(state)[0]["pid"]  # the killed server's agent, still asleep
        if alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_serve_warns_when_the_owner_has_no_context(redis_url: str) -> None:
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "test", "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", "serve", "nobody", "--exec", "cat"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Stopped once it has said so (not after a fixed time: a loaded machine may still be
    # importing, and Ctrl-C would interrupt the import).
    assert proc.stderr is not None
    said = ""
    while "nobody has published no context" not in said:
        line = proc.stderr.readline()
        assert line, f"serve ended without the warning: {said}"
        said += line
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    bad = subprocess.run(
        [sys.executable, "-m", "redis_swarm", "serve", "lib", "--exec", "claude -p", "--session"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "--session needs {session}" in bad.stderr


def test_a_restarted_server_resumes_the_slot_s_conversation(swarm: Swarm, state: Path) -> None:
    command = claude("--resume {session}")
    first = Serving(swarm, command=command, session=True)
    try:
        one = swarm.ask("lib", "Q1: first?", timeout_s=30)
    finally:
        first.stop()
    assert one.usage is not None and one.usage.session_id
    assert swarm.get_agent("serve-lib-1").metadata == {
        "session": one.usage.session_id, "context_version": swarm.context_info("lib").version
    }  # fmt: skip
    second = Serving(swarm, command=command, session=True)
    try:
        two = swarm.ask("lib", "Q2: second?", timeout_s=30)
        swarm.publish_context("lib", BOOK + "line 200: more tea\n", source="book.md")
        three = swarm.ask("lib", "Q3: third?", timeout_s=30)
    finally:
        second.stop()
    assert two.usage is not None and two.usage.session_id == one.usage.session_id
    assert three.usage is not None and three.usage.session_id != one.usage.session_id
    assert [c["resume"] for c in calls(state)] == [None, one.usage.session_id, None]


def test_serve_refuses_an_agent_program_that_is_not_installed(swarm: Swarm) -> None:
    with pytest.raises(ConfigError, match="program 'no-such-agent-x7' is not found"):
        Server(swarm, ServeOptions(owner="lib", command="no-such-agent-x7 -p"))
    env = {**os.environ, "SWARM_URL": swarm.settings.render_url(mask=False),
           "SWARM_NAME": "test", "PYTHONPATH": SRC}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "redis_swarm", "serve", "lib", "--exec", "no-such-agent-x7 -p"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 1 and "'no-such-agent-x7' is not found" in out.stderr
    assert "fix the agent command (--exec)" in out.stderr


@pytest.mark.parametrize("session", [False, True], ids=["plain", "session"])
def test_a_question_the_shell_cannot_run_goes_back_and_stops_the_server(
    swarm: Swarm, session: bool
) -> None:
    """Exit code 127 (here past the check: an assignment first): the question goes back
    unfailed and the server stops, rather than fail every question asked; with --session
    no new conversation is tried (it would not find the program either)."""
    questions = swarm.post_tasks(
        [{"queue": "ask.lib", "description": f"Q{i}", "data": {"kind": "question"}}
         for i in range(3)]
    )  # fmt: skip
    command = "SWARM_X=1 no-such-agent-x7 -p" + (" --resume {session}" if session else "")
    server = Server(swarm, ServeOptions(owner="lib", command=command, session=session,
                                        poll_s=0.2))  # fmt: skip
    outcomes = server.run()
    assert [o.status.value for o in outcomes] == ["released"]
    assert server.fatal is not None and "could not be run: exit code 127" in server.fatal
    for q in questions:
        task = swarm.get_task(q.id)
        assert (task.status.value, task.failures) == ("pending", 0)
