"""``swarm mcp --transport http``: the SDK's streamable HTTP app behind the access rule of
every face that serves HTTP (``_web.AccessGuard``).

On loopback a token is optional (without one only loopback Host headers are served, against
DNS rebinding); bound to anything else, the server requires one: ``swarm mcp`` generates and
prints it once when none is given. Every request must then carry ``Authorization: Bearer
TOKEN``, compared in constant time; others get 401 before they reach the protocol.

Each HTTP session registers an agent that heartbeats until the session ends (the client's
DELETE, or the SDK's idle timeout, 30 minutes without a request in flight or a GET stream
open): the registry's ``max_sessions`` bounds how many are open at once, so that a client
opening sessions in a loop cannot fill the swarm's registry. Claude Code never sends DELETE,
so each `claude -p` or `claude mcp list` leaves its session open until the idle timeout: a new
session past the bound therefore, as it registers (after its ``initialized``), ends the one
unused the longest that has been unused for minutes, holds no lease, serves no request and
keeps no GET stream open (``SessionRegistry._room``). Only when none can go is it refused, with
503 to its ``initialize`` before anything is registered, in words that say what to do
(``SessionsFull``). Claude Code does not recover from a session ended so (it keeps sending the
dead session id): its user restarts it, which is why only a session left long unused goes.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import INTERNAL_ERROR
from mcp_types.jsonrpc import RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._net import Listening, listen
from .._stopping import EndWhenStopping, HearSignals, Stopping
from .._web import AccessGuard, hangup_stops, redact_access_log, stderr_logging
from . import DEFAULT_MAX_SESSIONS
from ._session import SessionRegistry, sessions_full

__all__ = ["STOPPED_MID_CALL", "SessionsFull", "StoppedCalls", "serve_http"]


def serve_http(
    server: MCPServer[Any],
    *,
    host: str,
    port: int,
    token: str | None,
    sessions: SessionRegistry | None,
    listening: Listening | None = None,
) -> None:
    """Serve ``http://HOST:PORT/mcp`` until SIGINT or SIGTERM, which stop it at once and
    quietly (``_stopping``: the open streams and waiting calls end, uvicorn then shuts the
    sessions down; a second Ctrl-C exits at once). ``listening``: the sockets
    ``_net.listen(host, port)`` gave a face that announced the URL first (the CLI; ``port``
    is then their port); without, they are opened here. Closes them. ``sessions``: the
    server's session registry, whose ``max_sessions`` bounds the sessions open at once (None:
    a server not built by ``build_server``, bounded by the SDK alone)."""
    import uvicorn

    if listening is None:
        listening = listen(host, port)
    stopping = Stopping()
    # The SDK's own bound counts HTTP sessions, agents or not, and refuses without making
    # room: twice the registry's, it leaves room for sessions between their initialize and
    # their agent's registration (or that never finish the handshake), which end idle.
    bound = DEFAULT_MAX_SESSIONS if sessions is None else sessions.max_sessions
    sdk_app = server.streamable_http_app(host=host, max_sessions=2 * bound)
    # (inside EndWhenStopping, whose own 503s say the server is stopping)
    full = SessionsFull(sdk_app, bound, sessions)
    ending = EndWhenStopping(StoppedCalls(full, stopping), stopping, what="this MCP server")
    # MCP clients all set headers: no ?token=, which uvicorn's access log would print.
    # Without a token, Host headers naming --host are served too (the URL the CLI announces).
    # The SDK checks Host headers itself only on --host 127.0.0.1, localhost or ::1 (taking
    # those three names, as the guard does there): on any other host, the guard's check alone.
    guarded = AccessGuard(ending, token, "this MCP server", query_token=False, own_host=host)
    app: ASGIApp = HearSignals(guarded, stopping)
    config = uvicorn.Config(
        app, log_level=server.settings.log_level.lower(), log_config=stderr_logging()
    )
    redact_access_log()  # (its access lines are logged at INFO: a token in a URL is cut out)
    # uvicorn stops on Ctrl-C, then raises it again: the normal way out, not an error.
    with listening, contextlib.suppress(KeyboardInterrupt), hangup_stops():
        uvicorn.Server(config).run(sockets=list(listening.sockets))


class SessionsFull:
    """ASGI middleware: a session past the bound makes room or is refused in words that say
    what to do.

    Before an ``initialize`` (a handshake-era POST naming no session) it asks the registry
    whether a session would have a place (``SessionRegistry.has_room``), closing nothing:
    refused when not, 503, nothing registered. The room itself is made when the session
    registers, after its ``initialized`` (a probe that never sends it closes nobody's
    session), by ending the session unused the longest that can go: for that this counts the
    HTTP requests open on each session (a GET stream included) for the registry
    (``http_busy``), tells it when a session's event stream (its GET) closed
    (``http_stream_closed``: a session under a fixed ``--name`` whose client is gone may be
    taken over at once), and ends a session as its client would, with a DELETE (``end``).
    The SDK's own refusal
    (503, a request that names no session: nothing else of the SDK answers 503) says the
    bound and what to do too, where the SDK's says only "Too many open sessions": its
    JSON-RPC error is kept (its code), only its message changes. Either refusal answers
    with the request's ``id``, as JSON-RPC asks, when its body can be read (``_request_id``;
    the SDK's said null); null when not."""

    def __init__(
        self, app: ASGIApp, max_sessions: int, sessions: SessionRegistry | None = None
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.message = sessions_full(max_sessions)
        self.open: Counter[str] = Counter()
        # The last request's scope, whose Host and credentials a DELETE of ``end`` repeats.
        self.template: Scope | None = None
        if sessions is not None:
            sessions.http_busy = self.busy
            sessions.end_http = self.end

    def busy(self, http_id: str) -> bool:
        return self.open[http_id] > 0

    async def end(self, http_id: str) -> None:
        """End an HTTP session as its client's DELETE would: the SDK forgets it, and its id
        then answers 404. A client is expected to start a new session then, but Claude Code
        keeps sending the dead id (a known upstream bug) until it is restarted: the registry
        ends only sessions unused for minutes (``MIN_IDLE_TO_MAKE_ROOM_S``)."""
        if self.template is None:  # (no request seen: no session to end)
            return
        dropped = {MCP_SESSION_ID_HEADER.lower().encode(), MCP_PROTOCOL_VERSION_HEADER.encode()}
        dropped |= {b"content-type", b"content-length"}
        headers = [(k, v) for k, v in self.template["headers"] if k.lower() not in dropped]
        headers.append((MCP_SESSION_ID_HEADER.lower().encode(), http_id.encode()))
        scope = {**self.template, "method": "DELETE", "headers": headers}

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(_message: Message) -> None:
            pass

        await self.app(scope, receive, discard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.template = dict(scope)  # (a copy: the SDK's router changes the one it is given)
        headers = dict(scope["headers"])
        http_id = headers.get(MCP_SESSION_ID_HEADER.lower().encode())
        if http_id is not None:
            key = http_id.decode("latin-1")
            self.open[key] += 1
            streamed = False

            async def listen(message: Message) -> None:
                nonlocal streamed
                if message["type"] == "http.response.start" and message["status"] == 200:
                    streamed = True  # (a GET answered 200 is the session's event stream)
                await send(message)

            try:
                await self.app(scope, receive, listen if scope["method"] == "GET" else send)
            finally:
                self.open[key] -= 1
                if not self.open[key]:
                    del self.open[key]
                if streamed and self.sessions is not None:
                    self.sessions.http_stream_closed(key)
            return
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER.encode())
        opening = scope["method"] == "POST" and (
            version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS
        )
        if opening and self.sessions is not None and not await self.sessions.has_room():
            sent = await _read_body(receive)
            await self._refuse(send, _REFUSAL, _REFUSAL_BODY, _request_id(sent))
            return
        refusal: Message | None = None
        body = b""
        request = _Body(receive)

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
                await self._refuse(send, refusal, body, _request_id(await request.rest()))

        await self.app(scope, request.receive, say)

    async def _refuse(
        self, send: Send, start: Message, body: bytes, request_id: RequestId | None
    ) -> None:
        try:
            reply = json.loads(body)
            reply["error"]["message"] = self.message
            reply["id"] = request_id
            body = json.dumps(reply).encode()
        except (ValueError, KeyError, TypeError):  # (not the SDK's JSON-RPC error: as sent)
            pass
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# A refusal of ours, made as the SDK makes its own (``_refuse`` fills in the message and the
# request's id).
_REFUSAL: Message = {
    "type": "http.response.start",
    "status": 503,
    "headers": [(b"content-type", b"application/json")],
}
_REFUSAL_BODY = json.dumps(
    {"jsonrpc": "2.0", "id": None, "error": {"code": INTERNAL_ERROR, "message": ""}}
).encode()


# What a call in flight is answered when the server stops under it (``StoppedCalls``).
STOPPED_MID_CALL = (
    "the MCP server stopped before this call finished, and its result is lost: call again "
    "once the server is back (a new session). A wait it was in (claim_task, next_question, "
    "ask, wait_for_pass) took nothing and withdrew the question it posted; a write (a report, "
    "an answer) completed or never happened; the tasks the session held went back to their "
    "queues, to be claimed again."
)


class StoppedCalls:
    """ASGI middleware, inside ``EndWhenStopping``: a tool call in flight as the server stops
    is answered with a JSON-RPC error for its id (``STOPPED_MID_CALL``), its SSE stream's last
    event, rather than a stream that just ends, which a client cannot tell from a network
    fault (the inspector says only "SSE stream ended without a response").

    The stream is ended two ways, both seen here: ``EndWhenStopping`` cancels the request,
    whose response is then ended here (its own last chunk then finds it ended), or the SSE
    library ends it on the server's exit (a last chunk sent while stopping). Either way, a
    response already sent for the id (the call finished meanwhile) is not answered twice."""

    def __init__(self, app: ASGIApp, stopping: Stopping) -> None:
        self.app = app
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        call = _Call(receive, send, self.stopping)
        try:
            await self.app(scope, call.receive, call.send)
        finally:
            # (cancelled by EndWhenStopping: a plain await, its cancellation being one-shot)
            if self.stopping.event.is_set() and call.streaming and not call.ended:
                await call.send({"type": "http.response.body", "body": b"", "more_body": False})


class _Call:
    """One POST's way through: the ids of the requests it carries (read from its body as
    the SDK reads it), and whether its SSE stream answered them."""

    def __init__(self, receive: Receive, send: Send, stopping: Stopping) -> None:
        self._receive = receive
        self._send = send
        self._stopping = stopping
        self._body: list[bytes] = []
        self._events = b""  # (the SSE text sent, up to its last whole line)
        self.unanswered: list[RequestId] = []
        self.streaming = self.ended = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._body.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.unanswered = _request_ids(b"".join(self._body))
                self._body = []
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            kind = headers.get(b"content-type", b"").split(b";")[0].strip()
            self.streaming = kind == b"text/event-stream"
        elif message["type"] == "http.response.body" and self.streaming:
            self._answered(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = True
                if self._stopping.event.is_set() and self.unanswered:
                    await self._send(
                        {"type": "http.response.body", "body": self._stopped(), "more_body": True}
                    )
        await self._send(message)

    def _answered(self, chunk: bytes) -> None:
        """Strike off the ids the SSE events sent so far answer (a result or an error)."""
        if not self.unanswered:  # (nothing left to answer: nothing to read)
            return
        lines = (self._events + chunk).splitlines(keepends=True)
        self._events = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            try:
                sent = json.loads(line[5:])
            except (ValueError, RecursionError):
                continue
            if isinstance(sent, dict) and ("result" in sent or "error" in sent):
                self.unanswered = [i for i in self.unanswered if i != sent.get("id")]

    def _stopped(self) -> bytes:
        events = []
        for request_id in self.unanswered:
            error = {"code": INTERNAL_ERROR, "message": STOPPED_MID_CALL}
            data = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error})
            events.append(f"event: message\r\ndata: {data}\r\n\r\n")
        self.unanswered = []
        return "".join(events).encode()


# The most of a request's body kept to read its id when it is refused (an ``initialize`` is a
# few hundred bytes): past it, the refusal's id is null, as of a body that cannot be read.
_ID_READ_BYTES = 64 * 1024


class _Body:
    """A request's body as the app receives it, kept (up to ``_ID_READ_BYTES``) to read
    its id should the app's answer be refused."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._chunks: list[bytes] = []
        self._kept = 0
        self._ended = False  # its last chunk received, or the client gone

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request":
            self._ended = True
            return message
        if not self.over:
            chunk = message.get("body", b"")
            self._chunks.append(chunk)
            self._kept += len(chunk)
        self._ended = not message.get("more_body", False)
        return message

    async def rest(self) -> bytes:
        """The body, read to its end here where the app did not (the SDK refuses a session
        without reading the request: its id is still read), as ``read`` gives it."""
        while not self._ended and not self.over:
            await self.receive()
        return self.read()

    @property
    def over(self) -> bool:
        return self._kept > _ID_READ_BYTES

    def read(self) -> bytes:
        """The body received, b"" when over ``_ID_READ_BYTES`` (no id read then)."""
        return b"" if self.over else b"".join(self._chunks)


async def _read_body(receive: Receive) -> bytes:
    """A request's body, read here (the app never sees the request), b"" when over
    ``_ID_READ_BYTES`` (cut short when the client goes: no id is read from it)."""
    return await _Body(receive).rest()


def _is_id(value: object) -> bool:
    """Whether ``value`` is a JSON-RPC request id: a string or an integer (not true or
    false, which Python counts as integers)."""
    return isinstance(value, str | int) and not isinstance(value, bool)


def _request_id(body: bytes) -> RequestId | None:
    """The id of the one JSON-RPC request ``body`` holds (``_request_ids``' rule); None when
    it holds none, or a batch, or is no JSON (an integer too long for Python's parser
    included)."""
    ids = _request_ids(body, batch=False)
    return ids[0] if ids else None


def _request_ids(body: bytes, *, batch: bool = True) -> list[RequestId]:
    """The ids of the JSON-RPC requests a POST carries (one, or with ``batch`` a batch of an
    older revision); none when it is no JSON-RPC the SDK would serve (it answers that
    itself)."""
    try:
        sent = json.loads(body)
    except (ValueError, RecursionError):  # (a body nested too deep: the SDK says so)
        return []
    if isinstance(sent, list) and not batch:
        return []
    messages = sent if isinstance(sent, list) else [sent]
    return [
        m["id"] for m in messages if isinstance(m, dict) and "method" in m and _is_id(m.get("id"))
    ]
