"""What a pass cost: every agent run behind it, summed (``pass_costs``), however the pass
was run: by a pipeline, by hand (``swarm task post --pass`` and ``swarm run``) or by the
seed's roles. A pipeline's planner and synthesizer record their runs on tasks (and the
planner's task lists on findings) that carry no pass name: they are found from the pass's
synthesis (``planning_task_of``, ``synthesizer_task_of``: the rule the pipeline makes their
ids by), taken when their data names the pass, and said apart (``PassCosts.planning``,
``PassCosts.synthesis``), so that the pass's total is what ``swarm pipeline status`` shows.
So are the pipeline's runs of the pass that no other record holds (``unrecorded``): kept
per run of the pipeline, which the pass's label names (``unrecorded_owner_of``), counted
by the rule its status counts them by (``anchor_held``), apart (``PassCosts.unrecorded``).
And so are the costs ``swarm pipeline retire`` kept of the records of the pipeline's
bookkeeping it removed (a planner's task list, the failed runs of a planning or synthesizer
task: ``kept_costs``, once the record they stand for went), each counted as its record was,
so that a pass's spend reads the same before and after (``PassCosts.retired_bookkeeping``).

A pass's findings (superseded ones too), tasks and syntheses are read through their
indexes a page at a time (``COST_PAGE``: a page of the biggest findings, 256 KiB each, is
6.4 MiB), the three side by side, each up to ``SCAN_LIMIT`` records, and summed as they
come: a pass of a hundred thousand tasks is never one reply, nor held whole. The sums use
the rules every cost view uses (``_usage``'s figures and per-model rule, ``runs_of``'s count
of runs).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .._codec import UNREADABLE
from .._errors import NotFound
from .._models import (
    Finding,
    PassCosts,
    RetiredPass,
    Synthesis,
    Task,
    UnrecordedRun,
    anchor_held,
    anchor_of,
    anchored_record,
    kept_costs,
    own_report_key,
    planning_task_of,
    retired_owner_of,
    runs_of,
    synthesizer_task_of,
    unknown_pass,
    unrecorded_owner_of,
    unrecorded_run_key,
)
from .._protocol import Batch, Cmd, OpContext, Operation, together
from .._usage import (
    Usage,
    add_figures,
    add_model_figures,
    model_names,
    no_figures,
    shown_figures,
    usage_figures,
)
from .._validate import check_list
from ._work import LIST_BUDGET, check_label, finding_from, page, synthesis_from, task_from
from .unrecorded import unrecorded_runs
from .views import pass_counts

__all__ = ["COST_PAGE", "SCAN_LIMIT", "own_report_run", "pass_costs", "priced_findings"]

T = TypeVar("T")

SCAN_LIMIT = LIST_BUDGET  # the records of each kind (findings, tasks, syntheses) one call reads
COST_PAGE = 25  # records per round trip: findings may be 256 KiB each

# What ``unknown_pass`` says there is not to do with a pass no task was ever posted to.
_NO_RUNS = "no agent run to count"


def pass_costs(ctx: OpContext, pass_name: str) -> Operation[PassCosts]:
    """What every agent run behind pass ``pass_name`` cost (``PassCosts``): its findings,
    superseded ones too, the failed runs summed on its tasks, its syntheses, and a
    pipeline's planner and synthesizer runs of it, said apart (``planning``, ``synthesis``),
    and the pipeline's runs of it no other record holds (``unrecorded``), apart too, and
    what ``swarm pipeline retire`` kept of the records of its bookkeeping it removed
    (``retired_bookkeeping``: of ``planning`` and ``synthesis``, as those records were).
    One round trip for a pass of up to ``COST_PAGE`` records of each kind, one more per page
    after that, up to ``SCAN_LIMIT`` of each (``searched_all`` says whether that was all);
    a pass a pipeline synthesized, one more (its planning and synthesizer tasks), and a
    planned one, one more per page of its planner's findings (a task list each; one page).

    A pass no task was ever posted to raises NotFound naming the passes there are, as
    ``wait`` and ``retire_pass`` do; a retired pass is summed from what it still holds (its
    syntheses, tasks posted since), with ``retired`` saying what went."""
    name = check_label("pass name", pass_name)
    k = ctx.keys
    tally = _Tally()
    known, (kept, retired_bookkeeping), *scanned = yield from together(
        _known(ctx, name),
        _kept(ctx, name),
        _scan(ctx, (k.findings_by("pass", name), k.findings), [],
              lambda raw, _: finding_from(raw), tally.add),
        _scan(ctx, (k.pass_tasks(name), k.tasks), [], task_from, tally.add),
        _scan(ctx, (k.synthesis_index, k.syntheses), ["pass_name", name],
              lambda raw, _: synthesis_from(raw), tally.add),
    )  # fmt: skip
    passes, retired = known
    if name not in passes and retired is None:
        raise NotFound(unknown_pass(name, list(passes), doing=_NO_RUNS))
    planning, corrupt = yield from _pipeline_tasks(ctx, name, tally)
    if planning:  # the planner's findings: its task lists, a second planner's late one too
        scanned += yield from together(*(
            _scan(ctx, (k.findings_by("queue", task.queue), k.findings), ["task_id", task.id],
                  lambda raw, _: finding_from(raw), tally.add_planner)
            for task in planning
        ))  # fmt: skip
    for run in kept:  # (once every record of the pass read is held: see ``anchor_held``)
        if run.pass_name == name and anchor_held(run.anchor, tally.held):
            tally.add_unrecorded(run)
    # (each stands for a planning or synthesizer task; a synthesizer task's id is the one its
    # synthesis names, ``synthesizer_task_of``: every other is the planner's)
    synthesizers = {synthesizer_task_of(sid) for sid in tally.pipeline_syntheses}
    for run in kept_costs(retired_bookkeeping, name, tally.held):
        tally.add_retired(run, synthesis=anchored_record(run.anchor or "") in synthesizers)
    return tally.costs(
        name,
        searched_all=all(whole for whole, _ in scanned),
        corrupt=corrupt + sum(bad for _, bad in scanned),
        retired=retired,
    )


def own_report_run(finding: Finding) -> tuple[str, str] | None:
    """Where the run of ``finding`` is kept when its agent reported it itself with no usage
    (a worker of a pipeline's ``swarm run`` pool calling ``swarm task report``: the pipeline
    keeps what its CLI said the run cost as a run no other record holds, under
    ``own_report_key``): its pipeline run's owner and the run's key. None when the finding
    holds its usage, or its pass is no pipeline's: nothing prices it. The one rule of every
    reader that prices such a finding (``pass_costs``, ``priced_findings``)."""
    if finding.usage is not None or not finding.pass_name:
        return None
    owner = unrecorded_owner_of(finding.pass_name)
    if owner is None:
        return None
    return owner, unrecorded_run_key(own_report_key(finding.id))


def priced_findings(
    ctx: OpContext, findings: Sequence[Finding], runs: Iterable[UnrecordedRun] | None = None
) -> Operation[list[Finding]]:
    """``findings``, in order, each one its agent reported itself with no usage
    (``own_report_run``) priced with the run its pipeline kept for it (a run of its pass):
    one run, counted once, on its finding, as ``pass_costs`` and ``swarm pipeline status``
    count it; every other as it is. ``runs``: the runs kept already read (a pass's reader
    holds them: nothing is read); None: each owner's runs these findings need are read, once
    per owner, all in one round trip (none when no finding needs one)."""
    wanted = [(f, own_report_run(f)) for f in check_list("findings", findings, of="Findings")]
    if runs is not None:
        runs = check_list("runs", runs, of="UnrecordedRuns (None: read them)")
    if runs is None:
        needed: dict[str, set[str]] = {}
        for _, where in wanted:
            if where is not None:
                needed.setdefault(where[0], set()).add(where[1])
        owners = sorted(needed)
        replies = (
            (yield Batch(tuple(
                Cmd("HMGET", ctx.keys.unrecorded_runs(owner), *sorted(needed[owner]))
                for owner in owners
            ))) if owners else []
        )  # fmt: skip
        kept: dict[tuple[str, str], UnrecordedRun] = {}
        for owner, values in zip(owners, replies, strict=True):
            for key, raw in zip(sorted(needed[owner]), values, strict=True):
                if raw is None:
                    continue
                try:
                    kept[owner, key] = UnrecordedRun.stored(key, raw)
                except UNREADABLE:  # (written around the operations: not a price)
                    continue
    else:
        given = list(runs)
        kept = {
            (where[0], run.key): run
            for f, where in wanted
            if where is not None
            for run in given
            if run.key == where[1]
        }
    out = []
    for f, where in wanted:
        run = kept.get(where) if where is not None else None
        # (a run of its own pass only: a pass named by hand may look like a pipeline's)
        if run is not None and run.pass_name == f.pass_name:
            f = dataclasses.replace(f, usage=run.usage)
        out.append(f)
    return out


# At most this many of a pass's syntheses are looked behind for a pipeline's tasks: a
# pipeline writes one per pass (per run of it); more are syntheses written by hand.
_PIPELINE_SYNTHESES = COST_PAGE


def _pipeline_tasks(ctx: OpContext, name: str, tally: _Tally) -> Operation[tuple[list[Task], int]]:
    """Add the failed runs of the planning and synthesizer tasks of pass ``name``'s
    pipeline syntheses (those ``tally`` met) to ``tally``, in one round trip (none when no
    pipeline synthesized the pass): a synthesizer task is taken when its data names its
    synthesis (and the pass, or none), a planning task when its data names the pass, as the
    pipeline posts them
    (a task that merely has such an id is not counted), and neither when it carries the
    pass name (a run from before they had none: counted with the pass's tasks). The
    planning tasks taken, and how many tasks were stored unreadable."""
    wanted: list[tuple[str, str, str]] = []  # (task id, the data key, the value it must hold)
    for sid in tally.pipeline_syntheses[:_PIPELINE_SYNTHESES]:
        planning = planning_task_of(sid)
        assert planning is not None  # (only a pipeline's syntheses are kept)
        wanted += [(planning, "pass", name), (synthesizer_task_of(sid), "synthesis", sid)]
    if not wanted:
        return [], 0
    k = ctx.keys
    reply = yield Batch(tuple(
        cmd for task_id, _, _ in wanted
        for cmd in (Cmd("HGET", k.tasks, task_id), Cmd("HGET", k.task_data, task_id))
    ))  # fmt: skip
    planners: list[Task] = []
    corrupt = 0
    for (_, key, value), raw, data in zip(wanted, reply[::2], reply[1::2], strict=True):
        if raw is None:  # (no run of it was refused or failed; not a planned pass)
            continue
        try:
            task = task_from(raw, data)
        except UNREADABLE:
            corrupt += 1
            continue
        data = task.data if isinstance(task.data, dict) else {}
        # A synthesizer task names its pass too (one posted before it did: its synthesis
        # only), so that a synthesis given a pipeline's id by hand in another pass is not
        # charged that pipeline's synthesizer runs.
        if data.get(key) != value or data.get("pass", name) != name or task.pass_name == name:
            continue
        if key == "pass":
            planners.append(task)
            tally.add_planner(task)
        else:
            tally.add_synthesizer(task)
    return planners, corrupt


def _kept(ctx: OpContext, name: str) -> Operation[tuple[list[UnrecordedRun], list[UnrecordedRun]]]:
    """The runs the pipeline run pass ``name`` is a label of (``unrecorded_owner_of``) kept
    as no other record's (``unrecorded_runs``), and the costs its retirement kept of its
    bookkeeping (``retired_owner_of``), of any of its passes, in one round trip; none (no
    request) when the name is no pipeline's label."""
    owner = unrecorded_owner_of(name)
    if owner is None:
        return [], []
    runs, retired = yield from together(
        unrecorded_runs(ctx, owner), unrecorded_runs(ctx, retired_owner_of(owner))
    )
    return runs, retired


def _known(ctx: OpContext, name: str) -> Operation[tuple[list[str], RetiredPass | None]]:
    """The passes some task is counted in (a pass retired whole counts none), and what
    ``retire_pass`` removed of pass ``name``, if it was retired."""
    k = ctx.keys
    raw, record = yield Batch((Cmd("HGETALL", k.pass_counts), Cmd("HGET", k.retired_passes, name)))
    passes = [p for p, counts in pass_counts(raw).items() if any(counts.values())]
    return passes, RetiredPass.stored(name, record) if record is not None else None


def _scan(
    ctx: OpContext,
    keys: tuple[str, ...],
    filters: list[str],
    decode: Callable[[Any, Any], T],
    take: Callable[[T], None],
) -> Operation[tuple[bool, int]]:
    """The records of an index (``keys``: it and their hash) that match ``filters``, oldest
    first, a page per round trip, each given to ``take``: up to ``SCAN_LIMIT`` of them, in
    as many pages as that many records fill (a filter the server applies may leave pages
    short). Whether that was every one, and how many were stored unreadable."""
    cursor: str | None = None
    read = corrupt = calls = 0
    while True:
        got = yield from page(
            ctx, keys, cursor, min(COST_PAGE, SCAN_LIMIT - read), None, False, filters, decode
        )
        for item in got.items:
            take(item)
        read += len(got.items) + len(got.corrupt)
        corrupt += len(got.corrupt)
        calls += 1
        cursor = got.cursor
        if cursor is None:
            return True, corrupt
        if read >= SCAN_LIMIT or calls >= math.ceil(SCAN_LIMIT / COST_PAGE):
            return False, corrupt


class _Tally:
    """The sums of a pass's records of agent runs, added one record at a time: in all, and
    the planner's, the synthesizer's and the unrecorded runs' parts; ``held``, the records
    met (``anchor_of``), which an unrecorded run of the pass must name to count."""

    def __init__(self) -> None:
        self.total = no_figures()
        self.failed = no_figures()
        self.planning = no_figures()
        self.synthesis = no_figures()
        self.unrecorded = no_figures()
        self.by_model: dict[str, dict[str, float | None]] = {}
        # Per model: the runs summed under it, and how many of them reported no cost.
        self.model_runs: dict[str, list[int]] = {}
        self.runs = self.unpriced = self.planning_runs = self.synthesis_runs = 0
        self.unrecorded_runs = 0
        self.retired = no_figures()
        self.retired_runs = 0
        self.held: set[str] = set()
        # The findings an agent reported itself with no usage, by the key of the run kept
        # with its cost (``own_report_key``): that run prices its finding, not a run more.
        self.own_reports: dict[str, Finding] = {}
        self.findings = self.superseded = self.tasks = self.syntheses = 0
        self.pipeline_syntheses: list[str] = []  # their ids: a pipeline's tasks are behind them

    def add(self, record: Finding | Task | Synthesis) -> None:
        """Add one of the pass's own records (its finding, task or synthesis)."""
        if isinstance(record, Task):
            self.tasks += 1
        elif isinstance(record, Finding):
            self.findings += 1
            self.superseded += record.superseded
        else:
            self.syntheses += 1
            if planning_task_of(record.id) is not None:
                self.pipeline_syntheses.append(record.id)
            self.synthesis_runs += self._sum(record, self.synthesis)
            return
        self._sum(record)

    def add_planner(self, record: Finding | Task) -> None:
        """Add a record of the pipeline's planner of the pass: a task list it reported (a
        finding of its planning task), or its refused and failed runs (that task)."""
        self.planning_runs += self._sum(record, self.planning)

    def add_synthesizer(self, task: Task) -> None:
        """Add the refused and failed runs of the pipeline's synthesizer of the pass."""
        self.synthesis_runs += self._sum(task, self.synthesis)

    def add_unrecorded(self, run: UnrecordedRun) -> None:
        """Add a run of the pass that no other record holds: one run, failed (it gave
        nothing asked of it), as ``swarm pipeline status`` counts it; or, kept for a finding
        its agent reported itself without usage, that finding's cost (its one run)."""
        finding = self.own_reports.pop(run.key, None)
        if finding is not None:
            if run.usage is not None:
                priced = run.usage.cost_usd is not None
                self.unpriced -= priced  # (it was counted unpriced)
                # (its one run, counted unpriced under the finding's model, goes under the
                # models its figures are summed under, priced or not as they say)
                self._count_models(None, finding.model, -1, -1)
                self._count_models(run.usage, finding.model, 1, int(not priced))
                add_figures(self.total, usage_figures(run.usage))
                add_model_figures(self.by_model, run.usage, finding.model)
            return
        self.runs += 1
        self.unrecorded_runs += 1
        unpriced = run.usage is None or run.usage.cost_usd is None
        self.unpriced += unpriced
        self._count_models(run.usage, None, 1, int(unpriced))
        if run.usage is not None:
            figures = usage_figures(run.usage)
            for part in (self.total, self.failed, self.unrecorded):
                add_figures(part, figures)
            add_model_figures(self.by_model, run.usage, None)

    def add_retired(self, run: UnrecordedRun, *, synthesis: bool) -> None:
        """Add the cost ``swarm pipeline retire`` kept of a record of the pipeline's
        bookkeeping of the pass (``kept_costs``), as that record counted: a task list of its
        planner or the failed runs of its planning task (``planning``), or of its
        synthesizer task (``synthesis``), its failed runs in ``failed`` too."""
        self.runs += run.runs
        self.retired_runs += run.runs
        if synthesis:
            self.synthesis_runs += run.runs
        else:
            self.planning_runs += run.runs
        usage = run.usage
        unpriced = usage is None or usage.cost_usd is None
        self._count_models(usage, None, run.runs, run.runs if unpriced else 0)
        if unpriced:
            self.unpriced += run.runs
        if usage is None:
            return
        figures = usage_figures(usage)
        part = self.synthesis if synthesis else self.planning
        for sums in (self.total, part, self.retired, *((self.failed,) if run.failed else ())):
            add_figures(sums, figures)
        # (its record's model is in its usage: the pipeline kept it so)
        add_model_figures(self.by_model, usage, None)

    def _sum(
        self, record: Finding | Task | Synthesis, part: dict[str, float | None] | None = None
    ) -> int:
        """Add ``record``'s runs to the sums (and to ``part``): how many runs they are."""
        if not isinstance(record, Synthesis):
            self.held.add(anchor_of(record))
        runs, unpriced = runs_of((record,))
        self.runs += runs
        self.unpriced += unpriced
        if isinstance(record, Task):
            # (a failed run's model is in its usage when the CLI or ``--model`` named it)
            usage, model = record.failed_usage, None
            if usage is not None:
                add_figures(self.failed, usage_figures(usage))
        else:
            usage, model = record.usage, record.model
            if isinstance(record, Finding) and (where := own_report_run(record)) is not None:
                self.own_reports[where[1]] = record
        self._count_models(usage, model, runs, unpriced)
        if usage is not None:
            add_figures(self.total, usage_figures(usage))
            add_model_figures(self.by_model, usage, model)
            if part is not None:
                add_figures(part, usage_figures(usage))
        return runs

    def _count_models(
        self, usage: Usage | None, model: str | None, runs: int, unpriced: int
    ) -> None:
        """Count ``runs`` (``unpriced`` of them without a cost) under each model their
        figures are summed under (``model_names``): a model's line that sums runs some of
        which reported no cost says so, as the total does."""
        for name in model_names(usage, model):
            counts = self.model_runs.setdefault(name, [0, 0])
            counts[0] += runs
            counts[1] += unpriced

    def _runs_of(self, model: str) -> dict[str, int]:
        runs, unpriced = self.model_runs.get(model, (0, 0))
        return {"runs": runs, "runs_without_cost": unpriced}

    def costs(
        self, name: str, *, searched_all: bool, corrupt: int, retired: RetiredPass | None
    ) -> PassCosts:
        return PassCosts(
            pass_name=name,
            total=shown_figures(self.total),
            failed=shown_figures(self.failed),
            by_model={model: shown_figures(f) for model, f in sorted(self.by_model.items())},
            model_runs={model: self._runs_of(model) for model in sorted(self.by_model)},
            runs=self.runs,
            runs_without_cost=self.unpriced,
            findings=self.findings,
            superseded=self.superseded,
            tasks=self.tasks,
            syntheses=self.syntheses,
            searched_all=searched_all,
            scan_limit=SCAN_LIMIT,
            corrupt=corrupt,
            retired=retired,
            planning=shown_figures(self.planning),
            planning_runs=self.planning_runs,
            synthesis=shown_figures(self.synthesis),
            synthesis_runs=self.synthesis_runs,
            unrecorded=shown_figures(self.unrecorded),
            unrecorded_runs=self.unrecorded_runs,
            retired_bookkeeping=shown_figures(self.retired),
            retired_bookkeeping_runs=self.retired_runs,
        )
