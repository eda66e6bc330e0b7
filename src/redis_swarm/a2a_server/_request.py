"""The raw HTTP request, below the SDK's routes: how much of a body the server reads, and
what the SDK's parsing hides from the handler.

**The body limit.** The SDK's routes read a whole body and parse it before anything checks
its size, so one request of 200 MB cost the server 900 MB of memory before the swarm refused
its 64 KiB description. ``BodyLimit`` counts the bytes as they arrive (a ``Content-Length``
over the limit is refused before any is read; a chunked body once it passes it) and answers
413. The limit (``max_body_bytes``) is the largest task the swarm takes, written as
verbosely as JSON allows, plus the request's envelope: nothing the swarm would store is
refused here.

**The raw parameters.** The SDK parses parameters ignoring what it does not know: an
unknown enum value reads as 0, which ``ListTasks`` takes for "no filter", so a client that
misspelt a state got every task. ``RawContextBuilder`` keeps the request's body and query in
the call context, so the handler can tell a value left out from one it could not read
(``raw_param``).

**Members of the wrong type.** The SDK's parser skips a member that A2A makes an object
but that came as another JSON value: ``"configuration": "returnImmediately"`` read as no
configuration (the call then blocking), ``"message": "hello"`` as a message without id.
``check_members`` refuses it, naming it and its type (the handler calls it for the methods
whose parameters hold objects); on the JSON-RPC path ``RpcChecks`` says the same
(``wrong_member``) before the SDK parses the request, whose parser answers some other such
values (an array, a number where an object goes) with a bare "Invalid params".

**Bodies that are not UTF-8, or nested too deep.** JSON is UTF-8 (RFC 8259); the SDK's
routes decode a body without catching the codec's error, so a stray byte was an internal
error (JSON-RPC -32603 with the codec's words, HTTP+JSON 500) and a traceback in the log.
JSON nested some thousand levels deep (5,000 brackets fit well within the body limit) makes
Python's parser raise ``RecursionError``, which is no ``ValueError``: the JSON-RPC path
answered a plain-text 500, a traceback in the log; and how deep a parse gets before it
raises depends on how deep the stack already is. The swarm stores no JSON nested deeper than
``MAX_JSON_DEPTH`` (and A2A's parser takes far less in a metadata or a data part), so a body
nested deeper is refused before anything parses it. ``unreadable`` says what is wrong with
such a body: ``RpcChecks`` answers it on the JSON-RPC path (-32700, a parse error),
``ReadableBodies`` on the others (400, the SDK's answer to a body it cannot parse); each is
one line in the log.

**HTTP+JSON bodies that are no JSON object.** The SDK's cancel route (and the POST of a
subscription) reads no body: ``POST /tasks/ID:cancel`` with ``{not json``, ``[1,2]``,
``null`` or ``"str"`` cancelled the task, while ``check_members`` skipped what did not parse
(it refuses ``{"metadata": "x"}``). The routes that parse one answered ``null`` with
"TypeError: 'NoneType' object is not iterable" and took ``"str"`` for ``{}``. A body sent to
an HTTP+JSON route (a POST: the others read none) must be a JSON object
(``not_an_object``): ``ReadableBodies`` answers any other 400, as the SDK answers a body it
cannot parse, saying what to send. No body (the cancel route's usual call) is no
parameters, as before.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE, MAX_LIST_TASKS_PAGE_SIZE
from a2a.utils.error_handlers import build_rest_error_payload
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP, InvalidParamsError
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._codec import dumps
from .._errors import ValidationError
from .._protocol import Limits
from .._validate import MAX_DESCRIPTION_CHARS, MAX_JSON_DEPTH, check_json_depth
from .._web import first_given_twice
from ._words import OPERATOR_CONTEXT

__all__ = [
    "ABSENT",
    "ENVELOPE_BYTES",
    "ESCAPE_FACTOR",
    "TEXT_ROOM_BYTES",
    "TIMESTAMP_NAMES",
    "BodyLimit",
    "HttpJsonOnly",
    "NumberTooLong",
    "QueryChecks",
    "RawContextBuilder",
    "ReadableBodies",
    "bad_integers",
    "bad_timestamp",
    "body_of",
    "check_members",
    "is_integer",
    "json_name",
    "json_of",
    "max_body_bytes",
    "not_an_integer",
    "not_an_object",
    "raw_param",
    "send_json",
    "unreadable",
    "with_body",
    "wrong_member",
]

log = logging.getLogger(__name__)

# JSON lets a client write what the swarm stores in one byte of UTF-8 as up to three (a
# non-ASCII character as a \\u escape: 2 bytes as 6, 4 bytes as 12).
ESCAPE_FACTOR = 3
# Room for a task's text: 12 bytes (an escaped character outside the BMP) for each character
# of the core's description limit.
TEXT_ROOM_BYTES = 12 * MAX_DESCRIPTION_CHARS
# Room for the rest of a request: ids, metadata, a webhook's configuration, JSON-RPC's wrapper.
ENVELOPE_BYTES = 64 * 1024

# The scope key under which BodyLimit leaves the body it read, for RawContextBuilder.
_BODY_KEY = "redis_swarm.body"
# The call context's state key of the raw request.
_RAW_KEY = "redis_swarm.raw"


def max_body_bytes(limits: Limits) -> int:
    """The largest request body an A2A server of a swarm with ``limits`` reads: the largest
    task data it takes and the longest description, both written with every character
    escaped, and an envelope."""
    return ESCAPE_FACTOR * limits.max_task_data_bytes + TEXT_ROOM_BYTES + ENVELOPE_BYTES


class BodyLimit:
    """ASGI wrapper: reads each request's body, at most ``max_bytes`` of it, before the app
    runs (which then gets it whole); a bigger one is answered 413 and not read further."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared(scope) > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before it had sent it
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:  # then what the server says next: the client's disconnection
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, _BODY_KEY: body}, replay, send)

    @staticmethod
    def _declared(scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # (the server refuses a malformed one before the app runs)
        return 0

    async def _refuse(self, send: Send) -> None:
        body = {
            "error": "Payload Too Large",
            "message": f"the request body is over {self.max_bytes:,} bytes, the most this "
            "A2A server reads (room for the largest task the swarm takes): put big "
            f"material in a swarm context {OPERATOR_CONTEXT} and name it in the text",
        }
        # (connection: close: the rest of the body is not read)
        await send_json(send, 413, body, [(b"connection", b"close")])


async def send_json(
    send: Send, status: int, body: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer ``body`` as JSON with HTTP ``status`` (and ``headers``), below the SDK's routes."""
    data = dumps(body).encode()
    sent = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": sent})
    await send({"type": "http.response.body", "body": data})


def unreadable(body: bytes) -> str | None:
    """What is wrong with ``body`` if it is not UTF-8 (which JSON is) or is nested deeper
    than ``MAX_JSON_DEPTH`` (see the module), else None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"the request body is not UTF-8 (byte {exc.start} is 0x{body[exc.start]:02x}): "
            "send it as UTF-8 JSON (any character in its UTF-8 bytes, or as a \\u escape)"
        )
    try:
        check_json_depth("the request body", text)
    except ValidationError:
        return (
            f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels, the most this "
            "A2A server reads (the swarm stores nothing deeper): flatten it"
        )
    return None


def body_of(scope: Scope) -> bytes:
    """The body ``BodyLimit`` read of the request of ``scope`` (empty outside it)."""
    body: bytes = scope.get(_BODY_KEY, b"")
    return body


def with_body(scope: Scope, receive: Receive, body: bytes) -> tuple[Scope, Receive]:
    """The scope and receive of the request of ``scope`` (read by ``BodyLimit``) with ``body``
    for its body: what the app then reads, and ``body_of`` says."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        await receive()  # (BodyLimit's replay of the body it read, which this one replaces)
        return {"type": "http.request", "body": body, "more_body": False}

    return {**scope, _BODY_KEY: body}, replay


@dataclass(frozen=True)
class RawRequest:
    """What a request said before the SDK parsed it: its body (JSON-RPC) and query
    (HTTP+JSON's GET methods)."""

    body: bytes
    query: dict[str, str] = field(default_factory=dict)


class RawContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context, with the raw request kept in its state (see ``raw_param``):
    the body of a POST, the query of the others, whose routes read no body (a GET /tasks
    with a body of ``{}`` had its query's status read as left out: every task listed)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        body = request.scope.get(_BODY_KEY, b"") if request.method == "POST" else b""
        context.state[_RAW_KEY] = RawRequest(body, dict(request.query_params))
        return context


# ListTasks' filter by time, as a JSON member or query parameter names it (JSON-RPC's
# parser takes the field's own name too).
TIMESTAMP_NAMES = ("statusTimestampAfter", "status_timestamp_after")


def bad_timestamp(params: Mapping[str, Any], named: str) -> str | None:
    """Why the ``statusTimestampAfter`` of ``params`` (a JSON-RPC request's, or a query's)
    is refused, if it is: protobuf's parser said "time data 'not-a' does not match format
    ...", quoting a cut value and no field. ``named``: how the client names a member
    (``params.``). null, or a member left out, is no filter."""
    for name in TIMESTAMP_NAMES:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            try:
                Timestamp().FromJsonString(value)
                continue
            except ValueError:
                shown = f"{value[:60]!r} is not a timestamp"
        else:
            shown = f"is {json_name(value)}"
        return (
            f"{named}{name} {shown}: give a time in ISO 8601 (RFC 3339) form, with a date, a "
            "time and a zone, such as 2026-01-31T12:00:00Z, or leave it out for tasks of any "
            "time"
        )
    return None


class HttpJsonOnly:
    """Base of an ASGI wrapper of the HTTP+JSON binding alone: a request to any path but
    JSON-RPC's ``rpc_path`` goes through ``handle``; anything else passes as it is."""

    def __init__(self, app: ASGIApp, rpc_path: str) -> None:
        self.app = app
        self.rpc_path = rpc_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == self.rpc_path:
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class NumberTooLong(ValueError):
    """A JSON number of more digits than Python reads (``json_of``), said in words."""


def _read_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    most = sys.get_int_max_str_digits()
    if most and digits > most:
        raise NumberTooLong(
            f"the request body holds a number of {digits:,} digits, over the {most:,} this "
            "A2A server reads: send a whole number in its member's range (or, in a data "
            "part or metadata, a long number as a string)"
        )
    return int(text)


def json_of(body: bytes) -> Any:
    """``body`` parsed as JSON, a number of more digits than Python reads refused in words
    (``NumberTooLong``; Python's own said "Exceeds the limit (4300 digits) for integer
    string conversion", and the SDK's JSON-RPC route answered it -32603, an internal
    error, with a traceback in the log); other ValueErrors as ``json.loads`` raises them."""
    return json.loads(body, parse_int=_read_int)


def not_an_object(body: bytes) -> str | None:
    """What is wrong with ``body``, sent to an HTTP+JSON route, if it is no JSON object (see
    the module); None for one, or for no body at all. (A body ``unreadable`` refuses is
    refused before.)"""
    if not body.strip():
        return None
    try:
        sent = json_of(body)
    except NumberTooLong as exc:
        return str(exc)
    except ValueError as exc:
        return f"the request body is not JSON ({exc}): send a JSON object of the request's members"
    if isinstance(sent, dict):
        return None
    return (
        f"the request body is {json_name(sent)}; it must be a JSON object of the request's members"
    )


class ReadableBodies(HttpJsonOnly):
    """ASGI wrapper of the HTTP+JSON binding (inside ``BodyLimit``, which read the body;
    ``RpcChecks`` says the same on JSON-RPC's path): a body that is not UTF-8, is nested too
    deep or is no JSON object is answered 400 as the SDK answers one it cannot parse, with
    what to send, and logged as one line (see the module)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = body_of(scope)
        refusal = unreadable(body)
        if refusal is None and scope["method"] == "POST":  # (the other routes read no body)
            refusal = not_an_object(body)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        log.warning("Parse error: %s", refusal)  # (as the SDK logs a body it cannot parse)
        await send_json(send, 400, build_rest_error_payload(ParseError(refusal)))


class QueryChecks(HttpJsonOnly):
    """ASGI wrapper of the HTTP+JSON binding: a query that gives a parameter twice is
    refused, naming it (the SDK took the last one of ``?pageSize=2&pageSize=3``), and so is
    a ``statusTimestampAfter`` that is no timestamp (``bad_timestamp``): 400, as the SDK
    answers invalid params, one line in the log."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = QueryParams(scope.get("query_string", b""))
        refusal = (
            first_given_twice(query.multi_items())
            or bad_timestamp(query, "query parameter ")
            or bad_integers(query, "query parameter ")
        )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        error = InvalidParamsError(refusal)
        # (as the SDK logs invalid params: one line)
        code = JSON_RPC_ERROR_CODE_MAP[InvalidParamsError]
        log.warning("Request error: Code=%s, Message='%s'", code, refusal)
        await send_json(send, 400, build_rest_error_payload(error))


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


# What ``raw_param`` returns for a parameter the request did not give.
ABSENT: Any = _Absent()


def raw_param(context: ServerCallContext, name: str) -> Any:
    """Parameter ``name`` of the request as the client sent it: a JSON-RPC request's
    ``params`` member, an HTTP+JSON body's member, else the query's; ``ABSENT`` when it gave
    none; None when the raw request is not known (a handler called without
    ``RawContextBuilder``)."""
    raw = context.state.get(_RAW_KEY)
    if not isinstance(raw, RawRequest):
        return None
    if raw.body:
        params, _ = _body_params(raw.body)
        if params is None:
            return None
        return params.get(name, ABSENT) if isinstance(params, dict) else ABSENT
    return raw.query.get(name, ABSENT)


def _body_params(body: bytes) -> tuple[Any, str]:
    """The parameters a body sent (a JSON-RPC request's ``params``, an HTTP+JSON body),
    None when it is no JSON object; and how a client names a member of them (``params.``,
    or the body's)."""
    try:
        sent = json.loads(body)
    except ValueError:  # (refused before the handler runs: ReadableBodies, on HTTP+JSON;
        return None, ""  # the SDK's route, on JSON-RPC)
    if not isinstance(sent, dict):
        return None, ""
    if "jsonrpc" in sent:
        return sent.get("params"), "params."
    return sent, "the body's "


# Message types whose JSON form is no object (a Timestamp is a string, a Value any JSON...):
# every google.protobuf type but these two, which are objects (whose members are free).
_FREE_OBJECTS = frozenset({"google.protobuf.Struct", "google.protobuf.Any"})


def check_members(context: ServerCallContext, params: ProtoMessage) -> None:
    """Refuse (InvalidParamsError) a request whose body sent a member that A2A makes an
    object (``params``' type says which, at any depth) as another JSON value: the SDK's
    parser skips it (``"configuration": "returnImmediately"`` was no configuration, the call
    then blocking; ``"message": "hello"`` said "the message has no messageId"). The refusal
    names it and its type. null is no value (as protobuf reads it)."""
    raw = context.state.get(_RAW_KEY)
    if not isinstance(raw, RawRequest) or not raw.body:
        return
    sent, named = _body_params(raw.body)
    if isinstance(sent, dict):
        described: Any = params.DESCRIPTOR  # (upb's Descriptor: the same API)
        wrong = wrong_member(sent, described, named)
        if wrong is not None:
            raise InvalidParamsError(wrong)


def wrong_member(sent: dict[str, Any], message: Descriptor, named: str) -> str | None:
    """Why parameters ``sent`` (of type ``message``) are refused, if they hold a member
    that A2A makes an object as another JSON value (see ``check_members``), or a member
    that A2A makes an integer as anything but a whole number in its range
    (``not_an_integer``); ``named``: how the client names a member of them (``params.``)."""
    found = _not_an_object(sent, message)
    if found is not None:
        path, value, kind = found
        return (
            f"{named}{path} is {json_name(value)}; it must be an object (A2A's {kind}, of "
            "named members)"
        )
    number = _not_an_integer(sent, message)
    if number is not None:
        return not_an_integer(f"{named}{number[0]}", number[1])
    return None


# The integers A2A's requests hold (int32: pageSize, historyLength), as protobuf reads them
# from JSON: a number or a string of one. Anything else, or one past the range, protobuf
# refused in its own words ("Failed to parse pageSize field: invalid literal for int() with
# base 10: 'abc'", "Couldn't parse non-integer string", Python's "Exceeds the limit (4300
# digits)" for a longer one), naming no value to send.
_INT32 = (-(2**31), 2**31 - 1)
_INTEGER = re.compile(r"-?[0-9]{1,10}", re.ASCII)  # (longer is out of range: never read)
# What each integer member is, said with its refusal (its name as JSON and as protobuf).
_INTEGER_WORDS = {
    "pageSize": (
        f"how many tasks a page holds, 1 to {MAX_LIST_TASKS_PAGE_SIZE} (left out: "
        f"{DEFAULT_LIST_TASKS_PAGE_SIZE})"
    ),
    "historyLength": (
        "how many of the task's newest messages to return, 0 for none (left out: all)"
    ),
}
_INTEGER_WORDS |= {"page_size": _INTEGER_WORDS["pageSize"]}
_INTEGER_WORDS |= {"history_length": _INTEGER_WORDS["historyLength"]}


def is_integer(value: Any) -> bool:
    """Whether ``value`` (decoded JSON, or a query's text) is a whole number of int32's
    range as protobuf reads one: a JSON number, or a string of ASCII digits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer() and _INT32[0] <= value <= _INT32[1]
    if isinstance(value, str):
        if _INTEGER.fullmatch(value) is None:
            return False
        value = int(value)
    return isinstance(value, int) and _INT32[0] <= value <= _INT32[1]


def not_an_integer(named: str, value: Any) -> str:
    """What a member that A2A makes an integer (``named``: as the client names it) is told
    when ``value`` is none (``is_integer``): what it got, and what to give."""
    name = named.rpartition(".")[2].removeprefix("query parameter ")
    if isinstance(value, str):
        shown = (
            repr(value) if len(value) <= 45 else f"{value[:45]!r}... ({len(value):,} characters)"
        )
    elif isinstance(value, bool) or not isinstance(value, int | float):
        shown = json_name(value)
    elif isinstance(value, float) and not value.is_integer():
        shown = f"{value:g}, not a whole number"
    else:
        shown = "out of range"
    what = _INTEGER_WORDS.get(name, f"a whole number, {_INT32[0]:,} to {_INT32[1]:,}")
    return f"{named} is {shown}: give a whole number in ASCII digits: {what}"


def _not_an_integer(params: dict[str, Any], message: Descriptor) -> tuple[str, Any] | None:
    """The first member of ``params`` that ``message`` makes an integer but is no whole
    number of its range (``is_integer``), at any depth: its path, its value. null is no
    value (as protobuf reads it)."""
    for name, value in params.items():
        field = message.fields_by_camelcase_name.get(name) or message.fields_by_name.get(name)
        if field is None or value is None or field.is_repeated:
            continue
        kind = field.message_type
        if kind is None:
            if field.type == FieldDescriptor.TYPE_INT32 and not is_integer(value):
                return name, value
            continue
        if isinstance(value, dict) and not kind.full_name.startswith("google.protobuf."):
            inner = _not_an_integer(value, kind)
            if inner is not None:
                return f"{name}.{inner[0]}", inner[1]
    return None


def bad_integers(params: Mapping[str, Any], named: str) -> str | None:
    """Why a query's integer parameter (``pageSize``, ``historyLength``) is refused, if one
    is (``not_an_integer``); ``named``: how the client names one (``query parameter ``)."""
    for name, value in params.items():
        if name in _INTEGER_WORDS and not is_integer(value):
            return not_an_integer(f"{named}{name}", value)
    return None


# JSON's names of the values a JSON object decodes to, but an object.
_JSON_NAMES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),  # (before int: a bool is an int in Python)
    (int, "a number"),
    (float, "a number"),
    (str, "a string"),
    (list, "an array"),
)


def json_name(value: Any) -> str:
    """What JSON value ``value`` (decoded JSON, no object) is, as a client is told."""
    return next(name for kind, name in _JSON_NAMES if isinstance(value, kind))


def _not_an_object(params: dict[str, Any], message: Descriptor) -> tuple[str, Any, str] | None:
    """The first member of ``params`` that ``message`` makes an object but is another JSON
    value, at any depth: its path, its value, its type's name. (An array's items are the
    SDK's to check.)"""
    for name, value in params.items():
        field = message.fields_by_camelcase_name.get(name) or message.fields_by_name.get(name)
        # (repeated, a map too: a map's JSON is an object, of free members)
        if field is None or field.message_type is None or value is None or field.is_repeated:
            continue
        kind = field.message_type
        if kind.full_name.startswith("google.protobuf.") and kind.full_name not in _FREE_OBJECTS:
            continue
        if not isinstance(value, dict):
            return name, value, kind.name
        if kind.full_name not in _FREE_OBJECTS:
            inner = _not_an_object(value, kind)
            if inner is not None:
                return f"{name}.{inner[0]}", inner[1], inner[2]
    return None
