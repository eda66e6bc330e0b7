"""``swarm mcp --transport http``: the SDK's streamable HTTP app behind the access rule of
every face that serves HTTP (``_web.AccessGuard``).

On loopback a token is optional (without one only loopback Host headers are served, against
DNS rebinding); bound to anything else, the server requires one: ``swarm mcp`` generates and
prints it once when none is given. Every request must then carry ``Authorization: Bearer
TOKEN``, compared in constant time; others get 401 before they reach the protocol.
"""

from __future__ import annotations

import contextlib
from typing import Any

from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from .._net import Listening, listen
from .._stopping import EndWhenStopping, HearSignals, Stopping
from .._web import AccessGuard

__all__ = ["serve_http"]


def serve_http(
    server: MCPServer[Any],
    *,
    host: str,
    port: int,
    token: str | None,
    listening: Listening | None = None,
) -> None:
    """Serve ``http://HOST:PORT/mcp`` until SIGINT or SIGTERM, which stop it at once and
    quietly (``_stopping``: the open streams and waiting calls end, uvicorn then shuts the
    sessions down; a second Ctrl-C exits at once). ``listening``: the sockets
    ``_net.listen(host, port)`` gave a face that announced the URL first (the CLI; ``port``
    is then their port); without, they are opened here. Closes them."""
    import uvicorn

    if listening is None:
        listening = listen(host, port)
    stopping = Stopping()
    sdk_app = server.streamable_http_app(host=host)
    ending = EndWhenStopping(sdk_app, stopping, what="this MCP server")
    # MCP clients all set headers: no ?token=, which uvicorn's access log would print.
    guarded = AccessGuard(ending, token, "this MCP server", query_token=False)
    app: ASGIApp = HearSignals(guarded, stopping)
    config = uvicorn.Config(app, log_level=server.settings.log_level.lower())
    # uvicorn stops on Ctrl-C, then raises it again: the normal way out, not an error.
    with listening, contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=list(listening.sockets))
