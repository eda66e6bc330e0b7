"""The faces that serve HTTP (``swarm dashboard``, ``swarm a2a``, ``swarm mcp --transport
http``) on an address they cannot listen on: one clear error naming the port, with a --port
hint, exit 1 (3 means "nothing to claim"), and no URL announced first. On ``--port 0`` (any
free port): the URL they announce names the port they serve on."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from redis_swarm import ConfigError, _net
from redis_swarm._net import check_can_listen

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


# What each face announces on stderr, the URL first, and the path that answers 200 there.
ANNOUNCED = {
    "dashboard": ("dashboard of swarm test at ", "/"),
    "a2a": ("A2A server of swarm test: card at ", "/.well-known/agent-card.json"),
    "mcp-http": ("serving MCP on ", None),  # /mcp answers a GET with an MCP error status
}


@pytest.mark.parametrize("command", COMMANDS.keys())
def test_port_0_announces_the_port_it_serves_on(redis_url: str, command: str) -> None:
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env["PYTHONUNBUFFERED"] = "1"
    argv = [sys.executable, "-m", "redis_swarm", *COMMANDS[command], "--port", "0"]
    with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # the announcement comes before serving
            prefix, path = ANNOUNCED[command]
            assert line.startswith(prefix), line
            url = line[len(prefix) :].split()[0]
            found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
            assert found and int(found[1]) != 0, url
            answer = _first_answer(url, proc)
            if path is None:
                assert found[2] == "/mcp"
            else:
                assert found[2] == path and answer.status_code == 200
            if command == "a2a":  # the card tells clients where to send: the same port
                (interface, *_) = answer.json()["supportedInterfaces"]
                assert interface["url"].startswith(f"http://127.0.0.1:{found[1]}/")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _first_answer(url: str, proc: subprocess.Popen[str]) -> httpx.Response:
    """The server's first answer at ``url``, once it listens (it announces, then binds)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, f"nothing listens at {url}"
            time.sleep(0.05)


def test_port_0_on_several_addresses_is_one_port_free_on_all() -> None:
    """--host "" is every address (0.0.0.0 and ::): the server binds each on the same port.
    A pick the system made free on the first but taken on another is tried again."""
    bind = _net._bind
    taken: list[int] = []

    def taken_once_on_ipv6(sock: socket.socket, address: tuple[Any, ...]) -> int:
        if sock.family == socket.AF_INET6 and address[1] != 0 and not taken:
            taken.append(address[1])
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return bind(sock, address)

    if len(socket.getaddrinfo(None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)) < 2:
        pytest.skip("this machine has no IPv6 address to bind beside IPv4")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_net, "_bind", taken_once_on_ipv6)
        port = check_can_listen("", 0)
    assert taken and port != 0
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with socket.socket(family) as sock:  # the port is free on both (and let go)
            sock.bind((address, port))


def test_a_port_given_is_the_port_served(taken: int) -> None:
    free = _free_loopback_port()
    assert check_can_listen("127.0.0.1", free) == free
    with pytest.raises(ConfigError, match=f"port {taken} is already in use"):
        check_can_listen("127.0.0.1", taken)


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
