"""The access rule of the faces that serve HTTP (the dashboard, ``swarm a2a``, ``swarm mcp
--transport http``).

With a token, every route but the public ones needs it: ``Authorization: Bearer T``, or
``?token=T`` where a header cannot be set (opening a page, ``EventSource``). Without one,
only loopback Host headers are served (and the name the face was started on, the one its URL
says: ``AccessGuard``'s ``own_host``), so a web page elsewhere cannot read the swarm through
the viewer's browser (DNS rebinding). The faces refuse to listen off loopback without a token,
or with one shorter than ``swarm acl``'s passwords (``require_token_off_loopback``,
``require_strong_token``).
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import logging
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ._acl import MIN_PASSWORD_LEN
from ._codec import dumps
from ._config import mask_query, url_host
from ._errors import ConfigError
from ._net import Listening, http_url, is_loopback, listen, loopback_only, shown_host

__all__ = [
    "MAKE_TOKEN",
    "TOKEN_BYTES",
    "TOKEN_PARAM",
    "AccessGuard",
    "first_given_twice",
    "give_token",
    "given_twice",
    "new_token",
    "redact_access_log",
    "require_strong_token",
    "require_token_off_loopback",
    "serve",
]


# A token made for a web face: 24 random bytes, 32 URL-safe characters (192 bits), twice the
# shortest one taken off loopback (``require_strong_token``).
TOKEN_BYTES = 24
# How to make one in a shell.
MAKE_TOKEN = f"$(python -c 'import secrets; print(secrets.token_urlsafe({TOKEN_BYTES}))')"
# The query parameter a guard in ``query_token`` mode takes the token from.
TOKEN_PARAM = "token"
# What a request that gives the token both ways, with two values, is told.
_TOKEN_TWO_WAYS = (
    f"the token is given twice, in the Authorization header and in ?{TOKEN_PARAM}=, with "
    f"different values: give it once (the header, or ?{TOKEN_PARAM}= where no header can be "
    "set)"
)


def give_token(env: str) -> str:
    """How to give a face a token made with ``MAKE_TOKEN``: in its variable ``env``, not with
    --token, since a command line is shown by ``ps`` to every user of the machine."""
    return (
        f'export {env}="{MAKE_TOKEN}" before starting it (the environment, not --token: ps '
        "shows a command line to every user of this machine)"
    )


def new_token() -> str:
    """A token made for a web face (``TOKEN_BYTES``)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def require_token_off_loopback(host: str, token: str | None, *, what: str, env: str) -> None:
    """Refuse an empty host, an empty token, no token on an address other machines can
    reach (any but a loopback address, or a name that resolves to loopback alone:
    ``_net.loopback_only``; one this machine cannot listen on, a name that does not resolve,
    is refused saying so, as ``listen`` does with a token), and a token there too short to
    be a secret (``require_strong_token``)."""
    if not host.strip():  # (an empty host would listen on every interface)
        raise ConfigError(
            "--host is empty: give the address to listen on, 127.0.0.1 (this machine only, "
            "the default) or 0.0.0.0 (every interface, with --token)"
        )
    if token is not None and not token.strip():
        raise ConfigError(f"--token is empty: give a secret, e.g. {give_token(env)}")
    if not loopback_only(host) and not token:
        # A host this machine cannot listen on (a name that does not resolve, an address
        # not its own) is refused for that, as it is with a token (``listen``'s words):
        # "reachable from other machines" would send its user after a token in vain.
        with listen(host, 0):
            pass
        raise ConfigError(
            f"--host {shown_host(host)} is reachable from other machines: {what}, so it needs "
            f"a token there: {give_token(env)}"
        )
    require_strong_token(host, token, env=env)


def require_strong_token(host: str, token: str | None, *, env: str) -> None:
    """Refuse, on an address other machines can reach, a token shorter than the passwords
    ``swarm acl`` takes (``MIN_PASSWORD_LEN``): it is the one secret between the network and
    the swarm. (On loopback any token is taken.) The one rule of every web face: the
    dashboard, ``swarm a2a``, ``swarm mcp --transport http``."""
    if token is None or loopback_only(host) or len(token) >= MIN_PASSWORD_LEN:
        return
    raise ConfigError(
        f"--token (or {env}) is {len(token)} characters long: on --host {shown_host(host)}, "
        f"reachable from other machines, a token needs at least {MIN_PASSWORD_LEN}, as a "
        f"password of swarm acl does; make one: {give_token(env)}"
    )


def _redacted(path: str) -> str:
    """``path`` (an access line's, its query included) with the value of every query
    parameter whose name says it holds a token (token, access_token, ...) as ``***``
    (``mask_query``). The rest is logged as it came."""
    return mask_query(path, lambda name: "token" in name.lower())


class _RedactedTokens(logging.Filter):
    """uvicorn's access log line with the value of every token in the URL cut out
    (``_redacted``): a face that takes no ``?token=`` refuses a request that sends one, but
    its access line was logged with the URL whole (the MCP server logs at INFO, access
    lines included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # (uvicorn's access line: client, method, path with its query, version, status)
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], _redacted(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    """Cut tokens out of uvicorn's access log (``_RedactedTokens``); call it once uvicorn's
    ``Config`` is made, which sets its loggers up."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactedTokens) for f in access.filters):
        access.addFilter(_RedactedTokens())


def stderr_logging() -> dict[str, Any]:
    """uvicorn's logging configuration with every line on stderr: its default writes the
    access log (``INFO: 127.0.0.1:... "POST /mcp ..." 401``) to stdout, where nothing but
    the protocol belongs (docs/mcp.md), nor a face's own output (``swarm a2a``, ``swarm
    dashboard``: their lines at a raised log level)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler in config["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    for formatter in config["formatters"].values():
        # (coloured when stderr is a terminal: uvicorn's default asks stdout)
        formatter["use_colors"] = sys.stderr.isatty()
    return config


@contextlib.contextmanager
def hangup_stops() -> Iterator[None]:
    """While a web server runs: SIGHUP (its terminal closed) stops it as SIGTERM does, its
    lifespan's shutdown run (MCP sessions released, the swarm closed). uvicorn hears only
    SIGINT and SIGTERM: a SIGHUP, which the CLI makes stop a command as Ctrl-C does, raised
    KeyboardInterrupt inside its event loop (a traceback, the shutdown skipped). Ignored at
    start (``nohup``), it stays ignored."""
    number = getattr(signal, "SIGHUP", None)  # (no SIGHUP on Windows)
    try:
        if number is None or signal.getsignal(number) is signal.SIG_IGN:
            before = None
        else:
            before = signal.signal(number, lambda *_: signal.raise_signal(signal.SIGTERM))
    except ValueError:  # not the main thread: no signal handling
        before = None
    try:
        yield
    finally:
        if number is not None and before is not None:
            signal.signal(number, before)


def serve(app: ASGIApp, listening: Listening) -> None:
    """Serve ``app`` with uvicorn on the sockets of ``_net.listen`` until Ctrl-C (which is
    the normal way out, not an error); closes them."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=stderr_logging(),
        ws="none",
        lifespan="on",
        # Open event streams would hold a shutdown forever: give them a second.
        timeout_graceful_shutdown=1,
    )
    redact_access_log()  # (warning level logs no access line: in case it is raised)
    # uvicorn stops on Ctrl-C, then raises it again.
    with listening, contextlib.suppress(KeyboardInterrupt), hangup_stops():
        uvicorn.Server(config).run(sockets=list(listening.sockets))


class AccessGuard:
    """Token check (when a token is set) or loopback-only Host and Origin check (when none
    is: a page of another site that a browser opens is refused, ``_cross_site``), plus the
    headers every response carries. ``public``: path prefixes served to anyone
    when a token is set (files of the public package, a discovery document). ``query_token``:
    also take ``?token=``, for pages and ``EventSource``; a server whose clients all set
    headers leaves it off, so the token never reaches an access log. ``own_host``: the
    ``--host`` the face listens on, whose name a Host header may also give when there is no
    token (the URL the face announces names it: ``--host vm``, a name that resolves to
    loopback alone, is ``http://vm:PORT/``); that name exactly, whatever its case. A Host
    header is never resolved: a name of anyone's may resolve to 127.0.0.1 (DNS rebinding)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        what: str,
        public: Sequence[str] = (),
        *,
        query_token: bool = True,
        own_host: str | None = None,
    ) -> None:
        self.app = app
        self.token = token
        self.what = what
        self.public = tuple(public)
        self.query_token = query_token
        # Its name as a Host header gives it (lower case, an IPv6 address without brackets),
        # when it is served without a token: a name of its own that resolves to loopback
        # alone (``loopback_only``: the operator's word, resolved once, here), never a host
        # other machines reach, which the faces refuse without a token anyway.
        own = None if own_host is None or token else own_host.strip("[]").lower()
        self.own_name = own if own and not is_loopback(own) and loopback_only(own) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, _with_headers(send))
            return
        await self.app(scope, receive, _with_headers(send))

    def _refusal(self, request: Request) -> Response | None:
        twice = self._token_twice(request) if self.query_token else None
        if twice is not None:
            return _json({"error": "BadRequest", "message": twice}, 400)
        if self.token is None:
            if not self._served_host(_host_name(request.headers.get("host", ""))):
                return _json({"error": "Forbidden", "message": self._local_only(request)}, 403)
            origin = request.headers.get("origin")
            if origin is not None and not self._served_host(_origin_host(origin)):
                refused = self._cross_site(request, origin)
                return _json({"error": "Forbidden", "message": refused}, 403)
            return None
        if self.public and request.url.path.startswith(self.public):
            return None
        offered = _offered_token(request, query=self.query_token)
        if offered is not None and hmac.compare_digest(offered.encode(), self.token.encode()):
            return None
        or_query = " or add ?token=TOKEN to the URL" if self.query_token else ""
        send = f"send 'Authorization: Bearer TOKEN'{or_query}"
        challenge = 'Bearer realm="redis-swarm"'
        if offered is None and "token" in request.query_params:  # (and not query_token)
            message = (
                f"{self.what} takes no token in the URL (?token=: access logs print URLs), "
                f"and this request sent none in its Authorization header: {send} instead"
            )
        elif offered is None:
            sent = (
                "sent none"
                if "authorization" not in request.headers
                else "sent none (its Authorization header is not a bearer token)"
            )
            message = f"{self.what} needs its token, and this request {sent}: {send}"
        else:  # (nothing about the right token: not its length, nor how close this one was)
            message = (
                f"the token this request sent is not {self.what}'s: {send} with the token "
                "its operator gave (check for a stale or mistyped one)"
            )
            challenge += ', error="invalid_token"'  # (RFC 6750, 3.1)
        response = _json({"error": "Unauthorized", "message": message}, 401)
        response.headers["WWW-Authenticate"] = challenge
        return response

    @staticmethod
    def _token_twice(request: Request) -> str | None:
        """What a request that gives ``?token=`` more than once, or also in its header with
        another value, is told (a 400, before any value is compared, so neither is taken:
        one read alone let a right header pass with a wrong ``?token=``, and a right
        ``?token=`` first with a wrong one last was a 401 that blamed the token); None
        when it gives it once. Neither value is said."""
        given = request.query_params.getlist(TOKEN_PARAM)
        if len(given) > 1:
            return given_twice(TOKEN_PARAM)
        header = _offered_token(request, query=False) if given else None
        if header is not None and not hmac.compare_digest(header.encode(), given[0].encode()):
            return _TOKEN_TWO_WAYS
        return None

    def _served_host(self, name: str) -> bool:
        """Whether a face without a token answers a request whose Host header names ``name``:
        a loopback name or address, or its own ``--host``'s name (never resolved)."""
        return is_loopback(name) or (self.own_name is not None and name.lower() == self.own_name)

    def _cross_site(self, request: Request, origin: str) -> str:
        """A 403's words for a request a page of another site sent (``origin``): without a
        token, a web page anyone's browser opens could otherwise post to a face on its
        loopback (a form's POST needs no permission of the browser's)."""
        # (said once, "has no token": it once ended with ``_local_only``'s sentence whole)
        return (
            f"{self.what} has no token and takes no request from a page of another site "
            f"(Origin {origin[:80]!r}): send it from a page of its own "
            f"({self._own_urls(request)}) or from a program (which sends no Origin), or start "
            "it with --token, which the page must then send"
        )

    def _local_only(self, request: Request) -> str:
        """A 403's words: the addresses a face without a token answers to."""
        name = "" if self.own_name is None else f" and {self.own_name}"
        return (
            f"{self.what} has no token and answers only to localhost{name}: open it as "
            f"{self._own_urls(request)}, or start it with --token"
        )

    def _own_urls(self, request: Request) -> str:
        """The URLs a face without a token is served at, as ``request`` reached it: the
        address and port it came in on (the ASGI scope's ``server``, the socket's own, never
        a header's: a URL without the port means port 80, and a face bound to 127.0.1.1 or
        ::1 alone is not at 127.0.0.1), and its own ``--host``'s name on that port when it
        has one. 127.0.0.1 for an address off loopback (a face served so without a token
        answers loopback names alone), and no port where the server does not say it."""
        server = request.scope.get("server") or ("127.0.0.1", None)
        host, port = str(server[0]), server[1]

        def url(name: str) -> str:
            return f"http://{url_host(name)}" if port is None else http_url(name, int(port), "")

        here = url(host if is_loopback(host) else "127.0.0.1")
        return here if self.own_name is None else f"{here} or {url(self.own_name)}"


def _json(data: Any, status: int) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


def _origin_host(origin: str) -> str:
    """The host an Origin header names (``http://[::1]:8765`` -> ``::1``); "" for ``null``
    (a sandboxed page, a file) or anything else that names none, which no face serves."""
    scheme, sep, rest = origin.partition("://")
    if not sep or not scheme.isalpha():
        return ""
    return _host_name(rest.partition("/")[0])


def _host_name(header: str) -> str:
    """The name in a Host header: ``[::1]:8765`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if ":" in header else header


def given_twice(name: str, first: str = "", second: str = "") -> str:
    """What a 400 says of query parameter ``name`` given twice: its first two values, but not
    a token's (secret, or close to the secret). Every web face says it so."""
    values = "" if name == TOKEN_PARAM else f" ({first[:45]!r} and {second[:45]!r})"
    return f"query parameter {name[:45]!r} is given twice{values}: give it once"


def first_given_twice(pairs: Iterable[tuple[str, str]]) -> str | None:
    """``given_twice`` of the first query parameter of ``pairs`` (a query's items, in order)
    that comes twice; None when each comes once."""
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in seen:
            return given_twice(name, seen[name], value)
        seen[name] = value
    return None


def _offered_token(request: Request, *, query: bool) -> str | None:
    """The token a request sent (a bearer header's, else ``?token=`` where taken); None when
    it sent none."""
    offered = request.query_params.get(TOKEN_PARAM) if query else None
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        offered = value.strip()
    return offered


_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    # The token may sit in a page's URL: never send it on to another site.
    (b"referrer-policy", b"no-referrer"),
]


def _with_headers(send: Send) -> Callable[[Any], Awaitable[None]]:
    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
        await send(message)

    return wrapped
