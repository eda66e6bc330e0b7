"""JSON-RPC requests the SDK's route answers unhelpfully, answered here first.

The SDK's JSON-RPC route (not patched: wrapped) reads ``params`` given as an array as no
parameters at all (so ``GetTask`` said "task id is empty"), skips a member of ``params``
that A2A makes an object sent as another JSON value, or answers it a bare "Invalid params"
(``"configuration": "returnImmediately"`` was no configuration, the call then blocking),
answers a method it does not know, A2A 0.3's names (``tasks/get``) included, with a bare
"Method not found", answers a body that is not UTF-8 with an internal error (and a
traceback in the log), and answers a notification (a request of JSON-RPC 2.0 without
``id``), which JSON-RPC 2.0 says a server must not reply to; a body nested some thousand
levels deep was a plain-text 500 here, before the SDK's route, and a traceback.
``RpcChecks``, on the JSON-RPC path only, says what to send instead for the first four (a
member of the wrong type is named: ``_request.wrong_member``; a body not UTF-8, or nested
deeper than the swarm stores, is a parse error, -32700: ``_request.unreadable``), and
answers a notification HTTP 204, no body. A request that is not valid JSON-RPC 2.0
(``jsonrpc`` not "2.0", an ``id`` neither a string, an integer nor null) goes to the SDK,
which answers it -32600 with its id when that is a valid one, else with id null.

A notification is run without its reply, but never left to hold the connection: a
``SendMessage`` is run as if it said ``returnImmediately`` (no waiting for the task to
settle), a ``SendStreamingMessage`` as such a ``SendMessage`` (the stream nobody reads would
last the task's whole run), and a ``SubscribeToTask`` not at all (it only reads).
"""

from __future__ import annotations

import logging
from typing import Any

from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._codec import dumps
from ._request import (
    NumberTooLong,
    bad_timestamp,
    body_of,
    json_name,
    json_of,
    send_json,
    unreadable,
    with_body,
    wrong_member,
)

__all__ = ["A2A_0_3_METHODS", "A2A_METHODS", "RpcChecks"]

log = logging.getLogger(__name__)

# A2A 0.3's method names, and their names in A2A 1.0, which this server speaks.
A2A_0_3_METHODS = {
    "message/send": "SendMessage",
    "message/stream": "SendStreamingMessage",
    "tasks/get": "GetTask",
    "tasks/list": "ListTasks",
    "tasks/cancel": "CancelTask",
    "tasks/resubscribe": "SubscribeToTask",
    "tasks/pushNotificationConfig/set": "CreateTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/get": "GetTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/list": "ListTaskPushNotificationConfigs",
    "tasks/pushNotificationConfig/delete": "DeleteTaskPushNotificationConfig",
    "agent/getAuthenticatedExtendedCard": "GetExtendedAgentCard",
}
# A2A 1.0's method names: the ones the SDK's route serves.
A2A_METHODS = tuple(JsonRpcDispatcher.METHOD_TO_MODEL)
_PARSE_ERROR = -32700
_INVALID_PARAMS = -32602
_METHOD_NOT_FOUND = -32601
# Notifications not run: their only effect would be a reply.
_READ_ONLY_STREAMS = frozenset({"SubscribeToTask"})
# Notifications run as a SendMessage that returns at once (see the module's docstring).
_POSTS = frozenset({"SendMessage", "SendStreamingMessage"})


class RpcChecks:
    """ASGI wrapper of the JSON-RPC endpoint ``path`` (inside ``BodyLimit``, which read the
    body): answers what ``_refusal`` refuses; answers a notification 204 (see the module)."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        not_json = unreadable(body_of(scope))
        if not_json is not None:  # (no id can be read: null, as JSON-RPC 2.0 says)
            await _rpc_error(send, None, _PARSE_ERROR, f"Parse error: {not_json}")
            return
        try:
            request = _request_of(body_of(scope))
        except NumberTooLong as exc:  # (no id can be read: null)
            await _rpc_error(send, None, _PARSE_ERROR, f"Parse error: {exc}")
            return
        if request is None:  # not valid JSON-RPC 2.0: the SDK says what is wrong
            await self.app(scope, receive, send)
            return
        if "id" not in request:
            await self._notified(request, scope, receive)
            await _no_content(send)
            return
        refusal = _refusal(request)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        code, message = refusal
        await _rpc_error(send, request["id"], code, message)

    async def _notified(self, request: dict[str, Any], scope: Scope, receive: Receive) -> None:
        """Run the notification ``request`` (its reply dropped), unless it only reads."""
        method = request["method"]
        if method in _READ_ONLY_STREAMS:
            return
        if method in _POSTS:
            scope, receive = with_body(scope, receive, _returning_at_once(request))
        await self.app(scope, receive, _dropped)


def _request_of(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON-RPC 2.0 request with a method name and a valid id (or none); None
    when it is not one. Raises NumberTooLong for a body holding a number too long to read
    (``json_of``)."""
    try:
        request = json_of(body)
    except NumberTooLong:
        raise
    except ValueError:
        return None
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return None
    if request.get("jsonrpc") != "2.0":
        return None
    request_id = request.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        return None
    return request


def _returning_at_once(request: dict[str, Any]) -> bytes:
    """The body of ``request`` (a SendMessage or SendStreamingMessage) as a SendMessage that
    returns without waiting for its task to settle. Params the SDK cannot read are left as
    they are: it refuses them, to nobody."""
    params = request.get("params")
    if isinstance(params, dict):
        configuration = params.get("configuration", {})
        if isinstance(configuration, dict):
            configuration = {k: v for k, v in configuration.items() if k != "return_immediately"}
            params = {**params, "configuration": {**configuration, "returnImmediately": True}}
    return dumps({**request, "method": "SendMessage", "params": params}).encode()


def _refusal(request: dict[str, Any]) -> tuple[int, str] | None:
    """The JSON-RPC error code and message for a request the SDK would answer unhelpfully."""
    method: str = request["method"]
    renamed = A2A_0_3_METHODS.get(method)
    if renamed is not None:
        return _METHOD_NOT_FOUND, (
            f"Method not found: {method!r} is A2A 0.3's name; this server speaks A2A 1.0, "
            f"where it is {renamed!r} (and send the header A2A-Version: 1.0 too)"
        )
    if method not in A2A_METHODS:
        return _METHOD_NOT_FOUND, (
            f"Method not found: {method[:60]!r} is no method of A2A 1.0, which this server "
            f"speaks; its methods are {', '.join(A2A_METHODS)}"
        )
    params = request.get("params")
    if "params" in request and not isinstance(params, dict):
        return _INVALID_PARAMS, (
            f"Invalid params: params is {json_name(params)}; A2A methods take an object of "
            'named members, as {"id": "TASK_ID"} for GetTask'
        )
    if isinstance(params, dict):  # (a member of the wrong type: the SDK's parser skips it)
        model: Any = JsonRpcDispatcher.METHOD_TO_MODEL[method]  # (a protobuf message class)
        wrong = wrong_member(params, model.DESCRIPTOR, "params.")
        if wrong is None and method == "ListTasks":  # (protobuf's words quote a cut value)
            wrong = bad_timestamp(params, "params.")
        if wrong is not None:
            return _INVALID_PARAMS, f"Invalid params: {wrong}"
    return None


async def _dropped(message: Message) -> None:
    """Where the reply to a notification goes."""


async def _no_content(send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _rpc_error(send: Send, request_id: Any, code: int, message: str) -> None:
    # (one line in the log, as the SDK's own client errors: see _logs)
    log.warning("Request Error (ID: %s): Code=%s, Message='%s'", request_id, code, message)
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    await send_json(send, 200, body)
