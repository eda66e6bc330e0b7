"""A pass of a pipeline as the swarm holds it, and the one list of what it cost: every agent
run behind it, accepted, refused or failed, with the model where known. The budget of a run
(``Pipeline.spent``) and what ``status`` and ``report`` show are both summed from it, so they
cannot disagree.

The runs of the pass that no other record holds (paid for all the same: a worker's run whose
lease was lost, a planner or synthesizer run whose failure or synthesis was refused) are in
that list too (``count_unrecorded``): kept in the swarm, for every reader in any process.

A cost is what the agents' CLIs reported; a sum of them is None when none did (a Codex
worker reports tokens only): unknown is not zero, and is never shown as ``$0.0000``."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from .._errors import ConnectionFailed, NotFound, SwarmError
from .._models import (
    SYNTHESIS_NAMED,
    Finding,
    RetiredPass,
    Synthesis,
    Task,
    UnrecordedRun,
    anchor_held,
    anchor_of,
    failed_runs_of,
    kept_cost_key,
    kept_costs,
    own_report_key,
    runs_of,
    synthesis_run_for,
    unrecorded_run_key,
)
from .._usage import Usage, usage_figures
from .names import (
    bookkeeping_queues,
    findings_of,
    pass_label,
    pipeline_queue,
    planning_queue,
    planning_task_id,
    retired_owner,
    synthesis_id,
    synthesis_task_id,
    synthesizer_task_of,
    tasks_of,
    unrecorded_owner,
)
from .plan import Plan

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = [
    "EARLIER",
    "EARLIER_PASSES",
    "RETIRED",
    "RETIRED_BOOKKEEPING",
    "PassResult",
    "Spent",
    "Unrecorded",
    "anchor_of",
    "count_unrecorded",
    "fold_bookkeeping",
    "own_report_key",
    "pass_title_of",
    "read_pass",
    "read_runs",
    "runs_without_cost",
    "spending",
    "synthesizer_task",
    "write_unrecorded",
]

# A pass of this run that the plan no longer has (renamed or removed since it began), as its
# row is shown to people: its old name and this; runs of one no pass name is known of, all in
# one row. (Its JSON ``name`` is the old name alone, with ``"earlier": true``.)
EARLIER = "(no longer in the plan)"
EARLIER_PASSES = f"earlier passes {EARLIER}"
# A pass ``swarm retire`` removed the settled tasks and findings of, after its name.
RETIRED = "(retired)"


def pass_title_of(name: str, *, earlier: bool = False, retired: bool = False) -> str:
    """A pass as a table row or a heading names it: an earlier pass (``PassResult``) with
    ``EARLIER``, a retired one with ``RETIRED``."""
    title = name if not earlier else f"{name} {EARLIER}" if name else EARLIER_PASSES
    return f"{title} {RETIRED}" if retired else title


class Unrecorded(NamedTuple):
    """One agent run paid for that no other record holds (``count_unrecorded``):
    what it cost (None: its CLI said nothing), whose run it was (the report's rows), and the
    record of the pass it was run for (``anchor_of``; None: none known). Or (``retired``)
    the cost of a record of the pipeline's bookkeeping that ``swarm pipeline retire`` removed
    (``fold_bookkeeping``): ``failed`` said of its runs (a planner's task list is no failed
    run), ``runs`` how many (a task's failed runs)."""

    usage: Usage | None
    what: str
    anchor: str | None = None
    failed: bool = True
    runs: int = 1
    retired: bool = False


@dataclass
class PassResult:
    """What became of one pass (in this run, or as the swarm holds it). ``earlier``: a pass
    of the run that the plan no longer has (``report.read_earlier``), ``name`` its old name
    ("" for the runs that name no pass); ``title`` is how people see it."""

    name: str
    label: str
    tasks: list[Task] = field(default_factory=list)  # the workers'
    findings: list[Finding] = field(default_factory=list)  # the workers', current ones
    synthesis: Synthesis | None = None
    resumed: bool = False  # its synthesis was already written: nothing was run
    planning: Finding | None = None  # a planned pass: its planner's tasks and cost
    # Findings that came after their task was settled: not evidence, but their runs cost.
    superseded: list[Finding] = field(default_factory=list)
    # The planning task and the synthesizer's task (posted at its first refused or failed
    # run), where they exist: their ``failed_usage`` is what those runs cost.
    agent_tasks: list[Task] = field(default_factory=list)
    earlier: bool = False
    # What ``swarm retire`` removed of the pass (its settled tasks and their findings, and
    # with them what their runs cost), when it was retired; read by ``read_passes`` when
    # asked (``status``, ``report``).
    retired: RetiredPass | None = None
    # The agent runs of the pass that no other record holds (see ``count_unrecorded``),
    # read by ``read_pass``.
    unrecorded: list[Unrecorded] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The pass as a table row or a heading names it (``pass_title_of``): retired while
        what it shows is what was left of it (not once a run posted it again)."""
        retired = self.retired is not None and not self.posted_again
        return pass_title_of(self.name, earlier=self.earlier, retired=retired)

    @property
    def posted_again(self) -> bool:
        """Whether a run posted tasks of the pass after ``swarm retire`` took its work: the
        tasks it shows are those, not what was left of the retired ones."""
        if self.retired is None:
            return False
        at = self.retired.at or 0
        return any(task.created_at > at for task in self.tasks)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for task in self.tasks:
            out[task.status.value] = out.get(task.status.value, 0) + 1
        return out


class Spent(NamedTuple):
    """One record of what agent runs cost: a finding's, a synthesis's, or the failed runs
    summed on a task (``failed``); ``record`` is its id, ``what`` says whose runs they are
    (the report's rows). ``usage`` None: its runs reported no cost (a planner whose CLI
    prints no usage): listed all the same, as "cost unknown", never left out. ``retired``:
    the record went with the pipeline's bookkeeping, its cost still counted
    (``fold_bookkeeping``)."""

    usage: Usage | None
    model: str | None
    failed: bool
    record: str = ""
    what: str = ""
    retired: bool = False


# The agent runs of a pipeline's run that were paid for and that no other record holds (a
# worker's run whose lease was lost, a planner or synthesizer run whose failure the core
# refused) are kept in the swarm (``Swarm.record_unrecorded_run``, as the run's:
# ``unrecorded_owner``), each under a key naming the run once (a digest of a claim's token
# or a finding id: ``_run_key``), so that a path that meets the run again adds nothing, and
# every reader counts them: the run's budget, a later run's (a rerun after a crash), status
# and report from any process. One that cannot be written yet (Redis out of reach, or the
# write refused) is kept here meanwhile, by the server and run (``_run_of``), and written at
# the next chance (the next count or read of the run, a run's start and end: ``_write``);
# every read of this process counts it until then. Either is counted while its pass holds
# the record it names (``anchor_of``: not one of a swarm emptied since).
_PENDING: dict[tuple[str, str, str, int], dict[str, tuple[str, Unrecorded]]] = {}
_PENDING_LOCK = threading.Lock()


def _run_of(swarm: Swarm, plan: Plan) -> tuple[str, str, str, int]:
    """Which run of which pipeline, in which swarm of which server."""
    return (swarm.settings.url, swarm.name, plan.name, plan.run)


def _run_key(key: str | None) -> str:
    """The key a run is kept under: a digest of ``key`` (a claim's token is its lease's
    secret: never stored), or, for None (one path alone meets the run), a new one."""
    return unrecorded_run_key(secrets.token_hex(16) if key is None else key)


def count_unrecorded(
    swarm: Swarm,
    plan: Plan,
    label: str,
    run: Unrecorded,
    key: str | None = None,
    *,
    write: bool = True,
) -> bool:
    """Count an agent ``run`` of pass ``label`` that no other record holds, so that
    every budget and status of the run counts it, in any process: written to the swarm now,
    or kept here and written at the next chance when it cannot be (``write_unrecorded``).
    Without ``write``, kept here only, for the caller to write once it holds no lock (the
    write rides out an outage: a lock held meanwhile would hold every other slot's outcome).
    False when a run under ``key`` was counted already (each path that may meet the same run
    passes the same key; None: only one path meets it)."""
    digest = _run_key(key)
    with _PENDING_LOCK:
        pending = _PENDING.setdefault(_run_of(swarm, plan), {})
        if digest in pending:
            return False
        pending[digest] = (label, run)
    return _write(swarm, plan).get(digest, True) if write else True


def write_unrecorded(swarm: Swarm, plan: Plan) -> int:
    """Write the runs of ``plan``'s run that this process counted and could not write yet
    (``count_unrecorded``) to the swarm: how many it keeps still (Redis out of reach)."""
    _write(swarm, plan)
    with _PENDING_LOCK:
        return len(_PENDING.get(_run_of(swarm, plan), {}))


def _write(swarm: Swarm, plan: Plan) -> dict[str, bool]:
    """Write the runs of ``plan``'s run kept here to the swarm, the oldest first, until Redis
    is out of reach: for each written, whether the swarm had it not (one written before,
    its reply lost, it had). One refused stays kept, counted here."""
    at = _run_of(swarm, plan)
    with _PENDING_LOCK:
        pending = list(_PENDING.get(at, {}).items())
    owner = unrecorded_owner(plan.name, plan.run)
    written: dict[str, bool] = {}
    for digest, (label, run) in pending:
        try:
            written[digest] = swarm.record_unrecorded_run(
                owner, digest, label, run.what, usage=run.usage, anchor=run.anchor
            )
        except ConnectionFailed:
            break  # (the next chance writes it and those after it)
        except SwarmError:
            continue
        with _PENDING_LOCK:
            left = _PENDING.get(at, {})
            left.pop(digest, None)
            if not left:
                _PENDING.pop(at, None)
    return written


def _unrecorded_of(swarm: Swarm, plan: Plan, result: PassResult) -> dict[str, Unrecorded]:
    """The unrecorded runs of pass ``result`` (read from the swarm), by key: those the swarm
    keeps and those this process keeps still unwritten, once each, whose anchor the pass
    holds."""
    at = _run_of(swarm, plan)
    with _PENDING_LOCK:
        waiting = at in _PENDING
    if waiting:
        _write(swarm, plan)  # (at the next chance: this read)
    with _PENDING_LOCK:  # (read before the swarm's: one written meanwhile is in both)
        kept = list(_PENDING.get(at, {}).items())
    runs = {digest: run for digest, (label, run) in kept if label == result.label}
    for stored in swarm.unrecorded_runs(unrecorded_owner(plan.name, plan.run)):
        if stored.pass_name == result.label:
            runs.setdefault(stored.key, Unrecorded(stored.usage, stored.what, stored.anchor))
    records: list[Task | Finding] = [*result.tasks, *result.agent_tasks, *result.findings]
    held = {anchor_of(r) for r in records}
    retired = swarm.unrecorded_runs(retired_owner(plan.name, plan.run))
    # (in the order of their keys: the same whether a run was written yet or not); the cost
    # of a retired record only once the record it stands for is gone (never counted twice)
    out = {key: run for key, run in sorted(runs.items()) if anchor_held(run.anchor, held)}
    for cost in kept_costs(retired, result.label, held):
        out[cost.key] = Unrecorded(
            cost.usage, cost.what, cost.anchor, cost.failed, cost.runs, retired=True
        )
    return out


# Whose runs a kept cost stands for, said after them (``fold_bookkeeping``).
RETIRED_BOOKKEEPING = (
    "retired with the pipeline's bookkeeping (swarm pipeline retire), still counted"
)


def _priced_by(usage: Usage | None, model: str | None) -> Usage | None:
    """``usage`` with its cost said to be ``model``'s when it names none per model, so that
    the cost per model counts it under that model once its record (which names it) went."""
    if usage is None or usage.models or not model:
        return usage
    figures = {k: v for k, v in usage_figures(usage).items() if v is not None}
    return dataclasses.replace(usage, models={model: figures}) if figures else usage


def fold_bookkeeping(swarm: Swarm, plan: Plan) -> int:
    """Keep what the bookkeeping of ``plan``'s run cost (its planners' task lists, the failed
    runs summed on its planning and synthesizer tasks), before ``swarm pipeline retire``
    removes those records: one record per record (``retired_owner``, keyed by the record,
    ``kept_cost_key``: folding again adds nothing), saying whether its runs failed and how
    many, and naming the bookkeeping task it stands for, so that a reader counts it only
    once that task is gone (``kept_costs``: a task the retirement keeps still counts as
    itself). How many records it wrote or found written. The spend of a finished pipeline
    does not drop with its cleanup, in its views nor in ``Swarm.pass_costs``."""
    queues = set(bookkeeping_queues(plan.name, plan.run))
    owner = retired_owner(plan.name, plan.run)
    folded = 0
    for index in range(len(plan.passes)):
        result = read_pass(swarm, plan, index)
        own = {t.id: t for t in result.agent_tasks if t.queue in queues}
        for record, what in _runs(result):
            if isinstance(record, Task):
                task, runs, failed = own.get(record.id), failed_runs_of(record), True
                usage, model = record.failed_usage, None
                if not runs and usage is None:
                    continue
            elif isinstance(record, Finding):
                task, runs, failed = own.get(record.task_id), 1, False
                usage, model = record.usage, record.model
            else:
                continue
            if task is None:  # (not the bookkeeping's: a worker's, or the synthesis)
                continue
            swarm.record_unrecorded_run(
                owner, kept_cost_key(record.id), result.label, f"{what}, {RETIRED_BOOKKEEPING}",
                usage=_priced_by(usage, model), anchor=anchor_of(task), failed=failed,
                runs=max(1, runs),
            )  # fmt: skip
            folded += 1
    return folded


def _own_reports_priced(swarm: Swarm, result: PassResult, runs: dict[str, Unrecorded]) -> None:
    """Set on each finding of ``result`` an agent reported itself with no usage the cost
    its run's CLI said (kept among ``runs`` under ``own_report_key``, taken out of them):
    its one run, counted once, on its finding, as docs/pipeline.md says. Priced by the
    core's rule (``Swarm.priced_findings``, given the runs read: no round trip), the one
    ``Swarm.pass_costs`` and lineage price it by."""
    kept = [
        UnrecordedRun(key, result.label, run.usage, run.what, run.anchor)
        for key, run in runs.items()
        if not run.retired
    ]
    result.findings[:] = swarm.priced_findings(result.findings, kept)
    for finding in result.findings:
        runs.pop(_run_key(own_report_key(finding.id)), None)


def read_pass(swarm: Swarm, plan: Plan, index: int) -> PassResult:
    """Pass ``index`` of ``plan`` as the swarm holds it (five round trips, the runs no other
    record holds among them; a planned pass's planning task and its findings, two more)."""
    label = pass_label(plan, index)
    work, planning = pipeline_queue(plan), planning_queue(plan)
    result = PassResult(plan.passes[index].name, label)
    # The pass's tasks and findings are its workers', and those of the planning task a run
    # from before ``planning_task_id`` posted with the pass name.
    for task in tasks_of(swarm, label):
        if task.queue == work:
            result.tasks.append(task)
        elif task.queue == planning:
            result.agent_tasks.append(task)
    for finding in findings_of(swarm, label, superseded=True):
        if finding.queue in (work, planning):
            _take(result, finding, work)
    if plan.passes[index].planned:
        with contextlib.suppress(NotFound):
            task = swarm.get_task(planning_task_id(plan, index))
            result.agent_tasks.append(task)
            for finding in findings_of(swarm, None, planning, superseded=True):
                if finding.task_id == task.id:
                    _take(result, finding, work)
    with contextlib.suppress(NotFound):
        result.synthesis = swarm.get_synthesis(synthesis_id(plan, index))
    with contextlib.suppress(NotFound):
        result.agent_tasks.append(swarm.get_task(synthesis_task_id(plan, index)))
    read_runs(swarm, plan, result)
    return result


def read_runs(swarm: Swarm, plan: Plan, result: PassResult) -> None:
    """Complete pass ``result`` of ``plan``'s run, its records read, with what its runs that
    no other record holds cost (``unrecorded``), the cost of each finding an agent reported
    itself set on that finding (``_own_reports_priced``): how every pass's costs are read,
    one of the plan's (``read_pass``) or one the plan no longer has
    (``report.read_earlier``), so that the budget and every view count the same runs."""
    runs = _unrecorded_of(swarm, plan, result)
    _own_reports_priced(swarm, result, runs)
    result.unrecorded = list(runs.values())


def _take(result: PassResult, finding: Finding, work: str) -> None:
    """Add ``finding``, of the pass's workers (queue ``work``) or its planner, where it
    belongs."""
    if finding.superseded:
        result.superseded.append(finding)
    elif finding.queue == work:
        result.findings.append(finding)
    elif result.planning is None:
        result.planning = finding


def synthesizer_task(swarm: Swarm, synthesis: Synthesis) -> Task | None:
    """The synthesizer task of ``synthesis``'s pass (see ``synthesis_task_id``), where its
    ``failed_usage`` is what the refused or failed runs of its synthesizer cost: None when
    no run of it was refused or failed, or when no pipeline wrote the synthesis. Found from
    the synthesis alone (lineage has no plan at hand): the id ``synthesis_task_id`` derives,
    taken only when the task's data names the synthesis, so that a task that merely has such
    an id is never counted."""
    try:
        task = swarm.get_task(synthesizer_task_of(synthesis.id))
    except NotFound:
        return None
    return task if synthesis_run_for(task) == synthesis.id else None


def _runs(result: PassResult) -> list[tuple[Finding | Synthesis | Task, str]]:
    """Every record of the pass's agent runs, with whose runs they are: the planner's
    finding, the workers' findings (late ones too), the synthesis, then the workers', the
    planning and the synthesizer's tasks (their failed runs)."""
    out: list[tuple[Finding | Synthesis | Task, str]] = []
    if result.planning is not None:
        out.append((result.planning, f"planner (its task list, finding {result.planning.id})"))
    out += [(f, f"worker (finding {f.id})") for f in result.findings]
    out += [(f, f"finding {f.id}, superseded (reported after its task was settled)")
            for f in result.superseded]  # fmt: skip
    if result.synthesis is not None:
        out.append((result.synthesis, f"synthesizer (synthesis {result.synthesis.id})"))
    out += [(t, f"failed runs of task {t.id} ({t.status.value})") for t in result.tasks]
    for task in result.agent_tasks:
        data = task.data if isinstance(task.data, dict) else {}
        role = "synthesizer" if SYNTHESIS_NAMED in data else "planner"
        out.append((task, f"failed runs of the {role}'s task {task.id}"))
    return out


def spending(result: PassResult) -> list[Spent]:
    """Every usage behind the pass: the planner's finding, the workers' findings (late ones
    too), the synthesis, and the failed or refused runs summed on the workers' tasks, the
    planning task and the synthesizer's task (their model unknown unless the CLI named
    it), then the runs of the pass that no other record holds (``unrecorded``: no record
    id; counted as failed runs, none of them gave what was asked of it). A run that
    reported no usage is in it too (``Spent.usage`` None: "cost unknown"): a finding, a
    synthesis, a task with failed runs (``failed_runs_of``), a run no other record holds."""
    out = []
    for record, what in _runs(result):
        if isinstance(record, Task):
            if record.failed_usage is not None or failed_runs_of(record):
                out.append(Spent(record.failed_usage, None, True, record.id, what))
        else:
            out.append(Spent(record.usage, record.model, False, record.id, what))
    out += [Spent(run.usage, None, run.failed, "", run.what, run.retired)
            for run in result.unrecorded]  # fmt: skip
    return out


def runs_without_cost(result: PassResult) -> tuple[int, int]:
    """How many agent runs the pass holds a record of, and how many of them reported no
    cost (unknown, so that a sum of the others is less than what was spent): a finding, the
    planner's or a synthesis is one run; a task's failed runs are its ``failed_run_count``
    (``runs_of``: those before a requeue too), all without a cost when the sum has none; a
    run no record holds (``unrecorded``) is one."""
    runs, unpriced = runs_of(record for record, _what in _runs(result))
    for run in result.unrecorded:
        runs += run.runs
        unpriced += run.runs * (run.usage is None or run.usage.cost_usd is None)
    return runs, unpriced
