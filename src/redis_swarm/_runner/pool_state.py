"""What every part of the pool shares: its swarm and options, the tally of what became of its
tasks, the switches that stop it (``drain``, ``abort``, an error it cannot get past, runs
that all fail alike), the leases its slots hold, and the writes that ride out an outage.

Through an outage (the server down, paused, out of memory, read-only, unable to persist: a
``ConnectionFailed``) the pool keeps what its agents did: a finished run's report or
failure, or a release, is tried again until Redis takes it (``_outage.ride_out``), for up to
``OUTAGE_PATIENCE_S``, renewing the task's lease between tries, with one progress line per
task; one before it, as soon as such a request, or any other the pool makes that can wait
through an outage (a renewal, a slot's heartbeat, a claim past its own wait, a read of the
cancels: all watched one way, ``told_if_unanswered``), has gone unanswered for
``UNANSWERED_NOTICE_S``, says that Redis is not answering and the work is kept (a paused
server, or a Cluster master down until a replica takes over, keeps a request waiting for the
client's timeout and retries first), and why, when one quick read of its own says (a cluster
down: ``_probed``): said once per outage, the later lines referring to it (``CAUSE_SAID``),
none guessing otherwise; and the first request answered after it, that Redis answers again
(``_answered``): the one watch of such requests (``RequestWatch``, which a pipeline's own
agents use too). The pool claims nothing while any of its tasks waits so (a report, or a
lease renewal that failed): the server would only refuse the claim, or, once back, lease
again a task of this pool whose lease ran out meanwhile, and its agent would run twice. A
lease that ran out all the same is no loss: the core takes the first report of an open task
whatever the age of its token (docs/tasks.md); and a claim of this pool that leases such a
task again (a paused server runs the claims it received while paused when it wakes up) hands
the new lease to the slot working on it (``_adopted``), not to a second run. Such a claim
whose reply was lost (it raised ``ConnectionFailed``) leases the task with a lease no slot
holds: the renewal of the slot working on it, refused, finds the task held by the worker id
of that claim and proves the lease the pool's own by renewing it with a secret that claim
sent (the client makes them: the error carries them); proved, the lease is the slot's, its
agent runs on and its renewals go on with it (``_adopt_orphan``, ``LeaseRenewal``). A lease
no secret of the pool's proves is another's, whatever its worker id (processes may share a
worker prefix), and stops the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import (
    ConnectionFailed,
    LeaseLost,
    SwarmError,
    TaskDeadLettered,
    ValidationError,
)
from .._models import lease_token
from .._outage import OUTAGE_PATIENCE_S, StopBudget, ride_out, until_stopped
from .._translate import said_retrying
from .._usage import summed_figures
from .._validate import MAX_POLL_S
from .child import check_command, check_program
from .options import RunOptions, default_worker_prefix, slot_name
from .outcomes import OutcomeStatus, TaskOutcome, dead_now, task_gone
from .request_watch import (
    ANSWER,
    RELEASE_UNRUN,
    TAKE_REPORT,
    RequestWatch,
)

if TYPE_CHECKING:
    from .._client import Swarm
    from .._models import Task

__all__ = ["ALIKE_FAILURES_STOP", "ALIKE_NEXT_RUN", "OUTAGE_PATIENCE_S", "PoolState"]

T = TypeVar("T")

HOLD_POLL_S = 0.2  # how often a slot held back from claiming looks again
# Failed runs in a row, all with the same error (of at least two tasks, a retry counting, so
# that a queue of fewer tasks than this stops too), before any run of the pool succeeded, that
# stop it (``PoolState._fails_alike``).
ALIKE_FAILURES_STOP = 3
# What the next run does with the tasks of a pool those failures stopped, as the end of what
# it says: ``swarm run``'s and ``swarm serve``'s (a pipeline says what its own next run does
# instead: it gives back the tasks they left dead).
ALIKE_NEXT_RUN = (
    "then run again: the tasks still in the queue are retried; those these runs left dead "
    "(out of attempts) are not: swarm task requeue ID gives one back"
)
# The failed claims remembered per worker id (``PoolState._claim_unanswered``): an orphan is
# the lease of one of the last few (older ones: no proof, the agent is stopped).
CLAIMS_UNANSWERED_KEPT = 16


@dataclass
class _Counts:
    claimed: int = 0
    running: int = 0
    ended: dict[OutcomeStatus, int] = field(default_factory=lambda: dict.fromkeys(OutcomeStatus, 0))
    errors: list[str] = field(default_factory=list)
    unreleased: int = 0  # of the tasks released: those whose release Redis did not take
    dead: set[str] = field(default_factory=set)  # the tasks this run's failures dead-lettered
    gone: set[str] = field(default_factory=set)  # the tasks lost as gone from the server


class PoolState(RequestWatch):
    """The pool's options, tally and stop switches (see ``Runner``)."""

    def __init__(
        self,
        swarm: Swarm,
        options: RunOptions,
        *,
        on_outcome: Callable[[TaskOutcome], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
        on_warning: Callable[[TaskDeadLettered], None] | None = None,
    ) -> None:
        if not options.queues:
            raise ValidationError("name at least one queue to claim from (--queue)")
        if options.concurrency < 1:
            raise ValidationError("concurrency must be at least 1")
        if not options.command.strip():
            raise ValidationError(f"the agent command is empty: give it ({options.exec_named})")
        if not 0 < options.poll_s <= MAX_POLL_S:  # (NaN too)
            raise ValidationError(
                f"poll_s is {options.poll_s!r}: give seconds above 0, at most {MAX_POLL_S:g} "
                "(how long a waiting claim blocks before it looks again: --poll)"
            )
        check_command(options.command, options.placeholders, where=options.exec_named)
        check_program(options.command, shell=options.shell, where=options.exec_named)
        self.swarm = swarm
        self.options = options
        self.prefix = options.worker or default_worker_prefix()
        self.outcomes: list[TaskOutcome] = []
        self._on_outcome = on_outcome
        self._on_progress = on_progress
        self._on_warning = on_warning
        self._counts = _Counts()
        self._set_up_watch()
        self._draining = threading.Event()
        self._aborting = threading.Event()
        # What a stopped pool still gives Redis, once for its whole exit (``_outage``).
        self._stop_budget = StopBudget()
        self._done = threading.Event()  # until_done: a claimer found the queues settled
        # A slot let go of a task (reported, failed or gave it back): a claimer waiting on the
        # pool's own tasks looks again at once (``Claiming._claim_until_done``).
        self._let_go_of_one = threading.Event()
        self._fatal: str | None = None
        # The error the last failed runs share, how many in a row, and of which tasks.
        self._alike: tuple[str, int, set[str]] | None = None
        self.crash: BaseException | None = None  # an unexpected error in a slot (a bug)
        # The tasks the slots work on, by id: the lease each slot was handed (``_adopted``).
        self._working: dict[str, Task] = {}
        # By the lease a slot was handed (``_held``): the newest lease the pool holds of its
        # task (a lease that ran out and came back to the pool is handed to its slot). A slot
        # that gave its task back keeps its own until ``_let_go``, while another slot may
        # work on the task again.
        self._leases: dict[tuple[str, str | None], Task] = {}
        # When the slot working on a task was handed it (monotonic), by task id, as _working.
        self._working_since: dict[str, float] = {}
        # The leases (``_held``) whose agent runs now: a new lease of its task is its slot's.
        self._agents: set[tuple[str, str | None]] = set()
        # Worker id -> its last claims that failed with ConnectionFailed, claims Redis may
        # have run whose reply (their leases) the pool never got: when (monotonic), and the
        # lease secrets each sent, oldest first.
        self._claims_unanswered: dict[str, deque[tuple[float, tuple[str, ...]]]] = {}
        self._waiting: dict[str, str] = {}  # task id -> what of it waits for Redis (outage)
        self._set_up()

    def _still_asked(self, task_id: str) -> bool:
        return task_id in self._working  # (let go: ``_let_go``)

    def _set_up(self) -> None:
        """The state of a part of the pool (``Claiming``, ``AgentRuns``): each part extends
        this, calling ``super()._set_up()`` first, instead of repeating ``__init__``'s
        signature; called once, at the end of ``__init__``."""

    # --- control

    def drain(self) -> None:
        """Claim nothing more; let the running processes finish."""
        self._draining.set()
        self._let_go_of_one.set()  # (a claimer waiting on the pool's tasks stops waiting)

    def abort(self) -> None:
        """Claim nothing more; kill the running processes and release their tasks."""
        self._draining.set()
        self._aborting.set()
        self._let_go_of_one.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    @property
    def fatal(self) -> str | None:
        """Why the pool stopped on its own (an error it cannot get past), if it did."""
        return self._fatal

    def _claims_over(self) -> bool:
        """True once the pool claims nothing more: drained, aborted, or done (``until_done``
        and its queues settled)."""
        return self._draining.is_set() or self._done.is_set()

    def _stop(self, reason: str) -> None:
        """Stop on an error the pool cannot get past: kill the running agents."""
        self._set_fatal(reason)
        self.abort()

    def _halt(self, reason: str) -> None:
        """Stop on an error that is not the running agents' doing: claim nothing more, let
        them finish (their work is real, and may have cost)."""
        self._set_fatal(reason)
        self.drain()

    def _failed_alike(self, task_id: str, error: str) -> None:
        """Count a failed run (one the pool did not kill) towards ``_fails_alike``: failures
        that differ (the tasks' own) start the count again; a task failing again (its retry)
        counts as one more run, so that a queue of fewer tasks than the count stops too."""
        with self._lock:
            if self._alike is None or self._alike[0] != error:
                self._alike = (error, 0, set())
            _, runs, tasks = self._alike
            self._alike = (error, runs + 1, tasks | {task_id})

    def _fails_alike(self) -> bool:
        """True, the pool halted saying why (its running agents let finish), when a task
        is about to run though the pool's last ``ALIKE_FAILURES_STOP`` failed runs (of two
        tasks or more, retries included: one task's own retries failing alike are that task's
        fault, a question holding what its command cannot take) failed with the very same
        error and no run of the pool ever succeeded: the error is then the agent command's,
        not the tasks' (not logged in, a missing key, a wrong option), and would fail every
        task of the queues in seconds until each is dead. Asked before a slot runs a task,
        whichever it is (a retry of one that failed too: counting tasks rather than runs let
        a queue of 3 tasks or fewer spend every attempt): it goes back to its queue unrun,
        keeping its attempts."""
        with self._lock:
            if self._alike is None or self._counts.ended[OutcomeStatus.COMPLETED]:
                return False
            error, runs, tasks = self._alike
        if runs < ALIKE_FAILURES_STOP or len(tasks) < 2:  # (one task's retries: its own fault)
            return False
        # (each of another task: "3 tasks in a row"; else the tasks they were runs of)
        of = f"{runs} tasks" if len(tasks) == runs else f"{runs} runs of {len(tasks)} tasks"
        self._halt(
            f"every run fails with: {error} ({of} in a row, none done). Fix the agent "
            f"command ({self.options.exec_named}) or what it needs (a login, an API key), "
            f"{ALIKE_NEXT_RUN}"
        )
        return True

    def _set_fatal(self, reason: str) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = reason

    # --- the tally

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = self._counts
            return {
                "claimed": c.claimed,
                "running": c.running,
                **{status.value: n for status, n in c.ended.items()},
            }

    def spent(self) -> dict[str, Any]:
        """What the pool's agent runs cost, as their CLIs printed it: the ``FIGURES`` every
        total sums (``summed_figures``: None where no run reported one, never 0 for
        unknown), ``runs`` the outcomes so far whose agent ran (``TaskOutcome.agent_ran``:
        not one the shell could not start) and ``runs_without_cost`` those whose run
        reported no cost."""
        with self._lock:
            usages = [o.usage for o in self.outcomes if o.agent_ran]
        priced = sum(1 for u in usages if u is not None and u.cost_usd is not None)
        return {
            **summed_figures(usages),
            "runs": len(usages),
            "runs_without_cost": len(usages) - priced,
        }

    @property
    def unreleased(self) -> int:
        """Of the tasks the pool gave back (``released``), those whose release Redis did not
        take when the pool was stopped in an outage: each goes back to its queue when its
        lease runs out."""
        with self._lock:
            return self._counts.unreleased

    @property
    def dead(self) -> list[str]:
        """The tasks this run's failures dead-lettered (their last attempt failed here), and
        still dead as far as the pool knows."""
        with self._lock:
            return sorted(self._counts.dead)

    @property
    def gone(self) -> list[str]:
        """The tasks lost as gone from the server (``outcomes.task_gone``): deleted, or the
        server lost its data; their runs' work was not stored."""
        with self._lock:
            return sorted(self._counts.gone)

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._counts.errors)

    def _error(self, message: str) -> None:
        with self._lock:
            self._counts.errors.append(message)

    def _finish(self, outcome: TaskOutcome) -> None:
        with self._lock:
            self._counts.running -= 1
            self._counts.ended[outcome.status] += 1
            self.outcomes.append(outcome)
            # (told by their one wording: ``task_gone``, ``dead_now``)
            tid, detail = outcome.task_id, outcome.detail
            if outcome.status is OutcomeStatus.LOST and task_gone(tid) in detail:
                self._counts.gone.add(tid)
            if outcome.status is OutcomeStatus.FAILED and dead_now(tid) in detail:
                self._counts.dead.add(tid)
            else:  # (requeued since, and run here again)
                self._counts.dead.discard(tid)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    # --- the slots' names

    def _worker_name(self, index: int) -> str:
        """The agent id of slot ``index`` (1-based): what it claims and reports as."""
        return slot_name(self.prefix, index)

    # --- the leases the slots hold

    @staticmethod
    def _held(task: Task) -> tuple[str, str | None]:
        """The key of the record of the lease ``task`` a slot was handed: one per lease, so
        that a slot that gave its task back and one that leased it again keep theirs apart."""
        return task.id, task.token

    def _token(self, task: Task) -> str | None:
        """The token of the newest lease the pool holds of ``task`` (its claim's, unless a
        later lease of it came back to the pool: see ``_adopted``)."""
        return self._lease(task).token

    def _lease(self, task: Task) -> Task:
        """The newest lease the pool holds of ``task``, as it was leased (see ``_token``)."""
        with self._lock:
            return self._leases.get(self._held(task), task)

    def _adopted(self, task: Task) -> bool:
        """Take ``task``, just leased to this pool, as a slot's work: False when a slot
        already works on it and either its agent still runs (its lease ran out, or the task
        was dead-lettered and requeued, and a claim of this pool leased it again) or the lease
        that slot holds ran out before this claim leased the task again (its report may wait
        for Redis): then the newer lease is handed to that slot, whose renewals and last word
        use it, and its agent is not run a second time.

        Only a slot that gave the task back (a release, or a failure to retry) with no
        lease of it lost meanwhile keeps its hands off: a claim of this pool that leased it
        again at once, before that slot let go of it, is a new lease of its own, the claiming
        slot's work (that slot's last word settled the old one; handed to it, the new lease
        would be released unrun, a claim counted for nothing). A lease that ran out is told
        by the task's ``abandons``, which only an expired lease counts."""
        with self._lock:
            working = self._working.get(task.id)
            handed = working is not None and (
                self._held(working) in self._agents
                or task.abandons > self._leases.get(self._held(working), working).abandons
            )
            if working is not None and handed:
                self._leases[self._held(working)] = task
            else:
                self._working[task.id] = task
                self._working_since[task.id] = time.monotonic()
                self._leases[self._held(task)] = task
        if handed:
            self._note(
                f"{task.id} came back to this pool (its lease ran out, as through an outage, "
                "or it was requeued): the slot working on it takes the new lease, not run again"
            )
        return not handed

    @contextlib.contextmanager
    def _agent_running(self, task: Task) -> Iterator[None]:
        """While the agent of ``task`` (as leased to its slot) runs (see ``_adopted``)."""
        with self._lock:
            self._agents.add(self._held(task))
        try:
            yield
        finally:
            with self._lock:
                self._agents.discard(self._held(task))

    def _claim_unanswered(self, worker: str, secrets: Sequence[str]) -> None:
        """Note the lease ``secrets`` a claim by ``worker`` sent that Redis may have used for
        a lease whose reply the pool never got: those of a claim that failed (a paused server
        runs the requests it received when it wakes up), and those of the tasks a claim
        returned (the client's own retry sends the same secrets as the try whose reply was
        lost). Such a lease, leased to ``worker`` and known to no slot, is proved this pool's
        by one of them (``_adopt_orphan``)."""
        if not secrets:
            return
        with self._lock:
            failed = self._claims_unanswered.setdefault(
                worker, deque(maxlen=CLAIMS_UNANSWERED_KEPT)
            )
            failed.append((time.monotonic(), tuple(secrets)))

    def _orphan_secrets(self, task: Task, holder: str) -> list[str]:
        """The secrets that may prove the lease ``holder`` holds of ``task`` (which the
        agent running for it lost) one a claim of this pool took without seeing its reply:
        those of the claims by ``holder`` that failed since the agent's slot was handed the
        task, while no slot of the pool took the task as its work since. None otherwise."""
        with self._lock:
            since = self._working_since.get(task.id)
            if since is None or self._working.get(task.id) is not task:
                return []
            failed = self._claims_unanswered.get(holder, ())
            return [secret for when, sent in failed if when >= since for secret in sent]

    def _adopt_orphan(self, task: Task, now: Task) -> bool:
        """True when the lease ``now`` holds (the task as read, leased again after the lease
        the agent of ``task`` runs under was lost) is proved this pool's: renewed with the
        token ``ATTEMPT.SECRET`` of a secret a failed claim of its holder sent
        (``_orphan_secrets``). It is then the slot's lease (``_token``): the agent runs on,
        the task's only run, and its renewals go on with it. A worker id alone proves
        nothing: processes may share a worker prefix (``swarm serve``'s), and a lease no
        secret of this pool renews is another process's run."""
        for secret in self._orphan_secrets(task, now.worker or ""):
            token = lease_token(now.attempts, secret)
            try:
                renewed = self.swarm.renew(task.id, token, lease_s=self.options.lease_s)
            except LeaseLost:  # (another task's secret, or another process's lease)
                continue
            with self._lock:
                self._leases[self._held(task)] = dataclasses.replace(renewed, token=token)
            return True
        return False

    def _let_go(self, task: Task) -> None:
        """The slot that worked on ``task`` (as leased to it) is done with it. A newer lease
        handed to it meanwhile (``_adopted``) that its last word did not settle is released:
        no slot would run it, and it would stay leased to this pool until it ran out (watched
        as the pool's other requests are: ``RELEASE_UNRUN``). A slot that leased the task
        again after this one gave it back keeps its own lease."""
        with self._telling, self._lock:
            newer = self._leases.pop(self._held(task), None)
            if self._working.get(task.id) is task:
                del self._working[task.id]
                self._working_since.pop(task.id, None)
                self._waiting.pop(task.id, None)
                self._said.pop(task.id, None)
        if newer is not None and newer.token != task.token:
            # (refused when the slot's report or fail used it: the task is settled then)
            with contextlib.suppress(SwarmError):
                self.told_if_unanswered(
                    None, RELEASE_UNRUN, lambda: self.swarm.release(newer.id, newer.token)
                )
        self._let_go_of_one.set()  # (after the slot's last word on it reached Redis)

    # --- outages

    def _note(self, line: str) -> None:
        """A progress line: kept with the errors, and shown as it comes (``on_progress``)."""
        self._error(line)
        if self._on_progress is not None:
            self._on_progress(line)

    def _saying_dead_lettered(self) -> contextlib.AbstractContextManager[object]:
        """Around a claim of the pool (a batch's, a report's ``claim_next``): each task it met
        stored damaged and dead-lettered (``TaskDeadLettered``, collected in this thread) is
        said however the claim ends (``TaskDeadLettered.told_to``): to ``on_warning``
        (``swarm run``: its ``warning:`` line), else as a progress line in the same words;
        kept with the errors either way."""
        return TaskDeadLettered.told_to(self._say_dead_lettered)

    def _say_dead_lettered(self, warning: TaskDeadLettered) -> None:
        line = warning.line()
        if self._on_warning is None:
            self._note(line)
        else:
            self._error(line)
            self._on_warning(warning)

    def _holding(self) -> bool:
        """True while a task of the pool waits for Redis (see the module's docstring): the
        slots claim nothing meanwhile."""
        with self._lock:
            return bool(self._waiting)

    def _wait_for_redis(self, task_id: str, what: str, exc: ConnectionFailed) -> None:
        """Note that the pool waits for Redis to ``what`` of a task (one progress line per
        task and ``what``), holding the pool's claims until ``_redis_back``."""
        with self._lock:
            said = self._said.setdefault(task_id, set())
            known = what in said
            said.add(what)
            self._waiting[task_id] = what
            self._failed_at = time.monotonic()  # (see RequestWatch._failed_at)
        if not known:
            self._note(f"waiting for Redis to {what} of {task_id}: {said_retrying(exc)}; retrying")

    def _redis_back(self, task_id: str) -> None:
        with self._lock:
            self._waiting.pop(task_id, None)

    def _persist(
        self, call: Callable[[], T], task: Task | None = None, what: str = TAKE_REPORT
    ) -> T:
        """Make a call the pool must not lose ride out an outage (``_outage.ride_out``: the
        client itself retries for a few seconds only): tried again until Redis takes it, for
        up to ``OUTAGE_PATIENCE_S`` or until the pool is aborted, then the
        ``ConnectionFailed`` raised says so (within the stop's budget, ``_stop_budget``, and at
        once once a request went unanswered since: ``_stopped_short``). For ``task`` (the
        progress line says the pool waits for Redis to ``what`` of it), the pool claims
        nothing meanwhile, and the lease is renewed between tries. Its tries are watched
        (``told_if_unanswered``) until it returns or gives up, not while a try given up at
        a stop still waits in its thread."""
        if task is None:
            return self.tries_watched(
                None, ANSWER, call,
                lambda watched: self._stopped_short(
                    lambda: ride_out(
                        watched, what="answer", who="the pool", stop=self._aborting,
                        budget=self._stop_budget,
                        on_outage=lambda exc: self._note(
                            f"waiting for Redis to answer: {said_retrying(exc)}; retrying"
                        ),
                    ),
                    self._aborting,
                ),
            )  # fmt: skip
        held = task
        return self.tries_watched(
            held.id, what, call,
            lambda watched: self._stopped_short(
                lambda: ride_out(
                    watched, what=f"{what} of {held.id}", who="the pool", stop=self._aborting,
                    budget=self._stop_budget,
                    on_outage=lambda exc: self._wait_for_redis(held.id, what, exc),
                    between=lambda: self._renew_waiting(held),
                    on_back=lambda: self._redis_back(held.id),
                ),
                self._aborting,
            ),
        )  # fmt: skip

    def unless_stopped(self, call: Callable[[], T], what: str = ANSWER, of: str | None = None) -> T:
        """``call()``, a request that is no write to keep (a count, a deregistration), for
        ``what`` of task ``of`` (None: of the pool), as its line says it if Redis does not
        answer it (``told_if_unanswered``), given up once the pool was told to stop (drained
        or aborted) and the stop's budget (``_stop_budget``: ``STOP_GRACE_S``, one for the
        whole exit) has run out, if Redis has not answered it by then
        (``_outage.until_stopped``: a ``ConnectionFailed``), and not even tried once a request
        went unanswered since (``_stopped_short``), so that a stop in an outage ends the run
        within seconds, not a client timeout per request."""
        return self._bounded(call, self._draining, what, of)

    def unless_aborted(self, call: Callable[[], T], what: str = ANSWER, of: str | None = None) -> T:
        """``call()``, a request made while an agent runs (its lease's renewal, its slot's
        heartbeat), given up as ``unless_stopped`` gives one up, once the pool was aborted:
        a drain lets the agents finish, and their leases must hold meanwhile."""
        return self._bounded(call, self._aborting, what, of)

    def _bounded(
        self, call: Callable[[], T], stop: threading.Event, what: str, of: str | None
    ) -> T:
        return self._stopped_short(
            lambda: until_stopped(
                lambda: self.told_if_unanswered(of, what, call),
                stop,
                what="answer",
                budget=self._stop_budget,
            ),
            stop,
        )

    def _stopped_short(self, call: Callable[[], T], stop: threading.Event) -> T:
        """``call()`` (a request bounded by ``stop``), unless ``stop`` is set and a request
        went unanswered since the pool was told to stop: then Redis is out, and a stopped
        pool waits for no outage, so it is given up untried (a ``ConnectionFailed`` saying
        why). A request that fails with ``stop`` set is the one that says so."""
        given_up = self._unanswered_at_stop
        if given_up is not None and stop.is_set():
            raise ConnectionFailed(
                f"not tried: Redis did not answer since the pool was told to stop ({given_up})"
            )
        try:
            return call()
        except ConnectionFailed as exc:
            if stop.is_set():
                with self._telling, self._lock:  # (no watcher's line after: see _watch_unanswered)
                    self._unanswered_at_stop = self._unanswered_at_stop or exc
            raise

    def _renew_waiting(self, task: Task) -> None:
        """Renew the lease of a task whose report (or failure, or release) waits for Redis, so
        that it still holds when Redis takes it. Best effort: a renewal the server refuses
        too lets the lease run out, and the report is taken all the same while no other
        report completed the task first."""
        token = self._token(task)
        if token is None:
            return
        with contextlib.suppress(SwarmError):  # refused, unreachable, or taken over: no matter
            self.swarm.renew(task.id, token, lease_s=self.options.lease_s)
