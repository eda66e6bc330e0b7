"""The pipeline's one-shot agents: the synthesizer of each pass and the planner of each
planned pass, run by the pipeline itself (not by the worker pool), each tried up to
``AGENT_TRIES`` times with what was wrong with its previous answer.

Every run of theirs is accounted for on a task, as a worker's is: the planner runs holding
its pass's planning task, and the synthesizer's refused or failed runs are recorded on its
pass's synthesizer task (posted at the first one). A refused or failed run is a ``fail`` of
that task carrying the run's usage (summed in its ``failed_usage``) and why (its
``last_error``), so that what it cost counts in the budget of this run and of every later
one (a new process reads it back from the swarm); the budget is checked before each run.
A run the core takes no record of (its task's lease lost, its failure or synthesis refused)
counts all the same, kept in the swarm as such (``_unrecorded``).

What a run of theirs leaves (the planner's task list, the synthesis, a refused or failed
run's record) rides out an outage as the worker pool's reports do (``_persist``): paid for,
it is not thrown away because Redis was paused, restarting or full for a while. A hard stop
waits for no outage: what they still ask of Redis then (that write, their task's release or
lease renewal, their name's deregistration) shares one stop budget, as the worker pool's
exit does (``_bounded``)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .._codec import counted, now_ms
from .._errors import (
    ConnectionFailed,
    InvalidState,
    LeaseLost,
    NotFound,
    SwarmError,
    TaskDeadLettered,
)
from .._executable import reach_env
from .._models import SYNTHESIS_NAMED, Finding, Synthesis, Task, TaskStatus
from .._outage import StopBudget, ride_out, until_stopped
from .._printable import short
from .._runner import (
    AgentOutput,
    build_command,
    cli_failure,
    default_worker_prefix,
    failure_taken,
    quote_tail,
    read_output,
    run_child,
    run_failure,
    warning_kind,
)
from .._runner.lease_renewal import LeaseRenewal
from .._runner.outcomes import not_started
from .._runner.request_watch import MARK_IDLE, RENEW_LEASE, TAKE_BEAT, RequestWatch
from .._runner.slot_presence import SlotPresence
from .._translate import said_retrying
from .._usage import Usage, usage_line, usd
from .names import (
    pass_label,
    planning_queue,
    planning_task_id,
    posted_once,
    synthesis_id,
    synthesis_queue,
    synthesis_task_id,
    tasks_of,
)
from .plan import PLANNER_LEASE_MIN_S, AgentSpec, Plan, TaskItem
from .prompts import (
    CITATION,
    PLAN_FORMAT,
    citation_problem,
    parse_task_list,
    planner_prompt,
    refusal_complaint,
    repeats_findings,
    synthesis_prompt,
)
from .records import Unrecorded, anchor_of, count_unrecorded

if TYPE_CHECKING:
    from .._client import Swarm
    from .._config import Settings

__all__ = [
    "AGENT_TRIES",
    "ERROR_SHOWN",
    "RUN_ROLES",
    "TAIL",
    "AgentRun",
    "OneShotAgents",
    "Tries",
    "error_shown",
    "leases_end",
    "run_agents",
    "run_cost",
]

T = TypeVar("T")

AGENT_TRIES = 3  # runs of the synthesizer (or planner) before the pass fails
TAIL = 2000  # characters of an agent's output quoted when it fails
ERROR_SHOWN = 300  # characters of an error in a progress line (a try's, a dead task's)
# The lease of a synthesizer task: it is held only while a run is recorded on it (not while
# the synthesizer runs, so that a rerun after a kill need not wait for a lease to end).
HOLD_S = 60.0
_TASK_OF = {"planner": "planning task", "synthesizer": "synthesizer task"}  # what progress says
# What a run waiting for a planning task an earlier run's planner holds may do. Nothing
# takes the lease over sooner (only its holder has its token; cancelling the task would
# cancel the pass's plan): a killed run's lasts the [planner] lease_s it was claimed with.
_WAIT_FOR_PLANNER = (
    "; if that run still runs, stop it where it runs (Ctrl-C) or let it finish; if it was "
    "killed, wait, or stop this one (Ctrl-C) and run it again then ([planner] lease_s, "
    f"default the workers', at least {PLANNER_LEASE_MIN_S} s, bounds how long a killed run's "
    "planner holds it)"
)
# The roles a run registers agents under, as ``PREFIX-ROLE`` (``OneShotAgents._agent_name``;
# PREFIX-pipeline holds its lease on the pipeline); its worker pool's slot N is ``PREFIX-N``.
RUN_ROLES = ("pipeline", "planner", "synthesizer")
# How often a running agent's run is looked in on: its first heartbeat within a second of
# its start, as a ``swarm run`` slot's (its lease is renewed only when due).
_TICK_S = 1.0
_SHELL = "/bin/sh"  # what runs a planner's or synthesizer's command (``build_command``'s)


@dataclass(frozen=True)
class AgentRun:
    """One run of a one-shot agent: its output (None: the run failed, ``why``), what it cost
    when its CLI said (a failed run's too), whether a hard stop killed it, and what it
    printed on stdout."""

    output: AgentOutput | None
    why: str = ""
    usage: Usage | None = None
    stopped: bool = False
    printed: str = ""  # its stdout: what a failed run's "last output" quotes


class Tries:
    """The tries of one agent in this run: why each was refused or failed, the end of the
    last output, and what its next try is told about the last answer."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.last = ""
        self.complaint = ""

    def add(self, reason: str, last: str, complaint: str = "") -> None:
        self.reasons.append(reason)
        self.last = last
        self.complaint = complaint

    @property
    def exhausted(self) -> bool:
        return len(self.reasons) >= AGENT_TRIES

    def gave_up(self, role: str, what: str, pass_name: str, asked: str) -> str:
        """Why ``role``'s agent gave up on pass ``pass_name``, and what to fix: when its last
        try's answer was refused (a complaint for its next try: a planner's answer holding
        no JSON array of tasks, a synthesis citing no finding of the pass), the answer is at
        fault, not the command that ran (its model, or ``asked``, what its prompt asks);
        else its run failed: the ``[role] exec`` command, or what it needs."""
        last = self.last.strip()
        ends = f"its last output ends: {last[-TAIL:]!r}" if last else "its last run printed nothing"
        fix = (
            f"Its answer was refused, not its run: check the model it runs ([{role}] model, or "
            f"the one its command picks) and {asked}, or the [{role}] exec command"
            if self.complaint
            else f"Fix the [{role}] exec command (or what it needs: a login, an API key)"
        )
        return (
            f"the {role} of pass {pass_name!r} gave no usable {what} in {len(self.reasons)} "
            f"tries: {_each_try(self.reasons)}; {ends}. "
            f"{fix}, then run the pipeline again: it resumes at this pass"
        )


def _each_try(reasons: list[str]) -> str:
    """Why each try failed, a reason shared by consecutive tries said once ("tries 1 to 3:
    ...")."""
    parts: list[str] = []
    start = 0
    for n in range(1, len(reasons) + 1):
        if n == len(reasons) or reasons[n] != reasons[start]:
            tries = f"try {start + 1}" if n - start == 1 else f"tries {start + 1} to {n}"
            parts.append(f"{tries}: {reasons[start]}")
            start = n
    return "; ".join(parts)


def run_cost(usage: Usage | None) -> str:
    """What one agent run cost, as the progress line of every run ends: "(this run: $0.0130
    · 200 in / 10 out)", "(this run: cost unknown)" when its CLI reported none."""
    return f"(this run: {usage_line(usage)})"


def error_shown(error: str) -> str:
    """An error (a refused or failed run's reason, a dead task's) as a progress line quotes
    it: on one line, cut to ``ERROR_SHOWN`` characters with a visible "…" (``short``), so
    that a cut reads as one. The one rule of every such cut."""
    return short(error, ERROR_SHOWN)


def _with_cost(reason: str, usage: Usage | None) -> str:
    """A refused or failed run's reason as its progress line says it: cut as
    ``error_shown`` cuts it, then what the run cost (said once: the runner's reason for an
    error the CLI reported may already end with its cost)."""
    if usage is not None and usage.cost_usd is not None:
        reason = reason.removesuffix(f" (the run cost {usd(usage.cost_usd)})")
    return f"{error_shown(reason)} {run_cost(usage)}"


def _claim_key(held: Task) -> str:
    """The key of the run made holding ``held`` (``OneShotAgents._unrecorded``): its
    claim's token, one per claim, so one per run."""
    return held.token or held.id


def run_agents(holder: str, ids: Sequence[str]) -> list[str]:
    """The agent ids of ``ids`` that the run whose lease holder was ``holder`` (its
    ``PREFIX-pipeline``) registers: its roles' (``RUN_ROLES``) and its pool's slots'."""
    prefix = holder.removesuffix(f"-{RUN_ROLES[0]}")
    if prefix == holder:  # (not a run's holder: a lease task claimed by hand)
        return []
    ours = []
    for agent_id in ids:
        head, _, rest = agent_id.rpartition("-")
        if head == prefix and (rest in RUN_ROLES or (rest.isdigit() and rest[0] != "0")):
            ours.append(agent_id)
    return ours


def leases_end(tasks: Sequence[Task]) -> str:
    """When the leases of ``tasks`` end, as a run waiting for them says it: "its lease ends
    in 25 s", "their leases end in 3 to 25 s" (by this machine's clock)."""
    now = now_ms()
    left = sorted(max(0, round(((t.lease_deadline or now) - now) / 1000)) for t in tasks)
    span = f"{left[0]} s" if left[0] == left[-1] else f"{left[0]} to {left[-1]} s"
    return f"its lease ends in {span}" if len(tasks) == 1 else f"their leases end in {span}"


class OneShotAgents(RequestWatch):
    """The synthesizer and the planner, as part of a ``Pipeline`` (which sets these, and
    calls ``_set_up_watch``). Their requests that can wait through an outage (a renewal, a
    heartbeat, a write ridden out) are watched as ``swarm run``'s pool watches its own
    (``RequestWatch``): a paused server, or a Cluster master down until a replica takes
    over, keeps one waiting in the client's retries for up to a minute, and the run says so
    within seconds, with why when a probe can tell, and once Redis answers again."""

    _goes_on = "the run goes on"

    swarm: Swarm
    plan: Plan
    _say: Callable[[str], None]
    _worker_prefix: str | None
    _stopping: threading.Event
    _killing: threading.Event
    _aborting: threading.Event  # a hard stop asked for (not a lost lease): see ``_persist``
    # What every agent the run starts reaches the swarm with (``plan.agent_settings``: a
    # worker user's URL, the plan's [workers] url_env); None: the run's own settings.
    _agents_settings: Settings | None
    current: str  # the pass running now, as its progress lines name it
    # The kinds of warning about an agent's output said so far (by role), and the lock held
    # to say one (the worker pool's slots say theirs from their threads).
    _warned: set[tuple[str, str]]
    _warned_lock: threading.Lock

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    @functools.cached_property
    def _stop_budget(self) -> StopBudget:
        """What a hard stop still gives Redis, once for every request of the planner's and
        synthesizer's exit (``_outage.StopBudget``, the worker pool's rule): a request in
        flight at the stop, or made after it, is given up once Redis has answered none for
        ``STOP_GRACE_S``, so that requests made one after another through a stall do not
        each wait that long (a write ridden out, then the deregistration of its agent's name)."""
        return StopBudget()

    def _bounded(self, call: Callable[[], T]) -> T:
        """``call()``, a request given up once a hard stop's budget has run out
        (``_stop_budget``) if Redis has not answered it by then: a ``ConnectionFailed``
        (``_outage.until_stopped``)."""
        return until_stopped(call, self._aborting, what="answer", budget=self._stop_budget)

    def _note(self, line: str) -> None:
        self._say(f"{self.current}: {line}")

    def _beat(self, task_id: str | None, beat: Callable[[], None]) -> None:
        """A heartbeat of a planner's or synthesizer's presence (``SlotPresence.ask``: naming
        ``task_id``, "" for none held, None to clear it), as a ``swarm run`` slot's is made:
        watched, given up at a hard stop (``_bounded``), and not said once given up."""
        what = TAKE_BEAT if task_id is not None else MARK_IDLE
        self.tries_watched(task_id or None, what, beat, self._bounded)

    def _warn_once(self, role: str, warnings: Sequence[str]) -> None:
        """Say what was amiss in the output of a run of ``role``'s agent (``warnings``,
        ``AgentOutput.warnings``: its cost unknown, a JSON output asked for and not printed,
        the CLI's own warning), each kind once in the run (``warning_kind``): ``swarm run``
        says it on each run's line, which a pipeline does not show."""
        for warning in warnings:
            kind = (role, warning_kind(warning))
            with self._warned_lock:
                if kind in self._warned:
                    continue
                self._warned.add(kind)
            self._say(
                f"warning: {self.current}: a {role} run's output: {warning} (said once for "
                f"this run; the {role}s' runs alike are not said again)"
            )

    def _check_budget(self, *, claiming: bool = True) -> bool:
        """False (and the run stops, saying why) when a budget of the plan is spent."""
        raise NotImplementedError  # the Pipeline's

    def _may_run(self, *, claiming: bool) -> bool:
        """Whether to start a run of the planner (``claiming``: it posts tasks to claim) or
        the synthesizer: not once the run stops, nor when a budget is spent (checked before
        each run: a refused one cost too); the synthesis of a pass whose tasks were all
        worked is not stopped by ``max_tasks``, which bounds the claims of tasks."""
        return not self.stopped and self._check_budget(claiming=claiming)

    def _agent_name(self, role: str) -> str:
        """The agent id of ``role`` (one of ``RUN_ROLES``) in this run."""
        return f"{self._worker_prefix or default_worker_prefix()}-{role}"

    def _leave(self, role: str) -> None:
        """Deregister ``role``'s agent name, which its claims registered, so that a finished
        planner or synthesizer is not listed as a stale agent for good. Best effort, as the
        worker pool's workers leave: a name left registered only goes stale."""
        name = self._agent_name(role)
        try:
            self._bounded(lambda: self.swarm.deregister(name))
        except NotFound:  # it claimed nothing (an earlier run did the work)
            return
        except SwarmError as exc:
            self._say(f"{self.current}: could not deregister {name}: {exc}")

    def _persist(
        self,
        call: Callable[[], T],
        what: str,
        held: Task | None = None,
        lease_s: float | None = None,
        waited: threading.Event | None = None,
    ) -> T:
        """Make a write the run must not lose (what an agent run was paid for) ride out an
        outage as the worker pool's reports do (``_outage.ride_out``): one progress line
        saying the run waits for Redis to ``what``, the lease of ``held`` (the task the
        write is for) renewed between tries (``waited`` set once it waited). Given up after
        ``OUTAGE_PATIENCE_S`` or a hard stop (Ctrl-C twice, SIGTERM, SIGHUP: within the stop's
        budget, ``_stop_budget``, which its renewals share), not when the run loses its lease
        on the pipeline meanwhile: every such write is safe to make twice."""

        def outage(exc: ConnectionFailed) -> None:
            self.failed_for_want_of_redis()
            if waited is not None:
                waited.set()
            why = said_retrying(exc)
            self._say(f"{self.current}: waiting for Redis to {what}: {why}; retrying")

        def renew() -> None:
            if held is not None:  # best effort: a lease run out loses nothing (docs/tasks.md)
                with contextlib.suppress(SwarmError):
                    self._bounded(lambda: self.swarm.renew(held.id, held.token, lease_s=lease_s))

        try:
            return self.tries_watched(
                None, what, call,
                lambda watched: ride_out(
                    watched, what=what, who="the pipeline run", stop=self._aborting,
                    on_outage=outage, between=renew, budget=self._stop_budget,
                ),
            )  # fmt: skip
        except ConnectionFailed as exc:  # (given up: ride_out retries every other)
            raise ConnectionFailed(
                f"{exc}. Run the pipeline again once Redis takes writes: it resumes at this pass",
                sent=exc.sent,
            ) from exc

    def _fail_own(
        self, held: Task, reason: str, usage: Usage | None, lease_s: float, label: str, key: str
    ) -> Task:
        """Fail ``held`` (the planning or synthesizer task of pass ``label``) with a refused or
        failed run's ``reason`` and ``usage``, riding out an outage (``_persist``). A failure
        refused after such a wait because the lease no longer holds (a paused server ran the
        first try when it woke up, or the lease ran out meanwhile and the task went back to
        its queue): the task as it is now, said in a progress line; unless the task shows the
        failure taken (``failure_taken``), the run is counted as one no record holds
        (``_unrecorded``, under ``key``, the run's)."""
        waited = threading.Event()
        try:
            return self._persist(
                lambda: self.swarm.fail(held.id, held.token, reason, usage=usage),
                f"take the failure of {held.id}", held, lease_s, waited,
            )  # fmt: skip
        except LeaseLost as exc:
            if not waited.is_set():
                raise
            self._say(f"{self.current}: after waiting for Redis, {held.id}'s lease was gone: {exc}")
            task = self.swarm.get_task(held.id)
            if not failure_taken(held, task, reason):
                what = f"a failed run on {held.id} (its lease gone)"
                self._unrecorded(label, held, usage, what, key)
            return task

    def _unrecorded(
        self, label: str, anchor: Task | Finding, usage: Usage | None, what: str, key: str
    ) -> None:
        """Count an agent run of pass ``label`` (what it cost: ``usage``; whose run: ``what``;
        run for ``anchor``, a record of the pass) that the swarm holds no record of, so that
        every budget and status of the run count it, a later run's and another process's
        too (``records.count_unrecorded``): once, whatever path meets it again under ``key``
        (a claim's token, or the run's own id)."""
        run = Unrecorded(usage, what, anchor_of(anchor))
        count_unrecorded(self.swarm, self.plan, label, run, key)

    def _run_agent(
        self,
        spec: AgentSpec,
        prompt: str,
        role: str,
        held: Task | None = None,
        renew: LeaseRenewal | None = None,
    ) -> AgentRun:
        """Run ``spec`` once on ``prompt`` as ``role``'s agent (``held``: the task it runs
        holding, whose lease ``renew`` renews as a worker's is renewed: ``LeaseRenewal``, the
        one rule of it, its renewal that failed in an outage tried again within a second).
        Its agent is present while it runs, as a ``swarm run`` slot is (``SlotPresence``, the
        one rule of it: a heartbeat at its first tick, then at least every ``BEAT_EVERY_S``,
        naming ``held``; registered at the first if no claim did), so that a run of minutes
        reads alive in ``swarm agents``."""
        presence = SlotPresence(self.swarm, self._agent_name(role), self._beat, role=role)
        every_s = renew.every_s if renew is not None else max(0.2, spec.lease_s / 3)
        tick_s = renew.tick_s if renew is not None else min(every_s, _TICK_S)

        def tick() -> str | None:
            why = None
            if renew is not None:  # (watched: a renewal, like a beat, may wait out an outage)
                of = held.id if held is not None else None
                why = self.told_if_unanswered(of, RENEW_LEASE, renew)
            if why is not None:
                return why
            presence.running(held.id if held is not None else "", every_s)
            return None

        workdir = Path(tempfile.mkdtemp(prefix="swarm-pipeline-"))
        try:
            command = build_command(spec.exec, prompt, workdir, shell=_SHELL)
            reach = reach_env(self._agents_settings or self.swarm.settings)
            env = {**os.environ, **reach, **command.env}
            result = run_child(
                command.argv,
                stdin=command.stdin,
                env=env,
                timeout_s=spec.timeout_s,
                tick_s=tick_s,
                on_tick=tick,
                stop=self._killing,
            )
        except OSError as exc:  # not started (a prompt {prompt} cannot carry): a failed try
            return AgentRun(None, not_started(exc, prompt, _SHELL))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            presence.idle()
        text = result.stdout.text()
        if result.killed and self._killing.is_set():
            return AgentRun(None, result.killed, stopped=True)
        # A CLI may print its result (its error, what the run cost) and exit non-zero: why
        # a run failed is said by ``swarm run``'s rules (``run_failure``, ``cli_failure``),
        # so that the pipeline's agents' errors read as the worker pool's do.
        output = read_output(result.stdout, command=spec.exec)
        self._warn_once(role, output.warnings)
        # An output cut in its middle fails the run (its machine format's error says so; text
        # with ``cut``): a planner's or synthesizer's answer is the whole text, never its end.
        failure = run_failure(result, output) or cli_failure(result, output) or output.cut
        if failure is not None:
            said = quote_tail(result.stderr.tail_text(TAIL))
            why = failure + (f"; stderr: {said}" if said else "")
            return AgentRun(None, why, output.usage, printed=text)
        if not output.answer.strip():
            return AgentRun(None, "it printed nothing", output.usage, printed=text)
        return AgentRun(output, usage=output.usage, printed=text)

    def _tried(
        self, tries: Tries, role: str, reason: str, last: str, complaint: str, run: AgentRun
    ) -> None:
        """Count a refused or failed try, saying why and what it cost."""
        tries.add(reason, last, complaint)
        said = _with_cost(reason, run.usage)
        self._say(f"{self.current}: {role} try {len(tries.reasons)}: {said}")

    def _claim_own(
        self,
        task: Task,
        role: str,
        *,
        until: threading.Event,
        wait: bool = True,
        lease_s: float | None = None,
    ) -> Task | None:
        """Claim ``task``, the planning or synthesizer task of the pass running now: the task
        held, or None once ``until`` is set, when the task is settled otherwise than dead
        (completed by another run, cancelled by hand), or, without ``wait``, when it cannot
        be had now. It waits while the task's backoff runs (after a failed run) or an earlier
        run holds it (until its lease ends); a dead one is given back to its queue (this run
        retries it). Another task claimed from the queue was left open by a killed run for a
        pass it finished, or one the plan no longer has: it is cancelled. ``lease_s``: the
        lease claimed (None: the task's own, as posted, maybe by an earlier run)."""
        shown: int | None = None  # the lease end last said
        while not until.is_set():
            if task.status is TaskStatus.DEAD:
                task = self._give_back(task, role)
            elif task.status.settled:
                return None
            with TaskDeadLettered.said_to(self._say):  # (the pipeline's stderr)
                claimed = self.swarm.claim(
                    [task.queue], worker=self._agent_name(role), wait_s=1.0 if wait else 0.0,
                    lease_s=lease_s,
                )  # fmt: skip
            if claimed is not None and claimed.id == task.id:
                return claimed
            if claimed is not None:
                with contextlib.suppress(SwarmError):
                    self.swarm.cancel(claimed.id)
                continue
            task = self.swarm.get_task(task.id)
            if not wait and task.status is not TaskStatus.DEAD:
                return None
            if task.status is TaskStatus.CLAIMED and task.lease_deadline != shown:
                # said again only when the lease moves: renewed, so its holder lives
                again = "still " if shown is not None else ""
                self._say(
                    f"{self.current}: waiting for its {_TASK_OF[role]} {task.id}, {again}held by "
                    f"an earlier run's {role} ({leases_end([task])}): renewed while that run "
                    "lives; this run goes on by itself once it ends"
                    f"{_WAIT_FOR_PLANNER if role == 'planner' and not again else ''}"
                )
                shown = task.lease_deadline
        return None

    def _give_back(self, task: Task, role: str) -> Task:
        """A dead planning or synthesizer task back in its queue: its agent failed on every
        attempt in an earlier run (or vanished on every lease), and this run tries again."""
        why = error_shown(task.dead_reason or task.last_error or "")
        with contextlib.suppress(InvalidState):  # given back meanwhile by another run
            task = self.swarm.requeue_dead(task.id)
        # news: the agent that gave up in an earlier run starts over (that run's error said
        # why; this one's output may be read alone)
        self._say(
            f"{self.current}: its {_TASK_OF[role]} {task.id} given back to the queue (dead: {why})"
        )
        return task

    # --- the planner

    def _planning(self, index: int, previous: list[Synthesis]) -> tuple[TaskItem, ...]:
        """The tasks of planned pass ``index``: those its planning task's finding holds, or
        the planner is run now (holding the planning task's lease) and its answer stored as
        that finding, with what it cost; each refused or failed run fails the planning task
        with its cost and why."""
        spec = self.plan.passes[index]
        planner = self.plan.planner
        assert planner is not None
        task = self._planning_task(index)
        tries = Tries()
        try:
            while task.status is not TaskStatus.COMPLETED:
                if task.status is TaskStatus.CANCELLED:
                    raise InvalidState(
                        f"the planning task {task.id} of pass {spec.name!r} was cancelled: "
                        f"start the pipeline over with swarm pipeline run {self.plan.path} "
                        "--restart"
                    )
                if not self._may_run(claiming=True):
                    return ()
                held = self._claim_own(
                    task, "planner", until=self._stopping, lease_s=float(planner.lease_s)
                )
                if held is None:  # stopped, or settled meanwhile
                    task = self.swarm.get_task(task.id)
                    continue
                items, task = self._plan_once(index, previous, held, tries)
                if items is not None:
                    return items
        finally:  # planned, stopped or given up: the planner's name is done with
            self._leave("planner")
        finding = self.swarm.get_finding(task.finding_id or "")
        return tuple(TaskItem(t["description"], t.get("data")) for t in finding.extra["tasks"])

    def _planning_task(self, index: int) -> Task:
        """The planning task of pass ``index``, posted now if no run posted it before. It
        has its own id and no pass name (see ``planning_task_id``); a run from before that
        posted it with the pass name, in the same queue: one found so is the pass's. It names
        no context (no parent): the planner reads none (its prompt holds all it is given), so
        its finding must not say it did."""
        spec = self.plan.passes[index]
        planner = self.plan.planner
        assert planner is not None
        queue = planning_queue(self.plan)
        older = tasks_of(self.swarm, pass_label(self.plan, index), queue)
        if older:
            return older[0]
        return posted_once(  # (its lease_s may be an earlier plan's: the task posted kept)
            self.swarm, queue, f"Plan the tasks of {spec.name}",
            {"pass": pass_label(self.plan, index)}, task_id=planning_task_id(self.plan, index),
            lease_s=float(planner.lease_s), max_attempts=AGENT_TRIES,
        )  # fmt: skip

    def _plan_once(
        self, index: int, previous: list[Synthesis], held: Task, tries: Tries
    ) -> tuple[tuple[TaskItem, ...] | None, Task]:
        """Run the planner once for pass ``index`` holding ``held`` (its planning task): its
        tasks (at most ``max_tasks``) stored as the task's finding and returned, or None and
        the task as the refused or failed run left it."""
        spec = self.plan.passes[index]
        planner = self.plan.planner
        assert planner is not None and spec.max_tasks is not None

        # Why the planning task's lease was lost, if it was: the planner is stopped, as a
        # worker whose lease is lost is (its plan would be paid for twice).
        lost: list[str] = []
        renew = self._planner_renewal(held, planner.lease_s, lost)
        prompt = planner_prompt(self.plan, index, previous)
        run = self._run_agent(planner, prompt + tries.complaint, "planner", held, renew)
        if lost:
            return None, self._planning_lost(index, held, lost[0], run.usage, "planner stopped")
        if run.stopped:  # killed by a hard stop: the next run tries again, no attempt used
            with contextlib.suppress(SwarmError):  # (else its lease runs out: the same)
                self._bounded(lambda: self.swarm.release(held.id, held.token))
            return None, held
        if run.output is None:
            reason, last, complaint = run.why, run.printed, ""
        else:
            try:
                items = parse_task_list(run.output.answer)
            except ValueError as exc:
                reason, last = f"refused: {exc}", run.output.answer.strip()
                complaint = f"\n\nYour previous answer was refused: {exc}. {PLAN_FORMAT}"
            else:
                kept = tuple(items[: spec.max_tasks])
                cut = f" (of {len(items)}: max_tasks)" if len(items) > len(kept) else ""
                self._say(
                    f"{self.current}: planner try {len(tries.reasons) + 1}: "
                    f"{counted(len(kept), 'task')} planned{cut}{items.note} {run_cost(run.usage)}"
                )
                tasks = [{"description": t.description, "data": t.data} for t in kept]
                finding = {"summary": f"{counted(len(kept), 'task')} planned for {spec.name}",
                           "tasks": tasks}  # fmt: skip
                model = planner.model or run.output.model
                finding_id = self.swarm.new_finding_id()  # the same on every try: stored once
                try:
                    self._persist(
                        lambda: self.swarm.report(
                            held.id, held.token, finding, worker=self._agent_name("planner"),
                            model=model, usage=run.usage, finding_id=finding_id,
                        ),
                        f"take the task list of {held.id}", held, planner.lease_s,
                    )  # fmt: skip
                except LeaseLost as exc:
                    return None, self._planning_lost(
                        index, held, str(exc), run.usage, "task list not taken"
                    )
                return kept, held
        try:
            task = self._fail_own(
                held, reason, run.usage, planner.lease_s, pass_label(self.plan, index),
                _claim_key(held),
            )  # fmt: skip
        except LeaseLost as exc:
            return None, self._planning_lost(index, held, str(exc), run.usage, "failure not taken")
        self._tried(tries, "planner", reason, last, complaint, run)
        if tries.exhausted:
            asked = "the pass's plan (the planner answers a JSON array of tasks)"
            raise InvalidState(tries.gave_up("planner", "task list", spec.name, asked))
        return None, task

    def _planner_renewal(self, held: Task, lease_s: int, lost: list[str]) -> LeaseRenewal:
        """The renewal of the planning task ``held`` while its planner runs: a worker's
        (``LeaseRenewal``: every third of ``lease_s``; one that failed in an outage tried
        again within a second, so that a lease another run took meanwhile is known as soon
        as Redis answers; a lease lost, why added to ``lost``). The planning task is this
        run's alone: a lease found taken by another claim is never adopted."""
        outage: list[bool] = []  # said once per outage

        def waiting(exc: ConnectionFailed) -> None:
            self.failed_for_want_of_redis()
            if not outage:
                outage.append(True)
                self._say(f"{self.current}: waiting for Redis to renew the lease of {held.id}: "
                          f"{exc}; retrying")  # fmt: skip

        return LeaseRenewal(
            self.swarm, held, lease_s, lost, token=lambda: held.token, on_outage=waiting,
            on_back=outage.clear, adopt=lambda _now: False, on_kept=self._say,
        )  # fmt: skip

    def _planning_lost(
        self, index: int, held: Task, why: str, usage: Usage | None, what: str
    ) -> Task:
        """Said (``what`` befell the planner's run), when this run's planner lost the lease
        of its planning task ``held`` (it ran out while a renewal was held up, and another
        run may have taken the task over): no try counted; the task as it is now, which this
        run waits for (``_claim_own``) or claims again. The run was paid for, and no record
        of it was taken (without the lease, no failure or report is): what it cost counts in
        the run's budget all the same (``_unrecorded``, under the claim's token: once)."""
        whose = f"planner run on {held.id} (its lease lost)"
        self._unrecorded(pass_label(self.plan, index), held, usage, whose, _claim_key(held))
        lost = _with_cost(f"the lease of its planning task {held.id} was lost ({why})", usage)
        self._say(
            f"{self.current}: {what}: {lost}; this run takes the plan another run "
            "stores, or plans again once the task is free"
        )
        return self.swarm.get_task(held.id)

    # --- the synthesizer

    def _synthesize(
        self, index: int, findings: list[Finding], previous: list[Synthesis]
    ) -> Synthesis | None:
        """The synthesis of pass ``index``, citing at least one of its ``findings`` (never
        empty: a pass with no finding stops the run before, see ``Pipeline.run_pass``), or
        None when the run stops first (a budget spent, a signal)."""
        assert findings, "a pass with no finding is not synthesized"
        try:
            return self._synthesis_runs(index, findings, previous)
        finally:  # its runs' heartbeats registered it when no claim of its task did
            self._leave("synthesizer")

    def _synthesis_runs(
        self, index: int, findings: list[Finding], previous: list[Synthesis]
    ) -> Synthesis | None:
        """``_synthesize``'s runs of the synthesizer, until one's synthesis is taken."""
        spec = self.plan.synthesizer
        ids = [f.id for f in findings]
        prompt = synthesis_prompt(self.plan, index, findings, previous)
        tries = Tries()
        if not self.stopped:
            self._revive_synthesis_task(index)
        label = pass_label(self.plan, index)
        while self._may_run(claiming=False):
            run = self._run_agent(spec, prompt + tries.complaint, "synthesizer")
            if run.stopped:
                return None
            key = self.swarm.new_finding_id()  # this run's, wherever it is counted: once
            if run.output is None:
                reason, last, complaint = run.why, run.printed, ""
            else:
                text = run.output.answer.strip()
                cited = list(dict.fromkeys(CITATION.findall(text)))
                problem = repeats_findings(text, findings) or citation_problem(cited, ids, previous)
                if problem is None:
                    sid = synthesis_id(self.plan, index)
                    try:
                        synthesis = self._persist(  # (its id is the pass's: stored once)
                            functools.partial(
                                self.swarm.synthesize, self.plan.name, label, text, cited,
                                synthesis_id=sid, model=spec.model or run.output.model,
                                usage=run.usage,
                            ),
                            f"take the synthesis {sid}",
                        )  # fmt: skip
                    except ConnectionFailed:
                        raise  # (maybe stored by a try Redis took: not counted twice)
                    except SwarmError:  # refused by the core: paid for all the same
                        what = f"synthesis {sid} refused"
                        self._unrecorded(label, findings[0], run.usage, what, key)
                        raise
                    self._close_synthesis_task(index, synthesis)
                    return synthesis
                reason, last, complaint = f"refused: {problem}", text, refusal_complaint(problem)
            self._synthesis_failed(index, findings[0], reason, run.usage, key)
            self._tried(tries, "synthesizer", reason, last, complaint, run)
            if tries.exhausted:
                name = self.plan.passes[index].name
                asked = "what its prompt asks (to cite the pass's findings by their ids)"
                raise InvalidState(tries.gave_up("synthesizer", "synthesis", name, asked))
        return None

    def _revive_synthesis_task(self, index: int) -> None:
        """Give back the synthesizer task of pass ``index`` if an earlier run's refused or
        failed runs left it dead, before this run's synthesizer runs, as a dead planning task
        is given back before its planner runs (and said alike, see ``_give_back``)."""
        with contextlib.suppress(NotFound):  # no run of it was refused or failed
            task = self.swarm.get_task(synthesis_task_id(self.plan, index))
            if task.status is TaskStatus.DEAD:
                self._give_back(task, "synthesizer")

    def _synthesis_task(self, index: int) -> Task:
        """The synthesizer task of pass ``index``, posted now if no run posted it before. It
        is bookkeeping (the synthesizer runs holding nothing; its runs are recorded on it),
        so it names no context (no parent), as the planning task names none: a task of a
        shard is shard work, which ``swarm pipeline retire`` (the core's ``retire_queues``)
        leaves alone, and its closing finding would be counted in the shard's."""
        return posted_once(  # (as an earlier run, maybe an earlier version, posted it)
            self.swarm,
            synthesis_queue(self.plan),
            f"Synthesize {self.plan.passes[index].name}",
            # (the pass too: Swarm.pass_costs counts the task's runs only in that pass)
            {SYNTHESIS_NAMED: synthesis_id(self.plan, index), "pass": pass_label(self.plan, index)},
            task_id=synthesis_task_id(self.plan, index), lease_s=HOLD_S,
            max_attempts=AGENT_TRIES,
        )  # fmt: skip

    def _synthesis_failed(
        self, index: int, finding: Finding, reason: str, usage: Usage | None, key: str
    ) -> None:
        """Record a refused or failed synthesizer run of pass ``index`` (what it cost, why)
        on the pass's synthesizer task. A run the core takes no record of (the task cannot
        be leased: a hard stop meanwhile, or another run settled it; or the failure refused)
        counts all the same (``_unrecorded``, under ``key``, the run's: once; ``finding``,
        one it was given, names the pass)."""
        task_id = synthesis_task_id(self.plan, index)
        label = pass_label(self.plan, index)
        what = f"a refused or failed synthesizer run of {label}, not recorded on {task_id}"
        try:
            held = self._persist(
                lambda: self._claim_own(
                    self._synthesis_task(index), "synthesizer", until=self._killing
                ),
                f"lease the synthesizer task {task_id}",
            )
            if held is None:  # killed meanwhile, or settled by another run
                self._unrecorded(label, finding, usage, what, key)
            else:
                self._fail_own(held, reason, usage, HOLD_S, label, key)
        except ConnectionFailed:
            raise  # (Redis out of reach: a try it took may hold the record)
        except SwarmError:
            self._unrecorded(label, finding, usage, what, key)
            raise
        finally:  # its claims only record runs: nothing runs under its name in between
            self._leave("synthesizer")

    def _close_synthesis_task(self, index: int, synthesis: Synthesis, *, wait: bool = True) -> None:
        """Complete the synthesizer task of pass ``index``, if its synthesizer had a run
        refused or failed: the synthesis is written. Without ``wait``, only if it can be
        had now (a resumed run tidying what a killed one left open)."""
        task_id = synthesis_task_id(self.plan, index)
        try:
            task = self._persist(lambda: self.swarm.get_task(task_id), f"read the task {task_id}")
        except NotFound:
            return
        try:
            held = self._persist(
                lambda: self._claim_own(task, "synthesizer", until=self._killing, wait=wait),
                f"lease the synthesizer task {task_id}",
            )
            if held is None:
                return
            finding = {
                "summary": f"synthesis {synthesis.id} written",
                SYNTHESIS_NAMED: synthesis.id,
            }
            finding_id = self.swarm.new_finding_id()  # the same on every try: stored once
            with contextlib.suppress(SwarmError):  # (settled otherwise: the synthesis is written)
                self._persist(
                    lambda: self.swarm.report(
                        held.id, held.token, finding, worker=self._agent_name("synthesizer"),
                        finding_id=finding_id,
                    ),
                    f"take the report of {task_id}", held, HOLD_S,
                )  # fmt: skip
        finally:
            self._leave("synthesizer")
