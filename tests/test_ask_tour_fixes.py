"""What a tour of a shard answering questions (docs/ask.md) found: a restarted `swarm serve`
that gave a question back only when its asker gave up, answers that did not say which context
version they came from, a dedupe key poisoned by a question that died, a key shared by other
text without a word, owners too long to be asked told of a queue they never chose, a timeout
of 0, a task's words for a question's data, and wait's words for retire."""

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

import anyio
import pytest

from redis_swarm import (
    InvalidState,
    NotFound,
    PayloadTooLarge,
    Settings,
    Swarm,
    TaskStatus,
    Timeout,
    ValidationError,
    apply_role,
)
from redis_swarm._hints import LIST_PASSES
from redis_swarm._keys import ask_queue
from redis_swarm._runner import ServeOptions, Server
from redis_swarm._validate import MAX_NAME
from redis_swarm.mcp_server import build_server

from . import _fake_claude
from ._answers import answer_one
from ._cli import SRC, Cli, alive
from ._servers import RedisServer
from .mcp_server._helpers import connect

BOOK = "".join(f"line {i}: {'the butler' if i == 42 else 'tea'}\n" for i in range(1, 200))


@pytest.fixture
def lib(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", BOOK, source="book.md")
        yield handle


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "fake"
    folder.mkdir()
    monkeypatch.setenv("FAKE_STATE", str(folder))
    return folder


def claude() -> str:
    return f"{sys.executable} {_fake_claude.SOURCE} -p --output-format json"


def _calls(state: Path) -> list[dict[str, Any]]:
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


def _fail_once(swarm: Swarm, queue: str) -> threading.Thread:
    """A thread that claims one question of ``queue`` and fails it for good."""

    def run() -> None:
        task = swarm.claim(queue, worker="broken", wait_s=20)
        assert task is not None
        swarm.fail(task.id, task.token, "the agent printed nothing", retry=False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --- 1. serve claims with the question's own lease


def _serve(redis_url: str, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """``swarm serve lib`` with its default lease, in a process group of its own."""
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "test", "PYTHONPATH": SRC,
           "FAKE_STATE": str(state)}  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "redis_swarm", "serve", "lib", "--exec", claude(), "--json"],
            env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip


def test_a_serve_killed_mid_answer_with_default_settings_gives_the_question_back_in_time(
    lib: Swarm, state: Path, redis_url: str, tmp_path: Path
) -> None:
    """The question's lease is a third of its asker's timeout (5 s of 15): serve claimed it for
    its own 60 s, so a killed server's question came back when the asker had given up."""
    (state / "slow-once").write_text("")
    log = tmp_path / "serve.log"
    first = _serve(redis_url, state, log)
    result: dict[str, Any] = {}

    def asker() -> None:
        try:
            result["answer"] = lib.ask("lib", "Q5: survive?", timeout_s=15)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=asker)
    thread.start()
    deadline = time.monotonic() + 20
    while not _calls(state):  # the agent runs: the question is claimed and being answered
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    (claimed,) = lib.list_tasks(queue=ask_queue("lib"), status="claimed").items
    assert claimed.lease_deadline is not None and claimed.claimed_at is not None
    assert claimed.lease_deadline - claimed.claimed_at <= 5_000  # the question's own lease
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = _serve(redis_url, state, log)
    try:
        thread.join(30)
        assert "error" not in result, result
        assert result["answer"].text == "A5: from the context."
        assert ServeOptions(owner="lib", command="x").lease_s is None
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(20)
        orphan = _calls(state)[0]["pid"]  # the killed server's agent, still asleep
        if alive(orphan):
            os.kill(orphan, signal.SIGKILL)


# --- 2. an answer records, and carries, the context version it was made from


def test_serve_records_the_version_in_its_prompt_and_ask_notes_a_newer_one(
    lib: Swarm, state: Path, cli: Cli
) -> None:
    first = lib.context_info("lib").version
    serving = Serving(lib, command=claude())
    try:
        got = lib.ask("lib", "Q1: who did it?", timeout_s=30, dedupe_key="kv")
    finally:
        serving.stop()
    assert got.context_version == first
    finding = lib.get_finding(got.finding_id)
    assert finding.context_version == first
    newer = lib.publish_context("lib", BOOK + "line 200: epilogue\n", source="book.md").version
    # the same key, after the owner republished: the old answer, with a note saying so
    out = cli("ask", "lib", "Q1: who did it?", "--dedupe", "kv", "--json")
    shown = json.loads(out.stdout)
    assert shown["context_version"] == first and shown["finding_id"] == got.finding_id
    (note,) = shown["notes"]
    assert f"made from version {first[:12]} of lib's context" in note
    assert f"not from its current one, {newer[:12]}" in note
    human = cli("ask", "lib", "Q1: who did it?", "--dedupe", "kv")
    assert human.stdout == "A1: from the context.\n"
    assert f"note: the answer was made from version {first[:12]}" in human.stderr
    assert len(note) < 300  # bounded


def test_answer_takes_the_context_version_in_both_shells(swarm: Swarm) -> None:
    info = swarm.publish_context("lib", "chapter 42\n", source="book.md")
    swarm.post_task("warm", "x")  # (a queue to ask nothing of: the owner's ask queue is used)
    got: dict[str, Any] = {}

    def asker() -> None:
        got["answer"] = swarm.ask("lib", "where?", timeout_s=20)

    thread = threading.Thread(target=asker, daemon=True)
    thread.start()
    question = swarm.claim(ask_queue("lib"), worker="librarian", wait_s=20)
    assert question is not None
    found = swarm.answer(
        question, question.token, "chapter 42", worker="librarian", context_version=info.version
    )
    thread.join(20)
    assert found.context_version == info.version
    assert got["answer"].context_version == info.version


def test_the_mcp_answer_records_the_version_the_shard_read(redis_url: str) -> None:
    core = Swarm(redis_url, swarm="test")
    info = core.publish_context("shard-x", "a big book\n", source="book.md")
    asked: dict[str, Any] = {}

    def asker() -> None:
        asked["answer"] = core.ask("shard-x", "Who did it?", timeout_s=30)

    async def body() -> None:
        async with connect(build_server(core, role="shard", name="shard-x")) as shard:
            await shard("get_context")
            thread = threading.Thread(target=asker)
            thread.start()
            got, _ = await shard("next_question", wait_s=20)
            await shard("answer_question", question_id=got["question_id"], text="The butler.")
            await anyio.to_thread.run_sync(thread.join, 10)

    try:
        anyio.run(body)
        assert asked["answer"].context_version == info.version
    finally:
        core.close()


# --- 3. a dedupe key whose question died gives it another chance


def test_a_dead_question_s_key_puts_it_back_and_waits_for_its_answer(swarm: Swarm) -> None:
    swarm.publish_context("lib", "chapter 42\n", source="book.md")
    failing = _fail_once(swarm, ask_queue("lib"))
    with pytest.raises(InvalidState, match=r"died unanswered.*same dedupe key puts it back"):
        swarm.ask("lib", "will it break?", timeout_s=20, dedupe_key="kd")
    failing.join(10)
    answerer = answer_one(swarm, ask_queue("lib"), "it did not")
    got = swarm.ask("lib", "will it break?", timeout_s=20, dedupe_key="kd")
    answerer.join(10)
    assert got.text == "it did not"
    question = swarm.get_task(got.question_id)
    assert question.status is TaskStatus.COMPLETED and question.dedupe_key == "kd"
    # the reviver holds it as its poster: it withdraws it when it stops waiting
    failing = _fail_once(swarm, ask_queue("lib"))
    with pytest.raises(InvalidState):
        swarm.ask("lib", "again?", timeout_s=20, dedupe_key="kd2")
    failing.join(10)
    with pytest.raises(Timeout, match="cancelled"):
        swarm.ask("lib", "again?", timeout_s=0.3, dedupe_key="kd2")
    (dead,) = swarm.list_tasks(queue=ask_queue("lib"), status="cancelled").items
    assert dead.description == "again?"


def test_a_worker_that_may_not_revive_it_is_told_the_command_that_does(
    acl_server: RedisServer,
) -> None:
    admin = Settings.from_url(acl_server.url, swarm="team-a")
    made = {
        role: apply_role(admin, role, f"{role}-t", swarm="team-a").user
        for role in ("shard", "worker")
    }

    def handle(role: str) -> Swarm:
        user = made[role]
        return Swarm(
            f"redis://{user.user}:{user.password}@127.0.0.1:{acl_server.port}", swarm=user.swarm
        )

    with handle("shard") as shard, handle("worker") as worker:
        shard.publish_context("lib", "chapter 42\n", source="book.md")
        failing = _fail_once(shard, ask_queue("lib"))
        with pytest.raises(InvalidState):
            worker.ask("lib", "will it break?", timeout_s=20, dedupe_key="kw")
        failing.join(10)
        with pytest.raises(InvalidState) as raised:
            worker.ask("lib", "will it break?", timeout_s=20, dedupe_key="kw")
        (dead,) = shard.list_tasks(queue=ask_queue("lib"), status="dead").items
        said = str(raised.value)
        assert f"revive it (swarm task requeue {dead.id})" in said, said
        assert "may not put it back" in said


# --- 4. a key shared by other text says so


def test_a_dedupe_key_met_by_other_text_is_noted(lib: Swarm, cli: Cli) -> None:
    answerer = answer_one(lib, ask_queue("lib"), "the butler")
    lib.ask("lib", "who did it?", timeout_s=20, dedupe_key="kt", keep=True)
    answerer.join(10)
    out = cli("ask", "lib", "where is the tea?", "--dedupe", "kt", "--json")
    (note,) = json.loads(out.stdout)["notes"]
    assert "dedupe key 'kt' matched question" in note and "'who did it?'" in note
    human = cli("ask", "lib", "where is the tea?", "--dedupe", "kt")
    assert "note: dedupe key 'kt' matched question" in human.stderr
    same = cli("ask", "lib", "who did it?", "--dedupe", "kt", "--json")
    assert "notes" not in json.loads(same.stdout)


# --- 5. an owner too long to be asked is told so in its own terms


def test_an_owner_too_long_to_be_asked_is_told_so(lib: Swarm) -> None:
    longest = MAX_NAME - len(ask_queue(""))
    owner = "o" * (longest + 2)
    lib.publish_context(owner, "text\n", source="t.md")
    with pytest.raises(ValidationError) as raised:
        lib.ask(owner, "hello?", timeout_s=1)
    said = str(raised.value)
    assert "too long a name to be asked" in said and f"at most {longest} characters" in said
    assert "ask queue is" not in said
    with pytest.raises(
        ValidationError,
        match=rf"too long a name to be asked.*an owner asked and served has at most {longest} char",
    ):
        Server(lib, ServeOptions(owner=owner, command="cat"))
    lib.publish_context("o" * longest, "text\n", source="t.md")
    with pytest.raises(Timeout):  # the longest that fits is asked
        lib.ask("o" * longest, "hello?", timeout_s=0.1)


# --- 6, 7. a timeout of 0, and a question's data too big


def test_ask_refuses_a_timeout_of_0_and_says_question_data(lib: Swarm, cli: Cli) -> None:
    out = cli("ask", "lib", "q", "--timeout", "0", expect=2)
    assert "'0' is not a number of seconds above 0 to 86,400" in out.stderr
    assert lib.queue_stats() == {}  # nothing was asked
    with pytest.raises(PayloadTooLarge, match=r"^question data is [\d,]+ bytes"):
        lib.ask("lib", "q", data={"blob": "x" * (1 << 20)})
    assert lib.queue_stats() == {}


# --- 8. retire's own words for an unknown pass


def test_retiring_an_unknown_pass_says_there_is_nothing_to_retire(lib: Swarm) -> None:
    lib.post_task("main", "t", pass_name="day-1")
    with pytest.raises(NotFound) as raised:
        lib.retire_pass("day-9")
    said = str(raised.value)
    assert 'posted to pass "day-9": nothing to retire. Check its name' in said
    assert "nothing to wait for" not in said and LIST_PASSES in said  # (faces reword it)
    with pytest.raises(NotFound, match="nothing to wait for and no findings to read"):
        lib.wait(pass_name="day-9", timeout_s=0.1)
