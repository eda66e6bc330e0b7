"""The A2A server's web app: the agent card, and the SDK's JSON-RPC and HTTP+JSON routes over
``SwarmRequestHandler``, behind the same access rule as the dashboard (``_web.AccessGuard``:
a bearer token, or loopback only when there is none; the card is public, so that clients can
read how to authenticate), and a body limit (``_request.BodyLimit``). Its lifespan runs the
push notification dispatcher, and tells the handler when the server stops.

Routes::

    GET  /.well-known/agent-card.json   the agent card
    POST /                              JSON-RPC 2.0 (SendMessage, GetTask, ...)
    POST /message:send, GET /tasks ...  HTTP+JSON (the SDK's REST routes)

Any other path is answered 404 in JSON, naming these routes (Starlette answered a path
without its trailing slash with a redirect to the path with it, then a plain-text 404); a
method a route does not take, 405 likewise. While the swarm's Redis is out of reach, the
HTTP+JSON binding answers 503 with a Retry-After (``RetryLater``; the SDK's REST routes
answer 500 to every internal error), JSON-RPC its internal error, which says when to try
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from a2a.server.routes.agent_card_routes import create_agent_card_routes
from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
from a2a.server.routes.rest_routes import create_rest_routes
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, DEFAULT_RPC_URL
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._client import AsyncSwarm
from .._stopping import Stopping
from .._web import AccessGuard
from ._addresses import webhook_allowed, webhook_target
from ._card import agent_card, queue_descriptions
from ._gate import RETRY_AFTER_KEY, Gate, gated
from ._handler import DEFAULT_WAIT_S, SwarmRequestHandler
from ._push import PushDispatcher, push_client
from ._request import (
    BodyLimit,
    HttpJsonOnly,
    QueryChecks,
    RawContextBuilder,
    ReadableBodies,
    max_body_bytes,
    send_json,
)
from ._resume import SSEIds
from ._rpc import RpcChecks
from ._wire import WireJson

__all__ = ["create_app"]

# How often a task being stopped is cancelled again while it runs on.
RECANCEL_S = 0.1
# How often the lifespan looks whether the server was asked to stop.
EXIT_POLL_S = 0.1


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end, cancelling it again while it runs on.

    One cancellation can be lost: on Python 3.11 ``asyncio.wait_for``, which redis-py puts
    around every command it sends, returns the result instead of raising when the
    cancellation comes just as the send completes. The dispatcher then followed the event
    stream on for good, the lifespan waited for it, and ``swarm a2a`` never exited after
    SIGTERM (about one stop in 20 under load).
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()  # an error it ended with is raised here


async def on_server_exit(stop: Callable[[], None]) -> None:
    """Call ``stop`` once the web server is asked to stop (SIGINT, SIGTERM).

    uvicorn stops by waiting a moment for the requests in progress and then cancelling
    them, each cancellation a traceback on the operator's terminal; the waits of this server
    (a blocking SendMessage, a resumed subscription before its first update) could outlast
    the moment. sse-starlette, which the SDK's streams are made of, marks the stop in
    ``AppStatus.should_exit`` (its hook on uvicorn's exit handler): on it, ``stop`` ends the
    waits, and they answer before uvicorn gives up on them. A mark already set when this
    starts is an earlier server's of the same process: this one then learns nothing.
    """
    if _exiting():
        return
    while not _exiting():
        await asyncio.sleep(EXIT_POLL_S)
    stop()


def _exiting() -> bool:
    return bool(AppStatus.should_exit)


async def _on_stopping(stopping: Stopping, stop: Callable[[], None]) -> None:
    """Call ``stop`` as soon as the signal is heard (before uvicorn hears it)."""
    await stopping.event.wait()
    stop()


class EndCancelled:
    """ASGI wrapper: a request that uvicorn cancels because the server stops (one still
    running when its wait for them ran out) ends here, answered 503 (or its stream closed),
    not as a traceback. uvicorn cancels a request's task for no other reason."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def watched(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            if finished:
                return
            if not started:
                body = (
                    b'{"error":"Service Unavailable","message":"this A2A server is stopping: '
                    b"send the request again (to another server of the swarm, or to this one "
                    b'once it is back)"}'
                )
                headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
            else:
                body = b""
            await send({"type": "http.response.body", "body": body})


class RetryLater(HttpJsonOnly):
    """ASGI wrapper of the HTTP+JSON binding (every path but JSON-RPC's ``rpc_path``): an
    internal error that says when to try again (``_handler.swarm_errors``: the swarm's Redis
    out of reach; ``_gate.Busy``: the server busy) is answered 503 UNAVAILABLE with that many
    seconds in ``Retry-After``, not 500: the client can do nothing but wait, and should. Its
    detail's reason says UNAVAILABLE too (it said INTERNAL_ERROR under a 503). Such an error
    in the middle of a stream (a subscription's, when Redis goes away) is its ``error``
    event, which the SDK wrote 500 INTERNAL: it says 503 UNAVAILABLE likewise (the stream's
    headers are sent: no Retry-After there, the seconds are in the detail's metadata)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: Message | None = None
        chunks: list[bytes] = []
        streaming = False

        async def watched(message: Message) -> None:
            nonlocal held, streaming
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            if message["type"] == "http.response.start" and message["status"] == 500:
                held = message  # (sent with the body, once it is read)
                return
            if held is None:
                if streaming and message["type"] == "http.response.body":
                    message = {**message, "body": _sse_unavailable(message.get("body", b""))}
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            retry_after = _retry_after(body)
            if retry_after is None:
                await send(held)
                await send({"type": "http.response.body", "body": body})
                return
            answer = json.loads(body)
            _unavailable(answer)
            await send_json(send, 503, answer, [(b"retry-after", retry_after.encode())])

        await self.app(scope, receive, watched)


# What an error that says to try again later is on HTTP+JSON: its status, and its detail's
# reason (google.rpc's code name for it, as the status).
UNAVAILABLE = "UNAVAILABLE"


def _unavailable(answer: dict[str, Any]) -> None:
    """An HTTP+JSON error answer (``answer``, changed) as 503 UNAVAILABLE, its status and
    its detail's reason alike."""
    error = answer["error"]
    error.update(code=503, status=UNAVAILABLE)
    for detail in error.get("details", ()):
        if isinstance(detail, dict) and "reason" in detail:
            detail["reason"] = UNAVAILABLE


def _sse_unavailable(chunk: bytes) -> bytes:
    """``chunk`` of an SSE stream with an ``error`` event that says when to try again
    rewritten as 503 UNAVAILABLE (see ``RetryLater``); anything else unchanged."""
    if b"event: error" not in chunk:
        return chunk
    text = chunk.decode()
    sep = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(sep)
    for index, line in enumerate(lines):
        if line.startswith("data:") and _retry_after(line[5:].encode()) is not None:
            answer = json.loads(line[5:])
            _unavailable(answer)
            lines[index] = "data: " + json.dumps(answer, separators=(",", ":"))
    return sep.join(lines).encode()


def _retry_after(body: bytes) -> str | None:
    """The seconds an HTTP+JSON error answer says to wait before trying again, if it does
    (the SDK writes an error's data as its first detail's metadata)."""
    try:
        details = json.loads(body)["error"]["details"]
        value = details[0]["metadata"][RETRY_AFTER_KEY]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) and value.isdigit() else None


def _routes_named(routes: Sequence[BaseRoute]) -> str:
    """The routes, as a client would call them: ``GET /tasks/{id}, ...`` (the methods of a
    path together: ``GET|POST /tasks/{id}:subscribe``)."""
    methods: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, Route):
            methods.setdefault(route.path, set()).update((route.methods or set()) - {"HEAD"})
    return ", ".join(f"{'|'.join(sorted(m))} {path}" for path, m in methods.items())


def _methods_of(routes: Sequence[BaseRoute], scope: Scope) -> set[str]:
    """The methods a route whose path is ``scope``'s takes, when it takes another than the
    request's (Starlette's partial match: a 405, which a mount matching first hides)."""
    # (the scope as the router first saw it: a mount that matched has moved its root_path)
    asked = {"type": "http", "path": scope["path"], "root_path": "", "method": scope["method"]}
    allowed: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.matches(asked)[0] is Match.PARTIAL:
            allowed.update(route.methods or ())
    return allowed  # (HEAD too, as Starlette's own 405 says it)


def _not_found(routes: Sequence[BaseRoute]) -> Callable[[Request, Exception], Response]:
    """The answer to a path no route has (404), or a method its route does not take (405):
    JSON, in the SDK's error shape, naming the routes."""
    named = _routes_named(routes)

    def answer(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        headers = exc.headers if isinstance(exc, HTTPException) else None  # (405's Allow)
        if status == 404:  # (the tenant's mount takes any path first: a route's own may be it)
            allowed = _methods_of(routes, request.scope)
            if allowed:
                status, headers = 405, {"Allow": ", ".join(sorted(allowed))}
        path = request.url.path[:100]
        said = f"no route {path}" if status == 404 else f"{path} takes no {request.method}"
        message = (
            f"{said}: this A2A server answers {named} (JSON-RPC at POST /; each HTTP+JSON "
            "route also under /TENANT)"
        )
        error = {"code": status, "status": "NOT_FOUND" if status == 404 else "UNIMPLEMENTED"}
        return JSONResponse(
            {"error": {**error, "message": message}}, status_code=status, headers=headers
        )

    return answer


def create_app(
    swarm: AsyncSwarm,
    *,
    queues: Sequence[str],
    base_url: str,
    descriptions: Mapping[str, str] | None = None,
    name: str | None = None,
    token: str | None = None,
    host: str | None = None,
    wait_s: float = DEFAULT_WAIT_S,
    private_webhooks: bool = True,
    push: bool = True,
    close_swarm: bool = False,
    stopping: Stopping | None = None,
) -> Starlette:
    """The A2A server of ``swarm`` for ``queues`` (the skills), reachable at ``base_url``.

    ``host``: the ``--host`` it is served on, whose name a Host header may give as well as
    loopback's when there is no ``token`` (``AccessGuard``'s ``own_host``: the card's URL
    names it).

    ``private_webhooks``: allow push notifications to loopback and private addresses (a
    server reachable from other machines should not: a client could make it post inside
    the network). ``push``: run the dispatcher here (at least one server must). ``close_swarm``
    closes the swarm when the app stops (the CLI's case: it owns it). ``stopping``: heard
    first by Ctrl-C and SIGTERM while the app runs in its server (the CLI's case: see
    ``_stopping``), which end the waits at once; a second Ctrl-C exits at once, where
    uvicorn, giving up on the lifespan, printed its traceback.
    """
    dispatcher: PushDispatcher | None = None
    # One rule for webhook addresses: when a client gives one, and before each post (which
    # goes to the address the rule checked).
    url_check = None if private_webhooks else webhook_allowed
    post_check = None if private_webhooks else webhook_target

    def catch_up(task_id: str, since: str) -> None:
        if dispatcher is not None:
            dispatcher.catch_up(task_id, since)

    # Fewer calls to Redis at once than the handle has connections (``_gate``): a request
    # waits a moment for its turn, else is answered busy; the dispatcher's calls wait on.
    gate = Gate.for_swarm(swarm)
    served = gated(swarm, gate)
    handler = SwarmRequestHandler(
        served,
        queues,
        wait_s=wait_s,
        url_check=url_check,
        on_webhook=catch_up,
    )
    card = agent_card(
        name=name or f"redis-swarm {swarm.name}",
        base_url=base_url.rstrip("/") + "/",
        queues=handler.queues,
        descriptions=descriptions or {},
        token=token is not None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal dispatcher
        hearing = stopping.on_signals() if stopping is not None else contextlib.nullcontext()
        with hearing:  # (to the end: a second Ctrl-C while it stops exits at once)
            async with push_client() as http:
                running = None
                if push:
                    dispatcher = PushDispatcher(
                        gated(swarm, gate, patient=True), handler.queues, http, url_check=post_check
                    )
                    running = asyncio.create_task(dispatcher.run())
                watching = [asyncio.create_task(on_server_exit(handler.stop))]
                if stopping is not None:
                    watching.append(asyncio.create_task(_on_stopping(stopping, handler.stop)))
                try:
                    yield
                finally:
                    handler.stop()
                    for task in watching:
                        await stop_task(task)
                    if running is not None:
                        await stop_task(running)
                    if close_swarm:
                        await swarm.aclose()

    raw = RawContextBuilder()
    routes: list[BaseRoute] = [
        *create_agent_card_routes(
            card, card_modifier=queue_descriptions(served, descriptions or {})
        ),
        *create_jsonrpc_routes(handler, DEFAULT_RPC_URL, context_builder=raw),
        *create_rest_routes(handler, context_builder=raw),
    ]
    # A2A clients all set headers (the card declares a bearer scheme): no ?token=, which
    # uvicorn's access log and any proxy's would print.
    guard = Middleware(
        AccessGuard,
        token=token,
        what="this A2A server",
        public=(AGENT_CARD_WELL_KNOWN_PATH,),
        query_token=False,
        own_host=host,
    )
    middleware = [
        Middleware(EndCancelled),
        guard,  # (before the body is read: a client without the token sends none)
        Middleware(BodyLimit, max_bytes=max_body_bytes(swarm.limits)),
        # Bodies not UTF-8 or nested too deep, array params, unknown methods, notifications:
        # before the SDK's route.
        Middleware(RpcChecks, path=DEFAULT_RPC_URL),
        # Bodies not UTF-8, nested too deep or no JSON object on HTTP+JSON (RpcChecks
        # answered JSON-RPC's).
        Middleware(ReadableBodies, rpc_path=DEFAULT_RPC_URL),
        # A query parameter given twice, a statusTimestampAfter that is no time: refused,
        # named (HTTP+JSON; RpcChecks says the latter on JSON-RPC).
        Middleware(QueryChecks, rpc_path=DEFAULT_RPC_URL),
        # Redis out of reach: 503 and Retry-After on HTTP+JSON.
        Middleware(RetryLater, rpc_path=DEFAULT_RPC_URL),
        # The SDK's routes write no SSE ids; SSEIds adds each update's position (resuming).
        Middleware(SSEIds),
        # The SDK writes a Struct's whole numbers as 1.0 and ListTasks' empty fields: written
        # as GetTask writes a task (see _wire).
        Middleware(WireJson),
    ]
    not_found = _not_found(routes)
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found},
    )
    app.router.redirect_slashes = False  # (see the module's docstring)
    app.state.gate = gate  # (how busy it is: for tests)
    return app
