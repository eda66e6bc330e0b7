"""Walk 58 of the web faces, the MCP server: a refusal at ``--max-sessions`` answers with the
request's id (it said null), a page of another site is told once that the server has no
token (twice before), a tool call during an outage names the doctor once (the core's words
and the server's hint both did), and an integer argument of thousands of digits is refused
by its range (Python's "Exceeds the limit (4300 digits)" before)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from redis_swarm import Swarm
from redis_swarm.mcp_server import build_server
from redis_swarm.mcp_server._http import SessionsFull

from ._servers import RedisServer, ServerFactory, free_port
from .mcp_server._helpers import HTTP_ACCEPT, HTTP_INIT, SRC, connect, eventually, http_server

SWARM = "walk58"


@pytest.fixture
def own_redis(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start()
    yield server
    server.stop()


@pytest.fixture
def full_server(own_redis: RedisServer, tmp_path: Path) -> Iterator[str]:
    """``swarm mcp --transport http --max-sessions 1`` (no token), its one session open and
    registered: the URL of its endpoint."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "SWARM_URL": own_redis.url, "SWARM_NAME": SWARM}
    env.pop("SWARM_MCP_TOKEN", None)
    argv = [sys.executable, "-m", "redis_swarm", "mcp", "--role", "worker"]
    argv += ["--transport", "http", "--port", str(port), "--max-sessions", "1"]
    url = f"http://127.0.0.1:{port}/mcp"
    with (
        open(tmp_path / "server.log", "w+") as log,
        http_server(argv, env, log, url),
        Swarm(own_redis.url, swarm=SWARM) as core,
    ):
        opened = httpx.post(url, json=HTTP_INIT, headers=HTTP_ACCEPT, timeout=10)
        assert opened.status_code == 200, opened.text
        named = {**HTTP_ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        told = httpx.post(url, json=initialized, headers=named, timeout=10)
        assert told.status_code == 202, told.text
        anyio.run(eventually, lambda: len(core.agents()) == 1)
        yield url


@pytest.mark.parametrize("request_id", ["init-7", 42])
def test_a_session_refused_at_the_bound_answers_with_its_id(
    full_server: str, request_id: str | int
) -> None:
    sent = {**HTTP_INIT, "id": request_id}
    refused = httpx.post(full_server, json=sent, headers=HTTP_ACCEPT, timeout=10)
    assert refused.status_code == 503, refused.text
    answer = refused.json()
    assert answer["id"] == request_id, answer
    assert "--max-sessions" in answer["error"]["message"]


def test_a_refusal_without_a_readable_id_says_null(full_server: str) -> None:
    headers = {**HTTP_ACCEPT, "content-type": "application/json"}
    for body in (b"{not json", b'{"jsonrpc": "2.0", "id": ' + b"9" * 5000 + b"}"):
        refused = httpx.post(full_server, content=body, headers=headers, timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.json()["id"] is None


@pytest.mark.parametrize("reads_the_body", [True, False], ids=["read", "unread"])
def test_the_sdks_own_refusal_answers_with_the_requests_id(reads_the_body: bool) -> None:
    """The SDK's refusal (its own bound: sessions that never registered) is reworded with
    the id of the request it refused, read from the body the SDK read, or read to its end
    here when the SDK refused without reading it (as its Starlette Response does)."""

    async def sdk(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while reads_the_body:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                assert json.loads(body)["method"] == "initialize"
                break
        said = {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": "Too many"}}
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(said).encode()})

    full = SessionsFull(sdk, 3)
    chunks = [json.dumps({**HTTP_INIT, "id": "x-1"}).encode()[:20]]
    chunks.append(json.dumps({**HTTP_INIT, "id": "x-1"}).encode()[20:])

    async def body() -> list[Message]:
        said: list[Message] = []
        pending = list(chunks)

        async def receive() -> Message:
            if not pending:  # (read past its end: the client waits for the answer)
                return {"type": "http.disconnect"}
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

        async def send(message: Message) -> None:
            said.append(message)

        scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
        await full(scope, receive, send)
        return said

    said = anyio.run(body)
    assert said[0]["status"] == 503
    answer = json.loads(said[1]["body"])
    assert answer["id"] == "x-1" and "3 sessions open" in answer["error"]["message"], answer


def test_a_page_of_another_site_is_told_once_that_there_is_no_token(full_server: str) -> None:
    headers = {**HTTP_ACCEPT, "Origin": "https://evil.example"}
    refused = httpx.post(full_server, json=HTTP_INIT, headers=headers, timeout=10)
    assert refused.status_code == 403, refused.text
    said = refused.json()["message"]
    assert said.count("has no token") == 1, said
    assert "start it with --token" in said and "https://evil.example" in said, said


def test_a_tool_call_in_an_outage_names_the_doctor_once(servers: ServerFactory) -> None:
    server = servers.start()
    core = Swarm(server.url, swarm=SWARM)
    try:
        mcp = build_server(core, role="coordinator")

        async def body() -> str:
            async with connect(mcp) as tools:
                server.stop()
                return await tools.error("swarm_status")

        said = anyio.run(body)
    finally:
        core.close()
        server.stop()
    assert said.count("doctor") == 1, said
    assert "ConnectionFailed" in said and "check SWARM_URL" in said, said


_DIGITS = "9" * 5000


@pytest.mark.parametrize(
    ("value", "bound", "got"),
    [
        (_DIGITS, "must be at most 100", '(got "9999'),
        (int(_DIGITS[:100]) * 10**4900, "must be at most 100", "(got a number of 5,000 digits)"),
        (f"-{_DIGITS}", "must be at least 1", '(got "-999'),
    ],
    ids=["string", "number", "negative"],
)
def test_an_integer_of_thousands_of_digits_is_refused_by_its_range(
    own_redis: RedisServer, value: Any, bound: str, got: str
) -> None:
    with Swarm(own_redis.url, swarm=SWARM) as core:
        mcp = build_server(core, role="coordinator")

        async def body() -> str:
            async with connect(mcp) as tools:
                return await tools.error("read_inbox", limit=value)

        said = anyio.run(body)
    assert "Exceeds" not in said and "4300" not in said and "maximum size" not in said, said
    assert f"limit: {bound} {got}" in said, said


@pytest.mark.parametrize(
    "priority", ["9" * 5000, 10**400, -(10**400)], ids=["string", "number", "negative"]
)
def test_a_priority_of_hundreds_of_digits_is_refused_by_its_digits(
    own_redis: RedisServer, priority: Any
) -> None:
    """A priority's range is the tool's own: one too long to read, or over 308 digits (the
    tool reads it as a float: a bare "Error executing tool post_task" and a traceback), is
    refused saying how long an integer may be; 1e300 still says the range."""
    with Swarm(own_redis.url, swarm=SWARM) as core:
        mcp = build_server(core, role="all")

        async def body() -> str:
            async with connect(mcp) as tools:
                return await tools.error(
                    "post_task", queue="walk58", description="d", priority=priority
                )

        said = anyio.run(body)
        assert core.queue_stats().get("walk58", {}).get("pending", 0) == 0
    assert "priority: must be an integer of at most 100 digits (got" in said, said
