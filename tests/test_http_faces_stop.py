"""``swarm a2a`` and ``swarm mcp --transport http`` as real processes: Ctrl-C with a client's
stream open stops them at once and quietly, as it does the dashboard (``_stopping``, shared).

Before: a second Ctrl-C while either stopped printed the tracebacks of the lifespan uvicorn
cancelled; one Ctrl-C on ``swarm mcp --transport http`` waited on the open streams, then
ended with click's "Aborted!" and exit code 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ._cli import SRC
from ._servers import RedisServer, ServerFactory, free_port

SWARM = "stop"
# What a stop may print: nothing of these (uvicorn's "ERROR:" lines, click's "Aborted!").
NEVER = ("Traceback", "CancelledError", "ERROR", "Aborted", "Exception in ASGI application")
PROMPT_S = 5.0  # a stop waits on nothing: the MCP SDK's own last write takes up to a second
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
MCP_VERSION = "2025-06-18"


@pytest.fixture(scope="module")
def redis(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start()
    yield server
    server.stop()


class _Face:
    """``swarm ARGS`` on a free port, its stderr read on a thread; ready once ``probe``
    (a GET of a path) answers."""

    def __init__(self, redis: RedisServer, args: list[str], probe: str) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": SRC, "PYTHONUNBUFFERED": "1"}
        env.update(SWARM_URL=redis.url, SWARM_NAME=SWARM)
        argv = [sys.executable, "-m", "redis_swarm", *args, "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.said: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60  # (imports take seconds on a loaded machine)
        while True:
            try:
                httpx.get(self.base + probe, timeout=2)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"swarm {args[0]} did not start: {''.join(self.said)}")
                time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.said.append(line)

    def interrupt(self, times: int) -> tuple[int, float, str]:
        """Ctrl-C (``times`` times, 20 ms apart): the exit code, how long it took, stderr."""
        started = time.monotonic()
        for n in range(times):
            if n:
                time.sleep(0.02)
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"it did not stop within 20 s of Ctrl-C: {''.join(self.said)}")
        took = time.monotonic() - started
        self._reader.join(10)
        return code, took, "".join(self.said)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class _Stream:
    """A real streaming request on a thread: open once its response has started."""

    def __init__(self, method: str, url: str, **kw: Any) -> None:
        self.lines: list[str] = []
        self.ended: str | None = None  # "end" (a finished response), or the error's name
        self.started = threading.Event()
        args = (method, url)
        self._thread = threading.Thread(target=self._follow, args=args, kwargs=kw, daemon=True)
        self._thread.start()
        assert self.started.wait(15), f"the stream did not open: {self.ended}"

    def _follow(self, method: str, url: str, **kw: Any) -> None:
        try:
            with httpx.stream(method, url, timeout=30, **kw) as response:
                assert response.status_code == 200, response.read()
                self.started.set()
                for line in response.iter_lines():
                    self.lines.append(line)
            self.ended = "end"
        except (httpx.HTTPError, AssertionError) as exc:
            self.ended = type(exc).__name__
            self.started.set()

    def join(self) -> str | None:
        self._thread.join(10)
        return self.ended


def _quiet(err: str, announced: str) -> None:
    assert announced in err, err
    for word in NEVER:
        assert word not in err, err


# --- swarm a2a


def _a2a(redis: RedisServer) -> tuple[_Face, _Stream]:
    """``swarm a2a`` with a SendStreamingMessage stream open (its task posted, waiting)."""
    face = _Face(redis, ["a2a", "--queue", "stop-q"], "/.well-known/agent-card.json")
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "x"}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage",
            "params": {"message": message}}  # fmt: skip
    headers = {"A2A-Version": "1.0", "Accept": "text/event-stream"}
    stream = _Stream("POST", face.base + "/", json=body, headers=headers)
    deadline = time.monotonic() + 10
    while not any(line.startswith("data:") for line in stream.lines):  # the task arrived
        assert time.monotonic() < deadline, stream.lines
        time.sleep(0.05)
    return face, stream


def test_a2a_ctrl_c_with_a_stream_open_stops_at_once_and_quietly(redis: RedisServer) -> None:
    face, stream = _a2a(redis)
    try:
        code, took, err = face.interrupt(1)
    finally:
        face.kill()
    assert code == 0 and took < PROMPT_S, (code, took, err)
    _quiet(err, "A2A server of swarm stop")
    assert stream.join() == "end"  # a finished response, not a cut connection


def test_a2a_second_ctrl_c_exits_at_once_without_a_traceback(redis: RedisServer) -> None:
    face, stream = _a2a(redis)
    try:
        code, took, err = face.interrupt(2)
    finally:
        face.kill()
    assert code == 130 and took < PROMPT_S, (code, took, err)
    _quiet(err, "A2A server of swarm stop")
    stream.join()


# --- swarm mcp --transport http


def _mcp(redis: RedisServer) -> tuple[_Face, list[_Stream]]:
    """``swarm mcp --transport http`` with a session's two streams open: its GET stream of
    server messages, and a claim_task call that waits for a task."""
    face = _Face(redis, ["mcp", "--transport", "http"], "/mcp")
    url = face.base + "/mcp"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": MCP_VERSION, "capabilities": {},
        "clientInfo": {"name": "stop-test", "version": "1"}}}  # fmt: skip
    answer = httpx.post(url, json=init, headers=MCP_HEADERS, timeout=10)
    assert answer.status_code == 200, answer.text
    session = {"mcp-session-id": answer.headers["mcp-session-id"],
               "mcp-protocol-version": MCP_VERSION}  # fmt: skip
    headers = {**MCP_HEADERS, **session}
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(url, json=done, headers=headers, timeout=10).status_code == 202
    server_messages = _Stream("GET", url, headers={"Accept": "text/event-stream", **session})
    arguments = {"queue": "none", "wait_s": 30}
    claim = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "claim_task", "arguments": arguments}}  # fmt: skip
    waiting = _Stream("POST", url, json=claim, headers=headers)
    _blocked_in_blpop(redis)  # the claim waits on Redis
    return face, [server_messages, waiting]


def _blocked_in_blpop(redis: RedisServer) -> None:
    """Wait until a client of ``redis`` is blocked in the BLPOP of a waiting claim."""
    client = redis.client()
    try:
        deadline = time.monotonic() + 15
        while not any(c.get("cmd") == "blpop" for c in client.client_list()):
            assert time.monotonic() < deadline, client.client_list()
            time.sleep(0.02)
    finally:
        client.close()


def test_mcp_http_ctrl_c_with_streams_open_stops_at_once_and_quietly(redis: RedisServer) -> None:
    face, streams = _mcp(redis)
    try:
        code, took, err = face.interrupt(1)
    finally:
        face.kill()
    assert code == 0 and took < PROMPT_S, (code, took, err)
    _quiet(err, "serving MCP on")
    assert "Application shutdown complete" in err, err  # its sessions closed on the way out
    assert [stream.join() for stream in streams] == ["end", "end"]


def test_mcp_http_second_ctrl_c_exits_at_once_without_a_traceback(redis: RedisServer) -> None:
    face, streams = _mcp(redis)
    try:
        code, took, err = face.interrupt(2)
    finally:
        face.kill()
    assert code == 130 and took < PROMPT_S, (code, took, err)
    _quiet(err, "serving MCP on")
    for stream in streams:
        stream.join()
