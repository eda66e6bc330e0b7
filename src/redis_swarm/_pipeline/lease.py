"""One run at a time drives a pipeline: the lease a run holds on it while it lives.

Two runs of a plan at once would each run every pass's synthesizer (and planner): paid
twice, counted once. So a run first takes the pipeline's lease: a task of its own in a queue
of its own (``names.lease_queue``), claimed as any task is (one atomic claim: of two runs
starting together, one gets it), renewed by a thread every third of its length while the
run lives, and settled (cancelled) when the run ends. Another run finds it held and is
refused at once, told who holds it, since when, and how to wait for it or take it over;
given a wait, it claims the lease as soon as it is free.

A run killed with SIGKILL settles nothing: its lease ends ``lease_s`` after its last renewal
(the workers' ``lease_s``, from ``LEASE_MIN_S`` to ``LEASE_MAX_S``: a rerun waits for the
killed run's workers' leases anyway) and the task is dead-lettered (``max_abandons=1``: never
left pending), so that the next run posts the next generation. A run whose renewal finds
the lease gone (cancelled by hand, which is how a run is taken over; or, while the run was
suspended, expired and claimed by another run) stops at once, its agents killed; one that
finds it merely expired and given back to its queue claims it back. A renewal that cannot
reach Redis is tried again for as long as the run lives (an outage passes); one that no retry
can help (``ConnectionFailed.retryable`` False: a certificate refused, a certificate or key
file of the URL that no longer loads) is tried again while the lease lasts (a file caught
mid-rewrite loads at the next try), and when the lease would end before another try, the
run stops as at a lost lease, failing with that error, which says what to fix.

A settled lease task is never reopened: the next run posts the next generation
(``names.lease_task_id``) after the highest one the lease queue holds (``newest_lease``):
two runs starting together read the same one, so post the same next one (the later post
finds the earlier's task, naming the other run: ``posted_once``), and one of them gets its
claim. An open one is claimed as it is, not posted again. ``swarm pipeline retire`` frees
the settled generations but that highest one (``retiring``), so that a number is never
posted twice: a generation posted again after it was retired would be a second lease
beside the one a run holds, and would mix two lifetimes under one id. (A queue holding
none, a pipeline's first run, or every generation retired by hand: the next after those
the queue's retirements removed.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._codec import iso
from .._errors import (
    Conflict,
    ConnectionFailed,
    LeaseLost,
    NotFound,
    SwarmError,
    TaskDeadLettered,
)
from .._models import Task, TaskStatus
from .._validate import MAX_PAGE
from .agents import leases_end, run_agents
from .names import lease_generation, lease_queue, lease_task_id, posted_once
from .plan import Plan

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = [
    "LEASE_MAX_S",
    "LEASE_MIN_S",
    "RunLease",
    "lease_s_of",
    "newest_lease",
    "sweep_killed",
]

LEASE_MIN_S = 2  # a shorter lease renewed every third of it would be lost to a slow reply
LEASE_MAX_S = 30  # the longest a killed run keeps the pipeline from a rerun
# A waiting run looks again at least this often (and stops when told to); so does a renewal
# that failed (``_renewing``).
_POLL_S = 1.0
# The longest ``release`` waits for a renewal under way to end (a reply on its way). Beyond
# it, the renewal waits out the client's retries (an outage: seconds, a minute with a long
# ``?retries=``), which a stop does not wait for: the renewing thread gives the lease up
# itself once that renewal ends (``RunLease.release``).
_STOP_WAIT_S = 0.5
# The key of a lease task's data naming the holder of the run that posted it.
_HOLDER = "holder"
_OPEN = (TaskStatus.PENDING, TaskStatus.DELAYED, TaskStatus.CLAIMED)


def lease_s_of(plan: Plan) -> int:
    """The length of the lease a run of ``plan`` holds: its workers' ``lease_s``, from
    ``LEASE_MIN_S`` to ``LEASE_MAX_S`` seconds."""
    return min(LEASE_MAX_S, max(LEASE_MIN_S, plan.workers.lease_s))


def newest_lease(swarm: Swarm, name: str) -> tuple[Task, int] | None:
    """The lease task of pipeline ``name`` of the highest generation its lease queue holds,
    with that generation (None: it holds none). An open one is the highest (a run posts
    the next generation only once every one is settled), found in the queue's claimed set
    (what a waiting run reads every second: cheap); else the one the counts name
    (``_counted``: four small reads); else, when they do not agree, the newest settled one,
    the task index read from its end (a settled generation is never reopened: the newest
    posted is the highest), a walk through every task posted since it."""
    queue = lease_queue(name)
    claimed = swarm.list_tasks(queue=queue, status=TaskStatus.CLAIMED, limit=MAX_PAGE)
    found = _highest(name, claimed.items) or _counted(swarm, name, queue)
    cursor: str | None = None
    while found is None:
        page = swarm.list_tasks(queue=queue, cursor=cursor, limit=MAX_PAGE, newest_first=True)
        found = _highest(name, page.items)
        cursor = page.cursor
        if cursor is None:
            break
    return found


def _counted(swarm: Swarm, name: str, queue: str) -> tuple[Task, int] | None:
    """The highest generation as the lease queue's counts say it, confirmed. The generations
    held are the last ones posted (retirements take the oldest settled first, and never the
    highest), so the highest is those held plus those retired; it is the highest when its
    task exists and the next one does not (the generations held run on without a gap).
    None when they disagree: a task posted to the queue by hand, or a retirement step
    between the two counts read."""
    held = sum(swarm.queue_stats().get(queue, {}).values())
    retired = swarm.retired_questions().get(queue)
    top = held + (retired.questions if retired is not None else 0)
    if top < 1:
        return None
    try:
        task = swarm.get_task(lease_task_id(name, top))
    except NotFound:
        return None
    try:
        swarm.get_task(lease_task_id(name, top + 1))
    except NotFound:
        return task, top
    return None


def _highest(name: str, tasks: Sequence[Task]) -> tuple[Task, int] | None:
    """The task of ``tasks`` of the highest lease generation of pipeline ``name``, with it
    (a task posted to the lease queue by hand has none: skipped)."""
    numbered = [(t, n) for t in tasks if (n := lease_generation(name, t.id)) is not None]
    return max(numbered, key=lambda pair: pair[1], default=None)


def sweep_killed(swarm: Swarm, name: str, *, holder: str) -> list[str]:
    """Deregister the agents that runs of pipeline ``name`` killed with SIGKILL (or that
    could not give up their lease) left registered, and return their ids. A run that ends
    deregisters its own (its lease holder, planner, synthesizer, its pool's slots:
    ``run_agents``); a killed one cannot, and as its names hold its process id
    (``default_worker_prefix``), no later run takes them again: they stayed, stale for good,
    naming tasks settled since.

    Such a run is known by its lease task, dead (it ran out unrenewed: ``max_abandons=1``),
    whose data names its holder (the run that posted it: the one that claimed it, but for
    two runs started together, when the other may have posted it; the killed run's names
    then stay). An agent of its names is removed only when it is stale as every view calls
    it (``Agent.alive`` False: silent for ``STALE_AFTER_S``, or its session said it ended),
    gave no sign of life since the task died, and holds no lease (one holding a task's is
    removed by a run after that lease ends, as ``swarm agents sweep`` keeps it); and only if
    no direct message waits unread for it (``deregister_if_read``: a reader may yet come as
    it). Silent since the task died is not enough: the task dies when a claim reclaims its
    expired lease, most often this run's own ``acquire`` seconds ago, and a live process
    that took the names again (a ``--worker`` prefix given twice, or the default
    ``run-HOST-PID`` repeated in another PID namespace of the same host name) beats only
    every ``BEAT_EVERY_S``: its synthesizer (holding no lease) or idle pool slots were
    silent that long. One that goes stale later is removed by the sweep at the run's end,
    or the next run's. ``holder``: this run's; its names, the same as a killed run's given
    the same ``--worker``, are this run's own."""
    dead = swarm.list_tasks(
        queue=lease_queue(name), status=TaskStatus.DEAD, limit=MAX_PAGE, with_data=True
    )
    killed: dict[str, int | None] = {}  # each holder, and when its lease task died
    for task in dead.items:
        named = task.data.get(_HOLDER) if isinstance(task.data, dict) else None
        if lease_generation(name, task.id) is None or not isinstance(named, str):
            continue  # (a task posted by hand; or by a version that named no holder)
        if named != holder:
            killed[named] = max(killed.get(named) or 0, task.status_since or 0) or None
    if not killed:
        return []
    registered = {agent.id: agent for agent in swarm.agents()}
    removed: list[str] = []
    for killed_holder, ended in killed.items():
        for agent_id in run_agents(killed_holder, list(registered)):
            agent = registered.pop(agent_id)
            if agent.alive is not False:  # (the listing's STALE_AFTER_S: alive is live)
                continue
            if ended is None or agent.last_seen is None or agent.last_seen > ended:
                continue
            named_task = [agent.current_task] if agent.current_task else []
            held = swarm.leases_of(agent_id, named_task)
            if held.items or held.corrupt:
                continue
            with contextlib.suppress(NotFound):  # (removed meanwhile: by another run)
                if swarm.deregister_if_read(agent_id):
                    removed.append(agent_id)
    return removed


class RunLease:
    """The lease of ``plan``'s pipeline, taken by ``acquire`` under the agent name ``holder``
    and given up by ``release``. ``on_lost`` is called (from the renewing thread) when the
    run no longer holds it, or can no longer renew it (``failed``: a connection no retry
    makes); ``lost`` then says why."""

    def __init__(
        self,
        swarm: Swarm,
        plan: Plan,
        *,
        holder: str,
        say: Callable[[str], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.swarm = swarm
        self.name = plan.name
        self.path = plan.path
        self.lease_s = float(lease_s_of(plan))
        self.holder = holder
        self.queue = lease_queue(plan.name)
        self.on_lost = on_lost
        self.lost: str | None = None
        # The error no retry fixes that a renewal failed with, when that lost the lease.
        self.failed: ConnectionFailed | None = None
        self.task: Task | None = None  # the lease task, as claimed (with its token)
        self._say = say or (lambda _line: None)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        # Between ``release`` and the renewing thread (see ``release``): whether release was
        # asked (no renewal starts after it), whether the thread is in a round of renewal
        # (its calls and what it makes of them), and whether release left the giving up to
        # the thread (it was in one when release returned).
        self._lock = threading.Lock()
        self._released = False
        self._in_round = False
        self._handed = False
        # The renewing thread's own: whether its renewals fail, and until when the lease
        # holds for sure (its last renewal's time plus its length).
        self._failing = False
        self._held_until = 0.0

    # --- taking it

    def acquire(self, *, wait_s: float = 0.0, until: threading.Event | None = None) -> bool:
        """Take the lease: True once held; False when ``until`` was set first (a stop while
        waiting). Held by another run for longer than ``wait_s`` seconds: Conflict, saying
        who holds it and what to do."""
        deadline = time.monotonic() + wait_s
        shown: tuple[str | None, int] | None = None  # the holder last said to be waited for
        while until is None or not until.is_set():
            task = self._open_task()
            left = deadline - time.monotonic()
            with TaskDeadLettered.said_to(self._say):  # (the pipeline's stderr)
                claimed = self.swarm.claim(
                    [self.queue], worker=self.holder, lease_s=self.lease_s,
                    wait_s=min(_POLL_S, left) if left > 0 else 0.0,
                )  # fmt: skip
            if claimed is not None and claimed.id != task.id:
                # A settled generation given back by hand (swarm task requeue): never
                # reopened, or two runs would hold two generations at once.
                with contextlib.suppress(SwarmError):
                    self.swarm.cancel(claimed.id)
                continue
            if claimed is not None:
                self._hold(claimed)
                return True
            task = self.swarm.get_task(task.id)
            if task.status is not TaskStatus.CLAIMED:  # given up meanwhile: look again
                continue
            if deadline - time.monotonic() <= 0:
                raise Conflict(self._busy(task, waited=wait_s))
            if (task.worker, task.attempts) != shown:
                shown = (task.worker, task.attempts)
                self._say(
                    f"waiting for the run holding pipeline {self.name}: {task.worker}, since "
                    f"{iso(task.claimed_at)} ({leases_end([task])} unless it renews it)"
                )
        return False

    def _open_task(self) -> Task:
        """The open lease task: the highest generation held, when it is open (read, not
        posted again: nothing is posted while a run holds the lease, or a waiting run looks
        every second); else the next one, posted now (see the module). Another run may
        have posted that one first, naming itself in its data: that task is the one
        (``posted_once``)."""
        newest = newest_lease(self.swarm, self.name)
        if newest is not None and newest[0].status in _OPEN:
            return newest[0]
        generation = self._next_generation(newest)
        while True:
            task = posted_once(
                self.swarm,
                self.queue,
                f"The lease of pipeline {self.name}: held by the run driving it",
                # (the holder: who to look for once the task is dead, which names no
                # worker then, see ``sweep_killed``)
                {"pipeline": self.name, _HOLDER: self.holder},
                task_id=lease_task_id(self.name, generation),
                lease_s=self.lease_s,
                # A killed run's lease that runs out is settled (dead), not left pending for
                # no one: a pending task would keep a swarm-wide task wait from settling.
                max_abandons=1,
            )
            if task.status in _OPEN:
                return task
            generation += 1

    def _next_generation(self, newest: tuple[Task, int] | None) -> int:
        """The generation to post when ``newest`` (``newest_lease``'s) is settled: the one
        after it; none held, the one after as many as the queue's retirements removed (1
        for a pipeline's first run; a pipeline whose every lease task was retired, by hand
        or before ``pipeline retire`` kept the highest: the next number not yet posted)."""
        if newest is not None:
            return newest[1] + 1
        retired = self.swarm.retired_questions().get(self.queue)
        return (retired.questions if retired is not None else 0) + 1

    def _busy(self, task: Task, *, waited: float) -> str:
        """Why this run cannot drive the pipeline, and what to do."""
        after = f" (after waiting {waited:g} s)" if waited > 0 else ""
        ends = leases_end([task])
        return (
            f"pipeline {self.name} is being run by {task.worker} since {iso(task.claimed_at)}"
            f"{after}: two runs at once would run each pass's synthesizer twice, so this one "
            "does not start. Let that run finish or stop it where it runs (Ctrl-C); to resume "
            f"as soon as it ends, run: swarm pipeline run {self.path} --wait 3600. If it was "
            f"killed, {ends} (it is renewed while that run lives): run this again then. To "
            f"take the pipeline over from a run you cannot reach: swarm task cancel {task.id} "
            "(that run stops at its next renewal)"
        )

    # --- holding it

    def _hold(self, task: Task) -> None:
        self.task = task
        self._done.clear()
        self._released = self._in_round = self._handed = False
        self._thread = threading.Thread(
            target=self._renewing, name=f"swarm-pipeline-lease-{self.name}", daemon=True
        )
        self._thread.start()

    def _renewing(self) -> None:
        """Renew the lease every third of its length until ``release`` or its loss, one
        round (``_round``) at a time. A round is never begun once release was asked; one
        under way when release returned (``_handed``) ends by giving the lease up."""
        every = self.lease_s / 3
        self._held_until = time.monotonic() + self.lease_s  # (claimed a moment ago: near enough)
        self._failing = False
        wait_s: float | None = every
        while wait_s is not None and not self._done.wait(wait_s):
            with self._lock:
                if self._released:
                    return
                self._in_round = True
            try:
                wait_s = self._round(every)
            finally:
                with self._lock:
                    self._in_round = False
                    handed = self._handed
            if handed:
                self._give_up()
                return

    def _round(self, every: float) -> float | None:
        """One renewal, and how long until the next (None: no more, the lease lost). An
        outage is retried (the lease lasts). So is a connection no retry makes
        (``ConnectionFailed.retryable`` False: a certificate refused, the URL's TLS files that
        no longer load), while the lease lasts: each try reads the URL's files again, and a
        file caught mid-rewrite (a certificate rotated in place) loads at the next one. Only
        when the lease would end before another try does the run stop with that error
        (``lost_error``), its agents killed, rather than drive the pipeline unleased until
        another run takes it over (every write of the run fails alike anyway). Anything
        else loses it at once. While renewals fail they are tried every ``_POLL_S``: once Redis
        answers again, a lease that ended meanwhile and that another run took is known at
        once (renewal refused, agents killed), not a third of a lease later, writing on
        unleased the while (nothing fences a run's writes with its lease token)."""
        retry = min(every, _POLL_S)
        task = self.task
        if task is None:
            return None
        began = time.monotonic()
        try:
            self.swarm.renew(task.id, task.token, lease_s=self.lease_s)
        except ConnectionFailed as exc:
            if not exc.retryable and time.monotonic() + retry >= self._held_until:
                self.failed = exc
                self._lose(f"it cannot be renewed before it ends, and no retry would "
                           f"help: {exc}")  # fmt: skip
                return None
            if not self._failing and not self._released:  # (a stop is not news of it)
                again = "" if exc.retryable else "; trying again while it lasts"
                self._say(f"could not renew the lease of pipeline {self.name}: {exc}{again}")
            self._failing = True
            return retry
        except LeaseLost as exc:
            if not self._take_back(task):
                self._lose(str(exc))
                return None
            began = time.monotonic()  # (claimed again: held a whole lease from now)
        except Exception as exc:  # (a bug too: a run must not go on unleased)
            self._lose(f"{type(exc).__name__}: {exc}" if not isinstance(exc, SwarmError)
                       else str(exc))  # fmt: skip
            return None
        if self._failing and not self._released:
            self._say(f"renewed the lease of pipeline {self.name} again")
        self._held_until = began + self.lease_s
        self._failing = False
        return every

    def _take_back(self, task: Task) -> bool:
        """After a renewal refused: claim the lease task back if it only expired (this run
        suspended, or Redis unreachable, longer than the lease) and went back to its queue
        with no other run taking it meanwhile (one that did would have settled it or still
        hold it). Not once ``release`` was asked: the run ends, and would only give it up."""
        try:
            if self.swarm.get_task(task.id).status is not TaskStatus.PENDING:
                return False
            if self._released:
                return False
            with TaskDeadLettered.said_to(self._say):  # (the pipeline's stderr)
                claimed = self.swarm.claim([self.queue], worker=self.holder, lease_s=self.lease_s)
        except SwarmError:
            return False
        if claimed is None:
            return False
        if claimed.id != task.id:  # (a later generation: not this run's to hold)
            with contextlib.suppress(SwarmError):
                self.swarm.release(claimed.id, claimed.token)
            return False
        self.task = claimed
        self._say(f"the lease of pipeline {self.name} had expired: taken back ({claimed.id})")
        return True

    def _lose(self, why: str) -> None:
        with self._lock:
            if self._handed:  # (release returned: the run is over, this is no news to it)
                return
            self.lost = why
        on_lost = self.on_lost
        if on_lost is not None:
            on_lost(why)

    def lost_error(self, run: int) -> LeaseLost | ConnectionFailed:
        """The error of a run that stopped because it lost the lease: a ConnectionFailed
        (not ``retryable``, saying what to fix) when a renewal failed with one no retry
        fixes; else LeaseLost."""
        failed = self.failed
        if failed is not None:
            return ConnectionFailed(
                f"run {run} of pipeline {self.name} stopped, its agents killed: its lease on "
                f"the pipeline could not be renewed while it lasted, and no retry would help: "
                f"{failed}. Once that is fixed, run it again to resume",
                sent=failed.sent,
                retryable=False,
            )
        task = self.task
        ident = task.id if task is not None else "?"
        return LeaseLost(
            f"run {run} of pipeline {self.name} lost its lease on the pipeline ({self.lost}), "
            "so it stopped, its agents killed: another run may be driving the pipeline now "
            f"(swarm task show {ident} says who held it last). Run it again to resume: it says "
            "who holds the pipeline, if a run does"
        )

    # --- giving it up

    def release(self) -> None:
        """Stop renewing, and settle the lease task if this run still holds it (the next
        run posts the next generation). Best effort: a lease left held ends by itself.

        Prompt: a renewal under way is waited for ``_STOP_WAIT_S`` at most. One that lasts
        longer waits out the client's retries (an outage), and the renewing thread, a
        daemon, gives the lease up itself once it ends (``_handed``): the lease task as that
        renewal left it (claimed back, if it had expired), never given up twice (this call
        then does not), and no renewal begins once this call was made."""
        with self._lock:
            self._released = True
            self._done.set()
        thread = self._thread
        own = thread is threading.current_thread()
        if thread is not None and not own:
            thread.join(_STOP_WAIT_S)  # (a thread between rounds ends at once)
        with self._lock:
            self._handed = thread is not None and not own and self._in_round
            handed = self._handed
        if handed:
            self._say(
                f"the lease of pipeline {self.name} is given up once its renewal under way "
                f"ends (Redis does not answer it; else the lease ends by itself within "
                f"{self.lease_s:g} s)"
            )
            return
        self._thread = None
        self._give_up()

    def _give_up(self) -> None:
        """Settle the lease task if this run still holds it, then deregister the holder.
        When Redis cannot be reached, the holder is left registered: a deregistration
        would wait out the same outage, for a name the next run removes (``sweep_killed``)."""
        task = self.task
        if task is None:
            return
        try:
            current = self.swarm.get_task(task.id)
            if current.status is TaskStatus.CLAIMED and _same_claim(current, task):
                self.swarm.cancel(task.id)
        except SwarmError as exc:
            self._say(
                f"could not give up the lease of pipeline {self.name} ({exc}): it ends by "
                f"itself within {self.lease_s:g} s"
            )
            if isinstance(exc, ConnectionFailed):
                return
        with contextlib.suppress(NotFound, SwarmError):
            self.swarm.deregister(self.holder)


def _same_claim(current: Task, held: Task) -> bool:
    """Whether ``current`` (the lease task as read now) is still under the claim ``held``
    (as this run claimed it): its worker, its claim's time and number. Its attempts alone
    would not tell: a generation retired and posted again (by hand) counts them anew, and
    this run's late release would cancel another run's lease."""
    return (current.worker, current.claimed_at, current.attempts) == (
        held.worker, held.claimed_at, held.attempts,
    )  # fmt: skip
