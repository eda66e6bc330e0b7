"""An in-process Server-Sent Events client: drives an ASGI app directly and reads its stream
as it comes (httpx's ASGITransport and Starlette's TestClient wait for the whole body, which
an event stream never ends)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message


@dataclass
class SSEMessage:
    event: str | None
    data: Any
    id: str | None
    retry: int | None


class SSEClient:
    """``async with SSEClient(app, "/api/events?since=..") as sse: await sse.next()``."""

    def __init__(self, app: ASGIApp, url: str, headers: dict[str, str] | None = None) -> None:
        self.app = app
        parts = urlsplit(url)
        self.path, self.query = parts.path, parts.query
        self.headers = {"host": "127.0.0.1:8765", **(headers or {})}
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.comments: list[str] = []
        self.retry: int | None = None
        self._body: asyncio.Queue[bytes] = asyncio.Queue()
        self._started = asyncio.Event()
        self._disconnect = asyncio.Event()
        self._buffer = ""
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SSEClient:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": self.query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in self.headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8765),
        }

        async def run() -> None:
            await self.app(scope, self._receive, self._send)

        self._task = asyncio.create_task(run())
        await asyncio.wait_for(self._started.wait(), 10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._disconnect.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)

    async def _receive(self) -> Message:
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = {k.decode(): v.decode() for k, v in message["headers"]}
            self._started.set()
        elif message["type"] == "http.response.body":
            await self._body.put(message.get("body", b""))

    async def body(self, timeout: float = 5.0) -> str:
        """The whole body of a response that ends (an error, say)."""
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        chunks = []
        while not self._body.empty():
            chunks.append(self._body.get_nowait())
        return b"".join(chunks).decode()

    async def next(self, timeout: float = 5.0) -> SSEMessage:
        """The next message that carries data (comments are collected in ``comments``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                message = self._parse(block)
                if message is not None:
                    return message
                continue
            chunk = await asyncio.wait_for(self._body.get(), max(0.01, deadline - loop.time()))
            self._buffer += chunk.decode()

    async def messages(self, n: int, timeout: float = 5.0) -> list[SSEMessage]:
        return [await self.next(timeout) for _ in range(n)]

    def _parse(self, block: str) -> SSEMessage | None:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "retry" in fields:
            self.retry = int(fields["retry"])
        if "data" not in fields:
            return None
        return SSEMessage(
            event=fields.get("event"),
            data=json.loads(fields["data"]),
            id=fields.get("id"),
            retry=int(fields["retry"]) if "retry" in fields else None,
        )
