"""The faces that serve HTTP (``swarm dashboard``, ``swarm a2a``, ``swarm mcp --transport
http``) on an address they cannot listen on: one clear error naming the port, with a --port
hint, exit 1 (3 means "nothing to claim"), and no URL announced first."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ._cli import SRC

COMMANDS = {
    "dashboard": ["dashboard"],
    "a2a": ["a2a", "--queue", "q"],
    "mcp-http": ["mcp", "--transport", "http"],
}


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another server listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _swarm(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    argv = [sys.executable, "-m", "redis_swarm", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_port_in_use_is_refused_before_the_url_is_announced(
    redis_url: str, taken: int, command: list[str]
) -> None:
    done = _swarm(redis_url, *command, "--port", str(taken))
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.splitlines()  # one line: no announcement, no server log
    assert line.startswith(f"error: port {taken} is already in use on 127.0.0.1")
    assert "--port N (" in line and "is free now" in line
    assert "http://" not in done.stderr and "Traceback" not in done.stderr


def test_a_host_that_is_not_this_machine_is_refused(redis_url: str) -> None:
    # 192.0.2.0/24 is reserved for documentation: never an address of this machine.
    done = _swarm(redis_url, "dashboard", "--host", "192.0.2.1", "--token", "t", "--port", "1")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: --host 192.0.2.1 is not an address of this machine: pick one of its addresses"
    )
