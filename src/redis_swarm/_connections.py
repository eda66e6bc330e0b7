"""The connections of every client ``_connect`` builds, and the options they share
(``common``: timeouts, credentials, TLS, the pool's size, ``pool_options``): a health
check that takes any answer for one (``AnswerMeansAlive``: a server that cannot persist
refuses the check's PING with MISCONF, and still serves reads), and a TLS handshake that
waits ``connect_timeout`` at most, on every redis-py (``HandshakeWithinConnectTimeout``;
asyncio's, apart from the TCP connect, says it timed out: ``AsyncHandshakeApart``), and an
asyncio connection used only on the event loop that opened it (``AsyncOnItsLoop``: a handle
used under one ``asyncio.run`` after another reopens it rather than fail mid-request).
The Sentinel and Cluster clients' own connections build on these (``_sentinel``,
``_cluster``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl as _ssl
from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio
from redis.connection import SSLConnection

from ._config import Settings
from ._translate import ENCRYPTED_KEY, HANDSHAKE_TIMEOUT, RESET_IN_TLS_SETUP, causes, encrypted_key

__all__ = [
    "ALIVE_ON_ANY_ANSWER",
    "QUIET",
    "AnswerMeansAlive",
    "AsyncAnswerMeansAlive",
    "AsyncHandshakeApart",
    "AsyncOnItsLoop",
    "HandshakeWithinConnectTimeout",
    "alive_on_any_answer",
    "common",
    "made_alive_on_any_answer",
    "pool_options",
    "refuse_encrypted_key",
]

_CERT_REQS = {
    "required": _ssl.CERT_REQUIRED,
    "optional": _ssl.CERT_OPTIONAL,
    "none": _ssl.CERT_NONE,
}


# redis-py >= 7 identifies itself with two CLIENT SETINFO commands on every new connection:
# two round trips that a worker process on a far-away link pays for nothing. Off, where the
# installed redis-py has the switch.
QUIET: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {}
)


def pool_options(settings: Settings) -> dict[str, Any]:
    """What every client's pool is given, whatever it connects through (TCP, TLS, a unix
    socket; a cluster's pool of each node, a Sentinel URL's sentinels): its size, explicit,
    so that it is the same on every redis-py (whose default was no limit before 8.0)."""
    return {"max_connections": settings.max_connections}


def common(settings: Settings) -> dict[str, Any]:
    """The options every network client is given: timeouts, credentials, TLS, the pool's
    size (``pool_options``)."""
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "username": settings.username,
        "password": settings.password,
        **pool_options(settings),
        **QUIET,
    }
    if settings.ssl:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_cert_reqs=_CERT_REQS[settings.ssl_cert_reqs],
            ssl_check_hostname=settings.ssl_cert_reqs == "required",
        )
    return kwargs


# --- a health check that takes any answer for one

# redis-py checks a connection with a PING before its first command and after it was idle for
# health_check_interval, and takes an error reply for a failure. A server that cannot persist
# (MISCONF: its disk is full, or its RDB snapshot failed with stop-writes-on-bgsave-error)
# refuses PING as it refuses writes, so every new connection failed, reads included. An error
# reply is an answer: the server is alive, and the command that follows gets its own reply
# (a write its MISCONF, translated into what to do). Errors that redis-py reads as connection
# failures (LOADING, NOAUTH) are not ResponseErrors and keep their meaning.


class AnswerMeansAlive:
    """Mixin for redis-py's connection classes: an error reply to the health check's PING
    passes it."""

    def check_health(self) -> None:
        # Answered: the connection is in step (its reply was read), and alive.
        with contextlib.suppress(redis.ResponseError):
            super().check_health()  # type: ignore[misc]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # (no loop runs here: a close from a finalizer)
        return None


def _close_stranded(writer: Any, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close the socket of ``writer``, a stream of ``loop``, not the running loop. A loop
    still open closes it at its next turn (``abort``). A closed one (its ``asyncio.run``
    ended) never runs the close a transport schedules on it: the socket is closed here, as
    that close would have done (``_call_connection_lost``), else it stays open to the
    server until the garbage collector finds it, with a ResourceWarning."""
    transport = writer.transport
    if loop is not None and not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # (closed in between: as below)
            transport.abort()
            return
    # Under a TLS stream, the socket's own transport (the one a plain stream has).
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None) or transport
    with contextlib.suppress(RuntimeError, AttributeError, OSError):
        transport.abort()  # (marks it closed; what it schedules cannot run)
    lost = getattr(inner, "_call_connection_lost", None)
    if lost is not None and getattr(inner, "_sock", None) is not None:
        # (it closes the socket, then tells the protocol, which may try to schedule on the
        # closed loop: the socket is closed by then)
        with contextlib.suppress(RuntimeError):
            lost(None)
    else:  # (not a transport of asyncio's selector loop: the server hears the end)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class AsyncOnItsLoop:
    """Mixin for redis-py's asyncio connection classes: a connection is used on the event
    loop that opened it, or reopened. Its streams belong to that loop: an ``AsyncSwarm``
    used under a second ``asyncio.run`` (the first loop closed) sent its request on the old
    socket, then failed to read the reply ("Event loop is closed"), the request applied
    and its result lost. A connection opened on another loop reads as not connected: it is
    closed (``_close_stranded``) and opened again on the running loop before anything is
    written to it, and ``disconnect`` (``aclose``) closes it too."""

    _reader: Any
    _writer: Any
    _opened_on: asyncio.AbstractEventLoop | None = None

    def _stranded(self) -> bool:
        """Opened on a loop that is not the running one (none running, as in a finalizer:
        not known, so not)."""
        running = _running_loop()
        return self._writer is not None and running is not None and self._opened_on is not running

    def _drop_stranded(self) -> None:
        if self._stranded():
            writer, loop = self._writer, self._opened_on
            self._reader = self._writer = None
            self._opened_on = None
            _close_stranded(writer, loop)

    @property
    def is_connected(self) -> bool:
        return self._reader is not None and self._writer is not None and not self._stranded()

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self._drop_stranded()
        await super().connect_check_health(*args, **kwargs)  # type: ignore[misc]

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[misc]
        self._opened_on = _running_loop()

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._drop_stranded()
        await super().disconnect(*args, **kwargs)  # type: ignore[misc]
        if self._writer is None:
            self._opened_on = None


class AsyncAnswerMeansAlive(AsyncOnItsLoop):
    """The asyncio twin of ``AnswerMeansAlive`` (and a connection on its loop:
    ``AsyncOnItsLoop``)."""

    async def check_health(self) -> None:
        with contextlib.suppress(redis.ResponseError):
            await super().check_health()  # type: ignore[misc]


# --- a client key that is encrypted


def refuse_encrypted_key(certfile: str | None, keyfile: str | None) -> None:
    """Refuse a connection whose client key is encrypted with a pass phrase (its PEM header
    says so: ``_translate.encrypted_key``) before the ssl module loads it: OpenSSL would ask
    for the phrase on the terminal ("Enter PEM pass phrase:", a process with no terminal
    failing with "Error 22 ... Invalid argument", a command at one waiting for it), at every
    attempt. Raised as the socket's error redis-py wraps (an OSError), its text
    ``ENCRYPTED_KEY``: no retry fixes it, and ``translate`` says which file and what to do."""
    found = encrypted_key(certfile, keyfile)
    if found is not None:
        raise OSError(f"{found[0]} {found[1]}: the {ENCRYPTED_KEY}")


# --- a TLS handshake that waits no longer than a connection


class HandshakeWithinConnectTimeout:
    """Mixin for redis-py's sync TLS connection classes: the TLS handshake waits for the
    server ``socket_connect_timeout`` at most, as the TCP connect before it (and as asyncio's
    connect, which holds both, does in every redis-py). redis-py before 8.2 made it under
    ``socket_timeout``, which ``_connect`` gives the socket before wrapping it: a rediss://
    URL to a plain port (whose server waits for a newline that a handshake never sends)
    waited 10 s for each attempt, not ``connect_timeout``. Here ``socket_timeout`` stands
    for the connect timeout while ``_connect`` runs; the socket it returns gets its own."""

    socket_timeout: float | None
    socket_connect_timeout: float | None

    certfile: str | None
    keyfile: str | None

    def _connect(self) -> Any:
        refuse_encrypted_key(self.certfile, self.keyfile)
        timeout = self.socket_timeout
        self.socket_timeout = self.socket_connect_timeout
        try:
            sock = super()._connect()  # type: ignore[misc]
        finally:
            self.socket_timeout = timeout
        sock.settimeout(timeout)
        return sock


class AsyncHandshakeApart:
    """Mixin for redis-py's asyncio TLS connection classes: the TCP connect, then the TLS
    handshake, each within ``socket_connect_timeout``, as the sync client's
    (``HandshakeWithinConnectTimeout``), and a handshake that timed out said as one, in the
    words of the sync client's ssl module (``HANDSHAKE_TIMEOUT``). redis-py's asyncio
    connect makes both in one ``open_connection`` under one timeout, whose error says no
    more than "Timeout connecting to server": a rediss:// URL at a plain port (which never
    answers a handshake) read as a server that cannot be reached, retried for a Sentinel or
    Cluster URL's whole window (most of a minute per request) where the sync client's
    retries stop within a plain URL's (``_retries``), and said without its likely cause
    (``translate``). Here the TCP connection is made first; redis-py's connect then makes
    the handshake on it (``_connection_arguments``: the socket instead of the address)."""

    host: str
    port: int
    socket_connect_timeout: float | None
    _tcp: socket.socket | None = None  # (made, not yet handed to redis-py's connect)

    def _connection_arguments(self) -> Mapping[str, Any]:
        arguments = dict(super()._connection_arguments())  # type: ignore[misc]
        if self._tcp is not None:
            del arguments["host"], arguments["port"]
            arguments.update(sock=self._tcp, server_hostname=self.host)
        return arguments

    ssl_context: Any

    async def _connect(self) -> None:
        refuse_encrypted_key(self.ssl_context.certfile, self.ssl_context.keyfile)
        self._tcp = await asyncio.wait_for(
            _tcp_connection(self.host, self.port), self.socket_connect_timeout
        )
        tcp = self._tcp
        try:
            await super()._connect()  # type: ignore[misc]
        except asyncio.TimeoutError as exc:  # (only the handshake was left to wait for)
            tcp.close()
            raise TimeoutError(f"The {HANDSHAKE_TIMEOUT} (asyncio)") from exc
        except BaseException:
            # (asyncio closes a socket it was given once its transport fails; one that
            # failed before, its TLS files not loading, is closed here; twice is harmless)
            tcp.close()
            raise
        finally:
            self._tcp = None

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        """redis-py's setup of a new connection (HELLO, AUTH, SELECT), a reset met in it said
        as one of the TLS setup (``RESET_IN_TLS_SETUP``): the likeliest cause is a server
        that refuses the client's certificate, or its lack, whose alert the reset dropped
        (the sync client, slower to send its first request, gets the alert). Said as a
        connection not made, as redis-py's connect says one (its words, the socket's error
        its cause): the request that opened the connection was not written yet, and reached
        no server (``_translate.may_have_reached``: ``sent`` False). redis-py's error of the
        exchange stays its context only: as its cause, it read as a request's failure."""
        try:
            await super().on_connect_check_health(check_health=check_health)  # type: ignore[misc]
        except redis.ConnectionError as exc:
            reset = next(
                (item for item in causes(exc) if isinstance(item, ConnectionResetError)), None
            )
            if reset is None and "connection reset by peer" not in str(exc).lower():
                raise
            raise redis.ConnectionError(
                f"Error connecting to {self.host}:{self.port}: {RESET_IN_TLS_SETUP} ({exc})"
            ) from reset


async def _tcp_connection(host: str, port: int) -> socket.socket:
    """A TCP connection to ``host``:``port``: to each address the name resolves to in turn,
    as asyncio's connect tries them; the last one's error is raised."""
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for family, kind, proto, _, address in await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error if error is not None else OSError(f"{host} resolves to no address")


class _Connection(AnswerMeansAlive, redis.Connection):
    pass


class _SSLConnection(AnswerMeansAlive, HandshakeWithinConnectTimeout, SSLConnection):
    pass


class _UnixConnection(AnswerMeansAlive, redis.UnixDomainSocketConnection):
    pass


class _AsyncConnection(AsyncAnswerMeansAlive, redis.asyncio.Connection):
    pass


class _AsyncSSLConnection(AsyncAnswerMeansAlive, AsyncHandshakeApart, redis.asyncio.SSLConnection):
    pass


class _AsyncUnixConnection(AsyncAnswerMeansAlive, redis.asyncio.UnixDomainSocketConnection):
    pass


# The class redis-py picks for a client's connections (by its URL: TCP, TLS, unix socket),
# and ours in its place.
ALIVE_ON_ANY_ANSWER: dict[type[Any], type[Any]] = {
    redis.Connection: _Connection,
    SSLConnection: _SSLConnection,
    redis.UnixDomainSocketConnection: _UnixConnection,
    redis.asyncio.Connection: _AsyncConnection,
    redis.asyncio.SSLConnection: _AsyncSSLConnection,
    redis.asyncio.UnixDomainSocketConnection: _AsyncUnixConnection,
}


def alive_on_any_answer(pool: Any) -> None:
    """Make ``pool`` (of a client just built: no connection made yet) build its connections
    with the health check of ``AnswerMeansAlive``. redis.Redis takes no connection class,
    but its pool says the one it picked, and builds every connection from it."""
    pool.connection_class = ALIVE_ON_ANY_ANSWER.get(pool.connection_class, pool.connection_class)


def made_alive_on_any_answer(connection: Any) -> None:
    """Make ``connection`` (of one of redis-py's classes, just connected) one of
    ``AnswerMeansAlive``: its class is redis-py's plus that mixin, which adds no state."""
    alive = ALIVE_ON_ANY_ANSWER.get(type(connection))
    if alive is not None:
        connection.__class__ = alive
