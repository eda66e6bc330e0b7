"""``swarm hook SessionEnd``: a hooks-only session read alive for up to a minute after its
client exited (``unknown hook event 'SessionEnd' for claude``, though Claude Code, Codex and
Gemini CLI all send one). Now the session's agent is marked stale at once (the core's
``mark_stale``), nothing else released; an agent whose record names an MCP server that runs
is left to that server, which marks it as it closes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Agent, Settings, Swarm, TaskStatus
from redis_swarm._hooks import Answer, HookOptions, handle
from redis_swarm._hooks.formats import canonical_event
from redis_swarm._hooks.install import entries
from redis_swarm._lease_tokens import known

from ._cli import Cli
from .test_hooks import ME, SESSION, Hooks, _claim

# What Claude Code sends its SessionEnd hook (its hook input: the common fields, and why the
# session ended: clear, resume, logout, prompt_input_exit, other, ...).
CLAUDE_SESSION_END = {
    "session_id": SESSION,
    "transcript_path": "/tmp/transcript.jsonl",
    "cwd": "/work",
    "hook_event_name": "SessionEnd",
    "reason": "prompt_input_exit",
}


@pytest.fixture
def swarm(redis_url: str, swarm_home: Path) -> Iterator[Swarm]:
    with Swarm(Settings.from_url(redis_url, swarm="test", home=swarm_home)) as handle:
        yield handle


@pytest.fixture
def hooks(redis_url: str, swarm_home: Path) -> Hooks:
    return Hooks(Cli(redis_url, env={"SWARM_AGENT": "", "SWARM_HOME": str(swarm_home)}))


def _dead_pid() -> int:
    """A pid of this machine that no longer runs (a child, reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_session_end_marks_the_agent_stale_at_once_and_releases_nothing(
    hooks: Hooks,
    swarm: Swarm,
) -> None:
    swarm.post_task("q", "work", task_id="t-1")
    hooks("SessionStart", "--queue", "q")
    held = _claim(swarm, "q", ME)
    swarm.heartbeat(ME, current_task=held.id)
    sent = swarm.send(ME, "read me later", sender="lead")
    assert swarm.get_agent(ME).alive

    out = hooks.cli(
        "hook", "SessionEnd", "--client", "claude", input=json.dumps(CLAUDE_SESSION_END)
    )
    assert json.loads(out.stdout) == {}
    agent = swarm.get_agent(ME)
    assert agent.alive is False and agent.left_at is not None and agent.current_task is None
    # Nothing else: the lease stands (its token kept here), the message waits unread.
    after = swarm.get_task(held.id)
    assert after.status is TaskStatus.CLAIMED and after.worker == ME
    assert held.id in known(swarm.settings, ME)
    assert [m.id for m in swarm.inbox(ME, ack=False)] == [sent.id]

    hooks("SessionStart", "--queue", "q", source="resume")  # back: alive again
    assert swarm.get_agent(ME).alive


def test_session_end_of_an_agent_never_registered_does_nothing(
    hooks: Hooks,
    swarm: Swarm,
) -> None:
    assert hooks("SessionEnd") == {}
    assert [a.id for a in swarm.agents()] == []


def test_an_mcp_server_that_runs_keeps_the_agent_one_killed_does_not(
    hooks: Hooks,
    swarm: Swarm,
) -> None:
    here = socket.gethostname()
    server = {"via": "mcp", "transport": "stdio", "host": here}
    swarm.register("worker", name=ME, metadata={**server, "pid": os.getpid()})
    hooks("SessionEnd")
    assert swarm.get_agent(ME).alive  # the running server marks it when it closes

    swarm.register("worker", name=ME, metadata={**server, "host": "elsewhere", "pid": 4242})
    hooks("SessionEnd")
    assert swarm.get_agent(ME).alive  # another machine's server: not ours to judge

    swarm.register("worker", name=ME, metadata={**server, "pid": _dead_pid()})
    hooks("SessionEnd")
    agent = swarm.get_agent(ME)
    assert agent.alive is False
    assert agent.metadata == {"via": "mcp", "transport": "stdio"}  # the dead server's keys go


@pytest.mark.parametrize("client", ["claude", "codex", "gemini"])
def test_every_client_has_session_end_and_install_hooks_it(client: str) -> None:
    assert canonical_event("SessionEnd", client) == "SessionEnd"
    installed = entries(client, ["swarm"], [])
    (group,) = installed["SessionEnd"]
    assert group["hooks"][0]["command"] == f"swarm hook SessionEnd --client {client}"


# Two sessions under one SWARM_AGENT (a review found the first one's end ended the agent the
# second one ran on: a hooks-only record names no server, which every session's end matched).
SESSION_A = "0a5e55a1-aaaa-4aaa-8aaa-000000000001"
SESSION_B = "0b5e55b1-bbbb-4bbb-8bbb-000000000002"


def test_the_end_of_an_older_session_of_a_shared_id_leaves_the_agent_alive(
    hooks: Hooks,
    swarm: Swarm,
) -> None:
    alice = {"SWARM_AGENT": "alice"}
    swarm.post_task("q", "work")
    hooks("SessionStart", "--queue", "q", env=alice, session_id=SESSION_A)
    hooks("SessionStart", "--queue", "q", env=alice, session_id=SESSION_B)
    held = _claim(swarm, "q", "alice")
    swarm.heartbeat("alice", current_task=held.id)  # B works on it

    hooks("SessionEnd", env=alice, session_id=SESSION_A)  # A ends; B runs on
    agent = swarm.get_agent("alice")
    assert agent.alive and agent.left_at is None and agent.current_task == held.id

    hooks("SessionEnd", env=alice, session_id=SESSION_B)  # the newest session's end marks it
    agent = swarm.get_agent("alice")
    assert agent.alive is False and agent.left_at is not None and agent.current_task is None
    assert "hooks_session" not in (agent.metadata or {})  # (no session of the id runs)
    hooks("SessionEnd", env=alice, session_id=SESSION_A)  # (an end after that changes nothing)
    assert swarm.get_agent("alice").alive is False


class _StartLandsMeanwhile(Swarm):
    """A SessionStart of session B (Claude Code's /clear starts a new session under a fixed
    SWARM_AGENT) lands between the SessionEnd hook's read of the record and its write."""

    def get_agent(self, agent_id: str, stale_after_s: float = 60.0) -> Agent:
        record: Agent = super().get_agent(agent_id, stale_after_s)
        handle(self, "SessionStart", {"session_id": SESSION_B, "source": "clear"},
               HookOptions(agent=agent_id))  # fmt: skip
        return record


class _SweptMeanwhile(Swarm):
    """A sweep removes the agent between the SessionEnd hook's read and its write."""

    def get_agent(self, agent_id: str, stale_after_s: float = 60.0) -> Agent:
        record: Agent = super().get_agent(agent_id, stale_after_s)
        self.deregister(agent_id)
        return record


def test_a_session_start_landing_during_the_end_of_another_is_not_undone(
    swarm: Swarm,
) -> None:
    options = HookOptions(agent="alice")
    handle(swarm, "SessionStart", {"session_id": SESSION_A, "source": "startup"}, options)
    with _StartLandsMeanwhile(swarm.settings) as racing:
        assert handle(racing, "SessionEnd", {"session_id": SESSION_A}, options) == Answer()
    agent = swarm.get_agent("alice")
    assert agent.alive and agent.left_at is None


def test_an_agent_swept_during_the_session_end_is_no_error(swarm: Swarm) -> None:
    options = HookOptions(agent="alice")
    handle(swarm, "SessionStart", {"session_id": SESSION_A, "source": "startup"}, options)
    with _SweptMeanwhile(swarm.settings) as sweeping:
        assert handle(sweeping, "SessionEnd", {"session_id": SESSION_A}, options) == Answer()
    assert [a.id for a in swarm.agents()] == []
