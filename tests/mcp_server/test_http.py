"""``swarm mcp --transport http``: one shared server, a session per client, clean shutdown."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx2 as httpx
from click.testing import CliRunner
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import Implementation

from redis_swarm import Swarm
from redis_swarm.cli import main

from .._servers import free_port
from ._helpers import HTTP_ACCEPT, HTTP_INIT, SRC, Tools, http_server


def test_http_serves_a_session_per_client(core: Swarm, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--port", str(port)]
    task = core.post_task("q", "over http")
    url = f"http://127.0.0.1:{port}/mcp"
    with open(tmp_path / "server.log", "w+") as log, http_server(argv, env, log, url) as proc:

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
        # No token: the dashboard's rule, only loopback Host headers (DNS rebinding).
        rebound = {**HTTP_ACCEPT, "Host": "swarm.attacker.example"}
        refused = httpx.post(url, json=HTTP_INIT, headers=rebound, timeout=5)
        assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(20) in (0, -signal.SIGTERM)
        log.seek(0)
        output = log.read()
    assert "shutdown complete" in output, output
    assert core.agents() == []


def done_id(core: Swarm, task_id: str) -> str:
    finding_id = core.get_task(task_id).finding_id
    assert finding_id is not None
    return finding_id


def test_off_loopback_a_token_is_generated_and_required(
    core: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """--host 0.0.0.0 without --token: one is generated and printed; no token, a wrong one
    -> 401; the right one -> the protocol, and a real client works with it."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env.pop("SWARM_MCP_TOKEN", None)
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--host", "0.0.0.0", "--port", str(port)]
    task = core.post_task("q", "over http with a token")
    url = f"http://127.0.0.1:{port}/mcp"
    with open(tmp_path / "server.log", "w+") as log, http_server(argv, env, log, url):
        log.seek(0)
        said = log.read()
        printed = re.search(r"Authorization: Bearer ([A-Za-z0-9_-]{20,})", said)
        assert printed, "the generated token was not printed"
        token = printed.group(1)
        # The install command it advises for clients works as printed, the URL filled in.
        advised = re.search(r"set SWARM_MCP_TOKEN=\S+ for `swarm (mcp install [^`]*)`", said)
        assert advised, said
        args = [*advised.group(1).replace("URL", url).split(), "--client", "json"]
        installed = CliRunner().invoke(main, args, env={"SWARM_MCP_TOKEN": token})
        assert installed.exit_code == 0 and url in installed.output, installed.output

        refused = httpx.post(url, json=HTTP_INIT, headers=HTTP_ACCEPT, timeout=5)
        assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
        assert "token" in refused.json()["message"]
        other_last = "y" if token.endswith("x") else "x"  # (1 in 64 tokens ends with x)
        wrong = {**HTTP_ACCEPT, "Authorization": "Bearer " + token[:-1] + other_last}
        assert httpx.post(url, json=HTTP_INIT, headers=wrong, timeout=5).status_code == 401
        basic = {**HTTP_ACCEPT, "Authorization": "Basic " + token}
        assert httpx.post(url, json=HTTP_INIT, headers=basic, timeout=5).status_code == 401
        right = {**HTTP_ACCEPT, "Authorization": f"Bearer {token}"}
        accepted = httpx.post(url, json=HTTP_INIT, headers=right, timeout=5)
        assert accepted.status_code == 200, accepted.text

        async def body() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx.AsyncClient(headers=headers, timeout=30) as http,
                Client(streamable_http_client(url, http_client=http), mode="legacy") as c,
            ):
                tools = Tools(c, 8_000)
                claimed, _ = await tools("claim_task", queue="q")
                assert claimed["task"]["id"] == task.id
                assert core.get_task(task.id).status == "claimed"
            # The session closed (the client sent DELETE): its lease is released and
            # its agent gone, at once rather than when the lease runs out.
            await _eventually(lambda: core.get_task(task.id).status == "pending")
            assert core.get_task(task.id).attempts == 1
            await _eventually(lambda: core.agents() == [])

        anyio.run(body)


def test_a_token_given_on_loopback_is_required(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test"}
    env["SWARM_MCP_TOKEN"] = "s3cret-token"
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--transport", "http"]
    argv += ["--port", str(port)]
    url = f"http://127.0.0.1:{port}/mcp"
    with open(tmp_path / "server.log", "w+") as log, http_server(argv, env, log, url):
        assert httpx.post(url, json=HTTP_INIT, headers=HTTP_ACCEPT, timeout=5).status_code == 401
        right = {**HTTP_ACCEPT, "Authorization": "Bearer s3cret-token"}
        accepted = httpx.post(url, json=HTTP_INIT, headers=right, timeout=5)
        assert accepted.status_code == 200
        session = {**right, "mcp-session-id": accepted.headers["mcp-session-id"]}
        session["Content-Type"] = "application/json"
        # Arguments 5,000 levels deep: a JSON-RPC error reply, not silence.
        deep = "[" * 5000 + "]" * 5000
        body = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x",'
        body += '"arguments":{"queue":' + deep + "}}}"
        refused = httpx.post(url, content=body, headers=session, timeout=10)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == -32700
        log.seek(0)
        assert "s3cret-token" not in log.read()  # a token given is never echoed
        # Unlike the dashboard's pages, no ?token=: the access log prints every URL.
        query = httpx.post(
            url + "?token=s3cret-token", json=HTTP_INIT, headers=HTTP_ACCEPT, timeout=5
        )
        said = query.json()["message"]
        assert query.status_code == 401 and "add ?token=" not in said, said
        assert "takes no token in the URL" in said and "s3cret-token" not in said, said


async def _eventually(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await anyio.sleep(0.05)
