"""Driving the MCP server from tests: a client wrapper that checks every result's size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import httpx2 as httpx
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, Implementation, TextContent

from redis_swarm.mcp_server import CHARS_PER_TOKEN

from .._cli import interrupt

REPO = Path(__file__).resolve().parents[2]
SRC = str(REPO / "src")  # subprocess servers import this checkout's code


def stdio_env(redis_url: str, **more: str) -> dict[str, str]:
    """The environment of a stdio MCP server a test starts. The MCP client passes the server
    only the few variables it names (HOME, PATH, ...) besides these: SWARM_HOME, the test's
    own (conftest), is given here, else the server kept its context cache and lease tokens in
    the developer's home."""
    return {"PYTHONPATH": SRC, "SWARM_URL": redis_url, "SWARM_NAME": "test",
            "SWARM_HOME": os.environ["SWARM_HOME"], **more}  # fmt: skip


class ToolFailed(AssertionError):
    """A tool returned is_error where success was expected."""


def texts(result: CallToolResult) -> list[str]:
    out = []
    for block in result.content:
        assert isinstance(block, TextContent), block
        out.append(block.text)
    return out


class Tools:
    """A connected MCP client; every call asserts that its result fits the budget."""

    def __init__(self, client: Client, budget_tokens: int) -> None:
        self.client = client
        self.max_chars = budget_tokens * CHARS_PER_TOKEN
        self.largest = 0

    async def raw(self, name: str, **args: Any) -> CallToolResult:
        result = await self.client.call_tool(name, args)
        size = sum(len(t) for t in texts(result))
        self.largest = max(self.largest, size)
        assert size <= self.max_chars, f"{name} returned {size} chars > {self.max_chars}"
        return result

    async def __call__(self, name: str, **args: Any) -> tuple[dict[str, Any], str | None]:
        """The JSON head of a successful result, and its text block if it has one."""
        result = await self.raw(name, **args)
        blocks = texts(result)
        if result.is_error:
            raise ToolFailed(f"{name} failed: {blocks[0]}")
        head = json.loads(blocks[0])
        assert isinstance(head, dict)
        return head, blocks[1] if len(blocks) > 1 else None

    async def error(self, name: str, **args: Any) -> str:
        """The message of a call that must fail as a tool error."""
        result = await self.raw(name, **args)
        assert result.is_error, f"{name} succeeded: {texts(result)}"
        return texts(result)[0]


@asynccontextmanager
async def connect(
    server: MCPServer[Any],
    *,
    client_name: str = "test-client",
    mode: str = "legacy",
    budget_tokens: int = 8_000,
) -> AsyncIterator[Tools]:
    """An in-memory client session (``legacy``: the handshake era every client speaks)."""
    info = Implementation(name=client_name, version="1.0")
    async with Client(server, mode=mode, client_info=info) as client:
        yield Tools(client, budget_tokens)


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``check`` (run on a thread: it may call the core) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not await anyio.to_thread.run_sync(check):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await anyio.sleep(0.05)


# An MCP client's first request over HTTP, as a client without the SDK sends it: what `swarm
# mcp --transport http` answers 200 (given its token, if it has one).
HTTP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl-like", "version": "0"},
    },
}
HTTP_ACCEPT = {"Accept": "application/json, text/event-stream"}


@contextmanager
def http_server(
    argv: list[str], env: dict[str, str], log: IO[str], url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``swarm mcp --transport http`` process, once it listens; SIGTERM on the way out."""
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            interrupt(proc, signal.SIGTERM)
