"""What this server sends, written as GetTask writes a task: whole numbers as integers, and
no field a task leaves empty.

The SDK's routes write the answers (``MessageToDict``). Two things come out of that which a
client should not see: a number inside a ``Struct`` (a task's metadata, a finding's data) is
a protobuf double, which Python writes ``1.0`` (``"attempts": 1.0``, a time in milliseconds
as ``1796411822435.0``); and ListTasks is written with every field of no presence printed
(the SDK's ``serialize_list_tasks_response``, for the page's own required fields), so each
of its tasks carries ``"filename": ""``, ``"mediaType": ""``, ``"extensions": []`` where
GetTask leaves them out. ``WireJson`` rewrites the app's JSON answers and SSE events: every
whole number as an integer (no field of A2A 1.0 is a float: only a Struct's numbers are),
and each task of a ListTasks page through ``render``, the SDK's GetTask writing, and the JSON
written by ``_codec.shown_json`` (no control character a terminal acts on, none that
reorders a line, raw: a client may show a task's text as it is). Push
notifications (``_push``) write their bodies with ``render`` too.
"""

from __future__ import annotations

import json
from typing import Any

from a2a.types import Task
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message as ProtoMessage
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._codec import shown_json

__all__ = ["WireJson", "render", "whole_numbers"]

# The fields of a ListTasks answer (JSON-RPC's result, HTTP+JSON's body): all of them, always.
_PAGE_FIELDS = frozenset({"tasks", "nextPageToken", "pageSize", "totalSize"})


def whole_numbers(value: Any) -> Any:
    """``value`` (JSON as Python) with each float that is a whole number as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def render(message: ProtoMessage) -> Any:
    """An A2A object as JSON, as GetTask writes it (camelCase, empty fields left out), with
    whole numbers as integers."""
    return whole_numbers(MessageToDict(message, preserving_proto_field_name=False))


def _task_as_get_task_writes_it(written: Any) -> Any:
    try:
        return render(ParseDict(written, Task()))
    except (ParseError, TypeError, ValueError):  # not a task after all: as it was
        return written


def rewrite(body: Any) -> Any:
    """One JSON answer as this server sends it (see the module's docstring)."""
    page = body.get("result", body) if isinstance(body, dict) else None
    if isinstance(page, dict) and set(page) == _PAGE_FIELDS and isinstance(page["tasks"], list):
        page["tasks"] = [_task_as_get_task_writes_it(task) for task in page["tasks"]]
    return whole_numbers(body)


def _dumps(value: Any) -> bytes:
    # (as Starlette's JSONResponse writes it, through ``shown_json``)
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return shown_json(text).encode()


def _json_body(raw: bytes) -> bytes:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw
    return _dumps(rewrite(body))


def _sse_chunk(chunk: bytes) -> bytes:
    """Each SSE event of ``chunk`` with its JSON data rewritten. sse-starlette sends one
    whole event per chunk, its JSON on one ``data:`` line; anything else passes unchanged."""
    text = chunk.decode()
    sep = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(sep)
    for n, line in enumerate(lines):
        if line.startswith("data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                continue
            lines[n] = "data: " + _dumps(rewrite(data)).decode()
    return sep.join(lines).encode()


class WireJson:
    """ASGI wrapper: the app's JSON answers and SSE events as this server sends them (see the
    module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = ""
        start: Message | None = None
        held: list[bytes] = []

        async def send_rewritten(message: Message) -> None:
            nonlocal kind, start
            if message["type"] == "http.response.start":
                given = dict(message.get("headers", []))
                media = given.get(b"content-type", b"").split(b";")[0].strip()
                if media.startswith(b"text/event-stream"):
                    kind = "sse"
                elif media == b"application/json" or media.endswith(b"+json"):
                    kind, start = "json", message  # sent with the body: its length changes
                    return
                await send(message)
            elif message["type"] == "http.response.body" and kind == "json":
                held.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = _json_body(b"".join(held))
                assert start is not None
                headers = [
                    (name, value)
                    for name, value in start.get("headers", [])
                    if name.lower() != b"content-length"
                ]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            elif message["type"] == "http.response.body" and kind == "sse" and message.get("body"):
                await send({**message, "body": _sse_chunk(message["body"])})
            else:
                await send(message)

        await self.app(scope, receive, send_rewritten)
