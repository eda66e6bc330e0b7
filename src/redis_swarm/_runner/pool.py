"""The pool behind ``swarm run``: slots that claim tasks, run one agent process per task
(``child``), renew the lease meanwhile, and report the finding or fail the task.

The pool is built in layers, each in its module: ``pool_state`` (options, tally, the stop
and drain switches), ``agent_runs`` (one agent run, its lease renewed: ``lease_renewal``),
``claiming`` (the slots' shared claims, the tasks handed over, ``claim_next``, tickets),
``task_work`` (one task from prompt to report); here, the slots' loop.

Round trips: a slot whose agent succeeded reports and leases its next task in one call
(``report(..., claim_next=)``); idle slots claim together, one of them for all (``claim(...,
n=)``), handing the other tasks of the batch over, so that a pool with free slots pays one
claim, not one per slot, and its slots do not all wake on one task. A cancel of a task an
agent runs is learnt from the event log by one follower per pool (``cancels``), not by a
round trip per task.

Presence: a batch claim leases its tasks to the claiming slot, so each slot running an agent
says itself that it works on its task (``slot_presence``: a heartbeat at the run's first tick,
then one per lease renewal or 20 s, whichever is sooner, and one when the slot goes idle).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

from .._errors import ConnectionFailed, NotFound, SwarmError
from .._models import Task
from .._translate import said_retrying
from .agent_runs import task_env
from .options import RunOptions, default_worker_prefix
from .outcomes import OutcomeStatus, TaskOutcome, swarm_refused
from .pool_state import HOLD_POLL_S, OUTAGE_PATIENCE_S
from .reaper import subreaper
from .request_watch import LEAVE
from .task_work import TaskWork

__all__ = [
    "OutcomeStatus",
    "RunOptions",
    "Runner",
    "TaskOutcome",
    "default_worker_prefix",
    "task_env",
]


class Runner(TaskWork):
    """Claims tasks and runs the agent command once per task, ``concurrency`` at a time.

    ``run`` blocks until the pool is done: ``max_tasks`` claimed, ``idle_exit_s`` seconds with
    nothing to claim, every task of its queues settled (``until_done``), or ``drain`` (finish
    what runs, claim nothing new) / ``abort`` (kill what runs and release its tasks) called
    from another thread or a signal handler.
    """

    def run(self, tick: Callable[[], None] | None = None) -> list[TaskOutcome]:
        """Run the pool until it is done; ``tick`` is called about 10 times a second from the
        calling thread (which also receives the signals)."""
        threads = [
            threading.Thread(target=self._slot, args=(i + 1,), name=f"swarm-run-{i + 1}")
            for i in range(self.options.concurrency)
        ]
        self._cancels.start()  # before any claim: a cancel made right after one is read
        try:
            with subreaper():  # orphans of the agents' trees come to this process (see reaper)
                for thread in threads:
                    thread.start()
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.1)
                        if tick is not None:
                            tick()
        finally:
            self._cancels.stop(hurry=self._aborting.is_set())
        while self._handed:  # leased for a slot that stopped first: back to the queue
            self._give_back(self._handed.popleft())
        self._leave()
        if tick is not None:
            tick()
        return list(self.outcomes)

    def _keeps_registered(self, worker: str) -> bool:
        """True for a slot whose agent record must outlive the pool (see Server)."""
        return False

    def _leave(self) -> None:
        """Deregister the pool's workers (its claims, or its slots' beats, registered them:
        ``slot_presence``), so that a finished pool is not counted alive until its presence
        expires, then listed stale for good. A slot whose record must outlive the pool
        (``_keeps_registered``: a serve's conversation) is marked stale at once instead, as a
        closing MCP server and a hook's SessionEnd mark their agent: it reads gone now, not
        alive for the minute its last beat stays fresh. Best effort: a worker left registered
        only goes stale, so a server that cannot be reached is not waited for worker after
        worker."""
        for index in range(1, self.options.concurrency + 1):
            worker = self._worker_name(index)
            kept = self._keeps_registered(worker)
            leave, verb = (
                (self.swarm.mark_stale, "mark gone")
                if kept
                else (self.swarm.deregister, "deregister")
            )
            try:
                self.unless_stopped(functools.partial(leave, worker), LEAVE)
            except NotFound:  # a slot that never claimed nor ran an agent: never registered
                continue
            except ConnectionFailed as exc:
                self._error(f"could not {verb} the workers {self.prefix}-N: {exc}")
                return
            except SwarmError as exc:
                self._error(f"could not {verb} {worker}: {exc}")

    def _slot(self, index: int) -> None:
        worker = self._worker_name(index)
        idle_exit = self.options.idle_exit_s
        idle_since = time.monotonic()
        failing_since: float | None = None
        with self._lock:
            self._live += 1
        try:
            while not self._claims_over():
                # leased by this slot's last report, or by another slot's batch claim
                following = self._next.pop(worker, None) or self._handed_over()
                if following is not None:
                    self._handle(following, worker)
                    idle_since = time.monotonic()
                    continue
                if self._holding():  # a task of the pool waits for Redis: no claim (pool_state)
                    self._draining.wait(HOLD_POLL_S)
                    idle_since = time.monotonic()
                    continue
                self._slot_idle(worker)  # (its last run's task cleared: one beat, if any)
                if self._out_of_tickets():
                    return
                wait = self.options.poll_s
                if idle_exit is not None:
                    wait = max(0.0, min(wait, idle_since + idle_exit - time.monotonic()))
                try:
                    task = self._claim(worker, wait)
                except ConnectionFailed as exc:
                    now = time.monotonic()
                    if failing_since is None:
                        failing_since = now
                        self._error(f"claim failed (retrying): {said_retrying(exc)}")
                    if now - failing_since > OUTAGE_PATIENCE_S:
                        # (the running agents finish: their reports wait for Redis on their own)
                        self._halt(
                            f"cannot claim: Redis took no claim for {OUTAGE_PATIENCE_S:g}s "
                            f"({exc}); check the server (swarm doctor), then run again"
                        )
                        return
                    self._draining.wait(1.0)
                    idle_since = time.monotonic()
                    continue
                except SwarmError as exc:
                    self._stop(f"cannot claim: {exc}")
                    return
                failing_since = None
                if task is None:
                    if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                        return
                    if wait <= 0 and not self._claims_over():
                        self._draining.wait(0.05)
                    continue
                self._handle(task, worker)
                idle_since = time.monotonic()
        except BaseException as exc:  # a bug must stop the pool, not vanish with a thread
            self.crash = exc
            self._stop(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._live -= 1
            held = self._next.pop(worker, None)
            if held is not None:  # stopped before running it: back to its queue
                self._return_ticket()
                self._give_back(held)
            if self._keeps_registered(worker):  # (else _leave deregisters it)
                self._slot_idle(worker)

    def _handle(self, task: Task, worker: str) -> None:
        if self._fails_alike():  # it would fail the same way: back to its queue, unrun
            self._return_ticket()
            self._give_back(task)
            return
        if not self._adopted(task):  # a slot works on it already: not run twice
            self._return_ticket()
            return
        with self._lock:
            self._counts.claimed += 1
            self._counts.running += 1
        started = time.monotonic()
        try:
            outcome = self._work(task, worker, started)
        except SwarmError as exc:  # (before its agent ran: after, ``_work`` says it itself)
            outcome = TaskOutcome(
                task.id,
                worker,
                OutcomeStatus.LOST,
                swarm_refused(exc, task.id),
                time.monotonic() - started,
            )
        finally:
            self._let_go(task)
        self._finish(outcome)
