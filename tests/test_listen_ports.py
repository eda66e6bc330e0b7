"""The faces that serve HTTP (``swarm dashboard``, ``swarm a2a``, ``swarm mcp --transport
http``) on an address they cannot listen on: one clear error naming the port, with a --port
hint, exit 1 (3 means "nothing to claim"), and no URL announced first. On ``--port 0`` (any
free port): the URL they announce names the port they serve on. From the moment they announce
it, they listen there: no other program can take the port in between."""

from __future__ import annotations

import errno
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from redis_swarm import ConfigError, _net
from redis_swarm._net import listen

from ._cli import SRC, interrupt

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
    token = "t" * 16  # (the shortest token taken off loopback)
    done = _swarm(redis_url, "dashboard", "--host", "192.0.2.1", "--token", token, "--port", "1")
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
            # Announced, so already listening: no other program can take the port...
            _assert_taken(int(found[1]))
            # ...and a request sent at once (no retry) waits for the server, which answers.
            answer = httpx.get(url, timeout=30)
            if path is None:
                assert found[2] == "/mcp"
            else:
                assert found[2] == path and answer.status_code == 200
            if command == "a2a":  # the card tells clients where to send: the same port
                (interface, *_) = answer.json()["supportedInterfaces"]
                assert interface["url"].startswith(f"http://127.0.0.1:{found[1]}/")
        finally:
            interrupt(proc)


def _assert_taken(port: int, host: str = "127.0.0.1") -> None:
    """Another server cannot take ``host`` ``port``: binding as servers do (reusing a port
    in TIME_WAIT), it is refused only by a socket that listens there (two such sockets may
    bind one port that neither listens on)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as refused:
            other.bind((host, port))
        assert refused.value.errno == errno.EADDRINUSE


@pytest.mark.parametrize("host", ["localhost", ""])
def test_the_sockets_listen_before_any_server_runs(host: str) -> None:
    """listen() hands back sockets already listening, as uvicorn would make them: a client
    connects before any server runs, on every address of the host (``localhost``: 127.0.0.1,
    and ::1 where it names it too; "": 0.0.0.0 and ::, each IPv6 socket IPv6 only), on one
    port; no other server can take it."""
    with listen(host, 0) as listening:
        assert listening.port != 0
        assert len(listening.sockets) == len(_addresses(host))
        for sock in listening.sockets:
            address = sock.getsockname()
            assert address[1] == listening.port
            assert not sock.getblocking()  # as the server's event loop expects
            if sock.family == socket.AF_INET6:
                assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
            with socket.create_connection(address[:2], timeout=5):
                pass  # accepted into the listen queue: nothing serves yet
            _assert_taken(listening.port, address[0])
    assert all(sock.fileno() == -1 for sock in listening.sockets)  # closed on exit


def test_port_0_on_several_addresses_is_one_port_free_on_all() -> None:
    """--host "" is every address (0.0.0.0 and ::): the server listens on each on the same
    port. A pick the system made free on the first but taken on another is tried again."""
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
        listening = listen("", 0)
    with listening:
        assert taken and listening.port not in (0, taken[0])
        families = sorted(sock.family for sock in listening.sockets)
        assert families == [socket.AF_INET, socket.AF_INET6]
        for address in ("127.0.0.1", "::1"):  # one port, listening on both
            with socket.create_connection((address, listening.port), timeout=5):
                pass
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        with socket.socket(family) as sock:  # closed: the port is free again on both
            sock.bind((address, listening.port))


def test_a_port_given_is_the_port_served(taken: int) -> None:
    free = _free_loopback_port()
    with listen("127.0.0.1", free) as listening:
        assert listening.port == free
    with pytest.raises(ConfigError, match=f"port {taken} is already in use"):
        listen("127.0.0.1", taken)


def _addresses(host: str) -> set[tuple[Any, ...]]:
    found = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return {address for *_, address in found}


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
