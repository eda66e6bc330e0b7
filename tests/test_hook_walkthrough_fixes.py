"""A new user's walk through docs/live.md found:

1. A hook whose server was down retried twice (up to 0.3 s of pauses for a refused
   connection, which no such pause brings back), and SessionEnd waited 1 s for a paused
   server's reply: with Python's start-up, 1.4 to 2 s, past the 1.5 s Claude Code gives its
   session-end hooks in all.
2. ``swarm hook SessionStart --role 'bad name'`` said on stderr "the session registers as
   'bad name'" and then refused the name: a false line before the refusal (so did a valid
   role `swarm mcp` does not take, before a refused --budget or input).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Settings, Swarm
from redis_swarm._hooks import reach

from ._cli import run_swarm
from ._servers import RedisServer, ServerFactory, free_port

# What Claude Code gives its session-end hooks in all, and what Python's start-up and the
# hook's imports take of it on a machine with a load of 1 (0.4 to 0.7 s measured).
CLAUDE_SESSION_END_S = 1.5
START_UP_S = 0.7

# --- 1. the hooks' time


@pytest.mark.parametrize(
    "query", ["", "?durability=strict", "?retries=5&socket_timeout=30", "?connect_timeout=0.1"]
)
def test_a_hook_tries_once_and_session_end_fits_in_claude_codes_time(query: str) -> None:
    given = Settings.from_url(f"redis://127.0.0.1:7000{query}")
    for event in ("UserPromptSubmit", "Stop", "SessionStart", "SessionEnd"):
        fast = reach.hook_settings(given, event)
        assert fast.retries == 0 and fast.none_answered_retries == 0, event
        assert fast.retry_window_s == 0.0
        assert fast.connect_timeout <= min(given.connect_timeout, reach.HOOK_CONNECT_TIMEOUT_S)
    ending = reach.hook_settings(given, "SessionEnd")
    assert ending.connect_timeout == min(given.connect_timeout, reach.SESSION_END_TIMEOUT_S)
    # (a strict URL's writes may wait 5 s for a replica: never SessionEnd's)
    assert ending.socket_timeout == reach.SESSION_END_TIMEOUT_S
    # A paused server takes the connection and answers nothing: the first reply times out.
    assert START_UP_S + ending.socket_timeout < CLAUDE_SESSION_END_S
    assert START_UP_S + ending.connect_timeout < CLAUDE_SESSION_END_S  # (a host gone)
    other = reach.hook_settings(given, "UserPromptSubmit")
    assert other.socket_timeout >= reach.HOOK_SOCKET_TIMEOUT_S  # (the other events keep 1 s)
    assert reach.hook_settings(given) == other


def test_a_turns_hook_imports_neither_the_installer_nor_the_finding_parser(
    redis_url: str, swarm_home: Path
) -> None:
    """(``swarm hooks install`` and SubagentStop's finding are imported where used: every
    other event's start-up goes without them.)"""
    probe = (
        "import json, sys\nfrom redis_swarm.cli import main\ntry:\n"
        "    main(sys.argv[1:], prog_name='swarm')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    payload = json.dumps({"session_id": "s-cost", "hook_event_name": "UserPromptSubmit"})
    done = subprocess.run(
        [sys.executable, "-c", probe, "hook", "UserPromptSubmit"], input=payload,
        env=_env(redis_url, swarm_home), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "redis_swarm._client" in loaded and json.loads(done.stdout) is not None, done
    assert not loaded & {"redis_swarm._hooks.install", "redis_swarm._finding_text"}


@pytest.fixture
def stopped(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of its own, SIGSTOPped: the kernel takes connections, nothing answers."""
    server = servers.start()
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield server
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        server.kill()


def _env(url: str, home: Path) -> dict[str, str]:
    return {**os.environ, "SWARM_URL": url, "SWARM_NAME": "test", "SWARM_HOME": str(home),
            "SWARM_AGENT": ""}  # fmt: skip


def test_session_end_gives_a_stopped_server_its_own_shorter_wait(
    stopped: RedisServer, tmp_path: Path
) -> None:
    payload = json.dumps({"session_id": "s1", "hook_event_name": "SessionEnd"}).encode()
    done = run_swarm(["hook", "SessionEnd"], _env(stopped.url, tmp_path), input=payload)
    err = done.stderr.decode()
    assert done.returncode == 1 and done.stdout == b"", err
    assert err.count("\n") == 1, err
    # (the URL as given: never with the hook's own ?retries=0&socket_timeout=...)
    said = f"the Redis server at {stopped.url}/0 did not answer within "
    assert f"{said}{reach.SESSION_END_TIMEOUT_S:g} s: it may be busy" in err, err


# --- 2. one line: the refusal, never a warning of what the session would do first


def _hook(url: str, home: Path, *options: str, payload: object = None) -> tuple[int, str]:
    body = {"session_id": "s-9", "hook_event_name": "SessionStart", "source": "startup"}
    raw = b"" if payload == "" else json.dumps(body if payload is None else payload).encode()
    done = run_swarm(["hook", "SessionStart", *options], _env(url, home), input=raw)
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize(
    ("role", "says"),
    [
        ("bad name", "--role 'bad name' contains ' ': use only ASCII letters"),
        ("r" * 41, "--role is 41 characters long; the limit is 40"),
    ],
)
def test_a_role_the_core_refuses_is_the_one_line_said(
    redis_url: str, swarm_home: Path, role: str, says: str
) -> None:
    code, err = _hook(redis_url, swarm_home, "--role", role)
    assert code == 1 and err.startswith("swarm hook SessionStart: --role "), err
    assert err.count("\n") == 1 and says in err and "registers as" not in err, err
    with Swarm(redis_url, swarm="test") as swarm:
        assert swarm.agents() == []
    # (refused before the hook reaches out: a swarm that is down says the same)
    code, err = _hook(f"redis://127.0.0.1:{free_port()}", swarm_home, "--role", role)
    assert code == 1 and err.count("\n") == 1 and says in err, err


@pytest.mark.parametrize(
    ("options", "payload", "says"),
    [
        (("--budget", "5"), None, "--budget 5 is out of range"),
        ((), "", "the hook got no input"),
        ((), {"hook_event_name": "SessionStart"}, "the hook input has no session_id"),
        ((), [1], "the hook input is not a JSON object"),
    ],
)
def test_a_role_mcp_does_not_take_is_warned_of_only_when_the_hook_goes_on(
    redis_url: str, swarm_home: Path, options: tuple[str, ...], payload: object, says: str
) -> None:
    code, err = _hook(redis_url, swarm_home, "--role", "reviewer", *options, payload=payload)
    assert code == 1 and err.count("\n") == 1 and says in err, err
    assert "registers as" not in err
    code, err = _hook(redis_url, swarm_home, "--role", "reviewer")  # (all else right: warned)
    assert code == 0 and err.count("\n") == 1, err
    assert "the session registers as 'reviewer'" in err
