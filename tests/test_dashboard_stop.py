"""``swarm dashboard`` as a real process: it checks its Redis before it announces its address,
and Ctrl-C stops it at once and quietly, whatever is open (an event stream, a request waiting
on a Redis that does not answer). uvicorn alone waited a second for open responses, then
cancelled them with a traceback each; a second Ctrl-C printed more."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ._cli import SRC
from ._servers import RedisServer, ServerFactory
from ._tls import make_pki, start_tls_server

PREFIX = "dashboard of swarm stop at "


class _Dashboard:
    """``swarm dashboard --port 0`` on ``url``, its stderr read line by line on a thread."""

    def __init__(self, url: str) -> None:
        env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": url, "SWARM_NAME": "stop"}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "redis_swarm", "dashboard", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.said: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.said.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def url(self) -> str:
        """The address it announced (fails the test if it announced none within 30 s)."""
        line = self.lines.get(timeout=30)
        assert line is not None and line.startswith(PREFIX), self.said
        return line[len(PREFIX) :].split()[0].rstrip("/")

    def interrupt(self, times: int = 1) -> tuple[int, float]:
        """Ctrl-C (``times`` times, 20 ms apart); its exit code, and how long it took."""
        started = time.monotonic()
        for n in range(times):
            if n:
                time.sleep(0.02)
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the dashboard did not stop within 10 s of Ctrl-C: {self.said}")
        self._reader.join(10)
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def own_redis(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of this test's own (it may be stopped with SIGSTOP)."""
    server = servers.start()
    yield server
    server.proc.send_signal(signal.SIGCONT)


class _Stream:
    """A real SSE client: GET /api/events over HTTP, on a thread, until the stream ends."""

    def __init__(self, url: str) -> None:
        self.chunks: list[str] = []
        self.connected = threading.Event()
        self.ended: str | None = None  # "end" (a finished response) or the error's name
        self._thread = threading.Thread(target=self._follow, args=(url,), daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the event stream did not open"

    def _follow(self, url: str) -> None:
        try:
            with httpx.stream("GET", url + "/api/events", timeout=30) as response:
                for chunk in response.iter_text():
                    self.chunks.append(chunk)
                    self.connected.set()
            self.ended = "end"
        except httpx.HTTPError as exc:
            self.ended = type(exc).__name__

    def join(self) -> str | None:
        self._thread.join(5)
        return self.ended


def _announced_only(dashboard: _Dashboard) -> None:
    """It said its address and nothing else: no uvicorn error, no traceback."""
    assert len(dashboard.said) == 1 and dashboard.said[0].startswith(PREFIX), dashboard.said


def test_ctrl_c_with_an_event_stream_open_stops_at_once_and_quietly(redis_url: str) -> None:
    dashboard = _Dashboard(redis_url)
    try:
        stream = _Stream(dashboard.url())
        assert stream.chunks[0].startswith("retry: ")
        code, took = dashboard.interrupt()
        assert code == 0
        # A stop that waited on the open stream runs into uvicorn's graceful timeout, which
        # says so ("timeout graceful shutdown exceeded": _announced_only) and cuts the
        # stream; the time alone only bounds a hang (it took 1.3 s on a loaded machine).
        assert took < 5, f"it did not stop at once ({took:.2f} s)"
        _announced_only(dashboard)
        # The stream ended as a finished response, not cut mid-way.
        assert stream.join() == "end"
    finally:
        dashboard.stop()


def test_ctrl_c_while_a_request_waits_on_a_stopped_redis(own_redis: RedisServer) -> None:
    dashboard = _Dashboard(f"redis://127.0.0.1:{own_redis.port}")
    try:
        url = dashboard.url()
        stream = _Stream(url)
        own_redis.proc.send_signal(signal.SIGSTOP)  # takes connections, answers nothing
        answers: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: answers.append(httpx.get(url + "/api/status", timeout=30))
        )
        waiting.start()
        time.sleep(0.5)  # the request is waiting on Redis
        code, took = dashboard.interrupt()
        waiting.join(10)
        assert code == 0 and took < 5, (code, took)  # (a hang; waiting is said: above)
        _announced_only(dashboard)
        assert [a.status_code for a in answers] == [503]
        assert answers[0].json()["message"] == "the dashboard is stopping"
        assert stream.join() == "end"
    finally:
        dashboard.stop()


def test_a_second_ctrl_c_while_it_stops_ends_it_with_130(redis_url: str) -> None:
    dashboard = _Dashboard(redis_url)
    try:
        stream = _Stream(dashboard.url())
        code, _ = dashboard.interrupt(times=2)
        assert code == 130
        _announced_only(dashboard)
        stream.join()
    finally:
        dashboard.stop()


def _refused(url: str) -> list[str]:
    """What the dashboard said before it exited 1 (fails the test if it served)."""
    dashboard = _Dashboard(url)
    try:
        code = dashboard.proc.wait(30)
        dashboard._reader.join(10)
        assert code == 1, dashboard.said
        return dashboard.said
    except subprocess.TimeoutExpired:
        pytest.fail(f"the dashboard served: {dashboard.said}")
    finally:
        dashboard.stop()


def test_a_wrong_ca_fails_at_start(servers: ServerFactory, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = start_tls_server(servers, pki)
    said = _refused(f"rediss://127.0.0.1:{tls.port}?ssl_ca_certs={pki.wrong_ca}")
    assert len(said) == 1 and said[0].startswith("error: TLS to rediss://"), said
    assert "certificate verify failed" in said[0] and PREFIX not in said[0]


def test_a_user_that_may_not_read_the_swarm_fails_at_start(own_redis: RedisServer) -> None:
    with contextlib.closing(own_redis.client()) as admin:
        admin.acl_setuser(
            "blind", enabled=True, passwords=["+pw"], keys=["other:*"], commands=["+@all"]
        )
    said = _refused(f"redis://blind:pw@127.0.0.1:{own_redis.port}")
    assert (
        len(said) == 1 and said[0].startswith("error: the Redis user ") and " may not " in said[0]
    ), said
