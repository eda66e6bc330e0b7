"""The one watch of the requests that can wait through an outage (``RequestWatch``): a
line within seconds once one has gone unanswered (``UNANSWERED_NOTICE_S``), with what one
quick probe of the outage found wrong (``_probed``), said once per outage, the later lines
referring to it (``CAUSE_SAID``); and one once Redis answers again (``_answered``). ``swarm
run``'s pool (``pool_state.PoolState``) and a pipeline's own agents are built on it; what
a request asks is named here once (``TAKE_REPORT``, ``RENEW_LEASE``, ...), as its lines say
it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .._errors import (
    ConnectionFailed,
    SwarmError,
)
from .._outage import OUTAGE_PATIENCE_S
from .._translate import said_retrying, timed_out

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = [
    "ANSWER",
    "CAUSE_SAID",
    "CLAIM_TASKS",
    "COUNT_TASKS",
    "LEAVE",
    "MARK_IDLE",
    "PROBE_CLUSTER_RETRIES",
    "PROBE_TIMEOUT_S",
    "READ_ASKERS_TASK",
    "READ_CANCELS",
    "READ_CONTEXT",
    "READ_FAILURE",
    "READ_FINDING",
    "READ_SESSION",
    "READ_TASK",
    "RELEASE_UNRUN",
    "RENEW_LEASE",
    "TAKE_BEAT",
    "TAKE_COST",
    "TAKE_FAILURE",
    "TAKE_RELEASE",
    "TAKE_REPORT",
    "UNANSWERED_NOTICE_S",
    "WATCH_LINGER_S",
    "WATCH_TICK_S",
    "RequestWatch",
    "WatchedRequest",
    "WatchedTries",
]

T = TypeVar("T")

# How long a request of the pool (a report, a renewal, a beat, a claim past its own wait:
# ``told_if_unanswered``) goes unanswered before a progress line says so: a paused or stalled
# server, or a Cluster master down until a replica takes over, keeps it waiting for the
# client's whole timeout and retries (tens of seconds, up to a minute on a cluster) before the
# ``waiting for Redis`` line, and a person watching would think the run hung, or its work gone.
UNANSWERED_NOTICE_S = 3.0
# What that line says becomes of the work, by what the request asks (else ``_KEPT``).
_KEPT = (
    "the work is kept in this process and sent again until Redis takes it "
    f"(for up to {OUTAGE_PATIENCE_S:g}s)"
)
# What a request of a task asks of Redis, as its lines say it (``_persist``'s ``what``): each
# defined here once, as ``_KEPT_BY_WHAT`` keys some of them.
TAKE_REPORT = "take the report"
TAKE_FAILURE = "take the failure"
TAKE_RELEASE = "take the release"
TAKE_COST = "take the failed run's cost"  # (its agent failed its task itself: add_failed_usage)
RENEW_LEASE = "renew the lease"
TAKE_BEAT = "take the heartbeat"  # (its slot's: ``slot_presence``)
READ_FINDING = "read the finding"  # (a finding stored meanwhile: this run's?)
READ_FAILURE = "read the failure"  # (the task read back once a failure's reply was lost)
READ_TASK = "read the task"  # (its state, before the finding of an agent done is stored)
READ_CONTEXT = "read the context"
READ_SESSION = "read the session"
READ_ASKERS_TASK = "read the asker's task"
# What a request of the pool itself asks (of no task): its line says it once per outage.
ANSWER = "answer"  # (any: "a request of the pool")
CLAIM_TASKS = "claim tasks"
COUNT_TASKS = "count the queues' tasks"
MARK_IDLE = "mark a slot idle"
LEAVE = "say the workers are gone"  # (deregistered, or marked gone: _leave)
READ_CANCELS = "read the event log for cancels"  # (``cancels.CancelWatch``'s follower)
# (a newer lease of a task handed to a slot that its last word did not settle: ``_let_go``)
RELEASE_UNRUN = "release a lease no slot runs"
_NOTHING_LOST = "nothing is lost: the pool goes on once Redis answers"
_KEPT_BY_WHAT = {
    **dict.fromkeys(
        (RENEW_LEASE, TAKE_BEAT), "the agent runs on; its report waits for Redis if need be"
    ),
    # (read before the agent runs: no work done yet)
    **dict.fromkeys(
        (READ_CONTEXT, READ_SESSION, READ_ASKERS_TASK),
        "nothing is lost: the task's agent starts once Redis answers",
    ),
    # (no write to keep: ``unless_stopped``'s, given up at a stop; a claim tried again)
    **dict.fromkeys((ANSWER, CLAIM_TASKS, COUNT_TASKS, MARK_IDLE, LEAVE), _NOTHING_LOST),
    READ_CANCELS: (
        "the agents run on; a task cancelled meanwhile has its agent stopped once Redis answers"
    ),
    RELEASE_UNRUN: "nothing is lost: a lease not released runs out, its task back in its queue",
}
# What a line says of the cause once the first line of its outage said the probe's words.
CAUSE_SAID = "the cause said above"
WATCH_TICK_S = 0.25  # how often the pool's watcher looks at the requests it watches
WATCH_LINGER_S = 2.0  # how long the watcher waits for another request before it ends
# The timeouts of the one request that asks, once per outage, what is wrong (``_probed``):
# a server that does not answer it within them is said as the guesses say it.
PROBE_TIMEOUT_S = 1.0
# Its retries on a Cluster URL: a new cluster handle reads the layout from the URL's nodes, and
# with none it gives up at the first node that is down (said as "cannot reach the node",
# though another node told the layout and the cluster's state); a retry asks another.
PROBE_CLUSTER_RETRIES = 2


@dataclass(eq=False)
class WatchedRequest:
    """A request ``RequestWatch.told_if_unanswered`` watches: since when (monotonic), of which
    task (None: of the pool), for what, how long it may wait by itself (a claim's ``wait_s``)
    before its ``UNANSWERED_NOTICE_S`` count, and whether its line was said."""

    since: float
    task_id: str | None
    what: str
    waits_s: float = 0.0
    told: bool = False

    def due(self, now: float) -> bool:
        """Whether its line is due (unsaid, unanswered long enough)."""
        return not self.told and now - self.since >= self.waits_s + UNANSWERED_NOTICE_S

    def line(self, cause: str | None = None) -> str:
        """The line of this request; ``cause``: what a probe of the outage found wrong
        (``PoolState._outage_cause``), said instead of the guesses."""
        if self.task_id is not None:
            asked = f"asked to {self.what} of {self.task_id}"
        else:
            asked = f"asked to {self.what}" if self.what != ANSWER else "a request of the pool"
        kept = _KEPT_BY_WHAT.get(self.what, _KEPT)
        why = cause if cause is not None else "it may be paused, busy or out of reach"
        return (
            f"Redis has not answered for {UNANSWERED_NOTICE_S:g}s ({asked}): {why}; still "
            f"waiting, and {kept}"
        )


@dataclass(eq=False)
class WatchedTries:
    """The requests of one caller that tries a request and may give it up while a try still
    waits (``RequestWatch.tries_watched``: ``PoolState._persist``'s tries), and whether it is
    over (answered, or given up): a try whose thread gets in after that is not watched."""

    asked: list[WatchedRequest] = field(default_factory=list)
    over: bool = False


class RequestWatch:
    """The one way a request that can wait through an outage is watched
    (``told_if_unanswered``): a line within seconds once it has gone unanswered, with what
    a probe of the outage found wrong, and one once Redis answers again. ``swarm run``'s pool
    (``PoolState``) and a pipeline's own agents (its planner's and synthesizer's renewals and
    heartbeats) both watch theirs so. A subclass calls ``_set_up_watch`` once, gives
    ``swarm`` and says its lines (``_note``)."""

    swarm: Swarm

    def _set_up_watch(self) -> None:
        self._lock = threading.Lock()
        self._said: dict[str, set[str]] = {}  # task id -> what its progress lines said
        self._asked: set[WatchedRequest] = set()  # the requests watched (``told_if_unanswered``)
        self._watching = False  # a thread watches them (``_watch_unanswered``)
        # What the probe of this outage found wrong (``_outage_cause``): None while no request
        # is unanswered; "" once probed with nothing said (a plain timeout), else its words,
        # kept until Redis answers again (``_answered``): the first line says them, the later
        # lines of the outage refer to them (``_cause_said``), none says a guess instead.
        self._cause: str | None = None
        self._cause_said = False
        # When the first request whose line was said in this outage was sent (None: no line
        # said since Redis last answered): the pool's own requests (of no task) are said once
        # per outage, and its end once (``_answered``).
        self._outage_since: float | None = None
        # When a request last failed for want of Redis (``failed_for_want_of_redis``): a
        # request sent before that and ending after it may have been given up inside (a
        # renewal keeps its ConnectionFailed), no sign that Redis answers again.
        self._failed_at = 0.0
        # Why Redis is given up for the rest of a stopped run (``PoolState._stopped_short``):
        # set by the first request it did not answer once the pool was told to stop.
        self._unanswered_at_stop: ConnectionFailed | None = None
        # Held while the watcher picks and says its lines, and by what ends the reason of
        # one (``PoolState._let_go``, a request given up, Redis given up at a stop): no line
        # of the watcher comes after them. (Taken before ``_lock``, never the other way.)
        self._telling = threading.Lock()

    _goes_on = "the pool goes on"  # what the line saying Redis answers again ends with

    def _note(self, line: str) -> None:
        """Say a line of the watch (the subclass's progress line)."""
        raise NotImplementedError

    def _still_asked(self, task_id: str) -> bool:
        """Whether a request of ``task_id`` is still to be said (under ``_lock``): False once
        the task is let go (``PoolState``: no slot works on it now)."""
        return True

    def failed_for_want_of_redis(self) -> None:
        """A request failed for want of Redis (its ``ConnectionFailed``): see ``_failed_at``."""
        with self._lock:
            self._failed_at = time.monotonic()

    def told_if_unanswered(
        self,
        task_id: str | None,
        what: str,
        call: Callable[[], T],
        mine: WatchedTries | None = None,
        *,
        waits_s: float = 0.0,
    ) -> T:
        """``call()``, a request for ``what`` (``TAKE_REPORT``) of ``task_id`` (None: of the
        pool), with a progress line once it has gone unanswered for ``UNANSWERED_NOTICE_S``
        past ``waits_s`` (what it asks the server to wait by itself: a claim's ``wait_s``),
        once per task and ``what`` (as ``_wait_for_redis``'s line), once per outage for a
        request of the pool: Redis is not answering, and the work is kept. The ``waiting
        for Redis`` line follows when the client gives up the request (its reason: a timeout,
        a refusal), and once a request is answered after such a line, one saying Redis
        answers again (``_answered``). The one way the pool watches a request that can wait
        through an outage (``_persist``'s, ``unless_stopped``'s, the claims'): one thread
        watches them all (``_watch_unanswered``), a thread per request costing more than
        the request itself. ``mine``: where the request is noted for a caller that may give
        it up while it still waits (``until_stopped``, whose thread stays blocked in it): the
        caller drops it then (``_given_up``), so that no line says the work is kept."""
        asked = WatchedRequest(time.monotonic(), task_id, what, waits_s)
        with self._lock:
            start = False
            if mine is None or not mine.over:
                self._asked.add(asked)
                start = not self._watching
                self._watching = True
            if mine is not None:
                mine.asked.append(asked)
        if start:
            threading.Thread(
                target=self._watch_unanswered, name="swarm-unanswered", daemon=True
            ).start()
        answered = False
        try:
            value = call()
            answered = True
            return value
        except ConnectionFailed:
            raise
        except SwarmError:  # (refused, not found: an answer all the same)
            answered = True
            raise
        finally:
            with self._lock:
                self._asked.discard(asked)
            if answered:
                self._answered(asked)

    def tries_watched(
        self,
        task_id: str | None,
        what: str,
        call: Callable[[], T],
        tries: Callable[[Callable[[], T]], T],
    ) -> T:
        """``tries(watched)``: ``call`` (for ``what`` of ``task_id``) made by a caller that
        tries it (``ride_out``, ``until_stopped``) and may give it up while a try still waits
        in its thread: each try is watched (``told_if_unanswered``) until ``tries`` returns
        or gives up, and none is said after that (``_given_up``)."""
        mine = WatchedTries()
        try:
            return tries(lambda: self.told_if_unanswered(task_id, what, call, mine))
        finally:
            self._given_up(mine)

    def _answered(self, asked: WatchedRequest) -> None:
        """``asked`` was answered: once a line said this outage, and unless a request failed
        for want of Redis since it was sent (it may have been given up inside: a renewal keeps
        its ``ConnectionFailed``), a line says Redis answers again, and the next outage is
        said, and probed, anew."""
        with self._lock:
            since = self._outage_since
            if since is None or self._failed_at >= asked.since:
                return
        with self._telling:  # (after the watcher's lines of this outage)
            with self._lock:
                if self._outage_since is None or self._unanswered_at_stop is not None:
                    return
                self._outage_since = None
                self._cause, self._cause_said = None, False
            self._note(
                f"Redis answers again, {time.monotonic() - since:.0f}s after a request of "
                f"this outage was sent: {self._goes_on}"
            )

    def _given_up(self, mine: WatchedTries) -> None:
        """The requests of ``mine`` (``told_if_unanswered``) are no longer waited for: their
        caller gave them up, or had its answer. Once this returns, no line of the watcher
        says one of them (``_telling``)."""
        with self._telling, self._lock:
            mine.over = True
            for asked in mine.asked:
                self._asked.discard(asked)

    def _watch_unanswered(self) -> None:
        """Say each request of ``told_if_unanswered`` unanswered for ``UNANSWERED_NOTICE_S``,
        looking every ``WATCH_TICK_S``; ended once none has been asked for ``WATCH_LINGER_S``
        (the next request starts it again). A request of a task no slot works on now (let
        go: ``_let_go``) is dropped unsaid, and every one once the pool gave Redis up at a
        stop (``_unanswered_at_stop``: the pool said nothing tries again): the line says
        the work is kept and sent again. The lines are picked and said under ``_telling``,
        so that none comes after what ended its reason."""
        idle_since: float | None = None
        while True:
            time.sleep(WATCH_TICK_S)
            now = time.monotonic()
            self._outage_cause(now)
            with self._telling:
                with self._lock:
                    if self._unanswered_at_stop is not None:
                        self._asked.clear()  # (the pool is stopping: said nothing more)
                    if not self._asked and self._outage_since is None:
                        self._cause = None  # (no line said: the next outage is probed anew)
                    if not self._asked:
                        idle_since = idle_since or now
                        if now - idle_since >= WATCH_LINGER_S:
                            self._watching = False
                            return
                        continue
                    idle_since = None
                    lines = self._unanswered_lines(now)
                for line in lines:
                    self._note(line)

    def _unanswered_lines(self, now: float) -> list[str]:
        """The lines of the requests watched that are due one (under ``_lock``); those of a
        task no longer worked on are dropped. A request of the pool is said once per outage,
        and gives way to one of a task still to be said (``_to_say``): that line says the
        outage, with what becomes of the task's work, and the pool's says nothing more (the
        follower of the cancels reads through every agent's run, its request in flight when
        a task's goes unanswered)."""
        for asked in list(self._asked):
            if asked.task_id is not None and not self._still_asked(asked.task_id):
                self._asked.discard(asked)  # (let go: nothing of it is said or kept)
        a_task_to_say = any(self._to_say(asked) for asked in self._asked)
        lines = []
        for asked in list(self._asked):
            if not asked.due(now):
                continue
            if asked.task_id is None and a_task_to_say and self._outage_since is None:
                continue  # (looked at again at the next tick: see the docstring)
            asked.told = True
            if asked.task_id is not None:
                said = self._said.setdefault(asked.task_id, set())
                if f"{asked.what} (unanswered)" in said:
                    continue
                said.add(f"{asked.what} (unanswered)")
            elif self._outage_since is not None:  # (the pool's own: once per outage)
                continue
            lines.append(asked.line(self._cause_to_say()))
            if self._outage_since is None:
                self._outage_since = asked.since
        return lines

    def _to_say(self, asked: WatchedRequest) -> bool:
        """Whether ``asked`` is a request of a task whose line is still to come, once due
        (under ``_lock``): not said yet, nor the same request of its task before."""
        if asked.task_id is None or asked.told:
            return False
        return f"{asked.what} (unanswered)" not in self._said.get(asked.task_id, ())

    def _cause_to_say(self) -> str | None:
        """What a line says of why Redis does not answer (under ``_lock``): the probe's
        words in the outage's first line, then ``CAUSE_SAID`` (none repeats them per task,
        nor contradicts them with the guesses); None when the probe said nothing."""
        if not self._cause:
            return None
        if self._cause_said:
            return CAUSE_SAID
        self._cause_said = True
        return self._cause

    def _outage_cause(self, now: float) -> None:
        """Once a request watched is due its line, and this outage was not probed yet: what
        is wrong, asked with one request of the swarm's own (``_probed``, outside the locks:
        it waits up to ``PROBE_TIMEOUT_S``), kept in ``_cause`` for the lines to say. The
        request that waits is kept waiting by the client's retries (up to a minute on a
        Cluster or Sentinel URL, through a failover), which raise the error that says why
        only once they give up: the line said before that would only guess."""
        with self._lock:
            due = self._cause is None and any(asked.due(now) for asked in self._asked)
        if not due:
            return
        cause = self._probed()
        with self._lock:
            if self._cause is None:
                self._cause = cause

    def _probed(self) -> str:
        """Why Redis does not answer the pool, as the core says it (``_translate``): one read
        of the swarm's own keys (their slot's master, on a cluster), on a handle of its own
        with short timeouts and no retry (``PROBE_CLUSTER_RETRIES`` on a cluster), fails
        with the words of what is wrong (a cluster down, the master of the swarm's slot
        down, a server loading). "" when it says nothing more than the guesses: answered,
        timed out (a paused or busy server), or an embedded server (this process would be
        the one to start it). (A write refused is no wait: its ConnectionFailed comes at
        once, and ``_wait_for_redis`` says it.)"""
        settings = self.swarm.settings
        if settings.kind == "embedded":
            return ""
        quick = settings.with_timeouts(  # (its words name the pool's URL, not these options)
            retries=PROBE_CLUSTER_RETRIES if settings.kind == "cluster" else 0,
            socket_timeout=PROBE_TIMEOUT_S,
            connect_timeout=PROBE_TIMEOUT_S,
        )
        try:
            with type(self.swarm)(quick) as probe:
                probe.get_task(probe.new_task_id())
        except ConnectionFailed as exc:
            if timed_out(exc):
                return ""
            return said_retrying(exc)
        except Exception:  # (answered, or refused: nothing the guesses would gain)
            return ""
        return ""
