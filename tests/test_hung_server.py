"""A server that takes connections and never answers (its process stopped with SIGSTOP, as a
hung or frozen machine behind a live socket): every command, the Python API and the
dashboard end within their bound (``Settings.longest_request_s``, plus their own wait) with
ConnectionFailed, instead of waiting out ``socket_timeout`` once per retry; the retries still
ride out a hang shorter than their window; and once the server goes on, the next command
works."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, ConnectionFailed, Settings, Swarm
from redis_swarm._config import retry_window
from redis_swarm.dashboard.app import create_app

from ._cli import SRC
from ._servers import ServerFactory, free_port

SWARM = "hung"
# What a `swarm` process may take to start and import before it sends anything, on a busy
# test machine: the CLI's documented bound below is its own plus this.
STARTUP_S = 10.0
# What a call in this process may take beyond its timeouts (scheduling, the event loop).
SLACK_S = 1.0


@dataclass
class Stoppable:
    """A redis-server in a session of its own, that a test stops (SIGSTOP) and continues."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def go_on(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def server(servers: ServerFactory) -> Iterator[Stoppable]:
    port = free_port()
    args = [servers.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(servers.new_dir())]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    stoppable = Stoppable(proc, port)
    try:
        _wait_ready(stoppable)
        yield stoppable
    finally:
        stoppable.go_on()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_ready(server: Stoppable) -> None:
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1)
    try:
        for _ in range(500):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")
    finally:
        client.close()


@dataclass
class Ended:
    """How one call ended: after how long, its exit code (a command's) and what it said."""

    seconds: float
    code: int
    text: str


def _timed(call: Callable[[], tuple[int, str]]) -> Ended:
    started = time.monotonic()
    code, text = call()
    return Ended(time.monotonic() - started, code, text)


# `swarm ARGS`, saying on its last line of stderr how long it ran once started: a test
# machine busy with other processes can take seconds to start a Python process.
_SWARM = """
import sys, time
from redis_swarm.cli import main
started = time.monotonic()
try:
    main(sys.argv[1:], prog_name="swarm")
finally:
    sys.stderr.write(f"\\nran {time.monotonic() - started:.3f}\\n")
"""


def _command(url: str, *args: str) -> Callable[[], tuple[int, str]]:
    env = {**os.environ, "SWARM_URL": url, "SWARM_NAME": SWARM, "PYTHONPATH": SRC}

    def run() -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-c", _SWARM, *args], env=env, capture_output=True, timeout=100
        )
        return done.returncode, done.stderr.decode(errors="replace")

    return run


def _ran(end: Ended) -> float:
    """How long a command ran once started (see ``_SWARM``)."""
    return float(end.text.rsplit("ran ", 1)[1])


def _refused(call: Callable[[], Any]) -> Callable[[], tuple[int, str]]:
    """``call`` as a probe: it must raise ConnectionFailed (code 1, its message)."""

    def run() -> tuple[int, str]:
        try:
            call()
        except ConnectionFailed as exc:
            return 1, str(exc)
        return 0, "no error"

    return run


def _status(url: str) -> None:
    with Swarm(url, swarm=SWARM) as swarm:
        swarm.status()


async def _async_status(url: str) -> None:
    async with AsyncSwarm(url, swarm=SWARM) as swarm:
        await swarm.status()


def _dashboard_status(url: str) -> tuple[int, str]:
    app = create_app(AsyncSwarm(url, swarm=SWARM), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        response = client.get("/api/status")
    return response.status_code, response.text


# The timeouts of test_a_server_that_never_answers_...: shorter than the defaults (connect 5 s,
# socket 10 s), so that the test takes 6 s less; as with the defaults, an attempt (connect +
# socket timeout) is longer than the retry window (5.1 s with the default retries).
NEVER_ANSWERS_QUERY = "?socket_timeout=4&connect_timeout=2"


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_fails_every_command_within_its_bound(
    server: Stoppable,
) -> None:
    """With the default timeouts, each command the failure tour ran ended after ~214 s
    (socket_timeout 30 s, for each of 7 attempts); now after one socket_timeout (10 s by
    default, 4 s here), since no second attempt fits in a redis:// URL's retry window,
    whatever the command's own wait."""
    url = server.url + NEVER_ANSWERS_QUERY
    settings = Settings.from_url(url, swarm=SWARM)
    assert settings.socket_timeout == 4.0 and settings.retries == Settings.retries
    # No second attempt fits in the window: here as with the default timeouts.
    defaults = Settings.from_url(server.url, swarm=SWARM)
    for timeouts in (settings, defaults):
        assert timeouts.connect_timeout + timeouts.socket_timeout > timeouts.retry_window_s
    kept = Swarm(url, swarm=SWARM)  # a handle whose connection was working
    kept.status()
    waits = {
        "status": 0.0,
        "task wait --queue qz --timeout 5": 5.0,
        "ask sh1 q --timeout 5": 5.0,
        "msg inbox A --wait 5": 5.0,
        "task claim qnone --wait 5": 5.0,
    }
    server.stop()
    probes: dict[str, Callable[[], tuple[int, str]]] = {
        command: _command(url, *command.split()) for command in waits
    }
    probes["Swarm.status (kept connection)"] = _refused(kept.status)
    probes["Swarm.status (new handle)"] = _refused(lambda: _status(url))
    probes["AsyncSwarm.status"] = _refused(lambda: asyncio.run(_async_status(url)))
    probes["dashboard /api/status"] = lambda: _dashboard_status(url)
    with ThreadPoolExecutor(len(probes)) as pool:
        futures = {name: pool.submit(_timed, probe) for name, probe in probes.items()}
        ended = {name: future.result() for name, future in futures.items()}
    server.go_on()

    timeout = settings.socket_timeout
    for name, end in ended.items():
        assert end.code == (503 if name.startswith("dashboard") else 1), (name, end)
        assert "cannot reach Redis" in end.text and "Timeout reading" in end.text, (name, end)
        ran = _ran(end) if name in waits else end.seconds
        # No command waits its own time first: its first request finds the server stopped,
        # and no second attempt fits in the window. (A command imports what it runs first.)
        assert timeout - 0.5 <= ran <= timeout + (3 * SLACK_S if name in waits else SLACK_S), (
            name,
            end,
        )
        assert end.seconds <= waits.get(name, 0.0) + settings.longest_request_s + STARTUP_S

    # The server goes on: the next command works, and so does the handle that failed.
    after = _timed(_command(url, "status"))
    assert after.code == 0, after
    assert kept.status().swarm == SWARM
    asyncio.run(_async_status(url))
    kept.close()


@pytest.mark.timeout(60)
def test_the_retries_ride_out_a_hang_shorter_than_their_window(server: Stoppable) -> None:
    """A timed-out attempt is still sent again while another one fits in the retry window
    (here 5.1 s, an attempt 1.5 s): a server stopped for 2 s costs a request that long."""
    url = f"{server.url}?socket_timeout=1&connect_timeout=0.5"
    with Swarm(url, swarm=SWARM) as swarm:
        swarm.status()
        server.stop()
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            status = pool.submit(swarm.status)
            time.sleep(2.0)
            server.go_on()
            assert status.result().swarm == SWARM
        assert time.monotonic() - started < 2.0 + 1.0 + SLACK_S


@pytest.mark.timeout(60)
def test_the_retries_of_a_timed_out_request_end_with_their_window(server: Stoppable) -> None:
    """Stopped for good: a request is sent again while another attempt fits in the window,
    then ends with ConnectionFailed, within ``longest_request_s`` (1 + 0.5 + 3.1 s, with 5
    retries); before, it took its 6 attempts (about 7.5 s). A claim waiting when the server
    stops ends within its wait plus that bound (its blocking waits ask the server for less
    than socket_timeout)."""
    url = f"{server.url}?socket_timeout=1&connect_timeout=0.5&retries=5"
    settings = Settings.from_url(url, swarm=SWARM)
    assert settings.longest_request_s == pytest.approx(4.6)
    sync = Swarm(url, swarm=SWARM)
    sync.status()

    def claim() -> Any:
        with Swarm(url, swarm=SWARM) as handle:
            return handle.claim("idle", worker="w", wait_s=3.0)

    with ThreadPoolExecutor(3) as pool:
        claiming = pool.submit(_timed, _refused(claim))
        time.sleep(0.5)  # the claim is waiting, its first requests answered
        server.stop()
        status = pool.submit(_timed, _refused(sync.status))
        async_status = pool.submit(_timed, _refused(lambda: asyncio.run(_async_status(url))))
        ended = {
            "claim waiting": claiming.result(),
            "status": status.result(),
            "async status": async_status.result(),
        }
    server.go_on()
    for name, end in ended.items():
        assert end.code == 1 and "Timeout reading" in end.text, (name, end)
        wait = 3.0 - 0.5 if name == "claim waiting" else 0.0
        assert end.seconds <= 0.5 + wait + settings.longest_request_s + SLACK_S, (name, end)
        # It was sent again (the window allows it), not given up after one timeout.
        assert end.seconds >= (0.5 if name == "claim waiting" else 0) + 2 * 1.0, (name, end)
    assert sync.status().swarm == SWARM
    sync.close()


def test_the_bounds_are_said_once() -> None:
    """The retry window and the longest request, from the settings (docs/deployment.md)."""
    assert retry_window(0) == 0
    assert retry_window(6) == pytest.approx(5.1)
    assert retry_window(30) == pytest.approx(53.1)
    assert retry_window(10_000) == pytest.approx(53.1 + 2 * (10_000 - 30))
    plain = Settings.from_url("redis://h")
    assert (plain.socket_timeout, plain.connect_timeout) == (10.0, 5.0)
    assert plain.longest_request_s == pytest.approx(20.1)
    assert Settings.from_url("redis+cluster://a:1").longest_request_s == pytest.approx(68.1)
    assert Settings.from_url("redis+sentinel://a:1/m").longest_request_s == pytest.approx(68.1)
    # A timeout at its default is left out of the URL; the old default is now written.
    assert "socket_timeout" not in plain.render_url()
    assert "socket_timeout=30" in plain.replace(socket_timeout=30.0).render_url()
