"""``swarm mcp --transport http``: the SDK's streamable HTTP app behind the access rule of
every face that serves HTTP (``_web.AccessGuard``).

On loopback a token is optional (without one only loopback Host headers are served, against
DNS rebinding); bound to anything else, the server requires one: ``swarm mcp`` generates and
prints it once when none is given. Every request must then carry ``Authorization: Bearer
TOKEN``, compared in constant time; others get 401 before they reach the protocol.

Each HTTP session registers an agent that heartbeats until the session ends (the client's
DELETE, or the SDK's idle timeout, 30 minutes without a request): ``max_sessions`` bounds how
many are open at once, so that a client opening sessions in a loop cannot fill the swarm's
registry. One past it is refused with 503 before anything is registered, in words that say
what to do (``SessionsFull``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._net import Listening, listen
from .._stopping import EndWhenStopping, HearSignals, Stopping
from .._web import AccessGuard
from ._session import sessions_full

__all__ = ["SessionsFull", "serve_http"]


def serve_http(
    server: MCPServer[Any],
    *,
    host: str,
    port: int,
    token: str | None,
    max_sessions: int,
    listening: Listening | None = None,
) -> None:
    """Serve ``http://HOST:PORT/mcp`` until SIGINT or SIGTERM, which stop it at once and
        quietly (``_stopping``: the open streams and waiting calls end, uvicorn then shuts the
        sessions down; a second Ctrl-C exits at once). ``listening``: the sockets
        ``_net.listen(host, port)`` gave a face that announced the URL first (the CLI; ``port``
        is then their port); without, they are opened here. Closes them. ``max_sessions``: how many
    HTTP sessions may be open at once."""
    import uvicorn

    if listening is None:
        listening = listen(host, port)
    stopping = Stopping()
    sdk_app = server.streamable_http_app(host=host, max_sessions=max_sessions)
    # (inside EndWhenStopping, whose own 503s say the server is stopping)
    full = SessionsFull(sdk_app, max_sessions)
    ending = EndWhenStopping(full, stopping, what="this MCP server")
    # MCP clients all set headers: no ?token=, which uvicorn's access log would print.
    guarded = AccessGuard(ending, token, "this MCP server", query_token=False)
    app: ASGIApp = HearSignals(guarded, stopping)
    config = uvicorn.Config(app, log_level=server.settings.log_level.lower())
    # uvicorn stops on Ctrl-C, then raises it again: the normal way out, not an error.
    with listening, contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=list(listening.sockets))


class SessionsFull:
    """ASGI middleware: the SDK's refusal of a session past its ``max_sessions`` (503, a
    request that names no session: nothing else of the SDK answers 503) says the bound and
    what to do, where the SDK's says only "Too many open sessions". The JSON-RPC error is
    kept (its code, ``id`` null): only its message changes."""

    def __init__(self, app: ASGIApp, max_sessions: int) -> None:
        self.app = app
        self.message = sessions_full(max_sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        named = MCP_SESSION_ID_HEADER.lower().encode()
        if scope["type"] != "http" or any(k == named for k, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        refusal: Message | None = None
        body = b""

        async def say(message: Message) -> None:
            nonlocal refusal, body
            if message["type"] == "http.response.start" and message["status"] == 503:
                refusal = message
                return
            if refusal is None:
                await send(message)
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                await self._refuse(send, refusal, body)

        await self.app(scope, receive, say)

    async def _refuse(self, send: Send, start: Message, body: bytes) -> None:
        try:
            reply = json.loads(body)
            reply["error"]["message"] = self.message
            body = json.dumps(reply).encode()
        except (ValueError, KeyError, TypeError):  # (not the SDK's JSON-RPC error: as sent)
            pass
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
