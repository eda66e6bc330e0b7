"""Messages the SDK cannot parse get a JSON-RPC error reply on stdio, not silence.

The SDK's stdio transport drops a line it cannot parse (a trailing comma, a truncated line, a
lone surrogate, arguments nested a few hundred levels deep) without a word, so the client waits
for a reply that never comes; over HTTP the same message gets a ``-32700`` reply. Here a thread
stands between the process's stdin and the SDK: every line is parsed as the SDK would, and one
that fails is replaced by a one-level ``ping`` carrying the reason and the original request id,
which ``RefuseMarked`` (a server middleware) answers with a JSON-RPC error. The reply thus goes
out through the SDK's own writer, in order with every other message. A bad line with no id
(a notification, or an id the screen cannot find) is dropped, logged: answering it with
``"id": null`` would need a writer beside the SDK's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import PARSE_ERROR, jsonrpc_message_adapter
from pydantic import ValidationError

__all__ = ["RefuseMarked", "StdinScreen"]

log = logging.getLogger("redis_swarm.mcp")

_MARK = "io.redis-swarm/refused"
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_ID_VALUE = re.compile(rb'\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')


def request_id(line: bytes) -> int | str | None:
    """The ``id`` member of the top-level object of a JSON-RPC line, wherever it is in the
    object (a JavaScript client writes it last), or None; the line need not parse."""
    depth = 0
    for token in _TOKENS.finditer(line):
        text = token.group()
        if text in (b"[", b"{"):
            depth += 1
        elif text in (b"]", b"}"):
            depth -= 1
        elif depth == 1 and text == b'"id"':
            value = _ID_VALUE.match(line, token.end())
            if value is not None:
                parsed: Any = json.loads(value.group(1))
                if isinstance(parsed, int | str):
                    return parsed
    return None


def screen(line: bytes) -> bytes:
    """``line`` itself, or, if the SDK could not parse it, the ``ping`` that says why."""
    if not line.strip():
        return line  # the SDK skips blank lines itself
    try:
        jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        errors = exc.errors()
        reason = str(errors[0]["msg"]) if errors else "invalid JSON-RPC"
        ident = request_id(line)
        log.warning("refused a message the protocol cannot parse (id %r): %s", ident, reason)
        if ident is None:
            return b""  # nothing to answer to: a notification, or no id at all
        message = f"this message is not valid JSON-RPC ({reason}): fix it and send it again"
        if "recursion" in reason:
            message = f"this message cannot be parsed ({reason}): JSON nested more than a "
            message += "few hundred levels deep is refused; send flatter arguments"
        meta = {_MARK: message}
        ping = {"jsonrpc": "2.0", "id": ident, "method": "ping", "params": {"_meta": meta}}
        return json.dumps(ping).encode() + b"\n"
    return line


class StdinScreen:
    """Interposes on file descriptor 0: a thread reads the real stdin, screens each line and
    writes it to a pipe that takes stdin's place (end of input calls ``at_end``, then closes
    the pipe)."""

    def __init__(self, at_end: Callable[[], None] | None = None) -> None:
        self._at_end = at_end  # called when the client closes stdin (the server is leaving)
        self._source = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
        read_end, self._sink = os.pipe()
        os.dup2(read_end, 0)
        os.close(read_end)
        self._thread = threading.Thread(target=self._relay, name="mcp-stdin", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _relay(self) -> None:
        try:
            with self._source:  # (the duplicate of stdin: closed, not left to the collector)
                for line in self._source:
                    data = memoryview(screen(line))
                    while data:
                        data = data[os.write(self._sink, data) :]
        except OSError as exc:  # the SDK closed its end: the server is leaving
            log.debug("stdin relay stopped: %s", exc)
        finally:
            if self._at_end is not None:
                self._at_end()
            os.close(self._sink)


class RefuseMarked:
    """Server middleware: a request ``screen`` replaced is answered with its error."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        meta = (ctx.params or {}).get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get(_MARK), str):
            raise MCPError(PARSE_ERROR, meta[_MARK])
        return await call_next(ctx)
