"""Running a plan: publish its contexts, then for each pass post its tasks, run the worker
pool until the pass settles, and have the synthesizer write the pass's synthesis.

Everything a run decides is derived from what the swarm holds, so a run killed anywhere
(SIGKILL, power loss) is resumed by running the plan again:

- a context whose files did not change publishes no new version;
- a pass's tasks carry deterministic dedupe keys (posting them again returns the same
  tasks); a planned pass whose tasks exist is not planned again;
- a pass's synthesis has a deterministic id: once written, the pass is done and is neither
  rerun nor rewritten;
- the tasks the dead run's workers held come back when their leases end, as any task does.

One run drives a pipeline at a time: a run holds the pipeline's lease (``lease``) from before
it decides which run it is until it ends; a second run is refused while the first lives.

Here: the pass loop, the worker pool and the budget. The names a run uses in the swarm are in
``names``, the synthesizer and planner runs in ``agents``, their prompts in ``prompts``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from itertools import takewhile
from typing import TYPE_CHECKING, Any

from .._codec import counted
from .._digest import names as is_version_of
from .._errors import InvalidState, NotFound, SwarmError, ValidationError
from .._models import Finding, Synthesis, Task, TaskSpec, TaskStatus
from .._printable import short_version
from .._runner import OutcomeStatus, Runner, RunOptions, TaskOutcome
from .._runner.pool_state import ALIKE_FAILURES_STOP, ALIKE_NEXT_RUN
from .._usage import Usage, plus, unpriced_note, usd
from .agents import RUN_ROLES, OneShotAgents, error_shown, leases_end, run_cost
from .lease import RunLease, sweep_killed
from .names import (
    dedupe_key,
    findings_of,
    pass_label,
    pipeline_names,
    pipeline_queue,
    plan_owner,
    planning_queue,
    planning_task_id,
    stored_run,
    stored_text,
    synthesis_id,
    tasks_of,
    which_run,
)
from .plan import (
    URL_ENV,
    WORKER_URL_OPTION,
    PassSpec,
    Plan,
    agent_settings,
    check_programs,
    context_file_name,
    context_label,
    context_text,
    context_too_large,
    pass_changes,
    task_label,
    unenforced_budget,
    why_no_cost,
)
from .prompts import parse_task_list, planner_prompt, synthesis_prompt
from .records import (
    PassResult,
    Unrecorded,
    anchor_of,
    count_unrecorded,
    own_report_key,
    runs_without_cost,
    spending,
    write_unrecorded,
)
from .report import SETTLED, read_passes, stored_plan

if TYPE_CHECKING:
    from .._client import Swarm
    from .._config import Settings

__all__ = [  # the names, prompts and task-list parsing too, as before the split
    "PassResult",
    "Pipeline",
    "findings_of",
    "parse_task_list",
    "pass_label",
    "pipeline_queue",
    "plan_owner",
    "planner_prompt",
    "planning_queue",
    "stored_run",
    "stored_text",
    "synthesis_id",
    "synthesis_prompt",
    "tasks_of",
    "which_run",
]

NO_COST = "no cost reported"  # the progress line's word while no agent reported a cost
# The agent runs recorded, none of which reported a cost, before a run warns that its
# max_cost_usd cannot stop it: one run that crashed before its CLI said what it cost is no sign.
NO_COST_RUNS = 3
# A pass with a task in one of these has (or may still get) a finding: its dead stay dead.
_NOT_RETRIED = {TaskStatus.COMPLETED, TaskStatus.PENDING, TaskStatus.DELAYED, TaskStatus.CLAIMED}


class Pipeline(OneShotAgents):
    """One run of a plan against a swarm: the pipeline's last run resumed, or with
    ``restart`` a new one (see ``which_run``; ``plan`` is the run's once it began). ``say``
    hears what happens, one line at a time; ``stop`` (from a signal handler) ends the run
    after the running agents finish, or at once with ``hard``. ``wait_s``: how long to wait
    for another run driving the pipeline to end (see ``lease``)."""

    def __init__(
        self,
        swarm: Swarm,
        plan: Plan,
        *,
        say: Callable[[str], None] | None = None,
        worker_prefix: str | None = None,
        tick: Callable[[], None] | None = None,
        restart: bool = False,
        wait_s: float = 0.0,
    ) -> None:
        self.swarm = swarm
        self.plan = plan
        self._restart = restart
        self._wait_s = wait_s
        # Whether the run began (holding the lease, the plan checked): an error before
        # that is a refusal, with nothing of the run's to show.
        self.began = False
        self._say = say or (lambda _line: None)
        self._worker_prefix = worker_prefix
        self._runner: Runner | None = None
        self._stopping = threading.Event()
        self._killing = threading.Event()
        self._aborting = threading.Event()  # a hard stop asked for: a write waiting is given up
        self.results: list[PassResult] = []
        self.budget_reason: str | None = None  # why a budget stopped the run, if one did
        self._tick = tick  # called about 10 times a second while a worker pool runs
        self.current = ""  # the pass running now ("pass 2/3 'Deep Dive'")
        # The pipeline's cost so far (USD; None: no agent reported one), kept while a pool runs.
        self.cost: float | None = None
        # The agent runs recorded so far, and how many of them reported no cost (as ``spent``
        # last read them): the cost leaves theirs out.
        self.runs: tuple[int, int] = (0, 0)
        self._no_cost_said = False  # whether the run warned that no agent reports a cost
        self._no_cost_warned = False  # ... from the runs recorded, and took it back not yet
        # Held across an update of ``cost`` (and ``runs``) and the warning about it: the
        # worker pool reports outcomes from its slot threads.
        self._cost_lock = threading.Lock()
        # The plan's contexts as this run publishes them (``_context_texts``): its files
        # read once per run, for the check of their owners and for their publishing.
        self._texts: list[tuple[str, str, str, int]] | None = None
        # How the plan differs from the one the run it resumes stored (see
        # ``_compare_with_stored``), and the first pass that may rest on what changed.
        self.plan_changes: list[str] = []
        self._changed_from: int | None = None
        self._warned: set[tuple[str, str]] = set()  # (see ``OneShotAgents._warn_once``)
        self._warned_lock = threading.Lock()
        self._agents_settings: Settings | None = None  # (set by ``run``: ``agent_settings``)
        self._set_up_watch()

    # --- control

    def stop(self, *, hard: bool = False) -> None:
        if hard:  # (a write of the planner's or synthesizer's waiting for Redis gives up too)
            self._aborting.set()
        self._end(hard=hard)

    def _end(self, *, hard: bool) -> None:
        self._stopping.set()
        if hard:
            self._killing.set()
        runner = self._runner
        if runner is not None:
            runner.abort() if hard else runner.drain()

    @property
    def runner(self) -> Runner | None:
        """The worker pool of the pass running now, if one runs."""
        return self._runner

    # --- the run

    def run(self) -> list[PassResult]:
        """Run (or resume) the plan; returns the passes it went through. A stopped run
        returns the passes so far, the last one unfinished. Another run driving the
        pipeline: Conflict (after ``wait_s``); this run losing its lease: LeaseLost."""
        plan = self.plan
        check_programs(plan)  # every agent's program, before anything runs
        # (and the URL the agents get: a worker user's, its variable refused if it holds none)
        self._agents_settings = agent_settings(plan, self.swarm.settings)
        self._texts = None  # (the files as they are now: read again by this run)
        self._check_owners()  # another pipeline's context, before anything is stored
        self._check_sizes()  # (so is a context too large to publish)
        warning = unenforced_budget(plan)
        if warning is not None:
            self._no_cost_said = True
            self._say(warning)
        warning = _own_user_warning(plan, self.swarm.settings)
        if warning is not None:
            self._say(warning)
        lease = RunLease(
            self.swarm, plan, holder=self._agent_name(RUN_ROLES[0]), say=self._say,
            on_lost=self._lost,
        )  # fmt: skip
        self.current = f"waiting for the run holding pipeline {plan.name}"
        if not lease.acquire(wait_s=self._wait_s, until=self._stopping):
            return self.results  # stopped while waiting: nothing begun
        try:
            # Which run this is, decided holding the lease: a run that ended meanwhile
            # (a --restart) is the one resumed.
            self.plan = which_run(self.swarm, plan, restart=self._restart)
            # (what an earlier run of this process could not write of it: written now)
            write_unrecorded(self.swarm, self.plan)
            self.current = ""
            self._sweep_killed(lease.holder)
            self._compare_with_stored()
            self.began = True
            self._passes()
            if not self.stopped:  # (those that held a task's lease at the start: ended now)
                self._sweep_killed(lease.holder)
        except SwarmError:
            if lease.lost is None:
                raise  # (else what the stop broke is no news: the lost lease is, below)
        finally:
            self._write_unrecorded()
            lease.release()
        if lease.lost is not None:
            raise lease.lost_error(self.plan.run)
        return self.results

    def _write_unrecorded(self) -> None:
        """Write what this process could not write yet of the agent runs paid for that no
        record holds (Redis out of reach then: see ``records.count_unrecorded``), saying so
        when some still cannot be: this process counted them, no other one does."""
        left = write_unrecorded(self.swarm, self.plan)
        if left:
            self._say(
                f"warning: {counted(left, 'agent run')} paid for that no record holds could not "
                "be written to the swarm (Redis out of reach, or the write refused): counted in "
                "this run's cost, not in a later run's nor in swarm pipeline status from "
                "another process"
            )

    def _sweep_killed(self, holder: str) -> None:
        """Deregister what earlier runs of the pipeline, killed, left registered (see
        ``lease.sweep_killed``), saying so. Best effort: a tidying."""
        name = self.plan.name
        try:
            removed = sweep_killed(self.swarm, name, holder=holder)
        except SwarmError as exc:
            self._say(
                f"warning: could not look for agents a killed run of pipeline {name} left "
                f"registered ({exc}): the next run looks again (swarm agents sweep removes "
                "them too, once silent for long)"
            )
            return
        if removed:
            shown = ", ".join(removed[:5]) + (" ..." if len(removed) > 5 else "")
            self._say(
                f"deregistered {counted(len(removed), 'agent')} a killed run of pipeline "
                f"{name} left registered: {shown}"
            )

    def _lost(self, why: str) -> None:
        """The lease is lost (another run may drive the pipeline): stop now, the agents
        killed; a write waiting for Redis goes on (see ``OneShotAgents._persist``)."""
        self._say(f"stopping now: this run lost its lease on pipeline {self.plan.name}: {why}")
        self._end(hard=True)

    def _passes(self) -> None:
        plan = self.plan
        self.publish_contexts()
        previous: list[Synthesis] = []
        for index, step in enumerate(plan.passes):
            if self.stopped:  # between passes (Ctrl-C during a synthesis): the next not begun
                self._say(f"stopped before pass {index + 1}/{len(plan.passes)} {step.name!r}")
                break
            result = self.run_pass(index, previous)
            self.results.append(result)
            if result.synthesis is None:
                break  # stopped
            previous.append(result.synthesis)

    def _compare_with_stored(self) -> None:
        """Warn when the plan differs from the one stored by the run this one resumes, in a
        pass the swarm holds records of: what a run resumes is found by pass names and
        positions, so a renamed, removed or changed pass starts anew or keeps its old tasks,
        and a later pass done before keeps a synthesis built on the old one (never
        rewritten). A moved pass that had begun is refused (InvalidState, see ``_moved``):
        known by its position too, it would run again beside what it did."""
        plan = self.plan
        try:
            stored = stored_plan(self.swarm, plan.name)
        except NotFound:
            return  # a first run
        except ValidationError as exc:  # stored by a version that checked less
            self._say(f"warning: the plan stored by the last run is not compared: {exc}")
            return
        if stored.run != plan.run:
            return  # --restart: a new run, under new names
        changes = [c for c in pass_changes(stored, plan) if self._has_records(stored, c.old)]
        moved = [c.text for c in changes if c.moved]
        if moved:
            raise InvalidState(_moved(plan, moved))
        if not changes:
            return
        self.plan_changes = [c.text for c in changes]
        self._changed_from = min(c.first for c in changes)
        self._say(
            f"warning: the plan changed since run {plan.run} of pipeline {plan.name} stored "
            f"it: {'; '.join(self.plan_changes)}. What the swarm holds stays as it is: a "
            "renamed pass starts anew, a changed pass keeps the tasks it had posted, and a "
            "pass done before is not rerun, even when a pass before it changed. To run the "
            f"plan as it is now, start over: swarm pipeline run {plan.path} --restart"
        )

    def _has_records(self, stored: Plan, index: int) -> bool:
        """Whether pass ``index`` of the stored plan was begun: it has tasks, or (planned)
        its planning task."""
        if any(self.swarm.pass_stats(pass_label(stored, index)).values()):
            return True
        if not stored.passes[index].planned:
            return False
        try:
            self.swarm.get_task(planning_task_id(stored, index))
        except NotFound:
            return False
        return True

    def publish_contexts(self) -> None:
        """The plan itself (for ``swarm pipeline status``), then its contexts."""
        self.swarm.publish_context(
            plan_owner(self.plan.name),
            stored_text(self.plan),
            source=str(self.plan.path)[-200:],
            media_type="application/toml",
        )
        for owner, text, source, files in self._context_texts():
            info = self.swarm.publish_context(owner, text, source=source)
            self._say(
                f"context {owner}: version {short_version(info.version)} ({counted(files, 'file')})"
            )

    def _context_texts(self) -> list[tuple[str, str, str, int]]:
        """Each context of the plan as a run publishes it: its owner, text, source and how
        many files it holds (its files read at the first call of the run)."""
        if self._texts is None:
            self._texts = self._read_contexts()
        return self._texts

    def _read_contexts(self) -> list[tuple[str, str, str, int]]:
        """``_context_texts``, read from the plan's files."""
        out = []
        base = self.plan.path.parent
        for ctx in self.plan.contexts:
            names = [context_file_name(f, base) for f in ctx.files]
            text = context_text(ctx, base)
            source = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
            out.append((ctx.owner, text, source[:200], len(names)))
        return out

    def _check_sizes(self) -> None:
        """Refuse (ValidationError, before anything is stored) a context over the swarm's
        size limit, at its plan's line as the check says it: its files grew since the
        plan was checked, or the swarm's limit is lower. Its publish would refuse it only
        after the plan and the run's lease were stored: a pipeline never run, yet there."""
        limit = self.swarm.limits.max_context_bytes
        for index, (_owner, text, _source, files) in enumerate(self._context_texts()):
            size = len(text.encode())
            if size > limit:
                raise ValidationError(
                    f"{context_label(self.plan, index)}: "
                    f"{context_too_large(size, files, limit)}; nothing was stored"
                )

    def _check_owners(self) -> None:
        """Refuse (InvalidState, before anything is stored) a context owner of this plan's
        ``[[contexts]]`` that another pipeline's plan, as its last run stored it, publishes
        too, when publishing this plan's would change it: the two runs would overwrite each
        other's context, each one's findings resting on the other's material. The same text
        (both plans reading the same files) is no clash: its publish writes nothing. Told
        apart by the published version, the content hash of its bytes (``_digest.names``):
        the context is not read."""
        mine = {owner: (text, source) for owner, text, source, _ in self._context_texts()}
        if not mine:
            return
        for other in pipeline_names(self.swarm):
            if other == self.plan.name:
                continue
            try:
                theirs = {ctx.owner for ctx in stored_plan(self.swarm, other).contexts}
            except (NotFound, ValidationError):  # gone meanwhile, or stored by an older version
                continue
            for owner in sorted(theirs & mine.keys()):
                text, source = mine[owner]
                try:
                    info = self.swarm.context_info(owner)
                except (NotFound, ValidationError):  # not published: no clash
                    continue
                if is_version_of(text.encode(), info.version):  # (this plan's text)
                    continue
                raise InvalidState(
                    f"context owner {owner!r} of {self.plan.path}'s [[contexts]] is pipeline "
                    f"{other!r}'s too, published from other material ({info.source or '?'}; "
                    f"this plan's: {source}): publishing this plan's would change what "
                    f"pipeline {other!r}'s tasks read, and its next run would change it back. "
                    f"Give this plan's context another owner (owner = "
                    f'"{self.plan.name}-{owner}" in [[contexts]], and in the passes whose '
                    "context names it), then run again; nothing was stored"
                )

    def run_pass(self, index: int, previous: list[Synthesis]) -> PassResult:
        spec = self.plan.passes[index]
        label = pass_label(self.plan, index)
        result = PassResult(spec.name, label)
        head = f"pass {index + 1}/{len(self.plan.passes)} {spec.name!r}"
        self.current = head
        with contextlib.suppress(NotFound):
            result.synthesis = self.swarm.get_synthesis(synthesis_id(self.plan, index))
        if result.synthesis is not None:
            result.resumed = True
            result.tasks = self._tasks_of(label)
            result.findings = self._findings_of(head, label, result.tasks)
            done = f"{head}: done before ({result.synthesis.id})"
            if self._changed_from is not None and index >= self._changed_from:
                done += (
                    ", under the plan as it was before the change above: kept as it is "
                    "(--restart redoes it)"
                )
            self._say(done)
            self._close_synthesis_task(index, result.synthesis, wait=False)  # left by a kill
            return result
        if not self._may_post(label):
            self._say(f"{head}: stopped before its tasks were posted")
            return result
        posted = self._post(index, spec, previous)
        if posted is None:
            self._say(f"{head}: stopped before its planner wrote its tasks")
            return result
        # A pass changed since an earlier run posted its tasks has those too (see the warning)
        result.tasks = self._tasks_of(label) if self.plan_changes else posted
        self._say(f"{head}: {counted(len(result.tasks), 'task')}")
        result.tasks = self._retry_dead(head, label, result.tasks)
        held = [t for t in result.tasks if t.status is TaskStatus.CLAIMED]
        if held:  # nobody in this run holds a lease yet: a killed run's workers did
            self._say(
                f"{head}: waiting for {counted(len(held), 'task')} held by an earlier run "
                f"({leases_end(held)})"
            )
        if any(not t.status.settled for t in result.tasks):
            self._pool(label)
            result.tasks = self._tasks_of(label)
        unsettled = sum(1 for t in result.tasks if not t.status.settled)
        if unsettled:  # the pool ends with open tasks only when the run stops
            # A budget spent may be why (said first); a pass that settled goes on to its
            # synthesis, which checks the budget itself, or to why it has no finding (every
            # task died): that, not a budget spent on the way, is what stops the run then.
            if self.budget_reason is None:  # (the pool said it already when it stopped it)
                self._check_budget()
            self._say(
                f"{head}: stopped before it settled ({unsettled} of "
                f"{counted(len(result.tasks), 'task')} not done)"
            )
            return result
        result.findings = self._findings_of(head, label, result.tasks)
        counts = result.counts()
        dead = [t for t in result.tasks if t.status is TaskStatus.DEAD]
        if not result.findings:
            raise InvalidState(_no_finding(head, self.plan, self._as_stored(result.tasks)))
        # (the tasks cancelled by hand too, when some were: the pass goes on without them)
        settled = [
            f"{counts.get(status.value, 0)} {status.value}"
            for status in SETTLED
            if status is not TaskStatus.CANCELLED or counts.get(status.value)
        ]
        line = f"{head}: settled, {', '.join(settled)}, {counted(len(result.findings), 'finding')}"
        if dead:  # a pass with a finding goes on: its dead tasks are in the report
            line += f"; {_last_error(dead)}; the pass goes on with its findings"
        self._say(line)
        result.synthesis = self._synthesize(index, result.findings, previous)
        if result.synthesis is not None:
            s = result.synthesis
            self._say(
                f"{head}: synthesis {s.id} citing {counted(len(s.sources), 'finding')} "
                f"{run_cost(s.usage)}"
            )
        else:  # a budget spent (said when it was found) or a signal
            self._say(f"{head}: stopped before its synthesis")
        return result

    # --- tasks

    def _task_data(self, data: Any, previous: list[Synthesis]) -> Any:
        extra: dict[str, Any] = {}
        if self.plan.question:
            extra["question"] = self.plan.question
        if previous:
            extra["previous_syntheses"] = [
                {"pass": s.pass_name, "id": s.id, "text": s.text} for s in previous
            ]
        if not extra:
            return data
        return {**extra, "data": data} if data is not None else extra

    def _post(self, index: int, spec: PassSpec, previous: list[Synthesis]) -> list[Task] | None:
        """The tasks of pass ``index``, posted now if no run posted them; None when the run
        stopped before its planner wrote them."""
        label = pass_label(self.plan, index)
        items = spec.tasks
        if spec.planned:
            posted = self._tasks_of(label)
            if posted:  # planned and posted by an earlier run: not planned again
                return posted
            items = self._planning(index, previous)
            if not items:  # (a planner's list is never empty)
                return None
        workers = self.plan.workers
        specs = [
            TaskSpec(
                queue=pipeline_queue(self.plan),
                description=item.description,
                data=self._task_data(item.data, previous),
                pass_name=label,
                max_attempts=self.plan.max_attempts,
                lease_s=float(workers.lease_s),
                dedupe_key=dedupe_key(index, position, item.description),
                parent=spec.context,
            )
            for position, item in enumerate(items)
        ]
        # A task the core refuses (its data grown past the limit by the previous syntheses
        # added to it) is named as a problem of the plan is: its file, line and item.
        labels = [task_label(self.plan, index, position) for position in range(len(items))]
        tasks = self.swarm.post_tasks(specs, labels=labels)
        # Another pass's tasks under the same keys: this pass was renamed since an earlier
        # run posted that one's (same position, same description). Its own get keys of their
        # own, the same on every run (older runs' keys stay as they were).
        foreign = [n for n, task in enumerate(tasks) if task.pass_name != label]
        if foreign:
            again = [
                dataclasses.replace(
                    specs[n], dedupe_key=dedupe_key(index, n, items[n].description, label)
                )
                for n in foreign
            ]
            posted = self.swarm.post_tasks(again, labels=[labels[n] for n in foreign])
            for n, task in zip(foreign, posted, strict=True):
                tasks[n] = task
        return tasks

    def _retry_dead(self, head: str, label: str, tasks: list[Task]) -> list[Task]:
        """A pass settled with no finding gets its dead tasks back in the queue (fresh
        budgets): a run stops there, and the next one, once their cause is fixed, retries
        them. Only then: a pass with a finding goes on without its dead tasks, and one with
        open tasks settles first, so that which tasks a pass rests on does not depend on
        when a run was killed. But for the tasks that runs failing alike left dead before
        they stopped the worker pool (``_dead_of_the_stop``): the agent command's failure,
        not theirs, which would otherwise decide what the pass rests on; given back by the
        next run whatever the pass's other tasks are."""
        dead = [t for t in tasks if t.status is TaskStatus.DEAD]
        why = "no finding"
        if dead and any(t.status in _NOT_RETRIED for t in tasks):
            error, dead = _dead_of_the_stop(tasks)
            why = f"the failure that stopped the worker pool: {error_shown(error)}"
        if not dead:
            return tasks
        for task in dead:
            with contextlib.suppress(InvalidState):  # completed meanwhile by a late report
                self.swarm.requeue_dead(task.id)
        self._say(f"{head}: {counted(len(dead), 'dead task')} given back to the queue ({why})")
        return self._tasks_of(label)

    def _may_post(self, label: str) -> bool:
        """Whether pass ``label`` may post its tasks: not once a budget of the plan is spent
        (by the passes before) while none are posted yet. A pass whose tasks were posted has
        begun: a change to it in the plan is then warned of, and kept from it (see
        ``_compare_with_stored``); one never begun takes the plan as it is when the run
        resumes. A pass posted before goes on (its tasks settled, it is synthesized)."""
        if self.plan.max_cost_usd is None and self.plan.max_tasks is None:
            return True
        return bool(self._tasks_of(label)) or self._check_budget()

    def _tasks_of(self, label: str) -> list[Task]:
        """The workers' tasks of the pass (not its planning task)."""
        return tasks_of(self.swarm, label, pipeline_queue(self.plan))

    def _findings_of(self, head: str, label: str, tasks: list[Task]) -> list[Finding]:
        """The workers' findings of the pass (not its planner's). A completed task's finding
        that the listing left out is read by its id (the task names it), and said: a pass is
        never refused, nor synthesized without it, for want of a listing."""
        found = findings_of(self.swarm, label, pipeline_queue(self.plan))
        listed = {f.id for f in found}
        missed = [
            t.finding_id
            for t in tasks
            if t.status is TaskStatus.COMPLETED and t.finding_id and t.finding_id not in listed
        ]
        if not missed:
            return found
        read = []
        for finding_id in missed:
            with contextlib.suppress(NotFound):  # (then the task is said as such, below)
                read.append(self.swarm.get_finding(finding_id))
        ids = ", ".join(missed[:3]) + (" ..." if len(missed) > 3 else "")
        self._say(
            f"warning: {head}: the listing of its findings left out "
            f"{counted(len(missed), 'finding')} of its completed tasks ({ids}); "
            f"{len(read)} read by id and used (swarm doctor checks the swarm's records)"
        )
        return sorted([*found, *read], key=lambda f: f.created_at)

    def _as_stored(self, tasks: list[Task]) -> list[Task]:
        """``tasks`` as the swarm holds them now, each read by its id (not through a
        listing): what a refusal says of them is true."""
        stored = []
        for task in tasks:
            try:
                stored.append(self.swarm.get_task(task.id))
            except NotFound:
                stored.append(task)
        return stored

    def progress(self) -> str:
        """One line: the pass running, its pool's counts, the cost so far."""
        runner = self._runner
        cost = f"{usd(self.cost)} so far" if self.cost is not None else NO_COST
        if runner is None:
            return f"{self.current} · {cost}"
        c = runner.counts()
        state = " · finishing (Ctrl-C again to stop now)" if runner.draining else ""
        return (
            f"{self.current}: running {c['running']} · done {c['completed']} · failed "
            f"{c['failed']} · {cost}{state}"
        )

    # --- the budget

    def spent(self) -> tuple[float | None, int]:
        """What the pipeline cost so far (USD, as its agents' CLIs reported it: every agent
        run, accepted, refused or failed, see ``records.spending``, those that no other
        record holds among them, see ``records.count_unrecorded``; None when none
        reported a cost) and the claims of its tasks."""
        cost: float | None = None
        claims = runs = unpriced = 0
        # (passes this run had that the plan no longer has too: status counts them, and the
        # pipeline paid for them)
        for result in read_passes(self.swarm, self.plan):
            claims += sum(t.attempts for t in result.tasks)
            for spent in spending(result):
                cost = plus(cost, spent.usage.cost_usd if spent.usage else None)
            counted = runs_without_cost(result)
            runs, unpriced = runs + counted[0], unpriced + counted[1]
        self.runs = (runs, unpriced)
        return cost, claims

    def _cost_spent(self, cost: float | None) -> bool:
        """Whether ``cost`` spends ``max_cost_usd`` (an unknown cost never does; a budget of
        0 is spent before anything is: it allows no agent run at all)."""
        limit = self.plan.max_cost_usd
        if limit == 0:
            return True
        return limit is not None and cost is not None and cost >= limit

    def _over_budget(self, cost: float | None, claims: int, *, claiming: bool = True) -> str | None:
        """Why a budget of the plan is spent, or None. ``max_tasks`` bounds the claims of
        the workers' tasks: it stops what would claim or post more of them (the worker pool,
        a planner: ``claiming``), not a synthesis of tasks already worked."""
        plan = self.plan
        if plan.max_cost_usd == 0:
            return (
                "the budget allows nothing: max_cost_usd is $0, so no agent may run (every "
                "run may cost); raise it (in the plan or with --max-cost-usd) and run again "
                "to resume"
            )
        if self._cost_spent(cost):
            # (what the cost leaves out, said as the status and done lines say it)
            note = unpriced_note(*self.runs)
            return (
                f"the budget is spent: {usd(cost)}{note} of max_cost_usd ${plan.max_cost_usd:g}; "
                "raise it (in the plan or with --max-cost-usd) and run again to resume"
            )
        if claiming and plan.max_tasks is not None and claims >= plan.max_tasks:
            return (
                f"the task budget is spent: {claims} claims of max_tasks {plan.max_tasks}; "
                "raise it (in the plan or with --max-tasks) and run again to resume"
            )
        return None

    def _check_budget(self, *, claiming: bool = True) -> bool:
        """False (and the run stops, saying why) when a budget of the plan is spent (for
        a synthesis, not ``claiming``: the cost alone, see ``_over_budget``)."""
        if self.plan.max_cost_usd is None and self.plan.max_tasks is None:
            return True
        with self._cost_lock:
            self.cost, claims = self.spent()
            return self._within_budget(self.cost, claims, claiming=claiming)

    def _within_budget(self, cost: float | None, claims: int, *, claiming: bool = True) -> bool:
        """False (and the run stops, saying why) when ``cost`` and ``claims``, as ``spent``
        read them, spend a budget of the plan."""
        self._no_cost_yet(cost)
        reason = self._over_budget(cost, claims, claiming=claiming)
        if reason is not None:
            self.budget_reason = reason
            self._stopping.set()
            self._say(f"stopping: {reason}")
            return False
        return True

    def _no_cost_yet(self, cost: float | None) -> None:
        """Warn, once, when the plan has a budget in USD and ``NO_COST_RUNS`` agent runs (or
        more) were recorded, none of which reported a cost (Codex, Gemini CLI, scripted
        agents): a cost nobody reports never spends the budget, so it cannot stop the run
        while that lasts (why, as far as the plan's commands tell: ``why_no_cost``). (Fewer
        would judge on a run that crashed before its CLI printed what it cost.) Once warned,
        the first cost reported takes the warning back, once."""
        limit, (runs, _unpriced) = self.plan.max_cost_usd, self.runs
        if not limit:
            return
        if cost is not None:
            if self._no_cost_warned:
                self._no_cost_warned = False
                self._say(
                    f"max_cost_usd ${limit:g} can stop this run after all: an agent run "
                    f"reported a cost ({usd(cost)} so far; a run that reports none adds nothing)"
                )
            return
        if self._no_cost_said or runs < NO_COST_RUNS:
            return
        self._no_cost_said = self._no_cost_warned = True
        self._say(
            f"warning: none of the {runs:,} agent runs recorded so far reported a cost, so "
            f"max_cost_usd ${limit:g} cannot stop this run while none does ("
            f"{why_no_cost(self.plan)}); max_tasks bounds its task claims. Said again if one does"
        )

    # --- the worker pool

    def _lost_run(self, outcome: TaskOutcome, label: str) -> tuple[str, Unrecorded] | None:
        """The run of a worker whose outcome is LOST with no finding (its lease lost while
        the agent ran, the server's record of its claim lost, its failure or report refused),
        to count (``count_unrecorded``, under ``_cost_lock``): no record of it was taken, but
        it was paid for (``outcome.usage``, as its CLI said it), in its task's pass
        (``label``, the pool's, when the task cannot be read), once: the pool makes one
        outcome per run. None when the task shows its report was taken after all (a try that
        reached Redis before an outage hid its reply: its finding counts). (A LOST run with a
        finding was reported after its task was settled: its finding is kept, superseded,
        and counted.)"""
        anchor = None  # (the task unread: the run is counted all the same)
        with contextlib.suppress(SwarmError):
            task = self.swarm.get_task(outcome.task_id)
            taken = task.finding_id
            if taken is not None and self.swarm.get_finding(taken).worker == outcome.worker:
                return None
            label, anchor = task.pass_name or label, anchor_of(task)
        what = f"worker run on {outcome.task_id}, not recorded ({error_shown(outcome.detail)})"
        return label, Unrecorded(outcome.usage, what, anchor)

    def _finding_usage(self, outcome: TaskOutcome, label: str) -> tuple[Usage | None, bool]:
        """What the run behind ``outcome``'s finding cost, to add to the cost so far (under
        ``_cost_lock``): the finding's usage; for a completed run whose finding holds none
        though its CLI said what it cost, the agent reported its task itself (the pool's
        own report passes the usage): that run is counted as one no record holds, under
        its finding (``records.own_report_key``: once, whoever meets it, a rerun too), and
        every view sets its cost on that finding (``records.read_pass``), and True returned
        with it: the caller writes it, the lock let go (``count_unrecorded``)."""
        finding = self.swarm.get_finding(outcome.finding_id or "")
        own = outcome.status is OutcomeStatus.COMPLETED and outcome.usage is not None
        if finding.usage is not None or not own:
            return finding.usage, False
        what = f"worker run on {outcome.task_id}, its agent reporting it itself ({finding.id})"
        run = Unrecorded(outcome.usage, what, anchor_of(finding))
        key = own_report_key(finding.id)
        count_unrecorded(self.swarm, self.plan, finding.pass_name or label, run, key, write=False)
        return outcome.usage, True

    def _pool(self, label: str) -> None:
        """Run the worker pool over the tasks of pass ``label`` until they settle or the run
        stops."""
        # (read once: for the budget's check, the pool's claims left and the cost shown)
        self.cost, claims = self.spent()
        if not self._within_budget(self.cost, claims):
            return
        plan = self.plan
        workers = plan.workers
        options = RunOptions(
            queues=(pipeline_queue(self.plan),),
            command=workers.exec,
            concurrency=workers.concurrency,
            until_done=True,
            lease_s=workers.lease_s,
            timeout_s=workers.timeout_s,
            worker=self._worker_prefix,
            model=workers.model,
            poll_s=0.5,
            max_tasks=None if plan.max_tasks is None else plan.max_tasks - claims,
            exec_named="the plan's [workers] exec",
            agents_settings=self._agents_settings,  # (a worker user's, when the plan gives one)
        )

        def on_outcome(outcome: TaskOutcome) -> None:
            self._warn_once("worker", outcome.warnings)
            # A LOST run that said what it cost was paid for, and no record of it was taken.
            # (One that said nothing adds nothing: the swarm may have refused its task before
            # its agent ran.)
            lost = outcome.finding_id is None and outcome.status is OutcomeStatus.LOST
            unrecorded = self._lost_run(outcome, label) if lost and outcome.usage else None
            if (
                unrecorded is None
                and outcome.finding_id is None
                and (outcome.status is not OutcomeStatus.FAILED)
            ):
                return
            # (called from the slot threads: one at a time, or a cost added is lost, and
            # the warning said after a cost was; a run counted inside too, or a recount of
            # another slot's would count it, then this add again)
            written = unrecorded is not None  # (a run counted here, to write once unlocked)
            with self._cost_lock, contextlib.suppress(SwarmError):
                if unrecorded is not None:  # (written below, the lock let go)
                    count_unrecorded(self.swarm, self.plan, *unrecorded, write=False)
                    paid = outcome.usage.cost_usd if outcome.usage is not None else None
                    self.cost = plus(self.cost, paid)
                elif outcome.finding_id is None:  # a failed run may have cost too: recount
                    self.cost = self.spent()[0]
                else:  # (a LOST one's too: its finding is kept, superseded)
                    usage, counted_here = self._finding_usage(outcome, label)
                    written = counted_here  # (its agent's own report: written below)
                    self.cost = plus(self.cost, usage.cost_usd if usage else None)
                if self.cost is None and self.plan.max_cost_usd and not self._no_cost_said:
                    self.cost = self.spent()[0]  # (recounted until said, or a cost shows)
                self._no_cost_yet(self.cost)  # (said, or taken back once a cost shows)
            if written:
                write_unrecorded(self.swarm, self.plan)
            if self._cost_spent(self.cost):
                runner.drain()  # claim nothing more; the running agents finish

        runner = Runner(self.swarm, options, on_outcome=on_outcome, on_progress=self._say)
        self._runner = runner
        if self.stopped:
            runner.drain()
        try:
            runner.run(self._tick)
        finally:
            self._runner = None
        if runner.crash is not None:
            raise runner.crash
        if runner.fatal:
            raise InvalidState(
                f"the worker pool stopped: {self._next_run_said(label, runner.fatal)}"
            )

    def _next_run_said(self, label: str, fatal: str) -> str:
        """``fatal``, why the pool of pass ``label`` stopped, saying what the pipeline's next
        run does where it says what the next ``swarm run`` would (``ALIKE_NEXT_RUN``): runs
        failing alike stopped it, and the next run gives back the tasks they left dead
        (``_retry_dead``: the same tasks, read from the swarm as the next run reads them)."""
        if not fatal.endswith(ALIKE_NEXT_RUN):
            return fatal
        _, dead = _dead_of_the_stop(self._tasks_of(label))
        again = f"run the pipeline again (swarm pipeline run {self.plan.path}): it"
        if dead:
            again += (
                f" gives the {counted(len(dead), 'task')} these runs left dead (out of "
                "attempts) back to the queue, with fresh max_attempts, and"
            )
        return f"{fatal.removesuffix(ALIKE_NEXT_RUN)}then {again} resumes the pass"


def _own_user_warning(plan: Plan, settings: Settings) -> str | None:
    """A warning when the agents of a run of ``plan`` would reach the swarm as the run's own
    user, which logs in (a user name or password: a server with users, so a worker user can
    be made): that user posts passes and publishes contexts, which a worker may not, and an
    agent (a model allowed ``swarm ...``) could do the same. None when the plan gives the
    agents a URL of their own, or the run's URL logs in as no one."""
    if plan.workers.url_env is not None or not (settings.username or settings.password):
        return None
    return (
        f"warning: the agents this run starts (workers, planner, synthesizer) reach the swarm "
        f"as its own user {settings.shown_user}, which can publish over any context and post, "
        f"cancel or retire passes: give them a worker user's URL, in an environment variable "
        f'named by the plan\'s [workers] {URL_ENV} = "NAME" (or {WORKER_URL_OPTION} NAME)'
    )


def _dead_of_the_stop(tasks: list[Task]) -> tuple[str, list[Task]]:
    """The tasks of a pass (``tasks``) that runs failing alike left dead before they stopped
    its worker pool, and their error; ("", []) when there are none. Derived from the tasks
    as the swarm holds them, so that a run killed after the stop loses nothing: the pool's
    rule (``_runner.pool_state``: ``ALIKE_FAILURES_STOP`` failed runs in a row with the very
    same error, of two tasks or more, none done, then the task about to run given back
    unrun) read back from what the tasks keep: the tasks that died last, each of its
    failures (its dead reason ends with its last error, not its leases' expiry), one after
    the other with the same last error, no task of the pass completed since the first of
    them; with the pass's open tasks whose last failure is that error, as many failed runs
    (their ``failures``) of as many tasks; and a task given back since the first of them,
    its last claim neither failed nor completed (the stop's: a pass that settled, stopped
    at its synthesis, has none). A task that died of an error of its own, or before a task
    completed, is not one of them."""

    def since(task: Task) -> int:
        return task.status_since or 0

    def failed(task: Task) -> bool:
        error = task.last_error
        return error is not None and (task.dead_reason or "").endswith(error)

    dead = sorted((t for t in tasks if t.status is TaskStatus.DEAD and failed(t)), key=since)
    if not dead:
        return "", []
    error = dead[-1].last_error
    done = max((since(t) for t in tasks if t.status is TaskStatus.COMPLETED), default=0)
    row = list(takewhile(lambda t: t.last_error == error and since(t) > done, reversed(dead)))
    if not row:  # (the last to die died before a task completed)
        return "", []
    alike = row + [t for t in tasks if not t.status.settled and t.last_error == error]
    given_back = any(
        t.status is TaskStatus.PENDING and t.attempts and t.failed_attempt != t.attempts
        and since(t) >= since(row[-1])
        for t in tasks
    )  # fmt: skip
    if not given_back or len(alike) < 2 or sum(t.failures for t in alike) < ALIKE_FAILURES_STOP:
        return "", []
    return error or "", row


def _last_error(dead: list[Task]) -> str:
    """The last error of the task that died last, and how many dead tasks share it."""
    last = max(dead, key=lambda t: t.claimed_at or 0)
    error = _why(last)
    same = sum(1 for t in dead if _why(t) == error)
    return f"the last error ({same} of {counted(len(dead), 'dead task')}): {error_shown(error)}"


def _why(task: Task) -> str:
    """Why a dead task died, on one line: its last error, unless it died of something else
    (its leases expired ``max_abandons`` times: then its dead reason)."""
    reason = task.dead_reason or ""
    error = task.last_error
    text = error if error and reason.endswith(error) else reason or error
    return " ".join((text or "no reason recorded").split())


def _no_finding(head: str, plan: Plan, tasks: list[Task]) -> str:
    """Why a settled pass with no finding stops the run, and what to do: said from the tasks'
    statuses (as ``_as_stored`` read them)."""
    dead = [t for t in tasks if t.status is TaskStatus.DEAD]
    completed = [t for t in tasks if t.status is TaskStatus.COMPLETED]
    counts = _status_counts(tasks)
    if completed:  # each names its finding, which could not be read even by its id
        ids = ", ".join(t.id for t in completed[:3]) + (" ..." if len(completed) > 3 else "")
        return (
            f"{head}: its tasks are {counts}, but the findings its completed tasks name cannot "
            f"be read ({ids}: swarm task show ID names each one's finding; swarm doctor "
            "counts records stored unreadable), so there is nothing to synthesize; start the "
            f"pipeline over with swarm pipeline run {plan.path} --restart"
        )
    if not dead:  # every task was cancelled by hand: nothing a run would retry
        return (
            f"{head}: {'its task was' if len(tasks) == 1 else f'its {len(tasks):,} tasks were'} "
            "cancelled, so it has no finding to "
            f"synthesize; start the pipeline over with swarm pipeline run {plan.path} --restart"
        )
    what = "every task died" if len(dead) == len(tasks) else "no task completed"
    return (
        f"{head}: {what} ({counts} of {len(tasks)}, no finding), so there is nothing "
        f"to synthesize; {_last_error(dead)}. Fix what made them fail (often the [workers] "
        "exec command or its timeout_s), then run the pipeline again: it gives this pass's "
        f"dead tasks back to the queue and resumes here (swarm pipeline report {plan.name} "
        "lists every task's error)"
    )


def _status_counts(tasks: list[Task]) -> str:
    """``2 completed, 1 cancelled``: how many tasks have each status, in the statuses' order."""
    return ", ".join(
        f"{n} {status.value}"
        for status in TaskStatus
        if (n := sum(1 for t in tasks if t.status is status))
    )


def _moved(plan: Plan, moved: list[str]) -> str:
    """Why a plan whose begun passes moved is not resumed, and what to do."""
    return (
        f"the plan moves passes that run {plan.run} of pipeline {plan.name} began: "
        f"{'; '.join(moved)}. A run knows a pass's synthesis and tasks by its position as "
        "well as its name, so a moved pass would run again from the start, paid twice, its "
        "new tasks and findings mixed with the old ones under the same name. Nothing was "
        f"run. Put the passes back in the order run {plan.run} stored (swarm context get "
        f"{plan_owner(plan.name)} prints that plan; a new pass may go after them), or start "
        f"over: swarm pipeline run {plan.path} --restart (a new run; the old one's records "
        "are kept)"
    )
