"""What a new user met following docs/ask.md on a fresh clone: ``swarm ask --task`` renewing
the lease of a task ``swarm task claim`` took, ``swarm serve`` refusing a ``{session}`` it
would drop and a second server under the first one's names, what an interrupted or killed ask
says of its question, the words of a kept question's answer and of a cancelled one, ``swarm
retire --questions`` offering only what was asked, and ``--data @FILE``."""

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

from redis_swarm import Swarm, TaskStatus
from redis_swarm._ops import ask as ask_ops
from redis_swarm._protocol import Batch, Call, Operation

from ._answers import answer_one
from ._cli import Cli, run_swarm, subprocess_env
from ._servers import ServerFactory

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        handle.publish_context("lib", "a big book\n", source="book.md")
        yield handle


@pytest.fixture
def env(redis_url: str, swarm: Swarm, tmp_path: Path) -> dict[str, str]:
    return subprocess_env(redis_url, "test", tmp_path)  # (SWARM_HOME: the test's own)


def _process(env: dict[str, str], *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args],
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=30)
    finally:
        proc.kill()


# --- 1. --task renews the lease with the token swarm task claim kept


def test_ask_with_task_renews_the_lease_swarm_task_claim_took(cli: Cli, swarm: Swarm) -> None:
    cli("task", "post", "research", "short lease", "--lease", "3")
    claimed = cli.json("task", "claim", "research", "--worker", "w3")
    task_id = claimed["id"]
    first_deadline = swarm.get_task(task_id).lease_deadline
    assert first_deadline is not None
    out = cli(
        "ask", "lib", "renew me?", "--task", task_id, "--timeout", "5", env={"SWARM_AGENT": "w3"},
        expect=3,
    )  # fmt: skip
    assert "will not be renewed" not in out.stderr, out.stderr
    held = swarm.get_task(task_id)
    assert held.status is TaskStatus.CLAIMED and held.worker == "w3" and held.attempts == 1
    assert held.lease_deadline is not None and held.lease_deadline > first_deadline + 1000
    # The lease held: w3 reports with the token it claimed with.
    cli("task", "report", task_id, "--token", claimed["token"], "--summary", "done")


def test_the_worker_prompts_flow_renews_the_lease(cli: Cli, swarm: Swarm) -> None:
    """swarm prompt worker: claim with --worker W, then ask with --task and no --asker (no
    SWARM_AGENT set): the asker is the lease holder, its kept token renews the lease."""
    cli("task", "post", "research", "short lease", "--lease", "3")
    task_id = cli.json("task", "claim", "research", "--worker", "worker-7")["id"]
    first_deadline = swarm.get_task(task_id).lease_deadline
    assert first_deadline is not None
    out = cli(
        "ask", "lib", "renew me?", "--task", task_id, "--timeout", "5",
        env={"SWARM_AGENT": None}, expect=3,
    )  # fmt: skip
    assert "will not be renewed" not in out.stderr, out.stderr
    deadline = swarm.get_task(task_id).lease_deadline
    assert deadline is not None and deadline > first_deadline + 1000


def test_ask_never_renews_another_workers_lease_with_its_kept_token(cli: Cli, swarm: Swarm) -> None:
    """w3 claimed the task on this machine (its token kept); w4 asks with --task: w3's token
    is not w4's to use (it kept w3's lease alive in w4's name), so nothing is renewed, and
    a warning says why."""
    cli("task", "post", "research", "short lease", "--lease", "3")
    task_id = cli.json("task", "claim", "research", "--worker", "w3")["id"]
    first_deadline = swarm.get_task(task_id).lease_deadline
    out = cli(
        "ask", "lib", "renew w3's?", "--task", task_id, "--timeout", "2", env={"SWARM_AGENT": "w4"},
        expect=3,
    )  # fmt: skip
    assert "you ask as w4 (SWARM_AGENT), and only w3's own token renews" in out.stderr, out
    assert "--asker w3" in out.stderr
    assert swarm.get_task(task_id).lease_deadline == first_deadline


def test_ask_with_a_task_whose_token_is_not_kept_says_so(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("research", "claimed elsewhere", lease_s=30)
    task = swarm.claim("research", worker="w3")  # (the API keeps no token on this machine)
    assert task is not None
    answerer = answer_one(swarm, "ask.lib", "chapter 9")
    out = cli("ask", "lib", "where?", "--task", task.id, "--timeout", "30")
    answerer.join(10)
    assert out.stdout == "chapter 9\n"
    assert f"warning: the lease of {task.id} (held by w3) will not be renewed" in out.stderr
    assert f"SWARM_TASK_ID={task.id} SWARM_TASK_TOKEN=TOKEN" in out.stderr
    # Given so, it renews: no warning.
    answerer = answer_one(swarm, "ask.lib", "chapter 10")
    given = {"SWARM_TASK_ID": task.id, "SWARM_TASK_TOKEN": str(task.token)}
    out = cli("ask", "lib", "where else?", "--timeout", "30", env=given)
    answerer.join(10)
    assert out.stdout == "chapter 10\n" and "warning" not in out.stderr, out.stderr


def test_an_asker_contradicting_the_task_s_lease_holder_is_refused(cli: Cli, swarm: Swarm) -> None:
    cli("task", "post", "research", "mine")
    task_id = cli.json("task", "claim", "research", "--worker", "w3")["id"]
    out = cli("ask", "lib", "who?", "--task", task_id, "--asker", "w4", expect=2)
    assert f"--asker 'w4' contradicts --task {task_id}, whose lease 'w3' holds" in out.stderr
    assert swarm.queue_stats().get("ask.lib") is None  # nothing was asked
    # The holder itself, or no --asker, asks (as w3).
    answerer = answer_one(swarm, "ask.lib", "fine")
    cli("ask", "lib", "who?", "--task", task_id, "--asker", "w3", "--timeout", "30")
    answerer.join(10)
    question = swarm.get_task(swarm.list_tasks(queue="ask.lib").items[0].id)
    assert question.data["asker"] == "w3" and question.data["asker_task"] == task_id


# --- 2. {session} without --session


def test_serve_refuses_session_placeholder_without_session(env: dict[str, str]) -> None:
    cmd = "claude -p --output-format json --resume {session}"
    proc = run_swarm(["serve", "lib", "--exec", cmd], env, timeout=30)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "--exec names {session}, which only --session fills" in err and "add --session" in err


# --- 3. a second server under the same slot names


def test_a_second_server_under_the_same_names_is_refused(env: dict[str, str]) -> None:
    first = _process(env, "serve", "lib", "--exec", "cat")
    try:
        assert first.stderr is not None
        assert "serving the questions of lib" in first.stderr.readline()
        second = run_swarm(["serve", "lib", "--exec", "cat"], env, timeout=30)
        err = second.stderr.decode()
        assert second.returncode == 2, err
        assert (
            f"another swarm serve on this machine (pid {first.pid}) answers as serve-lib-1" in err
        )
        assert "--worker PREFIX" in err
        # Under a prefix of its own, it serves.
        other = _process(env, "serve", "lib", "--exec", "cat", "--worker", "serve-lib-b")
        assert other.stderr is not None
        assert "serving the questions of lib" in other.stderr.readline()
        _stop(other)
    finally:
        _stop(first)
    # The first one stopped, its names are free again (a lock, gone with its process).
    again = _process(env, "serve", "lib", "--exec", "cat")
    assert again.stderr is not None
    assert "serving the questions of lib" in again.stderr.readline()
    _stop(again)


def test_servers_of_two_redis_servers_hold_their_own_names(
    env: dict[str, str], servers: ServerFactory
) -> None:
    """The lock is per server too: a swarm of the same name on another Redis is another
    swarm, whose serve-lib-1 is another agent (it was refused). A refused server says its
    refusal alone (it said 'serving the questions of lib' and the context warning first)."""
    other_redis = servers.start()
    elsewhere = {**env, "SWARM_URL": other_redis.url}
    first = _process(env, "serve", "lib", "--exec", "cat")
    try:
        assert first.stderr is not None
        assert "serving the questions of lib" in first.stderr.readline()
        there = _process(elsewhere, "serve", "lib", "--exec", "cat")
        assert there.stderr is not None
        assert "serving the questions of lib" in there.stderr.readline()
        _stop(there)
        refused = run_swarm(["serve", "lib", "--exec", "cat"], env, timeout=30)
        err = refused.stderr.decode()
        assert refused.returncode == 2 and err.startswith("error: another swarm serve"), err
    finally:
        _stop(first)
        other_redis.stop()


def test_a_killed_server_s_names_are_taken_back_at_once(env: dict[str, str]) -> None:
    first = _process(env, "serve", "lib", "--exec", "cat")
    assert first.stderr is not None
    assert "serving the questions of lib" in first.stderr.readline()
    first.kill()
    first.communicate(timeout=30)
    again = _process(env, "serve", "lib", "--exec", "cat")
    assert again.stderr is not None
    assert "serving the questions of lib" in again.stderr.readline()
    _, err = _stop(again)
    assert "another swarm serve" not in err


# --- 4. interrupted before the question was posted, or with its post's reply lost


def _catches_sighup(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGHUP - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_an_ask_hung_up_before_it_posted_says_nothing_was_asked(
    env: dict[str, str], swarm: Swarm
) -> None:
    """Hung up while it reads its question from stdin: one error line, nothing asked."""
    proc = _process(env, "ask", "lib", "-", stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _catches_sighup(proc.pid):  # (its handler is in place: it reads stdin)
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, (proc.returncode, err)
    assert err == (
        "error: interrupted before the question to 'lib' was posted: nothing was asked\n"
    ), err
    assert swarm.queue_stats().get("ask.lib") is None


def test_an_ask_interrupted_where_the_core_cannot_say_names_what_it_posted(
    cli: Cli, swarm: Swarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt outside the core's ask (before it starts, or as it returns) carries no
    note: the command says what it knows, posted or not."""
    posted: list[str] = []

    def interrupted(self: Swarm, *args: Any, **kwargs: Any) -> Any:
        for qid in posted:
            kwargs["on_posted"](qid)
        raise KeyboardInterrupt

    monkeypatch.setattr(Swarm, "ask", interrupted)
    out = cli("ask", "lib", "q", expect=1)
    assert out.stderr == (
        "error: interrupted before the question to 'lib' was posted: nothing was asked\n"
    )
    posted.append("t-01abc")
    out = cli("ask", "lib", "q", expect=1)
    assert out.stderr.endswith(
        "error: interrupted while asking 'lib': question t-01abc may still be queued: "
        "withdraw it (swarm task cancel t-01abc)\n"
    ), out.stderr


def _post_unanswered(op: Operation[Any]) -> Operation[Any]:
    """``op``, whose first task post is cut by an interrupt before it is sent (as a reply
    lost would leave it: the post's id chosen, no reply)."""
    cut = False
    request = next(op)
    while True:
        items = request.items if isinstance(request, Batch) else (request,)
        posting = any(isinstance(i, Call) and i.script == "task_post" for i in items)
        try:
            if posting and not cut:
                cut = True
                request = op.throw(KeyboardInterrupt())
                continue
            reply = yield request
        except StopIteration:
            raise
        except BaseException as exc:
            request = op.throw(exc)
        else:
            request = op.send(reply)


def test_an_ask_whose_post_got_no_reply_names_the_id_to_cancel(swarm: Swarm) -> None:
    op = ask_ops.ask(swarm._ctx, "lib", "lost?", timeout_s=30)
    with pytest.raises(KeyboardInterrupt) as interrupted:
        swarm._run(_post_unanswered(op))
    (note,) = getattr(interrupted.value, "__notes__")  # noqa: B009 (3.10: no such attribute)
    assert note.startswith("interrupted while asking 'lib': its post got no reply and no "), note
    qid = note.split("no question ")[1].split()[0]
    assert f"cancel it (swarm task cancel {qid})" in note and "(swarm task show " in note
    assert swarm.queue_stats().get("ask.lib") is None


# --- 5. the question's id, said once posted (a kill -9 leaves it to cancel)


def test_a_killed_ask_leaves_the_id_it_said_to_cancel(
    env: dict[str, str], cli: Cli, swarm: Swarm
) -> None:
    proc = _process(env, "ask", "lib", "anyone?", "--timeout", "60")
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert line.startswith("question t-") and "should this ask be killed, withdraw it: " in line
    qid = line.split()[1]
    assert line.rstrip().endswith(f"swarm task cancel {qid}")
    assert swarm.get_task(qid).status is TaskStatus.PENDING
    cli("task", "cancel", qid)
    assert swarm.get_task(qid).status is TaskStatus.CANCELLED


# --- 6. a kept question's answer: the command that shows its text


def test_a_kept_question_s_timeout_names_the_command_that_shows_the_answer(
    cli: Cli, swarm: Swarm
) -> None:
    out = cli("ask", "lib", "later?", "--timeout", "0.2", "--keep", expect=3)
    (question,) = swarm.list_tasks(queue="ask.lib").items
    assert (
        f"named once it is answered (swarm task show {question.id}): swarm findings "
        "FINDING_ID prints its text"
    ) in out.stderr, out.stderr
    answer_one(swarm, "ask.lib", "Chapter 9.\nThe butler did it.").join(10)
    shown = cli.json("task", "show", question.id)
    finding_id = shown["finding_id"]
    assert "The butler did it." in cli("findings", finding_id).stdout


# --- 7. cancelled by someone else, asked without a key


def test_a_question_without_a_key_cancelled_by_another_says_to_ask_anew(
    env: dict[str, str], swarm: Swarm
) -> None:
    proc = _process(env, "ask", "lib", "who?", "--timeout", "60")
    try:
        assert proc.stderr is not None
        qid = proc.stderr.readline().split()[1]
        swarm.cancel(qid)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert f"question {qid} to 'lib' was cancelled before it was answered" in err
    assert "ask again (a new question)" in err and "dedupe key" not in err


# --- 8. retire --questions offers only what was asked


def test_retire_questions_offers_only_the_queues_asked(cli: Cli, swarm: Swarm) -> None:
    out = cli("retire", "--questions", "shard-2", expect=1)
    assert 'no question was ever asked of "shard-2"' in out.stderr
    assert "assist" not in out.stderr and "none yet" in out.stderr, out.stderr
    answer_one(swarm, "ask.lib", "yes").join(0)
    cli("ask", "lib", "asked?", "--timeout", "30")
    out = cli("retire", "--questions", "shard-2", expect=1)
    assert '"ask.lib"' in out.stderr and "assist" not in out.stderr, out.stderr


# --- 9. --data @FILE, documented


def test_data_from_a_file_is_documented_and_works(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    ask_doc = (DOCS / "ask.md").read_text()
    assert "--data JSON|@FILE|-" in ask_doc and "--data @calls.json" in ask_doc
    assert "Argument list too long" in ask_doc
    data = tmp_path / "calls.json"
    big = {"calls": ["x" * 1000] * 300}  # ~300 KB: more than one argument may hold
    data.write_text(json.dumps(big))
    answerer = answer_one(swarm, "ask.lib", "seen")
    cli("ask", "lib", "which retry?", "--data", f"@{data}", "--timeout", "30")
    answerer.join(10)
    question = swarm.get_task(swarm.list_tasks(queue="ask.lib").items[0].id)
    assert question.data["data"] == big
    assert os.path.getsize(data) > 128 * 1024
