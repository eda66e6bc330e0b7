"""How a pool learns, within about a second, that a task one of its agents runs was
cancelled (``swarm task cancel``, a question withdrawn by its asker): one follower per pool
reads the swarm's event log for ``task.cancelled`` and flags the pool's running tasks it
names; the slot's process watcher then kills the agent (see ``child.run_child``, ``halt``).

Without it a cancel was noticed only by the next lease renewal, a third of the lease later:
200 s of a paid model run with a pipeline's 600 s lease.

Round trips: none while no agent runs (the follower waits on a local condition), and none
on a slot's path to its next task. While agents run, the follower waits on the log with one
blocking read (woken by the first new event, at most ``BLOCK_S`` long), then reads what
followed with plain pages, no more often than every ``PACE_S``: a quiet swarm costs about
one read a second, a busy one about four, whatever the number of slots or of events.

The follower reads from where the pool started (``start``), so that a cancel made between
a claim and the start of its agent is not skipped: a cancel read before the agent starts is
remembered (the last ``REMEMBERED``) and stops it as soon as it starts. When the read fails
(an outage), it retries with backoff and the pool goes on; the lease renewal is still there
to notice a cancel meanwhile. Each read is watched as the pool's other requests are
(``RequestWatch.told_if_unanswered``, ``READ_CANCELS``): one kept waiting by the client's
retries through an outage is said within seconds, the outage once for the whole pool.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from .._errors import SwarmError
from .._models import Event, EventType
from .._translate import said_retrying
from .request_watch import READ_CANCELS, RequestWatch

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["CancelWatch"]

BLOCK_S = 1.0  # the longest one blocking read of the log waits (also: how long a stop may wait)
PACE_S = 0.25  # the shortest time between two reads while events keep coming
PAGE = 1000  # events read per page when catching up
REMEMBERED = 1024  # cancelled task ids kept for agents not started yet
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # waits between failed reads, the last repeated

Check = Callable[[], str | None]
T = TypeVar("T")


class CancelWatch:
    """Follows the cancels of the tasks a pool runs (see the module docstring).

    ``watch(task_id)`` while the task's agent runs: it gives a check (no I/O) that returns
    why the agent must stop once the task is cancelled, else None. ``start`` before the pool
    claims, ``stop`` once its slots have ended. ``on_error`` is told of a failed read (the
    first of each run of failures); ``requests``: the pool's watch of its requests, which
    watches each read (None: not watched)."""

    def __init__(
        self,
        swarm: Swarm,
        on_error: Callable[[str], None],
        requests: RequestWatch | None = None,
    ) -> None:
        self._swarm = swarm
        self._on_error = on_error
        self._requests = requests
        self._cond = threading.Condition()
        self._watched: dict[str, list[str]] = {}  # task id -> why its agent must stop, once known
        self._seen: dict[str, None] = {}  # cancelled task ids read, oldest first (REMEMBERED)
        self._stopping = threading.Event()
        self._cursor: str | None = None  # the last event read (None: not known yet)
        self._caught_up = False  # the last page was empty: the next read blocks for one
        self._thread: threading.Thread | None = None

    # --- the pool's side

    def start(self) -> None:
        """Note where the log is now, before the pool claims anything, and start following
        (again, for a pool run once more)."""
        self._stopping.clear()
        try:
            self._cursor = self._read_watched(self._swarm.last_event_id)
            self._caught_up = True
        except SwarmError as exc:  # the follower asks again; a cancel made before is missed
            self._failed(exc)
        self._thread = threading.Thread(target=self._follow, name="swarm-run-cancels", daemon=True)
        self._thread.start()

    def stop(self, *, hurry: bool = False) -> None:
        """Stop following; returns once the follower has ended (at most a blocking read), or,
        ``hurry`` (the pool was aborted: a SIGTERM's grace is short, and no agent is left to
        stop), at once: a read waiting through an outage keeps the follower, a daemon thread,
        for the client's whole timeout, and it reads nothing more once it returns."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(0.0 if hurry else BLOCK_S + 5.0)

    @contextlib.contextmanager
    def watch(self, task_id: str) -> Iterator[Check]:
        """While the agent of ``task_id`` runs: the check that says it must stop."""
        why: list[str] = []
        with self._cond:
            if task_id in self._seen:
                why.append(_reason(task_id))
            self._watched[task_id] = why
            self._cond.notify_all()  # an idle follower starts reading
        try:
            yield lambda: why[0] if why else None
        finally:
            with self._cond:
                if self._watched.get(task_id) is why:
                    del self._watched[task_id]

    # --- the follower

    def _follow(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            with self._cond:  # no agent runs: nothing to read for
                self._cond.wait_for(lambda: bool(self._watched) or self._stopping.is_set())
            if self._stopping.is_set():
                return
            try:
                self._read()
            except Exception as exc:  # an outage, or worse: retried, the pool goes on
                if failures == 0:
                    self._failed(exc)
                self._stopping.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
                failures += 1
            else:
                failures = 0

    def _read(self) -> None:
        """One step: caught up, wait for the next event; else read on with a page."""
        if self._cursor is None:
            self._cursor = self._read_watched(self._swarm.last_event_id)
            self._caught_up = True
        if self._caught_up:
            events = self._swarm.follow_events(
                since=self._cursor, block_s=BLOCK_S, timeout_s=BLOCK_S
            )
            first = self._read_watched(lambda: next(events, None), waits_s=BLOCK_S)
            if first is not None:
                self._take(first)
                self._caught_up = False  # woken: a page reads the rest of what came
            return
        cursor = self._cursor
        page = self._read_watched(lambda: self._swarm.events(since=cursor, limit=PAGE))
        for event in page:
            self._take(event)
        if len(page) == PAGE:  # more behind it: on at once
            return
        if page:  # events keep coming: read them together, a little later
            self._stopping.wait(PACE_S)
            return
        self._caught_up = True

    def _read_watched(self, read: Callable[[], T], *, waits_s: float = 0.0) -> T:
        """``read()``, one read of the log, watched as the pool's other requests are (said
        once it has gone unanswered, ``waits_s`` past what it waits by itself)."""
        if self._requests is None:
            return read()
        return self._requests.told_if_unanswered(None, READ_CANCELS, read, waits_s=waits_s)

    def _take(self, event: Event) -> None:
        self._cursor = event.id
        if event.type is not EventType.TASK_CANCELLED:
            return
        task_id = event.fields.get("task")
        if not task_id:
            return
        with self._cond:
            why = self._watched.get(task_id)
            if why is not None and not why:
                why.append(_reason(task_id))
            self._seen[task_id] = None
            while len(self._seen) > REMEMBERED:
                del self._seen[next(iter(self._seen))]

    def _failed(self, exc: Exception) -> None:
        self._on_error(
            f"cannot read the event log for cancels (retrying; a cancel is noticed at the "
            f"next lease renewal meanwhile): {type(exc).__name__}: {said_retrying(exc)}"
        )


def _reason(task_id: str) -> str:
    return f"task {task_id} was cancelled"
