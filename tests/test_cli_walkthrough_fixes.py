"""What a new user met following docs/cli.md and docs/tasks.md on a fresh clone: an interrupted
`swarm run --until-done` that exited 0, a misspelt queue said nowhere by `run` and settled by
`task wait`, two inputs read from one stdin, a --data bound said wrongly, a claim's host-wide
default name said nowhere, Ctrl-C of a wait as click's bare "Aborted!", a report needing the
token the claim kept, a `swarm serve` slot that joined as a worker first, and --max-attempts'
range said without its maximum."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import Swarm
from redis_swarm._runner import ServeOptions, Server

from . import _fake_claude
from ._cli import Cli, subprocess_env, swarm_bin
from ._waiting import until

PY = sys.executable


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _start(redis_url: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    return subprocess.Popen(
        [PY, "-m", "redis_swarm", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


# --- 1. an interrupted run with work left exits 1


@pytest.mark.parametrize("how", ["term", "hangup", "ctrl-c twice", "ctrl-c once"])
def test_an_interrupted_until_done_run_with_work_left_exits_1(
    swarm: Swarm, redis_url: str, tmp_path: Path, how: str
) -> None:
    for i in range(3):
        swarm.post_task("qto", f"d{i}")
    started = tmp_path / "started"
    started.mkdir()
    sleep = "1" if how == "ctrl-c once" else "60"
    cmd = f'cat >/dev/null; touch {started}/$$; sleep {sleep}; echo \'{{"summary": "ok"}}\''
    proc = _start(
        redis_url, tmp_path, "--json", "run", "--queue", "qto", "--exec", cmd, "-c", "2",
        "--until-done", "--grace", "0.5",
    )  # fmt: skip
    until(lambda: len(list(started.iterdir())) >= 2, "two agents did not start")
    if how == "term":
        proc.send_signal(signal.SIGTERM)
    elif how == "hangup":
        proc.send_signal(signal.SIGHUP)
    else:
        proc.send_signal(signal.SIGINT)
        if how == "ctrl-c twice":
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    summary = json.loads(stdout)
    name = {"term": "SIGTERM", "hangup": "SIGHUP"}.get(how, "SIGINT")
    said = json.loads(stderr.decode().strip().splitlines()[-1])["message"]
    assert said.startswith(f"interrupted by {name} with work left: "), said
    assert summary["interrupted"] == said
    if how == "ctrl-c once":  # a drain: the running agents finished, one task is left
        assert summary["completed"] == 2 and "1 task(s) of qto still open" in said
    else:
        assert summary["released"] == 2 and "2 running task(s) stopped and given back" in said
        assert "3 task(s) of qto still open" in said


def test_an_interrupted_run_says_so_in_its_human_line(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    swarm.post_task("qto", "d")
    started = tmp_path / "started"
    proc = _start(
        redis_url, tmp_path, "run", "--queue", "qto", "--exec",
        f"cat >/dev/null; touch {started}; sleep 60", "--until-done", "--grace", "0.5",
    )  # fmt: skip
    until(started.exists, "the agent did not start")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    last = stdout.decode().splitlines()[-1]
    assert last.startswith("interrupted (the error below): claimed 1, completed 0"), last
    assert stderr.decode().startswith("error: interrupted by SIGTERM with work left: ")


# --- 2. a queue never posted to


def test_run_names_the_queues_when_one_was_never_posted_to(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("research", "d")
    out = cli("run", "--queue", "reserch", "--exec", "true", "--until-done", expect=3)
    assert 'no task was ever posted to queue "reserch": check the name' in out.stderr
    assert '"research"' in out.stderr
    out = cli("run", "--queue", "reserch", "--exec", "true", "--idle-exit", "0.2", expect=3)
    assert out.stderr.startswith('note: no task was ever posted to queue "reserch"'), out


def test_task_wait_refuses_a_queue_never_posted_to(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("research", "d")
    out = cli("task", "wait", "--queue", "reserch", "--timeout", "1", expect=1)
    assert out.stderr.startswith('error: no task was ever posted to queue "reserch"'), out
    assert '"research"' in out.stderr and out.stdout == ""
    t = swarm.claim("research", worker="w")
    assert t is not None and t.token
    swarm.report(t.id, t.token, {"summary": "x"})
    assert (
        "queue research settled: completed 1" in cli("task", "wait", "--queue", "research").stdout
    )


# --- 3. two inputs from one stdin


def test_post_refuses_description_and_data_both_from_stdin(cli: Cli) -> None:
    out = cli("task", "post", "qs", "-", "--data", "-", input='{"a":1}', expect=2)
    assert "DESCRIPTION and --data cannot both read stdin (-)" in out.stderr
    out = cli("task", "post", "qs", "--jsonl", "-", "--data", "-", input="{}", expect=2)
    assert "--jsonl and --data cannot both read stdin (-)" in out.stderr


# --- 4. the --data bound said truly


def test_data_past_its_read_bound_says_both_bounds(cli: Cli) -> None:
    out = cli("task", "post", "qs", "x", "--data", "@/dev/zero", expect=2)
    assert "larger than 8,388,608 bytes, the most --data reads" in out.stderr
    assert "at most 1 MiB once compacted" in out.stderr
    assert "a file over 8 MiB is not read" in out.stderr


# --- 5. the host-wide default worker name said


def test_a_claim_by_the_host_default_name_says_so(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("qa", "d1")
    swarm.post_task("qa", "d2")
    out = cli("task", "claim", "qa", env={"SWARM_AGENT": None})
    assert "note: claimed as worker-" in out.stderr and "--worker W" in out.stderr
    out = cli("task", "claim", "qa", "--worker", "w1", env={"SWARM_AGENT": None})
    assert "note:" not in out.stderr


# --- 6. Ctrl-C of a wait


WAITS = {
    "claim": ["task", "claim", "q", "--wait", "30"],
    "wait": ["task", "wait", "--queue", "q", "--timeout", "30"],
    "report": ["task", "report", "ID", "--summary", "s", "--claim-next", "q", "--wait", "30"],
}
SAID = {
    "claim": "the claim stopped waiting",
    "wait": "the wait stopped",
    # (its report taken, the wait for the next task was cut: a task leased in that instant
    # was not given to it; it said "no next task was claimed")
    "report": "the report may have been taken",
}


@pytest.mark.parametrize("command", list(WAITS))
def test_ctrl_c_of_a_wait_is_an_error_line_not_aborted(
    swarm: Swarm, redis_url: str, tmp_path: Path, command: str
) -> None:
    swarm.post_task("q", "d", delay_s=600)  # (open, not claimable: all three wait)
    args = WAITS[command]
    if command == "report":
        mine = swarm.post_task("q-mine", "d")
        claimed = swarm.claim("q-mine", worker="w-int")
        assert claimed is not None and claimed.token is not None
        args = [mine.id if a == "ID" else a for a in args]
        args += ["--worker", "w-int", "--token", claimed.token]
    proc = _start(redis_url, tmp_path, *args)
    # Once it waits (the server holds its blocking read): a Ctrl-C during Python's start-up
    # is Python's, and a fixed sleep is too short on a loaded machine.
    with contextlib.closing(redis.Redis.from_url(redis_url)) as server:
        until(lambda: server.info("clients")["blocked_clients"] >= 1, "the command waiting")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    message = stderr.decode()
    assert message.startswith(f"error: interrupted: {SAID[command]}"), message
    if command == "report":
        assert "goes back to its queue when its lease ends" in message, message
    assert "Aborted" not in message and message.count("\n") == 1


# --- 7. a report finds the token its claim kept


def test_report_uses_the_token_the_claim_kept(cli: Cli, swarm: Swarm) -> None:
    t = swarm.post_task("qk", "d")
    cli("task", "claim", "qk", "--worker", "w-kept")
    out = cli("task", "report", t.id, "--summary", "done", "--worker", "w-kept")
    assert out.stdout.startswith("reported f-"), out
    assert swarm.get_task(t.id).status == "completed"
    other = swarm.post_task("qk", "d2")
    claimed = swarm.claim("qk", worker="elsewhere")  # (not through this machine's CLI)
    assert claimed is not None and claimed.id == other.id
    out = cli("task", "report", other.id, "--summary", "done", "--worker", "w-kept", expect=2)
    assert f"w-kept kept no token of {other.id} on this machine" in out.stderr
    assert "leases" in out.stderr and "--token" in out.stderr


def test_a_report_never_takes_another_workers_kept_token(cli: Cli, swarm: Swarm) -> None:
    """w2 holds the task, claimed on this machine; w1, which holds no lease of it, reports,
    fails or releases it with no --token: refused (exit 2), the task still w2's. Taking w2's
    kept token would settle w2's lease in w1's name (the fencing token is what tells them
    apart)."""
    t = swarm.post_task("qf", "d")
    cli("task", "claim", "qf", "--worker", "w2")
    out = cli("task", "report", t.id, "--summary", "not mine", "--worker", "w1", expect=2)
    assert f"w1 kept no token of {t.id}" in out.stderr, out
    for verb, *extra in (("fail", "--error", "x"), ("release",), ("renew",)):
        out = cli("task", verb, t.id, *extra, env={"SWARM_AGENT": "w1"}, expect=2)
        assert f"w1 kept no token of {t.id}" in out.stderr, (verb, out)
    held = swarm.get_task(t.id)
    assert (held.status, held.worker) == ("claimed", "w2")
    out = cli("task", "release", t.id, env={"SWARM_AGENT": "w2"})  # (its own: taken)
    assert swarm.get_task(t.id).status == "pending", out


# --- 8. a serve slot joins once, as an answerer


def test_a_serve_slot_joins_once_as_an_answerer(
    swarm: Swarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STATE", str(tmp_path))
    swarm.publish_context("lib", "line one\n", source="book.md")
    command = f"{PY} {_fake_claude.SOURCE} -p --output-format json"
    server = Server(swarm, ServeOptions(owner="lib", command=command, poll_s=0.2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        swarm.ask("lib", "Q7: who did it?", asker="w-1", timeout_s=30)
    finally:
        server.drain()
        thread.join(30)
    joined = [e for e in swarm.events(types=["agent.joined"]) if e.fields["agent"] == "serve-lib-1"]
    assert [(e.fields["role"], e.fields.get("parent")) for e in joined] == [("answerer", "lib")]


# --- 9. --max-attempts' range


@pytest.mark.parametrize("option", ["--max-attempts", "--max-abandons"])
@pytest.mark.parametrize("value", ["0", "1001"])
def test_attempts_options_say_the_core_s_range(cli: Cli, option: str, value: str) -> None:
    out = cli("task", "post", "q", "d", option, value, expect=2)
    assert f"{value} is not in the range 1<=x<=1000" in out.stderr
