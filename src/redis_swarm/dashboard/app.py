"""The dashboard's web app: one page, a read-only JSON API, and the event stream over SSE.

``create_app(swarm)`` returns a Starlette app; ``swarm dashboard`` serves it with uvicorn.

Routes (every one read-only; documented in docs/dashboard.md)::

    GET /                 the page (static HTML, with the event types in a meta tag; it reads
                          everything else from the API)
    GET /static/...       its stylesheet and script, shipped in the package
    GET /api/status       the snapshot: agents, queues, passes, findings, syntheses, dead, contexts
                          (the queues and passes with open work and the last settled ones, as
                          swarm status lists them, the context owners that published last;
                          &all=1: every one)
    GET /api/tasks        tasks, filtered and paged (?queue= &status= &pass= &cursor= &limit=
                          &data=1: with their data)
    GET /api/findings     findings, filtered and paged (?shard= &queue= &pass= &cursor= &limit=)
    GET /api/events       the event stream as Server-Sent Events, resumable (Last-Event-ID):
                          every open one is fed by one follower of the event log (``EventHub``),
                          and at most MAX_STREAMS are open at once

The requests that call Redis take turns (``_Gate``): as many at once as the handle's
connections hold, less the follower's; one over waits its turn a few seconds, then is
answered 503 "busy" with a Retry-After. A lost Redis, and its return, is logged once each
(``_Health``), not once a request.

Served by ``swarm dashboard`` (given a ``Stopping``), Ctrl-C ends the open event streams and
answers the requests still waiting on Redis 503, at once (``_stopping``).

With a token, every route but the static assets needs it: ``Authorization: Bearer T``, or
``?token=T`` where a header cannot be set (opening the page, ``EventSource``); both, with
different values, is refused (``_TokenOnce``). Without one,
only loopback Host headers (and the name of its ``--host``) are served, so a web page
elsewhere cannot read the swarm through the viewer's browser (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from .._client import AsyncSwarm
from .._codec import dumps_shown
from .._errors import ConnectionFailed, NotFound, PermissionDenied, SwarmError, ValidationError
from .._models import STALE_AFTER_S, EventType, Page, TaskStatus, type_filter
from .._net import is_loopback
from .._printable import OWNERS_SHOWN, SETTLED_SHOWN, STALE_SHOWN
from .._stopping import EndWhenStopping, Stopping
from .._turns import NoTurn, Turns
from .._web import TOKEN_PARAM, AccessGuard, given_twice
from ._feed import MAX_STREAMS, EventHub, HubStopped, Stream, TooManyStreams
from ._snapshot import CALLS_AT_ONCE, snapshot

__all__ = ["STATIC_DIR", "create_app", "is_loopback"]

STATIC_DIR = Path(str(resources.files(__package__) / "static"))

MAX_LIMIT = 500
# ``?data=`` of /api/tasks, ``?all=`` of /api/status: whether each task comes with its data,
# whether every settled queue and pass and every context owner comes (not only the last
# SETTLED_SHOWN, OWNERS_SHOWN).
_FLAGS = {"1": True, "true": True, "0": False, "false": False}
# A comment line on an idle stream: proxies keep the connection, and a gone client is noticed.
KEEPALIVE_S = 15.0
# How soon a browser reconnects after losing the stream (it then sends Last-Event-ID).
RETRY_MS = 1000
# How long a request waits for its turn at Redis when every turn is taken (a burst of
# requests) before it is answered 503 "busy"; and the Retry-After that answer gives.
BUSY_WAIT_S = 5.0
RETRY_AFTER_S = 1
# The connections of the handle a request never takes: the event follower's.
_FOLLOWER_CONNECTIONS = 1

log = logging.getLogger("redis_swarm.dashboard")
T = TypeVar("T")


def create_app(
    swarm: AsyncSwarm,
    *,
    token: str | None = None,
    host: str | None = None,
    close_swarm: bool = False,
    keepalive_s: float = KEEPALIVE_S,
    stale_after_s: float = STALE_AFTER_S,
    stopping: Stopping | None = None,
    busy_wait_s: float = BUSY_WAIT_S,
    max_streams: int = MAX_STREAMS,
) -> Starlette:
    """The dashboard for ``swarm``; with ``token``, every API call must carry it. ``host``:
    the ``--host`` it is served on, whose name a Host header may give as well as loopback's
    when there is no token (``AccessGuard``'s ``own_host``: the URL the CLI announces).

    ``close_swarm`` closes the swarm's connections when the app shuts down (the CLI's case:
    it owns the swarm; a caller that passes its own keeps it open). ``stopping``: end open
    event streams and waiting requests as soon as it is set; set by Ctrl-C or SIGTERM while
    the app runs in its server (the CLI's case: see ``_stopping``). ``busy_wait_s``: how
    long a request waits for its turn at Redis (``_Gate``); ``max_streams``: the most event
    streams served at once.
    """

    health = _Health()
    gate = _Gate(_turns(swarm.settings.max_connections), busy_wait_s, health)
    hub = EventHub(swarm, gate=gate, on_error=health.saw_failure, most=max_streams)
    api = _Api(swarm, gate, hub, keepalive_s=keepalive_s, stale_after_s=stale_after_s)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        with stopping.on_signals() if stopping is not None else contextlib.nullcontext():
            yield
        await hub.aclose()
        if close_swarm:
            await swarm.aclose()

    page = _page_html()

    async def index(_request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    routes = [
        Route("/", index),
        Route("/api/status", api.status),
        Route("/api/tasks", api.tasks),
        Route("/api/findings", api.findings),
        Route("/api/events", api.events),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    paths = ", ".join(route.path for route in routes if isinstance(route, Route))

    async def http_error(request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (no such route, a method other than GET), in the JSON
        shape of every other error, rather than its plain text."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            error = "NotFound"
            message = f"nothing at {request.url.path[:200]!r}: the routes are {paths}"
        elif exc.status_code == 405:
            error = "MethodNotAllowed"
            message = (
                f"{request.method[:20]} is not allowed: the dashboard is read-only, every "
                "route takes GET"
            )
        else:
            error, message = HTTPStatus(exc.status_code).phrase.replace(" ", ""), exc.detail
        response = _json({"error": error, "message": message}, exc.status_code)
        response.headers.update(exc.headers or {})  # (a 405's Allow)
        return response

    middleware = [
        Middleware(
            AccessGuard, token=token, what="this dashboard", public=("/static/",), own_host=host
        ),
    ]
    if stopping is not None:  # inside the guard: its 503s carry the guard's headers
        middleware.append(Middleware(EndWhenStopping, stopping=stopping, what="the dashboard"))
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            SwarmError: _swarm_error,
            _BadRequest: _bad_request,
            Busy: _busy,
            TooManyStreams: _unavailable,
            HubStopped: _unavailable,
            HTTPException: http_error,
        },
    )


# --- the page

# Where the page learns the event types (``EventType``, the one list) it listens for.
_EVENT_TYPES_META = '<meta name="swarm-event-types" content="">'


def _page_html() -> str:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    if _EVENT_TYPES_META not in html:
        raise RuntimeError(f"index.html lacks {_EVENT_TYPES_META}: the page could not follow")
    names = ",".join(t.value for t in EventType)
    return html.replace(_EVENT_TYPES_META, _EVENT_TYPES_META.replace('""', f'"{names}"'))


# --- the API


class _BadRequest(Exception):
    pass


class Busy(Exception):
    """Every turn at Redis stayed taken for as long as a request waits (``_Gate``)."""


def _turns(max_connections: int) -> int:
    """How many requests may call Redis at once on a handle of ``max_connections``: what is
    left once the follower has its connection, each request counted for the most one holds at
    once (a snapshot's ``CALLS_AT_ONCE``); one at least."""
    return max(1, (max_connections - _FOLLOWER_CONNECTIONS) // CALLS_AT_ONCE)


class _Health:
    """Whether Redis answers the dashboard, said in its log once when it stops (the first
    request, or the follower, that cannot reach it) and once when it answers again (the
    first request that can): not once per request. Warnings, which a server with no logging
    set up (``swarm dashboard``) prints on stderr."""

    def __init__(self) -> None:
        self.lost_at: float | None = None

    def saw_failure(self, exc: BaseException) -> None:
        if not isinstance(exc, ConnectionFailed) or self.lost_at is not None:
            return
        self.lost_at = time.time()
        log.warning(
            "Redis unreachable at %s: %s (requests are answered 503 until it answers again)",
            _clock(self.lost_at),
            exc,
        )

    def saw_success(self) -> None:
        if self.lost_at is None:
            return
        back, lost_at = time.time(), self.lost_at
        self.lost_at = None
        log.warning(
            "Redis answers again at %s (unreachable since %s: %.0f s)",
            _clock(back),
            _clock(lost_at),
            back - lost_at,
        )


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


class _Gate:
    """The requests that call Redis, ``turns`` at once (``Turns``): a burst of requests
    beyond the handle's connections was answered the core's refusal, whose advice is for
    claim and ask callers. Here a request over the limit waits its turn up to ``wait_s``,
    then is refused as busy (``Busy``: 503, Retry-After). Each call's outcome is told to
    ``health``."""

    def __init__(self, turns: int, wait_s: float, health: _Health) -> None:
        self.turns = Turns(turns, wait_s)
        self.health = health

    async def __aenter__(self) -> None:
        try:
            await self.turns.take()
        except NoTurn:
            raise Busy(
                f"the dashboard is busy: its {self.turns.size} turns at Redis stayed taken "
                f"for {self.turns.wait_s:g} s (a burst of requests): try again in a moment"
            ) from None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.turns.give_back()
        if exc is None:
            self.health.saw_success()
        else:
            self.health.saw_failure(exc)

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self:
            return await call()


class _Api:
    def __init__(
        self,
        swarm: AsyncSwarm,
        gate: _Gate,
        hub: EventHub,
        *,
        keepalive_s: float,
        stale_after_s: float,
    ) -> None:
        self.swarm = swarm
        self.gate = gate
        self.hub = hub
        self.keepalive_s = keepalive_s
        self.stale_after_s = stale_after_s

    async def status(self, request: Request) -> Response:
        params = _params(request, "findings", "syntheses", "dead", "all")
        every = _flag(params, "all")
        findings = _limit(params, "findings", 50)
        syntheses = _limit(params, "syntheses", 20)
        dead = _limit(params, "dead", 50)
        snap = await self.gate.call(
            lambda: snapshot(
                self.swarm,
                findings=findings,
                syntheses=syntheses,
                dead=dead,
                stale_after_s=self.stale_after_s,
                # Sent on every change: a year of daily passes sent whole was 234 KB a time.
                settled=None if every else SETTLED_SHOWN,
                stale=None if every else STALE_SHOWN,
                # Each owner's versions are a call: 2,000 shards were 2,000 calls a refresh.
                owners=None if every else OWNERS_SHOWN,
            )
        )
        return _json(snap.to_dict())

    async def tasks(self, request: Request) -> Response:
        params = _params(request, "queue", "status", "pass", "cursor", "limit", "data")
        status = params.get("status")
        if status is not None and status not in {s.value for s in TaskStatus}:
            known = ", ".join(s.value for s in TaskStatus)
            raise _BadRequest(f"unknown status {status!r}: use one of {known}")
        limit, with_data = _limit(params, "limit", 100), _flag(params, "data")
        page = await self.gate.call(
            lambda: self.swarm.list_tasks(
                queue=params.get("queue"),
                status=TaskStatus(status) if status else None,
                pass_name=params.get("pass"),
                cursor=params.get("cursor"),
                limit=limit,
                with_data=with_data,
            )
        )
        return _page_json([t.to_dict() for t in page.items], page)

    async def findings(self, request: Request) -> Response:
        params = _params(request, "shard", "queue", "pass", "cursor", "limit")
        limit = _limit(params, "limit", 100)
        page = await self.gate.call(
            lambda: self.swarm.findings(
                shard=params.get("shard"),
                queue=params.get("queue"),
                pass_name=params.get("pass"),
                cursor=params.get("cursor"),
                limit=limit,
            )
        )
        return _page_json([f.to_dict() for f in page.items], page)

    async def events(self, request: Request) -> Response:
        """Every event after ``Last-Event-ID`` (a reconnecting browser sends it), else after
        ``?since=`` (an event id, or a time in epoch ms), else from now on; ``?types=a,b``
        keeps only those types."""
        params = _params(request, "since", "types")
        header = request.headers.get("last-event-id") or None
        since: str | int | None = header or _since(params.get("since"))
        types = _types(params.get("types"))
        if self.hub.full():  # (before any call to Redis: a refusal costs none)
            raise TooManyStreams(self.hub.most)
        if since is not None:
            # A bad id would only fail inside the stream, after the 200: check it up front (the
            # core refuses a malformed one, and one in the future, which no stream sent).
            first = since
            try:
                await self.gate.call(lambda: self.swarm.events(since=first, types=types, limit=1))
            except ValidationError:
                if header is None:
                    raise  # the core's message names since, as the caller did
                raise _BadRequest(
                    f"the Last-Event-ID header {header[:45]!r} is not an event id this stream "
                    "sent (like '1717000000000-0'): reconnect without it to follow from now"
                ) from None
        # Opened before the 200 goes out (the stream body starts later): "from now" is from
        # this request, and a Redis out of reach, or one stream too many, is a plain answer.
        stream = await self.hub.open(since, types)
        return _EventStream(stream, self.keepalive_s)


class _EventStream(StreamingResponse):
    """The response of one event stream; its ``Stream`` closes when the response ends,
    however it ends (even unstarted: a client gone before its first byte)."""

    def __init__(self, stream: Stream, keepalive_s: float) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(_sse(stream, keepalive_s), media_type="text/event-stream", headers=headers)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.close()


async def _sse(stream: Stream, keepalive_s: float) -> AsyncIterator[str]:
    """The stream: a retry hint, then one message per event, and a comment when idle."""
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while True:
            try:
                event = await stream.next(keepalive_s)
            except Exception as exc:  # the stream's last message; the browser reconnects
                yield _message("stream.error", _error_body(exc))
                return
            if event is None:
                yield ": keepalive\n\n"
            else:
                yield _message(event.type.value, event.to_dict(), event_id=event.id)
    finally:
        stream.close()


def _message(event: str, data: Any, *, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {dumps_shown(data)}\n\n"


def _page_json(items: list[dict[str, Any]], page: Page[Any]) -> Response:
    # corrupt: the ids of records stored unreadable, left out of items
    return _json({"items": items, "cursor": page.cursor, "corrupt": list(page.corrupt)})


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps_shown(data), status_code=status, media_type="application/json")


def _params(request: Request, *names: str) -> dict[str, str]:
    """The route's query parameters (``names``, and the token), each given once: an unknown
    one, or one given twice, is refused naming it (rather than ignored, or one of its values
    picked)."""
    given: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in names and name != TOKEN_PARAM:
            raise _BadRequest(
                f"unknown parameter {name[:45]!r}: {request.url.path} takes "
                f"{', '.join(names)} (and {TOKEN_PARAM})"
            )
        if name in given:
            raise _BadRequest(given_twice(name, given[name], value))
        given[name] = value
    return given


def _given_empty(name: str, said: str, give: str, left_out: str) -> _BadRequest:
    """The refusal of parameter ``name`` given with no value (``?limit=``, ``?types=,``):
    never read as left out, which the request did not do. Every parameter so refused says
    it so: what it ``said``, what to ``give``, and what leaving it out is."""
    return _BadRequest(f"{name} {said}: give {give}, or leave {name} out for {left_out}")


def _limit(params: dict[str, str], name: str, default: int) -> int:
    """The count parameter ``name``: 1 to MAX_LIMIT in ASCII digits, ``default`` when
    absent; a bad one, an empty one included, is refused naming it."""
    raw = params.get(name)
    if raw is None:
        return default
    if raw == "":
        raise _given_empty(
            name, "is empty", f"a count, 1 to {MAX_LIMIT} in ASCII digits", str(default)
        )
    if not (raw.isascii() and raw.isdigit()):  # (int() also takes '１', ' 5', '+5', '1_0')
        raise _BadRequest(
            f"{name} {raw[:45]!r} is not a number: use 1 to {MAX_LIMIT}, in ASCII digits"
        )
    value = int(raw) if len(raw) <= 9 else MAX_LIMIT + 1  # (no 5,000-digit int made)
    if not 1 <= value <= MAX_LIMIT:
        raise _BadRequest(f"{name} {raw[:45]} is out of range: use 1 to {MAX_LIMIT}")
    return value


def _flag(params: dict[str, str], name: str) -> bool:
    """A yes-or-no parameter: 1 or true, 0 or false; absent or empty: no."""
    raw = params.get(name)
    if not raw:
        return False
    if raw not in _FLAGS:
        raise _BadRequest(f"{name} {raw[:45]!r} is not a flag: use {name}=1 (or true), or 0")
    return _FLAGS[raw]


# The most digits of a ``?since=`` time read as a number: a time in epoch ms has 13 today,
# and the core says of any up to 20 (a 64-bit integer) that is after the year 9999 that it
# is in the future. Python reads no integer of over 4,300 digits (its words were a 500).
_MAX_SINCE_DIGITS = 20


def _since(raw: str | None) -> str | int | None:
    """``?since=`` as the core takes it: digits are a time in epoch ms (a query string is
    always text; the core reads a str as an event id), anything else an event id. Given
    empty, or as more digits than any time has, it is refused."""
    if raw is None:
        return None
    if raw == "":
        raise _given_empty(
            "since",
            "is empty",
            "an event id this stream sent (like '1717000000000-0') or a time in epoch ms",
            "the events from now on",
        )
    if not (raw.isascii() and raw.isdigit()):
        return raw
    if len(raw) > _MAX_SINCE_DIGITS:
        raise _BadRequest(
            f"since {raw[:45]}... ({len(raw):,} digits) is no time: a time in epoch ms has 13 "
            "digits (give one up to now, or an event id this stream sent, like "
            "'1717000000000-0'), or leave since out for the events from now on"
        )
    return int(raw)


def _types(raw: str | None) -> list[str] | None:
    """``?types=``: event types or areas (``task``, ``task.*``), comma-separated, checked by
    the rule ``swarm events --type`` follows (``type_filter``); None when not given. Given
    empty (``?types=``, ``?types=,``) it is refused: never read as every type."""
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:
        raise _given_empty(
            "types",
            "names no event type",
            "one or more, comma-separated (task.completed, or an area: task, task.*)",
            "every type",
        )
    type_filter(names)  # (a ValidationError: a 400 saying what to give)
    return names


async def _bad_request(_request: Request, exc: Exception) -> Response:
    return _json({"error": "BadRequest", "message": str(exc)}, 400)


async def _busy(_request: Request, exc: Exception) -> Response:
    response = _json(_error_body(exc), 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _unavailable(_request: Request, exc: Exception) -> Response:
    response = _json(_error_body(exc), 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _swarm_error(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, ValidationError):
        # A value the core refuses (?since=zzz, ?queue=a:b) is a bad parameter as much as
        # one refused here: one name for every 400, whichever layer found it.
        return await _bad_request(_request, exc)
    status = 500
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, PermissionDenied):
        status = 403
    elif isinstance(exc, ConnectionFailed):
        # 503 is an outage that passes (the page tries again soon); one no retry fixes (a
        # certificate refused: ``retryable`` False) is the server's configuration, a 500.
        status = 503 if exc.retryable else 500
    return _json(_error_body(exc), status)


def _error_body(exc: Exception) -> dict[str, Any]:
    """An error as every answer and the stream's last message say it; a ConnectionFailed's
    says whether it may pass by itself (``retryable``: the page looks again soon, or
    seldom, saying that it must be fixed where the dashboard runs)."""
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ConnectionFailed):
        body["retryable"] = exc.retryable
    return body
