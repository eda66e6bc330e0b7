"""Resumable A2A streams: an SSE ``id:`` on every update, and a ``SubscribeToTask`` that
honours the ``Last-Event-ID`` header by sending what follows that update, and only that.

A2A 1.0 defines no resumption beyond subscribing again (the task as it is now, then what
follows); the SSE standard's ``id:`` field and ``Last-Event-ID`` header add it without
touching the protocol: a client that ignores ids (the SDKs' do) is served as before.

The id is a ``Position``: the event stream id to replay after, how many updates of the next
event of the task the client already has (the completion is two: the finding's artifact,
then the final status), and the last state the client was told (a replayed status equal to
it is not sent again, as in the live stream). The handler puts it in each update's metadata
(``POSITION_KEY``); ``SSEIds``, a wrapper around the SDK's routes, copies it to the SSE
event's ``id:`` field, since the SDK's routes write ``data:`` only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from a2a.types import TaskState
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._convert import UPDATES_PER_EVENT

__all__ = ["POSITION_KEY", "Position", "SSEIds", "before"]

# The metadata key of an update (and of a stream's first task) that holds its position.
POSITION_KEY = "redis-swarm/position"
# A Redis stream id is MS-SEQ, both 64-bit unsigned numbers.
_MAX_SEQ = 2**64 - 1
# The id as this server writes it: ASCII digits only, none longer than a 64-bit number.
_POSITION = re.compile(r"([0-9]{1,20})-([0-9]{1,20})\.([0-9]{1,20})\.([0-9]{1,20})")


@dataclass(frozen=True)
class Position:
    after: str  # the event stream id the replay starts after
    skip: int  # updates of the task's next event the client already has
    state: int  # the TaskState the client was told last (0: none yet)

    def __str__(self) -> str:
        return f"{self.after}.{self.skip}.{self.state}"

    @classmethod
    def parse(cls, text: str | None) -> Position | None:
        """The position of a ``Last-Event-ID``; None for anything this server could not have
        written (a client may send one from another stream: it then gets a plain
        subscription). An id from the future is told apart by the handler, which knows the
        stream's newest event."""
        found = _POSITION.fullmatch((text or "").strip())
        if found is None:
            return None
        ms, seq, skip, state = (int(n) for n in found.groups())
        if ms > _MAX_SEQ or seq > _MAX_SEQ or state not in TaskState.values():
            return None
        if skip >= UPDATES_PER_EVENT:  # it skips part of one event, never a whole one
            return None
        return cls(f"{ms}-{seq}", skip, state)

    @classmethod
    def in_headers(cls, headers: Mapping[str, str]) -> Position | None:
        return cls.parse(headers.get("last-event-id"))


def before(event_id: str) -> str:
    """The stream id just before ``event_id``: a replay after it starts with that event."""
    ms, _, seq = event_id.partition("-")
    if int(seq) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-{_MAX_SEQ}" if int(ms) > 0 else "0-0"


def _position_of(data: Any) -> str | None:
    """The position in one SSE event's JSON: a JSON-RPC result or an HTTP+JSON body, holding
    a task, a status update or an artifact update."""
    body = data.get("result", data) if isinstance(data, dict) else None
    if not isinstance(body, dict) or len(body) != 1:
        return None
    payload = next(iter(body.values()))
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    found = metadata.get(POSITION_KEY) if isinstance(metadata, dict) else None
    return found if isinstance(found, str) else None


def _with_ids(chunk: bytes) -> bytes:
    """Each SSE event of ``chunk`` with an ``id:`` line when its data carries a position.
    sse-starlette sends one whole event per chunk; anything else passes unchanged."""
    text = chunk.decode()
    sep = "\r\n" if "\r\n" in text else "\n"
    events = text.split(sep * 2)
    out = []
    for event in events:
        lines = event.split(sep)
        data = "\n".join(line[5:].lstrip(" ") for line in lines if line.startswith("data:"))
        position = None
        if data and not any(line.startswith("id:") for line in lines):
            try:
                position = _position_of(json.loads(data))
            except ValueError:
                position = None
        out.append(sep.join([f"id: {position}", *lines]) if position else event)
    return (sep * 2).join(out).encode()


class SSEIds:
    """ASGI wrapper: the SSE responses of the app get an ``id:`` per update (see above)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streaming = False

        async def send_with_ids(message: Message) -> None:
            nonlocal streaming
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            elif message["type"] == "http.response.body" and streaming and message.get("body"):
                message = {**message, "body": _with_ids(message["body"])}
            await send(message)

        await self.app(scope, receive, send_with_ids)
