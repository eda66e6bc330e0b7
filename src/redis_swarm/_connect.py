"""Build the right redis-py client for a Settings: standalone, unix, TLS, cluster, sentinel.

Every client retries connection errors and socket timeouts with exponential backoff and
jitter, and checks new and idle connections before use with a PING, which any answer
passes (a server that cannot persist refuses PING with MISCONF, and still serves reads); the
sync cluster client's nodes too, which redis-py leaves unchecked (``_Cluster``). A TLS
handshake waits ``connect_timeout`` at most, on every redis-py.
Operations are written to be safe to retry (client-generated ids, idempotent scripts), so a
retried command after a lost reply never applies twice.

Three things redis-py does not do on its own: errors that no retry can fix (a certificate that
does not verify, a client certificate the server's alert refuses, a wrong password) fail at
once instead of after the whole backoff; redis-py nests its retries (a command retries, and so
does the connect inside it), which would multiply the attempts: here only the outermost level
retries; and the retries, counted for failures that come at once (a connection refused while a
server restarts), would each cost a whole timeout on a server that takes connections and never
answers (a stopped process: 7 times ``socket_timeout``). Once an attempt has timed out, a
request is sent again only if another attempt, timing out too, would end within the retry
window counted from its first failure (``Settings.retry_window_s``): a request lasts at most
``Settings.longest_request_s``. And the long window of a Sentinel or Cluster URL (53 s, to ride
out a failover) is for failovers, during which some of their servers answer: when none does
(every sentinel, every node the client knows: ``NoneAnswered``), a request is retried within a
plain URL's window (``Settings.none_answered_window_s``), counted from the first of such
failures in a row, and the sync cluster client, which asks for the cluster's layout when it is
made, retries that as a request would. Sentinels that answer that they monitor no master of
the URL's name are no failover: that fails at once, with a ConfigError.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import ssl as _ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.sentinel
import redis.utils
from redis._parsers.commands import AsyncCommandsParser, CommandsParser
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import SSLConnection
from redis.exceptions import RedisClusterException, SlotNotCoveredError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from ._config import BACKOFF_BASE_S, BACKOFF_CAP_S, Settings, check_sentinel_service
from ._errors import ConfigError
from ._translate import (
    CERTIFICATE_REFUSED,
    HANDSHAKE_FAILURE,
    HANDSHAKE_TIMEOUT,
    TLS_FILE_ERRORS,
    causes,
    why_no_answer,
)

__all__ = [
    "NoneAnswered",
    "Sender",
    "address_of",
    "async_client",
    "async_cluster_retry",
    "async_node_client",
    "cluster_retry",
    "direct_sender",
    "fcall_routed",
    "is_permanent",
    "node_client",
    "sync_client",
]

T = TypeVar("T")

SyncClient = redis.Redis | RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

_RETRY_ON = [redis.ConnectionError, redis.TimeoutError]
_CERT_REQS = {
    "required": _ssl.CERT_REQUIRED,
    "optional": _ssl.CERT_OPTIONAL,
    "none": _ssl.CERT_NONE,
}


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S)


# Fragments of errors that a retry cannot fix (lower case; matched in the whole cause chain).
_PERMANENT = (
    "certificate verify failed",
    "certificate required",
    *CERTIFICATE_REFUSED,
    "wrong version number",
    "wrong_version_number",
    "unsupported protocol",
    "no such file or directory",
    "invalid username-password",
    "wrongpass",
    "noauth",
    HANDSHAKE_FAILURE,
    HANDSHAKE_TIMEOUT,
    *TLS_FILE_ERRORS,
)


def is_permanent(exc: BaseException) -> bool:
    """True for a connection error that no retry can fix (certificates, a server's alert
    refusing the client certificate, authentication, a TLS handshake that timed out: the port
    speaks no TLS). Not a TLS connection the server closed without a word while it was being
    made, even with a client certificate in the URL: a server at its maxclients, or
    restarting, does that too (``translate`` names both causes once the retries are over)."""
    for item in causes(exc):
        if isinstance(
            item,
            redis.AuthenticationError
            | redis.exceptions.AuthorizationError
            | _ssl.SSLCertVerificationError,
        ):
            return True
        text = str(item).lower()
        if any(fragment in text for fragment in _PERMANENT):
            return True
    return False


class NoneAnswered(redis.ConnectionError):
    """No server the client could ask answered: every sentinel of a Sentinel URL, or every
    node a cluster client knows, refused the connection or never answered (``timed_out``:
    some took it and never answered). Retried within ``Settings.none_answered_window_s``."""

    timed_out = False


class _NoMasterFound(MasterNotFoundError):
    """redis-py's "no master found", from ``_Sentinel``: ``failed_sentinels`` says which
    sentinels failed and why (host:port, the error's text), for ``translate``, whatever
    redis-py's version writes in its own text."""

    failed_sentinels: tuple[tuple[str, str], ...] = ()


class _NoSentinelAnswered(NoneAnswered, _NoMasterFound):
    """``_NoMasterFound`` when every sentinel failed."""


class _AsyncNoMasterFound(redis.asyncio.sentinel.MasterNotFoundError):
    """The asyncio twin of ``_NoMasterFound`` (asyncio's Sentinel has a class of its own)."""

    failed_sentinels: tuple[tuple[str, str], ...] = ()


class _AsyncNoSentinelAnswered(NoneAnswered, _AsyncNoMasterFound):
    """The asyncio twin of ``_NoSentinelAnswered``."""


class _NoNodeAnswered(NoneAnswered):
    """redis-py's "Redis Cluster cannot be connected", as a RedisError (``_cluster_error``)."""


def _timed_out(error: Exception) -> bool:
    return isinstance(error, redis.TimeoutError) or (
        isinstance(error, NoneAnswered) and error.timed_out
    )


# How many retry loops of this context are running: an inner one makes a single attempt,
# so that a command's retry and the connect's retry inside it do not multiply.
_DEPTH: ContextVar[int] = ContextVar("redis_swarm_retry_depth", default=0)


class _Nested:
    """Counts a retry loop in as running; ``as`` gives how many were already running. (A
    class, not a generator: every command enters two of these.)"""

    __slots__ = ("_token",)

    def __enter__(self) -> int:
        depth = _DEPTH.get()
        self._token = _DEPTH.set(depth + 1)
        return depth

    def __exit__(self, *exc: object) -> None:
        _DEPTH.reset(self._token)


class _Attempts:
    """What both retry loops decide after a failure, I/O-free: report it (redis-py's ``fail``
    drops the connection; its result is returned for the asyncio loop to await), and how long
    to pause before the next attempt, or None to give up and raise."""

    def __init__(
        self,
        retry: _Retry | _AsyncRetry,
        depth: int,
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None,
        with_failure_count: bool,
    ) -> None:
        self._retry, self._depth, self._fail = retry, depth, fail
        self._is_retryable, self._with_count = is_retryable, with_failure_count
        self.failures = 0
        self._first_failure = time.monotonic()
        self._timed_out = False
        # When the failures in a row with no server answering (NoneAnswered) began.
        self._none_answered_since: float | None = None
        retry._backoff.reset()  # type: ignore[no-untyped-call]

    def failed(self, error: Exception) -> tuple[float | None, Any]:
        if self._is_retryable is not None and not self._is_retryable(error):
            return None, None
        self.failures += 1
        reported = self._fail(error, self.failures) if self._with_count else self._fail(error)
        retries = self._retry._retries
        if self._depth > 0 or is_permanent(error) or (0 <= retries < self.failures):
            return None, reported
        pause: float = self._retry._backoff.compute(self.failures)
        self._timed_out = self._timed_out or _timed_out(error)
        if self._timed_out and not self._fits(pause):
            return None, reported
        if not self._fits_none_answered(error, pause):
            return None, reported
        return pause, reported

    def _fits(self, pause: float) -> bool:
        """Whether another attempt after ``pause``, timing out, would still end within the
        retry window counted from the first failure (see the module's docstring)."""
        timing = self._retry.timing
        if timing is None:
            return True
        return bool(
            time.monotonic() - self._first_failure + pause + timing.attempt <= timing.window
        )

    def _fits_none_answered(self, error: Exception, pause: float) -> bool:
        """Whether another attempt after ``pause`` may follow ``error``: any error but
        ``NoneAnswered`` (a failover under way, ridden out for the whole retry window) ends a
        run of those; in one, another attempt (timing out, if this one did) must end within
        ``Settings.none_answered_window_s`` counted from the run's first failure."""
        timing = self._retry.timing
        if not isinstance(error, NoneAnswered):
            self._none_answered_since = None
            return True
        now = time.monotonic()
        if self._none_answered_since is None:
            self._none_answered_since = now
        if timing is None:
            return True
        attempt = timing.attempt if error.timed_out else 0.0
        return now - self._none_answered_since + pause + attempt <= timing.none_answered


class _Timing(NamedTuple):
    """How long retries may go on, from the settings of a connection."""

    window: float  # Settings.retry_window_s
    attempt: float  # the longest a timed-out attempt takes
    none_answered: float  # Settings.none_answered_window_s


def _timing(settings: Settings) -> _Timing:
    return _Timing(
        settings.retry_window_s,
        settings.connect_timeout + settings.socket_timeout,
        settings.none_answered_window_s,
    )


class _Retry(Retry):
    """redis-py's Retry, minus hopeless retries, nested retry loops, and retries of a timed-out
    request past the retry window. ``timing``: that window, the longest a timed-out attempt
    takes, and the window when no server answers (``_timing``; None: retries counted only)."""

    timing: _Timing | None = None

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        with _Nested() as depth:
            attempts = None  # made at the first failure: most calls have none
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if attempts is None:
                        attempts = _Attempts(self, depth, fail, is_retryable, with_failure_count)
                    pause, _ = attempts.failed(error)
                    if pause is None:
                        raise
                    time.sleep(pause)


class _AsyncRetry(redis.asyncio.retry.Retry):
    """The asyncio twin of ``_Retry``."""

    timing: _Timing | None = None

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        with _Nested() as depth:
            attempts = None  # made at the first failure: most calls have none
            while True:
                try:
                    return await do()
                except self._supported_errors as error:
                    if attempts is None:
                        attempts = _Attempts(self, depth, fail, is_retryable, with_failure_count)
                    pause, reported = attempts.failed(error)
                    if inspect.isawaitable(reported):
                        await reported
                    if pause is None:
                        raise
                    await asyncio.sleep(pause)


# redis-py >= 7 identifies itself with two CLIENT SETINFO commands on every new connection:
# two round trips that a worker process on a far-away link pays for nothing. Off, where the
# installed redis-py has the switch.
_QUIET: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis.__init__).parameters
    else {}
)


def _common(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "username": settings.username,
        "password": settings.password,
        **_QUIET,
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


class _AnswerMeansAlive:
    """Mixin for redis-py's connection classes: an error reply to the health check's PING
    passes it."""

    def check_health(self) -> None:
        # Answered: the connection is in step (its reply was read), and alive.
        with contextlib.suppress(redis.ResponseError):
            super().check_health()  # type: ignore[misc]


class _AsyncAnswerMeansAlive:
    """The asyncio twin of ``_AnswerMeansAlive``."""

    async def check_health(self) -> None:
        with contextlib.suppress(redis.ResponseError):
            await super().check_health()  # type: ignore[misc]


# --- a TLS handshake that waits no longer than a connection


class _HandshakeWithinConnectTimeout:
    """Mixin for redis-py's sync TLS connection classes: the TLS handshake waits for the
    server ``socket_connect_timeout`` at most, as the TCP connect before it (and as asyncio's
    connect, which holds both, does in every redis-py). redis-py before 8.2 made it under
    ``socket_timeout``, which ``_connect`` gives the socket before wrapping it: a rediss://
    URL to a plain port (whose server waits for a newline that a handshake never sends)
    waited 10 s for each attempt, not ``connect_timeout``. Here ``socket_timeout`` stands
    for the connect timeout while ``_connect`` runs; the socket it returns gets its own."""

    socket_timeout: float | None
    socket_connect_timeout: float | None

    def _connect(self) -> Any:
        timeout = self.socket_timeout
        self.socket_timeout = self.socket_connect_timeout
        try:
            sock = super()._connect()  # type: ignore[misc]
        finally:
            self.socket_timeout = timeout
        sock.settimeout(timeout)
        return sock


class _Connection(_AnswerMeansAlive, redis.Connection):
    pass


class _SSLConnection(_AnswerMeansAlive, _HandshakeWithinConnectTimeout, SSLConnection):
    pass


class _UnixConnection(_AnswerMeansAlive, redis.UnixDomainSocketConnection):
    pass


class _AsyncConnection(_AsyncAnswerMeansAlive, redis.asyncio.Connection):
    pass


class _AsyncSSLConnection(_AsyncAnswerMeansAlive, redis.asyncio.SSLConnection):
    pass


class _AsyncUnixConnection(_AsyncAnswerMeansAlive, redis.asyncio.UnixDomainSocketConnection):
    pass


# The class redis-py picks for a client's connections (by its URL: TCP, TLS, unix socket),
# and ours in its place.
_ALIVE_ON_ANY_ANSWER: dict[type[Any], type[Any]] = {
    redis.Connection: _Connection,
    SSLConnection: _SSLConnection,
    redis.UnixDomainSocketConnection: _UnixConnection,
    redis.asyncio.Connection: _AsyncConnection,
    redis.asyncio.SSLConnection: _AsyncSSLConnection,
    redis.asyncio.UnixDomainSocketConnection: _AsyncUnixConnection,
}


def _alive_on_any_answer(pool: Any) -> None:
    """Make ``pool`` (of a client just built: no connection made yet) build its connections
    with the health check of ``_AnswerMeansAlive``. redis.Redis takes no connection class,
    but its pool says the one it picked, and builds every connection from it."""
    pool.connection_class = _ALIVE_ON_ANY_ANSWER.get(pool.connection_class, pool.connection_class)


def _made_alive_on_any_answer(connection: Any) -> None:
    """Make ``connection`` (of one of redis-py's classes, just connected) one of
    ``_AnswerMeansAlive``: its class is redis-py's plus that mixin, which adds no state."""
    alive = _ALIVE_ON_ANY_ANSWER.get(type(connection))
    if alive is not None:
        connection.__class__ = alive


class _SentinelMaster(redis.Redis):
    """The master behind a Sentinel; closing it also closes the connections to the sentinels."""

    def close(self) -> None:
        super().close()
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            sentinel.close()


class _AsyncSentinelMaster(redis.asyncio.Redis):
    """The asyncio twin of ``_SentinelMaster``."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()


# What asking a sentinel for its masters may meet: it is down or not there (a ConnectionError),
# it never answers (a TimeoutError), or it is no sentinel (an error reply, which redis-py
# before 8.2 let end the whole lookup, not saying which server it came from).
_SENTINEL_FAILURES = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)


def _master_given(
    sentinel_of: Any, number: int, masters: Any, service_name: str
) -> tuple[str, int] | None:
    """The address of the master ``service_name`` from the masters that sentinel ``number``
    of ``sentinel_of`` (a Sentinel) monitors, when it is up (that sentinel is then asked
    first next time, as redis-py does); None when it gave none."""
    state = masters.get(service_name)
    if not state or not sentinel_of.check_master_state(state, service_name):
        return None
    sentinels = sentinel_of.sentinels
    sentinels[0], sentinels[number] = sentinels[number], sentinels[0]
    return state["ip"], state["port"]


def _no_master_found(
    settings: Settings | None,
    service_name: str,
    answered: list[tuple[Any, Any]],
    failed: list[tuple[Any, Exception]],
    found: type[_NoMasterFound | _AsyncNoMasterFound],
    none_answered: type[_NoSentinelAnswered | _AsyncNoSentinelAnswered],
) -> ConfigError | MasterNotFoundError | redis.asyncio.sentinel.MasterNotFoundError:
    """The error of a lookup of ``service_name`` that gave no master: ``answered``, the
    sentinels that answered (their clients) and the masters each monitors; ``failed``, those
    that failed and what each met. A name none that answered monitors is a ConfigError
    (``_no_such_service``); else as ``none_answered`` when every one failed (none answered:
    ``NoneAnswered``), or as ``found``."""
    unknown = _no_such_service(settings, service_name, answered, failed)
    if unknown is not None:
        return unknown
    failures = tuple(
        (address_of(client), str(error) or type(error).__name__) for client, error in failed
    )
    said = ", ".join(f"{node} - {error}" for node, error in failures)
    text = f"No master found for {service_name!r}{f' : {said}' if said else ''}"
    error = (none_answered if failed and not answered else found)(text)
    error.failed_sentinels = failures
    if isinstance(error, NoneAnswered):
        error.timed_out = any(isinstance(why, redis.TimeoutError) for _, why in failed)
    return error


def _no_such_service(
    settings: Settings | None,
    service_name: str,
    answered: list[tuple[Any, Any]],
    failed: list[tuple[Any, Exception]],
) -> ConfigError | None:
    """The error of a service name that no sentinel monitors: ``answered``, each sentinel that
    answered (its client) and the masters it monitors (SENTINEL MASTERS), names none such.
    None when one of them knows it (a failover keeps the name, its master down: ridden out,
    as are the sentinels that did not answer, ``failed``), or none answered."""
    if not answered or any(service_name in masters for _, masters in answered):
        return None
    where = settings.url if settings is not None else "the URL"
    names = sorted({str(name) for _, masters in answered for name in masters})
    hosts = ", ".join(address_of(client) for client, _ in answered)
    verb = "monitors" if len(answered) == 1 else "monitor"
    silent = ", ".join(
        f"{address_of(client)} ({why_no_answer(str(error) or type(error).__name__)})"
        for client, error in failed
    )
    monitor = f"SENTINEL MONITOR {service_name} HOST PORT QUORUM on each sentinel"
    if names:
        example = ""
        if settings is not None:
            example = f", as in {settings.replace(service_name=names[0]).url}"
        listed = f"{verb} {', '.join(map(repr, names))} (SENTINEL MASTERS)"
        todo = (
            f"put the name of the master in the URL{example}, or have the sentinels "
            f"monitor {service_name!r} ({monitor})"
        )
    else:
        listed = f"{verb} no master at all (SENTINEL MASTERS is empty)"
        todo = (
            "check that the URL names the sentinels of that master, or have them monitor it "
            f"({monitor})"
        )
    return ConfigError(
        f"no Sentinel of {where} monitors a master named {service_name!r}: {hosts} {listed}"
        f"{f'; no answer from {silent}' if silent else ''}: {todo}"
    )


def address_of(client: Any) -> str:
    """host:port of a client of one server (a sentinel's: as its pool was given them)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


class _Sentinel(Sentinel):
    """redis-py's Sentinel, whose lookup of a master says which sentinels failed and why
    (``_NoMasterFound``), and when none answered (``_NoSentinelAnswered``), in the same
    words on every redis-py version; an error reply (a server that is no sentinel) is one
    sentinel's failure, not the whole lookup's. A service name that no sentinel that answers
    monitors fails at once (``_no_such_service``: no retry makes a sentinel monitor it), not
    after the failover window. ``settings``: those of the URL, for that error's words.
    (redis-py's force_master_ip, which no client here is given, is not read.)"""

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def discover_master(self, service_name: str) -> Any:
        answered: list[tuple[Any, Any]] = []
        failed: list[tuple[Any, Exception]] = []
        for number, sentinel in enumerate(self.sentinels):
            try:
                masters = sentinel.sentinel_masters()
            except _SENTINEL_FAILURES as error:
                failed.append((sentinel, error))
                continue
            address = _master_given(self, number, masters, service_name)
            if address is not None:
                return address
            answered.append((sentinel, masters))
        raise _no_master_found(
            self.settings, service_name, answered, failed, _NoMasterFound, _NoSentinelAnswered
        )


class _AsyncSentinel(redis.asyncio.sentinel.Sentinel):
    """The asyncio twin of ``_Sentinel``."""

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    async def discover_master(self, service_name: str) -> Any:
        answered: list[tuple[Any, Any]] = []
        failed: list[tuple[Any, Exception]] = []
        for number, sentinel in enumerate(self.sentinels):
            try:
                masters = await sentinel.sentinel_masters()
            except _SENTINEL_FAILURES as error:
                failed.append((sentinel, error))
                continue
            address = _master_given(self, number, masters, service_name)
            if address is not None:
                return address
            answered.append((sentinel, masters))
        raise _no_master_found(
            self.settings,
            service_name,
            answered,
            failed,
            _AsyncNoMasterFound,
            _AsyncNoSentinelAnswered,
        )


class _SentinelConnection(_AnswerMeansAlive, SentinelManagedConnection):
    """A connection to the master behind Sentinel that asks the sentinels where the master is
    each time it reconnects. redis-py 8 reconnects a dropped connection from inside
    ``send_packed_command`` to the address it last had, skipping the sentinel lookup of
    ``connect()``: after a failover a retried command would knock at the old master for ever
    (refused while it is down, READONLY once it is back as a replica)."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class _SentinelSSLConnection(_SentinelConnection, _HandshakeWithinConnectTimeout, SSLConnection):
    """``_SentinelConnection`` over TLS."""


class _AsyncSentinelConnection(
    _AsyncAnswerMeansAlive, redis.asyncio.sentinel.SentinelManagedConnection
):
    """The asyncio twin of ``_SentinelConnection``."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]
        await super().send_packed_command(command, check_health)


class _AsyncSentinelSSLConnection(_AsyncSentinelConnection, redis.asyncio.connection.SSLConnection):
    """``_AsyncSentinelConnection`` over TLS."""


# What a cluster request may meet while a master fails over: the dead node, then the whole
# cluster refusing (CLUSTERDOWN, cluster-require-full-coverage) until its replica is promoted.
# And while a slot moves between masters (resharding): a script whose keys are not all on one
# node is refused with TRYAGAIN until they are (until the move ends, for a script that names a
# key that does not exist yet), and redis-py follows ASK, MOVED and TRYAGAIN only 16 times,
# mostly without a pause, before it gives up with a bare ClusterError("TTL exhausted."). Each
# of these replies means the command did not run, so retrying it with backoff is safe.
# (ClusterError covers ClusterDownError too; TryAgainError and AskError, whose subclass is
# MovedError, are listed in case a redis-py version lets one escape instead of following it.)
_CLUSTER_RETRY_ON = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.TryAgainError,
    redis.exceptions.AskError,
)
# redis-py's cluster client retries these at once, re-reading the topology each time: a few
# are enough; the pauses come from the shell-level retry (cluster_retry).
_CLUSTER_INSTANT_RETRIES = 2


def _function_keys(args: tuple[Any, ...]) -> list[Any] | None:
    """The keys of an FCALL / FCALL_RO (after the function name and the number of keys);
    None for any other command."""
    if len(args) > 2 and str(args[0]).upper() in ("FCALL", "FCALL_RO"):
        return list(args[3 : 3 + int(args[2])])
    return None


class _CommandsParser(CommandsParser):
    """redis-py's cluster client asks the server (COMMAND GETKEYS, a round trip) for the
    keys of any command whose keys move, FCALL included; it knows where EVALSHA's are, and
    FCALL's are in the same place. This reads them from the command, as for EVALSHA."""

    def get_keys(self, redis_conn: Any, *args: Any) -> Any:
        keys = _function_keys(args)
        return keys if keys is not None else super().get_keys(redis_conn, *args)  # type: ignore[no-untyped-call]


class _AsyncCommandsParser(AsyncCommandsParser):
    """The asyncio twin of ``_CommandsParser``."""

    async def get_keys(self, *args: Any) -> Any:
        keys = _function_keys(args)
        return keys if keys is not None else await super().get_keys(*args)


def fcall_routed(cluster: Any) -> Any:
    """``cluster`` (a redis-py cluster client, sync or asyncio), made to read FCALL's keys
    from the command (see ``_CommandsParser``); a shell applies it to a client it is given."""
    parser = cluster.commands_parser  # the one its pipelines share, command table read
    if not isinstance(parser, _CommandsParser | _AsyncCommandsParser):
        sync = isinstance(parser, CommandsParser)
        parser.__class__ = _CommandsParser if sync else _AsyncCommandsParser
    return cluster


def _cluster_error(exc: RedisClusterException) -> redis.RedisError:
    """What redis-py's cluster client raises when it cannot learn the cluster's layout (a
    RedisClusterException, which is no RedisError: nothing above would translate it): when
    it is made, at its first command (asyncio), or at a refresh after a node failed (then a
    RedisClusterUnreachableError, from the command), as the RedisError it stands for: no
    node answered (``_NoNodeAnswered``, retried as an outage is; ``translate`` names the
    nodes), a slot no node serves now (a ConnectionError: a failover under way), or a node
    that answered but is no cluster node (a ResponseError: no retry helps); credentials
    refused as they were (the error redis-py met)."""
    cause = exc.__cause__
    if isinstance(cause, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return cause
    text = str(exc)
    if isinstance(exc, SlotNotCoveredError):
        return redis.ConnectionError(text)
    if isinstance(cause, redis.ConnectionError | redis.TimeoutError | OSError) or (
        "connecting to" in text
    ):
        error = _NoNodeAnswered(text)
        error.timed_out = isinstance(cause, redis.TimeoutError | TimeoutError)
        return error
    return redis.ResponseError(text)


def _layout_errors_converted(send: Callable[..., T]) -> Callable[..., T]:
    """``send`` (a sync cluster client's execute_command, or a pipeline of its commands),
    raising ``_cluster_error`` of what redis-py's cluster exceptions it meets."""

    @functools.wraps(send)
    def converted(*args: Any) -> T:
        try:
            return send(*args)
        except RedisClusterException as exc:
            raise _cluster_error(exc) from exc

    return converted


class _Cluster(RedisCluster):
    """The sync cluster client, whose nodes' connections (those of the URL's nodes and those
    it finds later) are checked as every other client's: each made one of
    ``_AnswerMeansAlive`` as it connects, before redis-py's handshake on it, and given the
    client's ``health_check_interval``, which redis-py drops from what it hands its nodes
    (its asyncio cluster client keeps it): without it, a node's connection idle for any time
    was used without a PING. redis-py takes a class for the nodes' connections only from 8.2
    on: before, it makes each node with ``Redis(**kwargs)``, which refuses one
    (connection_class failed every node); this hook is in every version.

    It comes after a TLS connection's handshake, which the class swapped in then no longer
    bounds (``_HandshakeWithinConnectTimeout``; from 8.2 on, redis-py bounds it itself):
    over TLS the nodes are given the connect timeout for ``socket_timeout``, and each
    connection gets the client's own here, before it sends anything."""

    def __init__(self, *args: Any, health_check_interval: int = 0, **kwargs: Any) -> None:
        self._health_check_interval = health_check_interval
        self._socket_timeout = kwargs.get("socket_timeout")
        if kwargs.get("ssl"):
            kwargs["socket_timeout"] = kwargs.get("socket_connect_timeout")
        super().__init__(*args, **kwargs)

    def on_connect(self, connection: Any) -> None:
        _made_alive_on_any_answer(connection)
        connection.health_check_interval = self._health_check_interval
        # (redis-py has read the connection's handshake already, before this hook: it counts
        # as checked now, as on every other client, not PINGed before its first command)
        connection.next_health_check = time.monotonic() + self._health_check_interval
        if connection.socket_timeout != self._socket_timeout:  # its first connect, over TLS
            connection.socket_timeout = self._socket_timeout
            connection._sock.settimeout(self._socket_timeout)
        super().on_connect(connection)  # type: ignore[no-untyped-call]


class _AsyncCluster(redis.asyncio.cluster.RedisCluster):
    """The asyncio cluster client, which learns the layout at its first command (the sync one
    at construction, see ``_cluster``): a failure to do so raised as ``_cluster_error``, as
    is one of a later refresh that a command meets."""

    async def initialize(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise _cluster_error(exc) from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise _cluster_error(exc) from exc


R = TypeVar("R", _Retry, _AsyncRetry)


def _retry(
    kind: type[R], settings: Settings, retries: int, errors: tuple[type[Exception], ...]
) -> R:
    """A retry of ``kind`` with the backoff, ``retries`` retries of ``errors``, and the retry
    window of ``settings`` for timed-out attempts."""
    # redis-py before 8.2 typed the async Retry's errors narrower than it takes them; the
    # ignore stays silent where a newer redis-py needs none (unused-ignore).
    retry = kind(_backoff(), retries, supported_errors=errors)  # type: ignore[arg-type, unused-ignore]
    retry.timing = _timing(settings)
    return retry


def cluster_retry(settings: Settings) -> _Retry:
    """The retry a shell wraps around each request on a cluster (backoff, settings.retries)."""
    return _retry(_Retry, settings, settings.retries, _CLUSTER_RETRY_ON)


def async_cluster_retry(settings: Settings) -> _AsyncRetry:
    return _retry(_AsyncRetry, settings, settings.retries, _CLUSTER_RETRY_ON)


def node_client(settings: Settings, host: str, port: int) -> redis.Redis:
    """A client of one node of a cluster (the same credentials and TLS as the cluster
    client) that makes a single attempt: the shell's cluster_retry is the one that retries."""
    client = redis.Redis(
        host=host,
        port=port,
        retry=_Retry(_backoff(), 0, supported_errors=tuple(_RETRY_ON)),
        **_common(settings),
    )
    _alive_on_any_answer(client.connection_pool)
    return client


def async_node_client(settings: Settings, host: str, port: int) -> redis.asyncio.Redis:
    """The asyncio twin of ``node_client``."""
    client = redis.asyncio.Redis(
        host=host,
        port=port,
        retry=_AsyncRetry(_backoff(), 0, supported_errors=tuple(_RETRY_ON)),
        **_common(settings),
    )
    _alive_on_any_answer(client.connection_pool)
    return client


# --- single commands, sent without redis-py's per-command machinery

_observability: Callable[[], Any] | None
try:  # redis-py >= 7 may export metrics (OpenTelemetry) of every command it runs
    from redis.observability.providers import get_observability_instance as _observability
except ImportError:  # pragma: no cover - older redis-py: nothing to export
    _observability = None

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - without hiredis, redis-py packs in Python
    _hiredis_pack = None


def _packs_with_hiredis(pool: Any) -> bool:
    """Whether the pool's connections pack commands with hiredis: redis-py's rule (hiredis
    importable, no packer given to the connections), read from public attributes once per
    handle rather than from a connection's private packer at every command."""
    return (
        _hiredis_pack is not None
        and bool(redis.utils.HIREDIS_AVAILABLE)
        and pool.connection_kwargs.get("command_packer") is None
    )


# redis-py < 5.3 wants the command's name (unused) to hand out a connection.
_POOL_WANTS_NAME = (
    inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default
    is inspect.Parameter.empty
)
_DIRECT_POOLS = (redis.ConnectionPool, redis.sentinel.SentinelConnectionPool)


class _Direct:
    """What ``Redis.execute_command`` does for one command, minus what costs most of its
    CPU (three quarters of the instructions of a PING with redis-py 8): the pool's
    bookkeeping and socket poll at every checkout, the metrics hooks, the closures, the
    packer's pass over every argument (see ``_packed``).

    A connection taken from the pool is kept for the next command (one per thread sending
    at once: a free list, whose pop and append are atomic) until a pipeline needs one
    (``give_back``). What stays as redis-py does it: the client's retry (its backoff; a
    failed attempt drops the connection, the next reconnects), the health check of a
    connection idle for ``health_check_interval`` (in ``send_packed_command``), the drop of
    a connection whose send or read was interrupted (so a kept one never holds a stray
    reply), the command's response callback, and (redis-py >= 8) the reconnect a server's
    maintenance notice asks for. A connection idle longer than ``POLL_AFTER_S`` is polled
    first, as the pool polls at every checkout: one the server closed meanwhile is replaced
    before the command is sent, not after a failed attempt. A forked child keeps none of its
    parent's connections. With redis-py's metrics on, commands take ``execute_command``."""

    POLL_AFTER_S = 1.0

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._free: list[tuple[Any, float]] = []  # (connection, when it was last used)
        self._hiredis = _packs_with_hiredis(self._pool)
        _DIRECTS.add(self)
        # A handle dropped without close (a client shared by many handles, one made per
        # use) gives its connection back to the pool, not keep it out of it for good.
        weakref.finalize(self, _hand_back, self._pool, self._free).atexit = False

    def forget(self) -> None:
        """Drop the kept connections without closing them (a forked child's: its parent's)."""
        self._free.clear()

    def give_back(self) -> None:
        """Hand the kept connections back to the pool: before a pipeline, which then takes
        one of them instead of opening another, and at close (the client's close then
        closes them)."""
        _hand_back(self._pool, self._free)

    def _checkout(self) -> Any:
        try:
            conn, used = self._free.pop()
        except IndexError:
            pool = self._pool
            return pool.get_connection("_") if _POOL_WANTS_NAME else pool.get_connection()
        if time.monotonic() - used > self.POLL_AFTER_S:
            try:
                if conn.can_read():  # a reply nobody asked for, or closed by the server
                    conn.disconnect()
            except (redis.ConnectionError, OSError):
                conn.disconnect()  # the command's own attempts reconnect it
        return conn

    def _on_kept(self, exchange: Callable[[Any, tuple[Any, ...], bool], T], request: Any) -> T:
        """``exchange(connection, request, hiredis)`` on a kept connection, with the
        client's retry (a failed attempt drops the connection; the next reconnects)."""
        conn = self._checkout()
        try:
            done: T = conn.retry.call_with_retry(
                lambda: exchange(conn, request, self._hiredis),
                lambda error, *_: conn.disconnect(),
            )
            return done
        finally:
            if getattr(conn, "should_reconnect", _never)():
                conn.disconnect()
                conn.connect()
            self._free.append((conn, time.monotonic()))

    def execute(self, *args: Any) -> Any:
        if _observability is not None and _observability().is_enabled():
            return self._client.execute_command(*args)  # type: ignore[no-untyped-call]
        response = self._on_kept(_exchange, args)
        callback = self._client.response_callbacks.get(args[0])  # type: ignore[no-untyped-call]
        return response if callback is None else callback(response)

    def execute_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one round trip down the kept connection, as a non-transaction
        pipeline does (every reply in order, an error reply as a ``ResponseError`` value; a
        failed attempt drops the connection and the retry sends them all again), without
        its per-call objects, pool checkout and pass over every argument: two thirds of the
        client CPU of a two-command pipeline (a woken claim, a report waiting behind
        itself)."""
        if _observability is not None and _observability().is_enabled():
            self.give_back()
            return _pipelined(self._client, commands)
        replies = self._on_kept(_exchange_many, commands)
        callbacks = self._client.response_callbacks
        for i, (args, reply) in enumerate(zip(commands, replies, strict=True)):
            callback = callbacks.get(args[0])  # type: ignore[no-untyped-call]
            if callback is not None and not isinstance(reply, redis.ResponseError):
                replies[i] = callback(reply)
        return replies


def _pipelined(client: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The commands in one non-transaction pipeline of ``client``: every reply in order, an
    error reply as its exception."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    replies: list[Any] = pipe.execute(raise_on_error=False)
    return replies


# Commands packed smaller than this together are sent as one buffer: redis-py writes each
# chunk of a list with its own sendall (a system call, and a partial batch the server may
# wake up for), as redis-py's own pipelines join their small commands.
JOIN_BELOW = 64 * 1024


def _exchange_many(conn: Any, commands: Sequence[tuple[Any, ...]], hiredis: bool) -> list[Any]:
    chunks = [chunk for args in commands for chunk in _packed(conn, args, hiredis)]
    if sum(len(chunk) for chunk in chunks) < JOIN_BELOW:
        chunks = [b"".join(chunks)]
    conn.send_packed_command(chunks)
    replies: list[Any] = []
    for _ in commands:  # every reply read, errors too, so the connection stays in step
        try:
            replies.append(conn.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def _hand_back(pool: Any, free: list[tuple[Any, float]]) -> None:
    """Release the connections of ``free`` to ``pool``, one by one: a command of another
    thread may meanwhile put its connection in the same list."""
    while True:
        try:
            conn, _ = free.pop()
        except IndexError:
            return
        pool.release(conn)


def _exchange(conn: Any, args: tuple[Any, ...], hiredis: bool) -> Any:
    conn.send_packed_command(_packed(conn, args, hiredis))
    return conn.read_response()


def _packed(conn: Any, args: tuple[Any, ...], hiredis: bool) -> Any:
    """``conn.pack_command(*args)``; where that is hiredis's (``hiredis``), hiredis called straight,
    without the wrapper's Python pass over every argument (a third of a task post's client
    instructions, with its 31 arguments). That pass splits a first argument holding spaces
    (such a command takes the wrapper) and turns a bytearray (hiredis refuses it: the
    wrapper then takes it) or a memoryview (hiredis packs its bytes) into bytes."""
    if (
        hiredis
        and _hiredis_pack is not None
        and isinstance(args[0], str)
        and args[0].isidentifier()
    ):
        try:
            return (_hiredis_pack(args),)
        except TypeError:
            pass
    return conn.pack_command(*args)


def _never() -> bool:
    return False


def _forget_all() -> None:
    for direct in list(_DIRECTS):
        direct.forget()


_DIRECTS: weakref.WeakSet[_Direct] = weakref.WeakSet()
os.register_at_fork(after_in_child=_forget_all)


class Sender(NamedTuple):
    """How a sync shell sends with its client: one command, several in one round trip
    (every reply in order, an error reply as its exception), and how it hands back to the
    pool the connections it keeps (before a pipeline of its own, and at close)."""

    one: Callable[..., Any]
    many: Callable[[Sequence[tuple[Any, ...]]], list[Any]]
    give_back: Callable[[], None]


def direct_sender(client: SyncClient) -> Sender:
    """``_Direct`` for a client of one server as ``sync_client`` builds them (a plain or
    Sentinel pool, no client-side cache, not a single-connection client, redis-py's own
    ``execute_command``); redis-py's ``execute_command`` and pipelines for any other (a
    cluster, a client given with other choices); a sync cluster client's own exceptions (a
    refresh that reached no node) raised as ``_cluster_error``."""
    if isinstance(client, RedisCluster):
        return Sender(
            _layout_errors_converted(client.execute_command),
            _layout_errors_converted(functools.partial(_pipelined, client)),
            _nothing,
        )
    pool = getattr(client, "connection_pool", None)
    if (
        isinstance(client, redis.Redis)
        and type(client).execute_command is redis.Redis.execute_command
        and getattr(client, "connection", None) is None
        and type(pool) in _DIRECT_POOLS
        and getattr(pool, "cache", None) is None
    ):
        direct = _Direct(client)
        return Sender(direct.execute, direct.execute_many, direct.give_back)
    return Sender(client.execute_command, functools.partial(_pipelined, client), _nothing)


def _nothing() -> None:
    return None


def _nothing_failed(error: Exception) -> None:
    return None


def _socket_path(settings: Settings) -> str:
    if settings.kind == "embedded":
        from ._embedded import EmbeddedServer

        return EmbeddedServer(settings.home, durability=settings.durability).ensure_running()
    assert settings.path is not None
    return settings.path


@dataclass(frozen=True)
class _Kit:
    """The redis-py classes of one side, sync or asyncio: a client is built once, from a kit."""

    redis: Any
    cluster: Any
    cluster_node: Any
    sentinel: Any
    retry: Any
    master: Any
    connection: Any
    ssl_connection: Any
    cluster_options: dict[str, Any]


_SYNC = _Kit(
    redis.Redis,
    _Cluster,
    ClusterNode,
    _Sentinel,
    _Retry,
    _SentinelMaster,
    _SentinelConnection,
    _SentinelSSLConnection,
    {},
)
_ASYNC = _Kit(
    redis.asyncio.Redis,
    _AsyncCluster,
    redis.asyncio.cluster.ClusterNode,
    _AsyncSentinel,
    _AsyncRetry,
    _AsyncSentinelMaster,
    _AsyncSentinelConnection,
    _AsyncSentinelSSLConnection,
    # On every 5th MOVED (the default), redis-py's asyncio cluster client closes every
    # connection it has, those other coroutines are using too: a command already sent
    # loses its reply (or fails on a closed writer), and a lost reply retried can apply
    # twice (a claim that took a task, retried, takes another; the first stays claimed
    # by nobody). Resharding answers many MOVED. With 0 each MOVED only moves its slot
    # to the node the reply names, as the sync client does between refreshes.
    {"reinitialize_steps": 0},
)


def _client(settings: Settings, kit: _Kit) -> Any:
    if settings.kind == "cluster":
        return fcall_routed(_cluster(settings, kit))
    if settings.kind == "sentinel":
        return _sentinel_master(settings, kit)
    retry = _retry(kit.retry, settings, settings.retries, tuple(_RETRY_ON))
    if settings.kind in ("embedded", "unix"):
        client = kit.redis(
            unix_socket_path=_socket_path(settings),
            db=settings.db,
            retry=retry,
            health_check_interval=settings.health_check_interval,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.connect_timeout,
            username=settings.username,
            password=settings.password,
            **_QUIET,
        )
    else:
        client = kit.redis(
            host=settings.host,
            port=settings.port,
            db=settings.db,
            retry=retry,
            health_check_interval=settings.health_check_interval,
            **_common(settings),
        )
    _alive_on_any_answer(client.connection_pool)
    return client


def _cluster(settings: Settings, kit: _Kit) -> Any:
    """The cluster client of ``settings``, its connections those of ``_AnswerMeansAlive``."""
    options = dict(kit.cluster_options)

    def made() -> Any:
        try:
            return kit.cluster(
                startup_nodes=[kit.cluster_node(h, p) for h, p in settings.nodes],
                retry=_retry(
                    kit.retry,
                    settings,
                    min(settings.retries, _CLUSTER_INSTANT_RETRIES),
                    tuple(_RETRY_ON),
                ),
                health_check_interval=settings.health_check_interval,
                **options,
                **_common(settings),
            )
        except RedisClusterException as exc:  # (the sync client asks a node now)
            raise _cluster_error(exc) from exc

    if kit is _SYNC:
        # It asks the URL's nodes for the layout now: retried as the asyncio client's first
        # command is (which asks then, inside the shell's retry): a node restarting is
        # waited for, none answering fails within the window of NoneAnswered.
        retry = _retry(_Retry, settings, settings.retries, tuple(_RETRY_ON))
        return retry.call_with_retry(made, _nothing_failed)
    cluster = made()
    # The asyncio client takes none: it builds each node (those of the URL now, those it
    # discovers later) from its connection_kwargs, which name the class; no node has made a
    # connection yet (it connects at its first command).
    kwargs = cluster.connection_kwargs
    kwargs["connection_class"] = _ALIVE_ON_ANY_ANSWER[kwargs["connection_class"]]
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_class = kwargs["connection_class"]
    return cluster


def _sentinel_master(settings: Settings, kit: _Kit) -> Any:
    """The client of the master behind the sentinels of ``settings``."""
    check_sentinel_service(settings)
    common = _common(settings)
    asked = {k: v for k, v in common.items() if k.startswith(("ssl", "socket"))}
    # A sentinel answers at once (nothing it does waits, unlike a strict write): its reply is
    # waited for as long as a connection, so that sentinels that take connections and never
    # answer, asked one after another, fail a request within seconds, not socket_timeouts.
    asked["socket_timeout"] = min(settings.socket_timeout, settings.connect_timeout)
    # Each sentinel asked once per lookup: the request's retry is the one that retries (a
    # sentinel client's own default retried up to 10 times before redis-py 8.2, with backoff).
    asked["retry"] = kit.retry(_backoff(), 0, supported_errors=tuple(_RETRY_ON))
    sentinel = kit.sentinel(
        list(settings.nodes),
        settings=settings,
        sentinel_kwargs=asked,
        retry=_retry(kit.retry, settings, settings.retries, tuple(_RETRY_ON)),
        health_check_interval=settings.health_check_interval,
        **{k: v for k, v in common.items() if k != "ssl"},  # the class says TLS
    )
    assert settings.service_name is not None
    return sentinel.master_for(
        settings.service_name,
        db=settings.db,
        redis_class=kit.master,
        connection_class=kit.ssl_connection if settings.ssl else kit.connection,
    )


def sync_client(settings: Settings) -> SyncClient:
    """A connected-on-demand synchronous client for ``settings``."""
    client: SyncClient = _client(settings, _SYNC)
    return client


def async_client(settings: Settings) -> AsyncClient:
    """The asyncio twin of ``sync_client``."""
    client: AsyncClient = _client(settings, _ASYNC)
    return client
