"""Fixes from the fourth walkthrough of docs/cli.md, dashboard.md and deployment.md: a renew,
fail or release refused over a lost lease kept no token for the late report the refusal
invites; the no-token error of those three named `--worker`, which only `report` takes;
SWARM_URL and SWARM_HOME set but empty were taken as unset; Ctrl-C of `msg inbox --wait`
was click's bare "Aborted!", and `task report`'s said `swarm task show ID` literally; a
write to a replica without the library blamed the user; the token hints put the token in
argv; `task configure` and `task list --queue` said nothing of a queue never posted to;
`swarm status` printed context tokens without separators, and a blank model said "(None)"."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import ConfigError, Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm._web import require_token_off_loopback

from ._cli import Cli, subprocess_env, swarm_bin
from ._servers import ServerFactory
from ._waiting import until

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as s:
        yield s


def _held(cli: Cli, worker: str) -> dict[str, str]:
    home = Path(os.environ["SWARM_HOME"])
    return tokens.known(Settings.from_url(cli.url, swarm="test", home=home), worker)


# --- 1. a refusal over a lost lease keeps the token: the late report it invites is taken


@pytest.mark.parametrize(
    "refused",
    [["renew"], ["fail", "--error", "late"], ["release"]],
    ids=["renew", "fail", "release"],
)
def test_a_lost_lease_refusal_keeps_the_token_for_the_late_report(
    cli: Cli, swarm: Swarm, refused: list[str]
) -> None:
    t = swarm.post_task("sq2", "x", lease_s=1)
    first = cli.json("task", "claim", "sq2", "--worker", "u1")
    time.sleep(1.2)  # the lease expires; u2's claim takes the task over (attempt 2)
    second = cli.json("task", "claim", "sq2", "--worker", "u2")
    assert first["id"] == second["id"] == t.id
    u1 = {"SWARM_AGENT": "u1"}
    out = cli("task", refused[0], t.id, *refused[1:], env=u1, expect=1)
    assert "attempt 2 holds it now" in out.stderr and "can still be reported" in out.stderr
    assert _held(cli, "u1") == {t.id: first["token"]}  # kept: the report may still be made
    # u2 (on another machine: its report forgets nothing here) completes it; u1's late
    # report, with the token kept, is stored superseded
    swarm.report(t.id, second["token"], {"summary": "on time"}, worker="u2")
    late = cli("task", "report", t.id, "--summary", "late but real", env=u1, expect=None)
    assert late.code != 2 and "no --token given" not in late.stderr, late
    assert swarm.get_task(t.id).status is TaskStatus.COMPLETED
    found = {f.summary: f for f in swarm.findings(queue="sq2").items}
    assert found["late but real"].superseded and not found["on time"].superseded
    assert _held(cli, "u1") == {}  # reported: forgotten now


def test_a_lost_lease_refusal_then_the_late_report_completes_an_open_task(
    cli: Cli, swarm: Swarm
) -> None:
    t = swarm.post_task("sq3", "x", lease_s=1)
    cli("task", "claim", "sq3", "--worker", "u1")
    time.sleep(1.2)
    cli("task", "claim", "sq3", "--worker", "u2")
    u1 = {"SWARM_AGENT": "u1"}
    cli("task", "renew", t.id, env=u1, expect=1)
    out = cli("task", "report", t.id, "--summary", "first", env=u1)
    assert out.stdout.startswith("reported f-"), out
    assert swarm.get_task(t.id).status is TaskStatus.COMPLETED


def test_a_refusal_no_report_can_pass_forgets_the_token(cli: Cli, swarm: Swarm) -> None:
    t = swarm.post_task("sq4", "x", pass_name="p-gone")
    cli("task", "claim", "sq4", "--worker", "u1")
    swarm.cancel(t.id)
    swarm.retire_pass("p-gone")  # the task is gone: no report can be taken any more
    cli("task", "renew", t.id, env={"SWARM_AGENT": "u1"}, expect=1)
    assert _held(cli, "u1") == {}


# --- 2. the no-token error names only what the command takes


@pytest.mark.parametrize(
    "command", [["renew"], ["fail", "--error", "x"], ["release"]], ids=["renew", "fail", "release"]
)
def test_the_no_token_error_of_renew_fail_release_names_swarm_agent_only(
    cli: Cli, swarm: Swarm, command: list[str]
) -> None:
    t = swarm.post_task("nt", "x")
    out = cli("task", command[0], t.id, *command[1:], env={"SWARM_AGENT": "nobody"}, expect=2)
    assert "no --token given" in out.stderr and "SWARM_AGENT=W" in out.stderr
    assert "--worker W" not in out.stderr, out.stderr


def test_the_no_token_error_of_report_names_both(cli: Cli, swarm: Swarm) -> None:
    t = swarm.post_task("nt", "x")
    out = cli("task", "report", t.id, "--summary", "s", "--worker", "nobody", expect=2)
    assert "--worker W, or SWARM_AGENT=W" in out.stderr, out.stderr


# --- 3. SWARM_URL and SWARM_HOME set but empty are refused, as SWARM_NAME is


@pytest.mark.parametrize("variable", ["SWARM_URL", "SWARM_HOME", "SWARM_NAME"])
@pytest.mark.parametrize("value", ["", " "])
def test_a_swarm_variable_set_but_empty_is_refused(cli: Cli, variable: str, value: str) -> None:
    out = cli("task", "post", "viaempty", "x", env={variable: value}, expect=2)
    assert out.stderr.startswith(f"error: {variable} is set but empty: set it to "), out
    assert "or unset it to use the " in out.stderr and out.stderr.count("\n") == 1


def test_an_empty_variable_an_option_overrides_is_not_read(cli: Cli, tmp_path: Path) -> None:
    cli("--url", cli.url, "--home", str(tmp_path), "task", "post", "given", "x",
        env={"SWARM_URL": "", "SWARM_HOME": ""})  # fmt: skip
    cli("--swarm", "test", "task", "list", env={"SWARM_NAME": ""})


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_home_option_is_refused(
    cli: Cli, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # click made Path('') of it, the current folder: an embedded server was made there
    monkeypatch.chdir(tmp_path)
    out = cli("--home", value, "task", "post", "viaempty", "x", expect=2)
    assert out.stderr.startswith("error: --home is empty: give the swarm home's folder"), out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("variable", ["SWARM_URL", "SWARM_HOME", "SWARM_NAME"])
def test_from_env_refuses_a_variable_set_but_empty(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, variable: str
) -> None:
    monkeypatch.setenv("SWARM_URL", redis_url)
    monkeypatch.setenv(variable, "")
    with pytest.raises(ConfigError, match=f"^{variable} is set but empty: set it to "):
        Swarm.from_env()


# --- 4. Ctrl-C of `msg inbox --wait`, and task report's line names its task


def _start(redis_url: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = subprocess_env(redis_url, "test", swarm_bin(tmp_path / "bin").parent)
    return subprocess.Popen(
        [sys.executable, "-m", "redis_swarm", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _interrupt_once_waiting(redis_url: str, proc: subprocess.Popen[bytes]) -> str:
    # Once it waits (the server holds its blocking read): a Ctrl-C during Python's start-up
    # is Python's.
    with contextlib.closing(redis.Redis.from_url(redis_url)) as server:
        until(lambda: server.info("clients")["blocked_clients"] >= 1, "the command waiting")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    message = stderr.decode()
    assert "Aborted" not in message and message.count("\n") == 1, message
    return message


def test_ctrl_c_of_an_inbox_wait_says_nothing_was_read(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    swarm.register("worker", name="bob")
    proc = _start(redis_url, tmp_path, "msg", "inbox", "bob", "--wait", "20")
    message = _interrupt_once_waiting(redis_url, proc)
    assert message.startswith("error: interrupted: the read stopped"), message
    assert "stays unread" in message
    # what it says holds: a message sent now is there for the next read
    swarm.send("bob", "hello", sender="alice")
    assert [m.body for m in swarm.inbox("bob")] == ["hello"]


def test_ctrl_c_of_a_report_names_its_task(swarm: Swarm, redis_url: str, tmp_path: Path) -> None:
    swarm.post_task("q", "d", delay_s=600)  # (open, not claimable: the next claim waits)
    mine = swarm.post_task("q-mine", "d")
    claimed = swarm.claim("q-mine", worker="w-int")
    assert claimed is not None and claimed.token is not None
    proc = _start(
        redis_url, tmp_path, "task", "report", mine.id, "--summary", "s", "--worker", "w-int",
        "--token", claimed.token, "--claim-next", "q", "--wait", "20",
    )  # fmt: skip
    message = _interrupt_once_waiting(redis_url, proc)
    assert f"swarm task show {mine.id} says so" in message, message
    assert "task show ID" not in message


def test_ctrl_c_before_the_report_runs_says_its_line_all_the_same(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interrupt while its options are read (before the command knows its task id): the
    # line, with the id said by its name (it was a KeyError, a traceback)
    from redis_swarm.cli._common import Number

    def interrupted(*_: object) -> float:
        raise KeyboardInterrupt

    monkeypatch.setattr(Number, "convert", interrupted)
    out = cli("task", "report", "t-1", "--summary", "s", "--confidence", "0.5", "--token",
              "1.x", expect=1)  # fmt: skip
    assert out.stderr.startswith("error: interrupted: the report may have been taken"), out
    assert "swarm task show TASK_ID says so" in out.stderr


# --- 5. a write to a replica without the library names the replica


def test_a_write_to_a_replica_without_the_library_names_the_replica(
    servers: ServerFactory,
) -> None:
    master = servers.start()
    replica = servers.start(extra=["--replicaof", "127.0.0.1", str(master.port)])
    try:
        client = replica.client()
        until(
            lambda: client.info("replication").get("master_link_status") == "up",
            "the replica synced",
        )
        client.close()
        out = Cli(replica.url, swarm="sent")("task", "post", "q", "x", expect=1)
        assert "is a read-only replica: point the URL at the master" in out.stderr, out
        assert f":{master.port}" in out.stderr
        assert "swarm up" not in out.stderr and "cannot load" not in out.stderr
    finally:
        replica.stop()
        master.stop()


# --- 6. the token hints and the docs give the token in the environment, not in argv


@pytest.mark.parametrize("token", [None, "", "short"])
def test_the_token_hint_says_the_environment_variable(token: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        require_token_off_loopback("0.0.0.0", token, what="it shows", env="SWARM_DASHBOARD_TOKEN")
    said = str(info.value)
    assert 'export SWARM_DASHBOARD_TOKEN="$(python -c ' in said, said
    assert "--token $(" not in said and "ps" in said


def test_the_dashboard_doc_keeps_the_token_out_of_argv() -> None:
    text = (DOCS / "dashboard.md").read_text()
    assert "--token $(" not in text
    assert 'export SWARM_DASHBOARD_TOKEN="$(' in text


# --- 7. a queue never posted to, configured or listed, is said so


def test_configure_of_a_queue_never_posted_to_notes_it(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("realq", "x")
    out = cli("task", "configure", "typoq", "--max-abandons", "5")
    assert 'note: no task was ever posted to queue "typoq"' in out.stderr, out
    assert "realq" in out.stderr
    assert swarm.configure_queue("typoq")["max_abandons"] == 5  # kept all the same
    assert "note:" not in cli("task", "configure", "realq", "--max-abandons", "4").stderr


def test_list_of_a_queue_never_posted_to_notes_it(cli: Cli, swarm: Swarm) -> None:
    swarm.post_task("realq", "x")
    out = cli("task", "list", "--queue", "typoq")
    assert 'note: no task was ever posted to queue "typoq"' in out.stderr, out
    listed = cli.json("task", "list", "--queue", "typoq")
    assert listed["items"] == [] and "typoq" in listed["notes"][0]
    assert "note:" not in cli("task", "list", "--queue", "realq").stderr
    assert "notes" not in cli.json("task", "list", "--queue", "realq")


# --- 8. cosmetic


def test_status_says_context_tokens_with_separators(cli: Cli, swarm: Swarm) -> None:
    swarm.publish_context("big", "word " * 4000, source="notes.md")
    out = cli("status")
    line = next(row for row in out.stdout.splitlines() if "big" in row)
    assert re.search(r"\b\d{1,3},\d{3}\b", line), line


def test_a_blank_model_says_leave_it_out_without_python(cli: Cli) -> None:
    out = cli("agents", "register", "alice", "--role", "worker", "--model", " ", expect=2)
    assert "model is blank: name it, or leave it out" in out.stderr
    assert "None" not in out.stderr
