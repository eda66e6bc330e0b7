"""The embedded server started again by the next tool call after it stopped.

A server whose URL is the embedded one started it at launch, if it was not running (its first
connection: ``EmbeddedServer.ensure_running``). An agent's client keeps that server for the
whole session, so a ``swarm down`` (or the redis-server's process ending) meanwhile would
leave every later tool call failing until the client restarts the server. The next tool call
starts it again instead, as the launch would, and as the next ``swarm`` command does; the
server's log (stderr) says so. Only a tool call does: the heartbeats of an idle session do
not undo a ``swarm down`` by themselves. A start that fails is that call's error, in
``ensure_running``'s words, which say what to do (the binary not found, a server that
answers nothing).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, TextContent

from .._config import Settings
from .._embedded import EmbeddedServer
from .._errors import SwarmError
from ._render import failed_call, tool_error

__all__ = ["StartEmbedded"]

log = logging.getLogger("redis_swarm.mcp")


class StartEmbedded:
    """Server middleware: before each tool call, the embedded server of ``settings`` is
    started if it does not answer (a check of its socket when it runs)."""

    def __init__(self, settings: Settings) -> None:
        self.server = EmbeddedServer(settings.home, durability=settings.durability)

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "tools/call":
            start = functools.partial(self.server.ensure_running, say=_said)
            try:
                await anyio.to_thread.run_sync(start)
            except SwarmError as exc:
                name = (ctx.params or {}).get("name")
                text = failed_call(str(name), tool_error(exc))
                return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        return await call_next(ctx)


def _said(note: str) -> None:
    log.warning("%s", note)
