"""A write its caller must not lose, ridden out through an outage: the one way ``swarm run``'s
pool (a finished run's report, failure or release) and ``swarm pipeline run``'s own agents
(the planner's task list, the synthesis, their failed runs) wait for Redis.

The client retries a request for a few seconds only (``Settings.retry_window_s``); past that
an outage (the server down, paused, out of memory, read-only, unable to persist) is a
``ConnectionFailed``. A call made through ``ride_out`` is tried again until Redis takes it,
for up to ``OUTAGE_PATIENCE_S`` or until its caller is stopped, pausing longer after each
failed try (up to ``RETRY_PAUSE_MAX_S``), and renewing what the caller holds between tries
(the lease of the task the write is for). A stopped caller waits for no outage: a try made
then, or under way, is given up once Redis has answered nothing for ``STOP_GRACE_S`` since
the stop (``until_stopped``), a budget every request of that caller's exit shares
(``StopBudget``), so that requests made one after another through a stall do not each wait
it. Such a call must be safe to make twice: a paused server runs, when it wakes up, the
requests it received meanwhile, so a try whose reply was lost may have been applied (a
report passes the same finding id each time, a synthesis its deterministic id).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ._errors import ConnectionFailed

__all__ = [
    "OUTAGE_PATIENCE_S",
    "RETRY_PAUSE_MAX_S",
    "STOP_GRACE_S",
    "StopBudget",
    "ride_out",
    "until_stopped",
]

T = TypeVar("T")

# How long a write that must not be lost waits through an outage (see above) before it is
# given up (and a pool's claims before it stops claiming).
OUTAGE_PATIENCE_S = 600.0
RETRY_PAUSE_MAX_S = 5.0  # the longest pause between two tries of such a write
# How long a request still waits for Redis once its caller is stopped: a stop (SIGTERM) must
# end the process within seconds (Kubernetes kills it 30 s later), and a server paused or
# gone keeps a request waiting for the client's whole timeout (``longest_request_s``: 20 s).
STOP_GRACE_S = 2.0


class StopBudget:
    """The silence a stopped caller still gives Redis, once for all its requests: a request
    waited for once the caller is stopped is given up when Redis has answered none of the
    budget's requests for ``grace_s``, counted from the stop (as the budget first hears of
    it), from Redis's last answer, or from the sending of the oldest request still
    unanswered (a request given up still waits in its thread), whichever is latest. So
    requests made one after another through a stall share one wait: each waited
    ``STOP_GRACE_S`` of its own before, a stop during a stall took one per request of the
    exit (a renewal, a report, the workers' deregistration, the count of what is left), 10 s
    where "about 2 seconds" was said. A Redis that answers, however slowly, is waited for."""

    def __init__(self, grace_s: float = STOP_GRACE_S) -> None:
        self.grace_s = grace_s
        self._stopped: float | None = None  # when a request first waited on the stop
        self._answered = 0.0  # when Redis last answered one of the requests
        self._pending: dict[object, float] = {}  # the requests unanswered -> when sent
        self._lock = threading.Lock()

    def sent(self, request: object) -> None:
        with self._lock:
            self._pending[request] = time.monotonic()

    def settled(self, request: object, *, answered: bool) -> None:
        """``request`` returned: with Redis's answer, or with none (the client gave up)."""
        with self._lock:
            self._pending.pop(request, None)
            if answered:
                self._answered = time.monotonic()

    def left(self) -> float:
        """The seconds left before a request waited on the stop is given up (the budget
        counts from the stop the first time it is asked)."""
        with self._lock:
            now = time.monotonic()
            if self._stopped is None:
                self._stopped = now
            oldest = min(self._pending.values(), default=now)
            return max(self._stopped, self._answered, oldest) + self.grace_s - now


class _GivenUp(ConnectionFailed):
    """A request ``until_stopped`` gave up: its message says so whole."""


def until_stopped(
    call: Callable[[], T],
    stop: threading.Event,
    *,
    what: str,
    budget: StopBudget | None = None,
) -> T:
    """``call()``, made in a thread of its own and waited for until it returns, or, once
    ``stop`` is set (before or during the call), as long as ``budget`` allows (the stop's,
    shared by the caller's requests; None: ``STOP_GRACE_S`` of this call's own): then given up,
    raising a ``ConnectionFailed`` that says Redis did not ``what`` ("answer") in time
    (``sent``: the request may still reach the server, so the call must be safe to make
    twice, as every call ridden out is). The thread left waiting ends with its request; it
    holds no lock of its caller's."""
    outcome: list[tuple[bool, object]] = []
    done = threading.Event()
    if budget is not None:
        budget.sent(done)

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # (handed to the caller, raised in its thread)
            outcome.append((False, exc))
        finally:
            if budget is not None:  # (a reply, even a refusal, is Redis answering)
                budget.settled(done, answered=not isinstance(outcome[-1][1], ConnectionFailed))
            done.set()

    context = contextvars.copy_context()  # (the caller's, as made in its own thread)
    threading.Thread(target=context.run, args=(run,), name="swarm-request", daemon=True).start()
    while not done.wait(0.05):
        if stop.is_set():
            if _waited(done, budget):
                break
            grace_s = STOP_GRACE_S if budget is None else budget.grace_s
            raise _GivenUp(
                f"Redis did not {what} within {grace_s:g}s of the stop (a stop waits "
                "for no outage): Redis may have done it all the same (swarm task show says); "
                "if not, nothing here tries it again, and a task leased goes back to its "
                "queue when its lease runs out",
                sent=True,
            )
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]


def _waited(done: threading.Event, budget: StopBudget | None) -> bool:
    """Wait for ``done`` as long as ``budget`` allows (None: ``STOP_GRACE_S``); True once set.
    (Looked at again and again: an answer to another request of the budget extends it.)"""
    if budget is None:
        return done.wait(STOP_GRACE_S)
    while (left := budget.left()) > 0:
        if done.wait(min(left, 0.05)):
            return True
    return done.is_set()


def ride_out(
    call: Callable[[], T],
    *,
    what: str,
    who: str,
    stop: threading.Event,
    on_outage: Callable[[ConnectionFailed], None],
    between: Callable[[], None] | None = None,
    on_back: Callable[[], None] | None = None,
    patience_s: float = OUTAGE_PATIENCE_S,
    budget: StopBudget | None = None,
) -> T:
    """``call()``, tried again while it fails with ``ConnectionFailed``: ``on_outage`` hears
    the first such failure, ``between`` runs before each pause, and ``on_back`` once the
    wait is over (taken or given up). Given up after ``patience_s`` or once ``stop`` is set
    (then a try waits as long as ``budget`` allows, ``until_stopped``, and a failed one is not
    tried again), raising a ``ConnectionFailed`` that says Redis did not ``what`` ("take the
    report of t-1") in the longest ``who`` ("the pool") waits, or that ``who`` was stopped:
    ``sent`` when any try's was, ``retryable`` as the last try's.

    An error no retry fixes (``ConnectionFailed.retryable`` False: a certificate refused, a
    certificate or key file of the URL that no longer loads) is ridden out all the same, not
    given up at once: what waits here is a finished run's report or its synthesis, work paid
    for that giving up would lose, and such an error is fixed where it is said (``on_outage``
    hears it, with what to fix: a renewed certificate, a file put back) without restarting
    anything (each try makes its connection anew, its files read again), well within the
    patience. Giving up at once would save nothing but the wait of a run that ends anyway."""
    since: float | None = None
    tries = 0
    sent = False  # any try may have reached the server: the write may have been applied
    try:
        while True:
            try:
                return until_stopped(call, stop, what=what, budget=budget)
            except ConnectionFailed as exc:
                now = time.monotonic()
                sent = sent or exc.sent
                if isinstance(exc, _GivenUp):
                    raise
                if stop.is_set():  # stopped: no outage is waited through, not even once
                    raise ConnectionFailed(
                        f"{who} was stopped while waiting for Redis to {what}: {exc}",
                        sent=sent,
                        retryable=exc.retryable,
                    ) from exc
                if since is None:
                    since = now
                    on_outage(exc)
                if now - since > patience_s:
                    raise ConnectionFailed(
                        f"Redis did not {what} in {patience_s:g}s, the longest {who} waits: {exc}",
                        sent=sent,
                        retryable=exc.retryable,
                    ) from exc
                if between is not None:
                    between()
                if stop.wait(min(2.0**tries, RETRY_PAUSE_MAX_S)):
                    raise ConnectionFailed(
                        f"{who} was stopped while waiting for Redis to {what}: {exc}",
                        sent=sent,
                        retryable=exc.retryable,
                    ) from exc
                tries += 1
    finally:
        if since is not None and on_back is not None:
            on_back()
