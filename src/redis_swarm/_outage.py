"""A write its caller must not lose, ridden out through an outage: the one way ``swarm run``'s
pool (a finished run's report, failure or release) and ``swarm pipeline run``'s own agents
(the planner's task list, the synthesis, their failed runs) wait for Redis.

The client retries a request for a few seconds only (``Settings.retry_window_s``); past that
an outage (the server down, paused, out of memory, read-only, unable to persist) is a
``ConnectionFailed``. A call made through ``ride_out`` is tried again until Redis takes it,
for up to ``OUTAGE_PATIENCE_S`` or until its caller is stopped, pausing longer after each
failed try (up to ``RETRY_PAUSE_MAX_S``), and renewing what the caller holds between tries
(the lease of the task the write is for). Such a call must be safe to make twice: a paused
server runs, when it wakes up, the requests it received meanwhile, so a try whose reply was
lost may have been applied (a report passes the same finding id each time, a synthesis its
deterministic id).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ._errors import ConnectionFailed

__all__ = ["OUTAGE_PATIENCE_S", "RETRY_PAUSE_MAX_S", "ride_out"]

T = TypeVar("T")

# How long a write that must not be lost waits through an outage (see above) before it is
# given up (and a pool's claims before it stops claiming).
OUTAGE_PATIENCE_S = 600.0
RETRY_PAUSE_MAX_S = 5.0  # the longest pause between two tries of such a write


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
) -> T:
    """``call()``, tried again while it fails with ``ConnectionFailed``: ``on_outage`` hears
    the first such failure, ``between`` runs before each pause, and ``on_back`` once the
    wait is over (taken or given up). Given up after ``patience_s`` or once ``stop`` is set,
    raising a ``ConnectionFailed`` that says Redis did not ``what`` ("take the report of
    t-1") in the longest ``who`` ("the pool") waits, or that ``who`` was stopped: ``sent``
    when any try's was, ``retryable`` as the last try's.

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
                return call()
            except ConnectionFailed as exc:
                now = time.monotonic()
                sent = sent or exc.sent
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
