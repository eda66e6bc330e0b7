"""Ctrl-C stops the faces that serve HTTP (``swarm dashboard``, ``swarm a2a``, ``swarm mcp
--transport http``) at once and quietly.

uvicorn stops by waiting for every open response to end (its graceful timeout), then cancels
what is left and logs each as an error with its traceback. An event stream never ends by
itself, and a request waiting on an unreachable Redis lasts until its retries give up: so
Ctrl-C printed tracebacks of what uvicorn cancelled (and a second Ctrl-C, more of them: the
lifespan's, cancelled as uvicorn gave up).

Here the app hears the signal first (``Stopping.on_signals``, around the app's life inside
the server, hands it on to uvicorn), and ``EndWhenStopping`` ends what is open: an event
stream ends as a finished response (a client reconnects, to no one); a request still waiting
on Redis is answered 503. uvicorn then finds nothing to wait for or cancel. A second Ctrl-C
while it stops ends the process at once, with exit code 130. An app whose lifespan is ours
enters ``on_signals`` there (the dashboard, the A2A server, which ends its own waits with an
answer rather than a 503); one whose lifespan is a library's (the MCP SDK's) is wrapped in
``HearSignals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._codec import dumps

__all__ = ["EXIT_INTERRUPTED", "EndWhenStopping", "HearSignals", "Stopping"]

# The exit code of a second Ctrl-C (a process ended by SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
_SIGNALS = ("SIGINT", "SIGTERM")


class Stopping:
    """Set when the server starts to stop (Ctrl-C or SIGTERM): what ``EndWhenStopping``
    waits for."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # A signal came (set in the handler: the event is set later, by the loop, and a
        # second Ctrl-C may come first).
        self._signalled = False

    def set(self) -> None:
        """Start stopping (from the event loop's thread)."""
        self.event.set()

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """While the block runs (inside the running server, main thread only): Ctrl-C and
        SIGTERM set this first, then reach the handler they had (the server's, which stops
        it); a second Ctrl-C ends the process (EXIT_INTERRUPTED). Restored afterwards."""
        self._loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {}
        try:
            for name in _SIGNALS:
                number = getattr(signal, name)
                previous[number] = signal.signal(number, self._handler(previous))
        except ValueError:  # not the main thread: no signal handling
            pass
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _handler(self, previous: dict[int, Any]) -> Any:
        def handle(number: int, frame: FrameType | None) -> None:
            if number == signal.SIGINT and self._signalled:
                os._exit(EXIT_INTERRUPTED)  # the user insists: nothing is left to save
            self._signalled = True
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self.set)
            handler = previous.get(number)
            if callable(handler):
                handler(number, frame)

        return handle


class HearSignals:
    """ASGI wrapper: ``stopping.on_signals()`` around the app's lifespan (the whole of the
    server's life), for an app whose lifespan is not ours to write."""

    def __init__(self, app: ASGIApp, stopping: Stopping) -> None:
        self.app = app
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        with self.stopping.on_signals():
            await self.app(scope, receive, send)


class EndWhenStopping:
    """ASGI middleware: once ``stopping`` is set, end each open response (a stream's last
    chunk; a request still waiting on Redis: 503, saying that ``what`` is stopping) rather
    than leave it to the server."""

    def __init__(self, app: ASGIApp, stopping: Stopping, *, what: str) -> None:
        self.app = app
        self.stopping = stopping
        self.what = what

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.stopping.event.is_set():
            await _unavailable(send, self.what)
            return
        sent = _Sent(send)
        serving = asyncio.ensure_future(self.app(scope, receive, sent))
        stopped = asyncio.ensure_future(self.stopping.event.wait())
        try:
            await asyncio.wait((serving, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            interrupted = not serving.done()
            if interrupted:
                serving.cancel()
                # What it raises as it is cancelled: its response is ended below instead.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await serving
        if not interrupted:
            serving.result()  # (an error of the app: raised as it would have been)
            return
        if not sent.started:
            await _unavailable(send, self.what)
        elif not sent.ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Sent:
    """An ASGI send that notes how far the response went."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = self.ended = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.ended = True
        await self._send(message)


async def _unavailable(send: Send, what: str) -> None:
    body = dumps({"error": "Unavailable", "message": f"{what} is stopping"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
