"""``swarm mcp --transport http``: one shared server, a session per client, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2 as httpx
from mcp import Client
from mcp_types import Implementation

from redis_swarm import Swarm

from .._servers import free_port
from ._helpers import SRC, Tools


def test_http_serves_a_session_per_client(core: Swarm, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--port", str(port)]
    task = core.post_task("q", "over http")
    with (
        open(tmp_path / "server.log", "w+") as log,
        subprocess.Popen(argv, env=env, stdout=log, stderr=log) as proc,
    ):
        try:
            url = f"http://127.0.0.1:{port}/mcp"
            deadline = time.monotonic() + 30
            while True:  # until uvicorn listens
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, "no server"
                    time.sleep(0.1)

            async def body() -> None:
                one = Implementation(name="agent-one", version="1")
                two = Implementation(name="agent-two", version="1")
                async with (
                    Client(url, mode="legacy", client_info=one) as a,
                    Client(url, mode="legacy", client_info=two) as b,
                ):
                    first, second = Tools(a, 8_000), Tools(b, 8_000)
                    claimed, _ = await first("claim_task", queue="q")
                    assert claimed["task"]["id"] == task.id
                    # The lease is the first session's: the second one holds none.
                    message = await second.error("report_finding", task_id=task.id, summary="x")
                    assert "holds no lease" in message
                    done, _ = await first("report_finding", task_id=task.id, summary="ok")
                    assert done["completed"] is True
                    clients = sorted(a.metadata["client"] for a in core.agents() if a.metadata)
                    assert clients == ["agent-one", "agent-two"]

            anyio.run(body)
            assert core.get_finding(done_id(core, task.id)).summary == "ok"
            proc.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert proc.wait(20) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        log.seek(0)
        output = log.read()
    assert "shutdown complete" in output, output
    assert core.agents() == []


def done_id(core: Swarm, task_id: str) -> str:
    finding_id = core.get_task(task_id).finding_id
    assert finding_id is not None
    return finding_id
