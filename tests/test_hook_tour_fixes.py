"""What a user tour of live sessions found in the hooks (docs/live.md), each fixed: a hook
installed without its URL refuses to run without SWARM_URL; --max-tasks counts per session;
a loop-mode claim never outlives its token; no usage error exits 2; the task text says when
the lease ends and how to renew it."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm, TaskStatus
from redis_swarm import _lease_tokens as tokens
from redis_swarm._codec import iso

from ._cli import SRC, Cli
from .test_hooks import SESSION, Hooks, _context, _payload

OTHER_SESSION = "8e1d2c3b-4a59-4f60-9b7c-0d1e2f3a4b5c"
LOOP = ("--loop", "--queue", "work", "--max-tasks", "1")


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


@pytest.fixture
def hooks(redis_url: str, swarm_home: Path) -> Hooks:
    """The hooks of sessions sharing one stable SWARM_AGENT (as live.md recommends)."""
    env = {"SWARM_AGENT": "steady", "SWARM_HOME": str(swarm_home)}
    return Hooks(Cli(redis_url, env=env))


def _installed_hook_line(printed: str) -> str:
    data = json.loads(printed)
    return str(next(h["command"] for g in data["hooks"]["Stop"] for h in g["hooks"]))


def test_a_hook_installed_without_its_url_fails_without_swarm_url(
    redis_url: str, swarm_home: Path
) -> None:
    """The password stays out of the entry; the entry then refuses to run (exit 1, one line
    naming SWARM_URL) when the session's environment has none, and never starts or reaches
    the embedded swarm in its place."""
    cli = Cli("redis://:s3cret@127.0.0.1:1/0", env={"SWARM_HOME": str(swarm_home)})
    out = cli("hooks", "install", "--client", "claude", "--queue", "work", "--loop")
    assert "--url-from-env" in out.stderr and "SWARM_URL" in out.stderr
    line = _installed_hook_line(out.stdout)
    assert "s3cret" not in line and "--url " not in line and "--url-from-env" in shlex.split(line)
    bare = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    bare["PYTHONPATH"] = SRC
    payload = json.dumps(_payload("Stop"))
    for unset in ({}, {"SWARM_URL": ""}):
        done = subprocess.run(
            ["sh", "-c", line], input=payload, env={**bare, **unset}, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 1, done
        assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "SWARM_URL is not set" in done.stderr and "starts the client" in done.stderr
        assert not swarm_home.exists()  # no embedded server, no token store: nothing made
    # with SWARM_URL in the session's environment, the same entry reaches that swarm
    done = subprocess.run(
        ["sh", "-c", line], input=payload, env={**bare, "SWARM_URL": redis_url},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--url-from-env" in Cli(redis_url)("hook", "--help").stdout


def test_max_tasks_counts_per_session(hooks: Hooks, swarm: Swarm) -> None:
    """A stable SWARM_AGENT takes --max-tasks tasks in each session, not once for good: a
    new session (or a startup / clear of the same one) starts at 0, a resume carries on."""
    for i in range(4):
        swarm.post_task("work", f"job {i}")

    def take(session: str) -> str | None:
        """Stop until the session's hook lets it stop; the task it was handed, reported."""
        answer = hooks("Stop", *LOOP, session_id=session)
        if answer.get("decision") != "block":
            return None
        found = re.search(r" task report (\S+) --token (\S+) --worker (\S+)", answer["reason"])
        assert found, answer
        swarm.report(found[1], found[2], {"summary": "done"}, worker=found[3])
        again = hooks("Stop", *LOOP, session_id=session, stop_hook_active=True)
        assert "took its 1 task in this session" in again.get("systemMessage", ""), again
        return found[1]

    hooks("SessionStart", *LOOP, session_id=SESSION, source="startup")
    assert take(SESSION) is not None
    hooks("SessionStart", *LOOP, session_id=OTHER_SESSION, source="startup")
    assert take(OTHER_SESSION) is not None  # (the agent's first session's count is its own)
    hooks("SessionStart", *LOOP, session_id=SESSION, source="resume")
    assert take(SESSION) is None  # a resumed session carries on with its count
    hooks("SessionStart", *LOOP, session_id=SESSION, source="clear")
    assert take(SESSION) is not None  # a cleared one starts afresh
    assert swarm.queue_stats()["work"]["completed"] == 3


def test_a_loop_stop_never_claims_a_task_whose_token_it_cannot_keep(
    redis_url: str, swarm: Swarm, swarm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home where no token can be kept: nothing is claimed. A token that cannot be kept
    after the claim: the task goes back to its queue (no abandon), and the hook says so."""
    posted = swarm.post_task("work", "job")
    cli = Cli(redis_url, env={"SWARM_AGENT": "steady", "SWARM_HOME": str(swarm_home)})
    payload = json.dumps(_payload("Stop"))
    out = cli("--home", "/proc/nope", "hook", "Stop", *LOOP, input=payload, expect=1)
    assert "no task claimed" in out.stderr and "/proc/nope" in out.stderr, out
    task = swarm.get_task(posted.id)
    assert task.status == TaskStatus.PENDING and task.attempts == 0, task

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokens, "remember", full_disk)
    out = cli("hook", "Stop", *LOOP, input=payload, expect=1)
    assert f"claimed {posted.id}" in out.stderr and "released it back" in out.stderr, out
    task = swarm.get_task(posted.id)
    assert task.status == TaskStatus.PENDING and task.abandons == 0, task


@pytest.mark.parametrize(
    "args",
    [
        ("hook", "Stop", "--budget", "abc"),
        ("hook", "Stop", "--max-tasks", "x"),
        ("hook", "Stop", "--option-of-a-newer-install"),
        ("hook",),
        ("--bogus", "hook", "Stop"),
        ("--swarm", "test", "--bogus", "hook", "Stop"),
        ("--home", "/proc/version", "hook", "Stop"),
    ],
)
def test_no_usage_error_of_swarm_hook_exits_2(redis_url: str, args: tuple[str, ...]) -> None:
    out = Cli(redis_url)(*args, input="{}", expect=1)
    assert "Error:" in out.stderr and out.stdout == "", out


def test_other_usage_errors_still_exit_2(redis_url: str) -> None:
    cli = Cli(redis_url)
    assert cli("hook", "Stop", input="{}", env={"SWARM_NAME": ""}, expect=1).stderr
    assert cli("task", "list", env={"SWARM_NAME": ""}, expect=2).stderr
    assert cli("--bogus", "task", "list", expect=2).stderr
    assert cli("--url", "hook", "--bogus", "task", "list", expect=2).stderr
    assert cli("hooks", "install", "--client", "claude", "--bogus", expect=2).stderr


def test_a_handed_task_says_when_its_lease_ends_and_how_to_renew_it(
    hooks: Hooks, swarm: Swarm
) -> None:
    """Only PreCompact renews by itself: every task text (a loop claim, a refused stop, a
    session start) names the lease's end and the renew command, which works as printed."""
    posted = swarm.post_task("work", "long job", lease_s=120)
    reason = hooks("Stop", *LOOP)["reason"]
    task = swarm.get_task(posted.id)
    deadline = iso(task.lease_deadline)
    assert deadline and f"Your lease ends at {deadline} (it lasts 120 s)" in reason, reason
    renew = re.search(r"before then: (.+ task renew \S+ --token \S+)\n", reason)
    assert renew, reason
    for text in (hooks("Stop", *LOOP)["reason"], _context(hooks("SessionStart", *LOOP))):
        assert f"Your lease ends at {deadline}" in text and renew[1] in text, text
    bare = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    bare["PYTHONPATH"] = SRC
    done = subprocess.run(
        shlex.split(renew[1]), env=bare, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    renewed = swarm.get_task(posted.id).lease_deadline
    assert renewed is not None and task.lease_deadline is not None
    assert renewed > task.lease_deadline


def test_the_hooks_role_is_the_install_s_unless_the_mcp_server_registered_it(
    redis_url: str, tmp_path: Path
) -> None:
    """A hooks-only agent takes the role its install gives (a new install with another
    --role is heard); one the session's MCP server registered keeps the server's."""
    from redis_swarm import Settings, Swarm
    from redis_swarm._hooks import HookOptions, handle

    with Swarm(Settings.from_url(redis_url, swarm="test", home=tmp_path)) as hooks:
        start = {"session_id": "s1", "source": "startup"}
        handle(hooks, "SessionStart", start, HookOptions(agent="solo", role="worker"))
        handle(hooks, "SessionStart", start, HookOptions(agent="solo", role="shard"))
        assert hooks.get_agent("solo").role == "shard"
        hooks.register("agent", name="both", metadata={"via": "mcp", "client": "claude-code"})
        handle(hooks, "SessionStart", start, HookOptions(agent="both", role="worker"))
        both = hooks.get_agent("both")
        assert both.role == "agent" and (both.metadata or {}).get("via") == "mcp"
