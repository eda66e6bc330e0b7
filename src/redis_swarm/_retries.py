"""The retries of every client ``_connect`` builds: redis-py's Retry, with exponential
backoff and jitter, minus what redis-py does wrong on its own (``Retry``, ``AsyncRetry``,
made by ``retry``), and the errors no retry can fix (``is_permanent``).

Three things redis-py does not do on its own: errors that no retry can fix (a certificate that
does not verify, a client certificate the server's alert refuses, a wrong password) fail at once
instead of after the whole backoff; redis-py nests its retries (a command retries, and so does
the connect inside it), which would multiply the attempts: here only the outermost level
retries; and the retries, counted for failures that come at once (a connection refused while a
server restarts), would each cost a whole timeout on a server that takes connections and never
answers (a stopped process: 7 times ``socket_timeout``). Once an attempt has timed out, a
request is sent again only if another attempt, timing out too, would end within the retry window
counted from its first failure (``Settings.retry_window_s``): a request lasts at most
``Settings.longest_request_s``. And the long window of a Sentinel or Cluster URL (53 s, to ride
out a failover) is for failovers, during which some of their servers answer: when none does
(every sentinel, every node the client knows: ``NoneAnswered``), a request is retried within a
plain URL's window (``Settings.none_answered_window_s``), counted from the first of such
failures in a row (failures that come at once get at least that window's count of retries,
``Settings.none_answered_retries_in_force``, however slow a loaded machine makes each attempt,
if under half the connect timeout); so is a TLS handshake that timed out (a paused server, or a
port that speaks no TLS) and a TLS connection the server closed without a word as it was being
set up (most likely a client certificate it wants or refuses, its alert lost:
``closed_in_tls_setup``, the asyncio client's reset in its setup included): a misconfiguration
fails within seconds whatever the URL's kind; and the sync cluster client, which asks for the
cluster's layout when it is made, retries that as a request would. Sentinels that answer that
they monitor no master of the URL's name are no failover: that fails at once, with a ConfigError
(``_sentinel``). The error they give up with says whether any attempt may have reached the
server (``SENT_BEFORE``): ``translate`` makes that ``ConnectionFailed.sent``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, NamedTuple, TypeVar

import redis
import redis.asyncio.retry
import redis.retry
from redis.backoff import ExponentialWithJitterBackoff

from ._config import BACKOFF_BASE_S, BACKOFF_CAP_S, Settings
from ._translate import (
    HANDSHAKE_TIMEOUT,
    SENT_BEFORE,
    NoneAnswered,
    causes,
    closed_in_tls_setup,
    may_have_reached,
    no_retry_fixes,
    pool_exhausted,
)

__all__ = [
    "RETRY_ON",
    "AsyncRetry",
    "Retry",
    "backoff",
    "is_permanent",
    "retry",
    "stoppable",
]

T = TypeVar("T")

RETRY_ON = [redis.ConnectionError, redis.TimeoutError]


def backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S)


def is_permanent(exc: BaseException) -> bool:
    """True for a connection error that the client's retries give up on at once: one that
    no retry can fix (``no_retry_fixes``, the judgement ``ConnectionFailed.retryable`` says
    too: certificates, a server's alert refusing the client certificate, authentication, a
    port that answers the TLS handshake with no TLS). Not a TLS connection the server
    closed without a word while it was being made, even with a client certificate in the
    URL: a server at its maxclients, or restarting, does that too (``translate`` names both
    causes once the retries are over). Nor a TLS handshake that timed out: a plain Redis
    port never answers one (it waits for a newline), but neither does a paused server
    (SIGSTOP, a stalled failover), which passes; it is a timeout, retried only while another
    attempt fits a plain URL's short window (``Settings.none_answered_window_s``, whatever
    the URL's kind: a Sentinel or Cluster URL's long one would make a misconfigured port
    wait most of a minute per request); with the default timeouts, none does
    (``_fits_short_run``).
    And, here only, a pool with every connection in use (``pool_exhausted``): a retry,
    after a pause, might find one free, but would hide the limit the caller must raise, and
    wait for calls that may themselves wait seconds (a claim's wait_s); redis-py's pools
    refuse at once for that reason, and so does every retry here, the cluster shell's
    included. (A loop that rides out outages may still get a connection back later: its
    ``ConnectionFailed`` stays ``retryable``.)"""
    return pool_exhausted(exc) or no_retry_fixes(exc)


def _timed_out(error: Exception) -> bool:
    return (
        isinstance(error, redis.TimeoutError)
        or (isinstance(error, NoneAnswered) and error.timed_out)
        or _handshake_timed_out(error)
    )


def _handshake_timed_out(error: BaseException) -> bool:
    """A TLS handshake that timed out: a paused server, or a port that speaks no TLS."""
    return any(HANDSHAKE_TIMEOUT in str(item).lower() for item in causes(error))


def _short_run(error: BaseException) -> bool:
    """Whether ``error`` is retried only within a plain URL's short window, whatever the
    URL's kind (the one place that says so): no server answered (``NoneAnswered``); a TLS
    handshake that timed out (a paused server, or a port that speaks no TLS); a TLS
    connection the server closed without a word as it was being set up
    (``closed_in_tls_setup``: the sync client's EOF in the handshake, the asyncio client's
    reset in its first exchange, ``RESET_IN_TLS_SETUP``), most likely a client certificate
    the server wants or refuses, whose alert was lost; a server at its maxclients, or
    restarting, closes so too, and seconds ride that out. A failover, which the long window
    is for, refuses connections or answers: it is none of these."""
    return (
        isinstance(error, NoneAnswered) or _handshake_timed_out(error) or closed_in_tls_setup(error)
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


# Set in the task of a request whose caller has gone (cancelled: the asyncio shell reads what
# is on its way, _client._shielded): its retry loop gives up at its next failure, no
# reconnection and no resend for nobody. A list, shared with the task's copy of the context.
_STOPPED: ContextVar[list[bool] | None] = ContextVar("redis_swarm_retry_stopped", default=None)


def stoppable(work: Coroutine[Any, Any, T]) -> tuple[asyncio.Task[T], Callable[[], None]]:
    """``work`` in a task of its own, and what stops its retries (see ``_STOPPED``)."""
    stopped: list[bool] = []
    token = _STOPPED.set(stopped)
    try:
        task = asyncio.ensure_future(work)
    finally:
        _STOPPED.reset(token)
    return task, lambda: stopped.append(True)


def _stopped() -> bool:
    return bool(_STOPPED.get())


class _Attempts:
    """What both retry loops decide after a failure, I/O-free: report it (redis-py's ``fail``
    drops the connection; its result is returned for the asyncio loop to await), and how long
    to pause before the next attempt, or None to give up and raise."""

    def __init__(
        self,
        retry: Retry | AsyncRetry,
        depth: int,
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None,
        with_failure_count: bool,
        started: float,
    ) -> None:
        self._retry, self._depth, self._fail = retry, depth, fail
        # When the attempt that failed last began (the loop's first, then each after a pause).
        self._attempt_started = started
        self._is_retryable, self._with_count = is_retryable, with_failure_count
        self.failures = 0
        self._first_failure = time.monotonic()
        self._timed_out = False
        # When the failures in a row kept to the short window (``_short_run``) began, and how
        # many there have been.
        self._short_run_since: float | None = None
        self._short_run_failures = 0
        # Whether an attempt so far may have reached the server (a reply lost): the request
        # may have run, whatever the next attempts meet.
        self._sent = False
        retry._backoff.reset()  # type: ignore[no-untyped-call]

    def failed(self, error: Exception) -> tuple[float | None, Any]:
        self._sent = self._sent or may_have_reached(error)
        if self._sent:  # (said on each error: any may be the one given up with)
            setattr(error, SENT_BEFORE, True)
        if self._is_retryable is not None and not self._is_retryable(error):
            return None, None
        self.failures += 1
        reported = self._fail(error, self.failures) if self._with_count else self._fail(error)
        retries = self._retry._retries
        if self._depth > 0 or is_permanent(error) or (0 <= retries < self.failures):
            return None, reported
        pause: float = self._retry._backoff.compute(self.failures)
        now = time.monotonic()
        took, self._attempt_started = now - self._attempt_started, now + pause
        self._timed_out = self._timed_out or _timed_out(error)
        if self._timed_out and not self._fits(pause):
            return None, reported
        if not self._fits_short_run(error, pause, took):
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

    def _fits_short_run(self, error: Exception, pause: float, took: float) -> bool:
        """Whether another attempt after ``pause`` may follow ``error``: an error of the short
        window (``_short_run``) is retried only while another attempt (timing out, if this
        one did) would end within ``Settings.none_answered_window_s``, counted from the first
        of such failures in a row; any other error (a failover under way, ridden out for the
        whole retry window) ends a run of those. An error that came at once (its attempt, which
        ``took`` that long, under ``_Timing.at_once``) is retried at least the window's count
        of times (``Settings.none_answered_retries_in_force``): the window is the pauses of
        those retries, and a loaded machine, slow to make each attempt, must not make fewer.
        Not one that came late without timing out (a server closing each connection after
        seconds, a cluster attempt that waited for a frozen node before another refused): a
        count of those would outlast the window many times over."""
        timing = self._retry.timing
        if not _short_run(error):
            self._short_run_since, self._short_run_failures = None, 0
            return True
        now = time.monotonic()
        if self._short_run_since is None:
            self._short_run_since = now
        self._short_run_failures += 1
        if timing is None:
            return True
        timed_out = _timed_out(error)
        at_once = not timed_out and took < timing.at_once
        if at_once and self._short_run_failures <= timing.none_answered_retries:
            return True
        attempt = timing.attempt if timed_out else 0.0
        return now - self._short_run_since + pause + attempt <= timing.none_answered


class _Timing(NamedTuple):
    """How long retries may go on, from the settings of a connection."""

    window: float  # Settings.retry_window_s
    attempt: float  # the longest a timed-out attempt takes
    none_answered: float  # Settings.none_answered_window_s
    none_answered_retries: int  # the retries that window is made of
    # An attempt that failed in less than this came at once (half the connect timeout: a
    # frozen node's connect takes all of it), however loaded the machine.
    at_once: float


def _timing(settings: Settings) -> _Timing:
    return _Timing(
        settings.retry_window_s,
        settings.connect_timeout + settings.socket_timeout,
        settings.none_answered_window_s,
        settings.none_answered_retries_in_force,
        settings.connect_timeout / 2,
    )


class Retry(redis.retry.Retry):
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
            started = time.monotonic()
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if attempts is None:
                        attempts = _Attempts(
                            self, depth, fail, is_retryable, with_failure_count, started
                        )
                    pause, _ = attempts.failed(error)
                    if pause is None:
                        raise
                    time.sleep(pause)


class AsyncRetry(redis.asyncio.retry.Retry):
    """The asyncio twin of ``Retry``."""

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
            started = time.monotonic()
            while True:
                try:
                    return await do()
                except self._supported_errors as error:
                    if attempts is None:
                        attempts = _Attempts(
                            self, depth, fail, is_retryable, with_failure_count, started
                        )
                    pause, reported = attempts.failed(error)
                    if inspect.isawaitable(reported):
                        await reported
                    if pause is None or _stopped():
                        raise
                    await asyncio.sleep(pause)
                    if _stopped():  # (stopped during the pause)
                        raise


R = TypeVar("R", Retry, AsyncRetry)


def retry(
    kind: type[R], settings: Settings, retries: int, errors: tuple[type[Exception], ...]
) -> R:
    """A retry of ``kind`` with the backoff, ``retries`` retries of ``errors``, and the retry
    window of ``settings`` for timed-out attempts."""
    # redis-py before 8.2 typed the async Retry's errors narrower than it takes them; the
    # ignore stays silent where a newer redis-py needs none (unused-ignore).
    retry = kind(backoff(), retries, supported_errors=errors)  # type: ignore[arg-type, unused-ignore]
    retry.timing = _timing(settings)
    return retry
