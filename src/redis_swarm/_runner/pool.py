"""The pool behind ``swarm run``: slots that claim tasks, run one agent process per task
(``child``), renew the lease meanwhile, and report the finding or fail the task.

Round trips: a slot whose agent succeeded reports and leases its next task in one call
(``report(..., claim_next=)``); idle slots claim together, one of them for all (``claim(...,
n=)``), handing the other tasks of the batch over, so that a pool with free slots pays one
claim, not one per slot, and its slots do not all wake on one task. A cancel of a task an
agent runs is learnt from the event log by one follower per pool (``cancels``), not by a
round trip per task.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._config import Settings
from .._errors import AlreadyCompleted, ConnectionFailed, NotFound, SwarmError, ValidationError
from .._finding_text import SUMMARY_LIMIT, finding_tags, new_mark, parse_finding
from .._models import ContextInfo, Finding, Task, TaskStatus, Usage, answer_fields
from .._prompts import render_task_prompt
from .cancels import CancelWatch
from .child import (
    CANNOT_RUN,
    ERROR_TAIL,
    ChildResult,
    build_command,
    check_command,
    check_program,
    run_child,
)
from .output import read_output
from .reaper import subreaper

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = [
    "OutcomeStatus",
    "RunOptions",
    "Runner",
    "TaskOutcome",
    "default_worker_prefix",
    "task_env",
]

T = TypeVar("T")

CLAIM_RETRY_S = 30.0  # the pool gives up when the server is unreachable for this long
WRITE_RETRIES = 5  # a report, fail or release is tried this many times through an outage


def task_env(task: Task, settings: Settings, context: ContextInfo | None = None) -> dict[str, str]:
    """What an agent process learns from its environment (besides the runner's own)."""
    env = {
        "SWARM_URL": settings.render_url(mask=False),
        "SWARM_NAME": settings.swarm,
        "SWARM_TASK_ID": task.id,
        "SWARM_TASK_TOKEN": task.token or "",
        "SWARM_TASK_QUEUE": task.queue,
    }
    if task.parent:
        env["SWARM_CONTEXT_OWNER"] = task.parent
    if context is not None:
        env["SWARM_CONTEXT_VERSION"] = context.version
    return env


def default_worker_prefix() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "host"
    return f"run-{host}-{os.getpid()}"


# --- the pool


@dataclass(frozen=True)
class RunOptions:
    """How ``swarm run`` works; see docs/cli.md."""

    queues: tuple[str, ...]
    command: str
    concurrency: int = 1
    max_tasks: int | None = None
    idle_exit_s: float | None = None
    until_done: bool = False  # stop when no task of the queues is pending, delayed or claimed
    lease_s: int | None = None  # the lease asked at claim and renewal (default: the task's)
    timeout_s: float | None = None  # the most a process may run (default: the task's lease_s)
    worker: str | None = None  # worker name prefix; slot i is PREFIX-i
    model: str | None = None  # recorded on findings (default: the one the agent's output names)
    summary_limit: int = SUMMARY_LIMIT
    grace_s: float = 5.0
    poll_s: float = 1.0  # the longest a claim waits, so that Ctrl-C is prompt
    shell: str = "/bin/sh"


class OutcomeStatus(str, enum.Enum):
    """What became of one claimed task."""

    COMPLETED = "completed"  # its finding is stored (or the agent reported it itself)
    FAILED = "failed"  # crashed, timed out, printed nothing: failed, so the queue retries it
    RELEASED = "released"  # interrupted, or not runnable: back to its queue, not a failure
    LOST = "lost"  # cancelled, completed elsewhere, its lease taken over, or refused


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one claimed task, and why."""

    task_id: str
    worker: str
    status: OutcomeStatus
    detail: str
    duration_s: float
    finding_id: str | None = None
    returncode: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "worker": self.worker,
            "status": self.status.value,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
            "finding_id": self.finding_id,
            "returncode": self.returncode,
        }


@dataclass
class _Counts:
    claimed: int = 0
    running: int = 0
    ended: dict[OutcomeStatus, int] = field(default_factory=lambda: dict.fromkeys(OutcomeStatus, 0))
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ending:
    """Makes the outcome of one agent run."""

    task_id: str
    worker: str
    started: float
    result: ChildResult | None  # None when the agent could not be started

    def __call__(
        self, status: OutcomeStatus, detail: str, finding_id: str | None = None
    ) -> TaskOutcome:
        result = self.result
        if result is not None and result.left_behind:
            detail += f"; killed {result.left_behind} process(es) it left running"
        return TaskOutcome(
            self.task_id,
            self.worker,
            status,
            detail,
            time.monotonic() - self.started,
            finding_id,
            result.returncode if result is not None else None,
        )


class Runner:
    """Claims tasks and runs the agent command once per task, ``concurrency`` at a time.

    ``run`` blocks until the pool is done: ``max_tasks`` claimed, ``idle_exit_s`` seconds with
    nothing to claim, every task of its queues settled (``until_done``), or ``drain`` (finish
    what runs, claim nothing new) / ``abort`` (kill what runs and release its tasks) called
    from another thread or a signal handler.
    """

    def __init__(
        self,
        swarm: Swarm,
        options: RunOptions,
        *,
        on_outcome: Callable[[TaskOutcome], None] | None = None,
    ) -> None:
        if not options.queues:
            raise ValidationError("name at least one queue to claim from (--queue)")
        if options.concurrency < 1:
            raise ValidationError("concurrency must be at least 1")
        if not options.command.strip():
            raise ValidationError("the agent command is empty: pass it with --exec")
        check_command(options.command)
        check_program(options.command, shell=options.shell)
        self.swarm = swarm
        self.options = options
        self.prefix = options.worker or default_worker_prefix()
        self.outcomes: list[TaskOutcome] = []
        self._on_outcome = on_outcome
        self._counts = _Counts()
        self._lock = threading.Lock()
        self._tickets = 0
        self._draining = threading.Event()
        self._aborting = threading.Event()
        self._done = threading.Event()  # until_done: a claimer found the queues settled
        self._fatal: str | None = None
        self.crash: BaseException | None = None  # an unexpected error in a slot (a bug)
        # Claims shared by the idle slots (see _claim): one slot claims for all that wait.
        self._claims = threading.Condition()
        self._claiming = False  # an idle slot is claiming for every idle slot
        self._live = 0  # slots not stopped
        self._handed: deque[Task] = deque()  # tasks of a batch, not yet taken by a slot
        self._next: dict[str, Task] = {}  # slot -> the task its last report leased
        self._cancels = CancelWatch(swarm, self._error)  # kills the agent of a cancelled task

    # --- control

    def drain(self) -> None:
        """Claim nothing more; let the running processes finish."""
        self._draining.set()

    def abort(self) -> None:
        """Claim nothing more; kill the running processes and release their tasks."""
        self._draining.set()
        self._aborting.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def counts(self) -> dict[str, int]:
        with self._lock:
            c = self._counts
            return {
                "claimed": c.claimed,
                "running": c.running,
                **{status.value: n for status, n in c.ended.items()},
            }

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._counts.errors)

    # --- the loop

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
            self._cancels.stop()
        while self._handed:  # leased for a slot that stopped first: back to the queue
            self._give_back(self._handed.popleft())
        self._leave()
        if tick is not None:
            tick()
        return list(self.outcomes)

    def _worker_name(self, index: int) -> str:
        """The agent id of slot ``index`` (1-based): what it claims and reports as."""
        return f"{self.prefix}-{index}"

    def _keeps_registered(self, worker: str) -> bool:
        """True for a slot whose agent record must outlive the pool (see Server)."""
        return False

    def _leave(self) -> None:
        """Deregister the pool's workers (its claims registered them), so that a finished pool
        is not counted alive until its presence expires, then listed stale for good.
        Best effort: a worker left registered only goes stale, so a server that cannot be
        reached is not waited for worker after worker."""
        for index in range(1, self.options.concurrency + 1):
            worker = self._worker_name(index)
            if self._keeps_registered(worker):
                continue
            try:
                self.swarm.deregister(worker)
            except NotFound:  # a slot that never claimed: never registered
                continue
            except ConnectionFailed as exc:
                self._error(f"could not deregister the workers {self.prefix}-N: {exc}")
                return
            except SwarmError as exc:
                self._error(f"could not deregister {worker}: {exc}")

    @property
    def fatal(self) -> str | None:
        """Why the pool stopped on its own (an error it cannot get past), if it did."""
        return self._fatal

    def _take_ticket(self) -> bool:
        return self._take_tickets(1) == 1

    def _tickets_left(self) -> bool:
        with self._lock:
            return self.options.max_tasks is None or self._tickets < self.options.max_tasks

    def _take_tickets(self, n: int) -> int:
        """Take up to ``n`` tickets (one per task claimed, ``max_tasks`` in all); how many."""
        with self._lock:
            if self.options.max_tasks is not None:
                n = min(n, self.options.max_tasks - self._tickets)
            n = max(0, n)
            self._tickets += n
            return n

    def _return_ticket(self, n: int = 1) -> None:
        with self._lock:
            self._tickets -= n

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
                if not self._tickets_left():
                    return
                wait = self.options.poll_s
                if idle_exit is not None:
                    wait = max(0.0, min(wait, idle_since + idle_exit - time.monotonic()))
                try:
                    task = self._claim(worker, wait)
                except ConnectionFailed as exc:
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if now - failing_since > CLAIM_RETRY_S:
                        self._stop(f"cannot claim for {CLAIM_RETRY_S:g}s: {exc}")
                        return
                    self._error(f"claim failed (retrying): {exc}")
                    self._draining.wait(1.0)
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

    def _handed_over(self) -> Task | None:
        """A task another slot's batch claim leased for an idle slot (its ticket taken)."""
        with self._claims:
            return self._handed.popleft() if self._handed else None

    def _claim(self, worker: str, wait: float) -> Task | None:
        """A task for an idle slot. One idle slot at a time claims, for itself and every
        other idle slot (one round trip, ``n`` = the idle slots, a ticket taken for each), and
        hands the other tasks over; the others wait for its batch, and one that finds no task
        left claims in turn. None: nothing to claim, or no ticket left."""
        with self._claims:
            self._claims.wait_for(lambda: bool(self._handed) or not self._claiming)
            if self._handed:
                return self._handed.popleft()
            if self._claims_over():
                return None
            self._claiming = True
        with self._lock:
            idle = self._live - self._counts.running - len(self._next)
        n = self._take_tickets(max(1, idle))
        batch: list[Task] = []
        try:
            if n > 0:
                batch = self._claim_batch(worker, n, wait)
            if batch and self._claims_over():  # the pool stopped during the wait: not run
                for task in batch:
                    self._give_back(task)
                batch = []
        finally:
            with self._claims:
                self._claiming = False
                self._handed.extend(batch[1:])
                self._claims.notify_all()
            self._return_ticket(n - len(batch))
        return batch[0] if batch else None

    def _claim_batch(self, worker: str, n: int, wait: float) -> list[Task]:
        """Up to ``n`` tasks, waiting up to ``wait`` for one. With ``until_done`` the claimer
        first claims without waiting and, finding nothing, looks whether the queues are
        settled: then the pool is done, every slot with it, at once (a slot that waited
        ``wait`` before looking kept the others waiting, one poll interval per slot)."""

        def claim(wait_s: float) -> list[Task]:
            return self.swarm.claim(
                list(self.options.queues),
                worker=worker,
                lease_s=self.options.lease_s,
                wait_s=wait_s,
                n=n,
            )

        if self.options.until_done:
            batch = claim(0.0)
            if batch:
                return batch
            if self._settled():
                self._done.set()
                return []
            if wait <= 0:
                return []
        return claim(wait)

    def _claims_over(self) -> bool:
        """True once the pool claims nothing more: drained, aborted, or done (``until_done``
        and its queues settled)."""
        return self._draining.is_set() or self._done.is_set()

    def _give_back(self, task: Task) -> None:
        """Release a task leased for this pool that no slot will run."""
        try:
            self._persist(lambda: self.swarm.release(task.id, task.token))
        except SwarmError as exc:  # its lease will expire and give it back anyway
            self._error(f"release of {task.id} failed: {exc}")

    def _persist(self, call: Callable[[], T]) -> T:
        """Make a call the pool must not lose survive a short outage (the client already
        retries for a few seconds; this adds about half a minute)."""
        for attempt in range(WRITE_RETRIES):
            try:
                return call()
            except ConnectionFailed as exc:
                if attempt == WRITE_RETRIES - 1:
                    raise
                self._error(f"call failed (retrying): {exc}")
                time.sleep(min(2**attempt, 8))
        raise AssertionError("unreachable")  # pragma: no cover

    def _settled(self) -> bool:
        """True when no task of the pool's queues is open (a running one may still fail and
        come back, so the pool waits for it)."""
        try:
            stats = self.swarm.queue_stats()
        except ConnectionFailed as exc:  # an outage: not known to be settled, claim again
            self._error(f"queue stats failed (retrying): {exc}")
            return False
        return not any(
            stats.get(q, {}).get(status, 0)
            for q in self.options.queues
            for status in ("pending", "delayed", "claimed")
        )

    def _stop(self, reason: str) -> None:
        """Stop on an error the pool cannot get past: kill the running agents."""
        self._set_fatal(reason)
        self.abort()

    def _halt(self, reason: str) -> None:
        """Stop on an error that is not the running agents' doing: claim nothing more, let
        them finish (their work is real, and may have cost)."""
        self._set_fatal(reason)
        self.drain()

    def _set_fatal(self, reason: str) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = reason

    def _error(self, message: str) -> None:
        with self._lock:
            self._counts.errors.append(message)

    def _finish(self, outcome: TaskOutcome) -> None:
        with self._lock:
            self._counts.running -= 1
            self._counts.ended[outcome.status] += 1
            self.outcomes.append(outcome)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _handle(self, task: Task, worker: str) -> None:
        with self._lock:
            self._counts.claimed += 1
            self._counts.running += 1
        started = time.monotonic()
        try:
            outcome = self._work(task, worker, started)
        except SwarmError as exc:
            outcome = TaskOutcome(
                task.id,
                worker,
                OutcomeStatus.LOST,
                f"the swarm refused: {exc}",
                time.monotonic() - started,
            )
        self._finish(outcome)

    def _context(self, task: Task) -> ContextInfo | None:
        parent = task.parent
        if not parent:
            return None
        try:
            return self._persist(lambda: self.swarm.context_info(parent))
        except NotFound:
            return None

    def _work(self, task: Task, worker: str, started: float) -> TaskOutcome:
        context = self._context(task)
        mark = new_mark()
        prompt = render_task_prompt(
            task,
            settings=self.swarm.settings,
            context=context,
            summary_limit=self.options.summary_limit,
            finding_tags=finding_tags(mark),
        )
        lost: list[str] = []  # why the pool stopped the agent, if it did
        try:
            result = self._run_agent(task, context, prompt, lost)
        except OSError as exc:  # the agent could not be started: this task's failure
            return self._fail(
                task, _Ending(task.id, worker, started, None), _not_started(exc, prompt), ""
            )
        end = _Ending(task.id, worker, started, result)
        if result.killed == "interrupted":
            self._persist(lambda: self.swarm.release(task.id, task.token))
            return end(OutcomeStatus.RELEASED, "interrupted: the task went back to its queue")
        if lost:
            return end(OutcomeStatus.LOST, f"stopped the agent: {lost[-1]}")
        cannot_run = self._cannot_run(task, end, result)
        if cannot_run is not None:
            return cannot_run
        stderr_tail = result.stderr.tail_text(ERROR_TAIL).strip()
        if result.killed or result.returncode != 0:
            # A CLI may print its result, with what the run cost, and still exit non-zero.
            printed = result.stdout.text()
            usage = read_output(printed).usage if printed.strip() else None
            why = f"{result.killed}: killed" if result.killed else f"exit code {result.returncode}"
            return self._fail(task, end, why, stderr_tail, usage)
        return self._report(task, worker, context, mark, end, result, stderr_tail)

    def _cannot_run(self, task: Task, end: _Ending, result: ChildResult) -> TaskOutcome | None:
        """When the shell could not run the agent command at all (exit code 127: not found;
        126: not executable), give the task back, not counted as a failure, and stop the
        pool: every task would fail the same way, in seconds (a typo in --exec once
        dead-lettered a whole queue). None when it could."""
        what = None if result.killed else CANNOT_RUN.get(result.returncode)
        if what is None:
            return None
        said = result.stderr.tail_text(ERROR_TAIL).strip().splitlines()[-1:]
        shell_said = f" ({said[0][:160]})" if said else ""
        code = f"exit code {result.returncode}, the shell's {what!r}{shell_said}"
        self._halt(
            f"the agent command could not be run: {code}. Install its program (or make it "
            "executable, or add its folder to PATH), or fix the agent command (--exec), then "
            "run again: its tasks went back to their queue, not counted as failures"
        )  # before the release: a refused release must stop the pool all the same
        self._persist(lambda: self.swarm.release(task.id, task.token))
        return end(OutcomeStatus.RELEASED, f"{code}: back to its queue, not a failure")

    def _run_agent(
        self,
        task: Task,
        context: ContextInfo | None,
        prompt: str,
        lost: list[str],
        *,
        command: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ChildResult:
        """Run the agent for ``task`` (``command``, default the pool's, with ``env`` added),
        renewing its lease meanwhile; a cancel read in the event log (``cancels``: within
        about a second), or a renewal that finds the task gone (cancelled, completed
        elsewhere, taken over), adds to ``lost`` and stops it."""
        opts = self.options

        def renew() -> str | None:
            try:
                self.swarm.renew(task.id, task.token, lease_s=opts.lease_s)
            except ConnectionFailed as exc:  # an outage: try again at the next tick
                self._error(f"renew of {task.id} failed (retrying): {exc}")
            except NotFound:
                lost.append("the task no longer exists")
            except SwarmError as exc:
                if isinstance(exc, ValidationError):
                    raise
                lost.append(str(exc))
            return lost[-1] if lost else None

        lease = opts.lease_s or task.lease_s
        workdir = Path(tempfile.mkdtemp(prefix="swarm-run-"))
        try:
            built = build_command(command or opts.command, prompt, workdir, shell=opts.shell)
            extra = {**task_env(task, self.swarm.settings, context), **(env or {})}
            with self._cancels.watch(task.id) as cancelled:

                def halt() -> str | None:
                    why = cancelled()
                    if why is not None:
                        lost.append(why)
                    return why

                return run_child(
                    built.argv,
                    stdin=built.stdin,
                    env={**os.environ, **extra, **built.env},
                    timeout_s=opts.timeout_s or float(task.lease_s),
                    tick_s=max(0.2, lease / 3),
                    on_tick=renew,
                    halt=halt,
                    stop=self._aborting,
                    grace_s=opts.grace_s,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _report(
        self,
        task: Task,
        worker: str,
        context: ContextInfo | None,
        mark: str,
        end: _Ending,
        result: ChildResult,
        stderr_tail: str,
    ) -> TaskOutcome:
        """Store the finding of an agent that exited 0. From here to the stored finding every
        read and write rides out an outage as the report does: the agent's work is done and
        must not be lost to a restart."""
        current = self._persist(lambda: self.swarm.get_task(task.id))
        if current.status is TaskStatus.COMPLETED and current.finding_id:
            return end(OutcomeStatus.COMPLETED, "the agent reported it itself", current.finding_id)
        output = read_output(result.stdout.text())
        noted = f"; {output.warning}" if output.warning else ""  # (the task's own line says it)
        if output.error is not None:  # the CLI says the run failed: a failed attempt
            return self._fail(task, end, output.error + noted, stderr_tail, output.usage)
        parsed = parse_finding(output.answer, summary_limit=self.options.summary_limit, mark=mark)
        if parsed is None:
            return self._fail(task, end, "the agent printed nothing (exit code 0)", stderr_tail)
        finding, how = parsed
        finding.update(answer_fields(task))  # a question (peer assist): its answer
        finding_id = self.swarm.new_finding_id()  # the same on every retry: stored once
        context_version = context.version if context is not None else None
        model = self.options.model or output.model
        try:
            stored = self._report_leasing_next(
                worker,
                lambda more: self.swarm.report(
                    task.id, task.token, finding, worker=worker, model=model,
                    context_version=context_version, finding_id=finding_id, usage=output.usage,
                    **more,
                ),
            )  # fmt: skip
        except AlreadyCompleted as exc:
            return end(OutcomeStatus.LOST, f"completed elsewhere first: {exc}", exc.finding_id)
        except ValidationError as exc:
            return self._fail(task, end, f"the finding was refused: {exc}", "")
        return end(OutcomeStatus.COMPLETED, f"finding from {how} output{noted}", stored.id)

    def _report_leasing_next(self, worker: str, send: Callable[[dict[str, Any]], Any]) -> Finding:
        """Send a report (``report`` or ``answer``, riding out an outage) that, when the pool
        takes more, leases this slot's next task in the same call: ``send`` gets the keywords
        that ask for it (``claim_next``, ``next_lease_s``), or none."""
        going_on = not self._claims_over() and self._take_ticket()
        following: Task | None = None
        try:
            if not going_on:
                alone: Finding = self._persist(lambda: send({}))
                return alone
            more = {"claim_next": list(self.options.queues), "next_lease_s": self.options.lease_s}
            stored: Finding
            stored, following = self._persist(lambda: send(more))
        finally:
            if going_on and following is None:
                self._return_ticket()
        if following is not None:
            self._next[worker] = following
        return stored

    def _fail(
        self,
        task: Task,
        end: _Ending,
        reason: str,
        stderr_tail: str,
        usage: Usage | None = None,
    ) -> TaskOutcome:
        """Fail the task; ``usage``, what the failed run cost when its CLI said, is kept on
        the task (its ``failed_usage``)."""
        error = reason + (f"; stderr: {stderr_tail}" if stderr_tail else "")
        try:
            self._persist(
                lambda: self.swarm.fail(task.id, task.token, error, retry=True, usage=usage)
            )
        except SwarmError as exc:
            return end(OutcomeStatus.LOST, f"{reason}; and the failure was refused: {exc}")
        last = stderr_tail.strip().splitlines()[-1:] if stderr_tail else []
        return end(OutcomeStatus.FAILED, reason + (f" ({last[0][:160]})" if last else ""))


def _not_started(exc: OSError, prompt: str) -> str:
    reason = f"cannot start the agent: {exc.strerror or exc}"
    if exc.errno == errno.E2BIG:
        size = len(prompt.encode("utf-8"))
        reason += (
            f" (the prompt is {size:,} bytes, more than one argument or environment variable "
            "may hold: give it on stdin or in {prompt_file} rather than {prompt})"
        )
    return reason
