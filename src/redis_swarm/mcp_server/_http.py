"""``swarm mcp --transport http``: the SDK's streamable HTTP app behind a bearer token.

On loopback a token is optional (the SDK refuses other Host headers there, against DNS
rebinding); bound to anything else, the server requires one: ``swarm mcp`` generates and prints
it once when none is given. Every request must then carry ``Authorization: Bearer TOKEN``,
compared in constant time; others get 401 before they reach the protocol.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BearerGuard", "serve_http"]


class BearerGuard:
    """ASGI middleware: HTTP requests without ``Authorization: Bearer <token>`` get 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token.strip():
            raise ValueError("the bearer token is empty")
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "Unauthorized",
                "message": "this MCP server needs its token: send 'Authorization: Bearer "
                "TOKEN' (the token `swarm mcp` printed, or its --token / SWARM_MCP_TOKEN)",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="redis-swarm"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        offered = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, rest = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer":
                    offered = rest.strip()
                break
        # compare_digest takes the same time whatever prefix matches.
        return bool(offered) and hmac.compare_digest(offered, self.token)


def serve_http(server: MCPServer[Any], *, host: str, port: int, token: str | None) -> None:
    """Serve ``http://HOST:PORT/mcp`` until SIGINT or SIGTERM (uvicorn owns them and shuts
    the sessions down cleanly)."""
    import uvicorn

    app: ASGIApp = server.streamable_http_app(host=host)
    if token is not None:
        app = BearerGuard(app, token)
    config = uvicorn.Config(app, host=host, port=port, log_level=server.settings.log_level.lower())
    uvicorn.Server(config).run()
