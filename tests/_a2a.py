"""Helpers of the A2A tests: ``swarm a2a`` as a real process, a webhook receiver on loopback,
and a worker of ours that claims and reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.a2a_server._push import PushDispatcher

from ._servers import free_port

# The swarm, token and queues of the ``a2a`` fixture (tests/conftest.py).
SWARM = "a2a"
TOKEN = "a2a-test-token-0123456789"
QUEUE, OTHER = "research", "review"


@dataclass
class A2AServer:
    url: str
    token: str
    proc: subprocess.Popen[str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def start_a2a(redis_url: str, swarm: str, token: str, *args: str) -> A2AServer:
    """``swarm a2a`` on a free loopback port, ready (its card answers) before it returns."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "redis_swarm", "--url", redis_url, "--swarm", swarm]
    command += ["a2a", "--port", str(port), "--token", token, *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    url = f"http://127.0.0.1:{port}"
    # A start that failed is seen at once (the process ended): the deadline is for one that
    # hangs. Starting costs some 1.3 s of CPU (imports); at a load average of 20 to 30 on two
    # cores that took over 20 s, which failed whole modules of tests.
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                httpx.get(f"{url}/.well-known/agent-card.json", timeout=2).raise_for_status()
                return A2AServer(url, token, proc)
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("swarm a2a did not start") from None
                time.sleep(0.05)
    except Exception as exc:  # never left running: a later test would fail on it
        _kill(proc)
        raise AssertionError(f"{exc}: {proc.communicate()}") from exc


def stop(server: A2AServer) -> str:
    """Stop ``swarm a2a`` as a service manager does (SIGTERM); its stderr. A server that
    does not exit within 10 s fails the test that stops it, and is killed, not left running."""
    server.proc.terminate()
    try:
        _out, err = server.proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        _kill(server.proc)
        _out, err = server.proc.communicate()
        raise AssertionError(f"swarm a2a did not exit within 10 s of SIGTERM:\n{err}") from None
    return err


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@dataclass
class Receiver:
    """A webhook on loopback: every POST (its headers and JSON body), in order."""

    url: str
    posts: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    refuse: int = 0  # answer this many of the next posts with 503 (and do not keep them)

    def wait_for(self, n: int, timeout_s: float = 15.0) -> list[tuple[dict[str, str], Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= n, timeout_s)
            return list(self.posts)


def receiver() -> Iterator[Receiver]:
    port = free_port()
    box = Receiver(f"http://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if box.refuse > 0:
                box.refuse -= 1
                self.send_response(503)
                self.end_headers()
                return
            with box.arrived:
                box.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                box.arrived.notify_all()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


def work_one(swarm: Swarm, queue: str, summary: str, wait_s: float = 10.0) -> str:
    """Claim one task of ``queue`` and report a finding for it; returns the task id."""
    task = swarm.claim(queue, worker="a2a-test-worker", wait_s=wait_s)
    assert task is not None, f"no task came to {queue}"
    swarm.report(task.id, task.token, {"summary": summary, "details": f"did: {task.description}"})
    return task.id


async def push_one_task(
    swarm: AsyncSwarm, dispatcher: PushDispatcher, url: str, within_s: float = 15.0
) -> str:
    """Post a task with its webhook ``url``, run ``dispatcher`` while the task is worked to
    completion, and return (its id) once its final update was handled: its webhook removed."""
    task = await swarm.post_task(QUEUE, "look it up")
    await swarm.set_webhook(task.id, url)
    running = asyncio.create_task(dispatcher.run())
    try:
        claimed = await swarm.claim(QUEUE, worker="w", wait_s=5)
        assert claimed is not None and claimed.id == task.id
        await swarm.report(task.id, claimed.token, {"summary": "done"})
        deadline = time.monotonic() + within_s
        while await swarm.webhooks(task.id):  # (removed once the final one is handled)
            assert time.monotonic() < deadline, "the final update was never handled"
            await asyncio.sleep(0.02)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    return task.id
