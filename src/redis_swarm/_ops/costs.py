"""What a pass cost: every agent run behind it, summed (``pass_costs``), however the pass
was run: by a pipeline, by hand (``swarm task post --pass`` and ``swarm run``) or by the
seed's roles. A pipeline's planner and synthesizer record their runs on tasks (and the
planner's task lists on findings) that carry no pass name: they are found from the pass's
synthesis (``planning_task_of``, ``synthesizer_task_of``: the rule the pipeline makes their
ids by), taken when their data names the pass, and said apart (``PassCosts.planning``,
``PassCosts.synthesis``), so that the pass's total is what ``swarm pipeline status`` shows.

A pass's findings (superseded ones too), tasks and syntheses are read through their
indexes a page at a time (``COST_PAGE``: a page of the biggest findings, 256 KiB each, is
6.4 MiB), the three side by side, each up to ``SCAN_LIMIT`` records, and summed as they
come: a pass of a hundred thousand tasks is never one reply, nor held whole. The sums use
the rules every cost view uses (``_usage``'s figures and per-model rule, ``runs_of``'s count
of runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from .._codec import UNREADABLE
from .._errors import NotFound
from .._models import (
    Finding,
    PassCosts,
    RetiredPass,
    Synthesis,
    Task,
    planning_task_of,
    runs_of,
    synthesizer_task_of,
    unknown_pass,
)
from .._protocol import Batch, Cmd, OpContext, Operation, together
from .._usage import add_figures, add_model_figures, no_figures, shown_figures, usage_figures
from ._work import LIST_BUDGET, check_label, finding_from, page, synthesis_from, task_from
from .views import pass_counts

__all__ = ["COST_PAGE", "SCAN_LIMIT", "pass_costs"]

T = TypeVar("T")

SCAN_LIMIT = LIST_BUDGET  # the records of each kind (findings, tasks, syntheses) one call reads
COST_PAGE = 25  # records per round trip: findings may be 256 KiB each

# What ``unknown_pass`` says there is not to do with a pass no task was ever posted to.
_NO_RUNS = "no agent run to count"


def pass_costs(ctx: OpContext, pass_name: str) -> Operation[PassCosts]:
    """What every agent run behind pass ``pass_name`` cost (``PassCosts``): its findings,
    superseded ones too, the failed runs summed on its tasks, its syntheses, and a
    pipeline's planner and synthesizer runs of it, said apart (``planning``, ``synthesis``).
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
    known, *scanned = yield from together(
        _known(ctx, name),
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
    return tally.costs(
        name,
        searched_all=all(whole for whole, _ in scanned),
        corrupt=corrupt + sum(bad for _, bad in scanned),
        retired=retired,
    )


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
    the planner's and the synthesizer's parts."""

    def __init__(self) -> None:
        self.total = no_figures()
        self.failed = no_figures()
        self.planning = no_figures()
        self.synthesis = no_figures()
        self.by_model: dict[str, dict[str, float | None]] = {}
        self.runs = self.unpriced = self.planning_runs = self.synthesis_runs = 0
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

    def _sum(
        self, record: Finding | Task | Synthesis, part: dict[str, float | None] | None = None
    ) -> int:
        """Add ``record``'s runs to the sums (and to ``part``): how many runs they are."""
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
        if usage is not None:
            add_figures(self.total, usage_figures(usage))
            add_model_figures(self.by_model, usage, model)
            if part is not None:
                add_figures(part, usage_figures(usage))
        return runs

    def costs(
        self, name: str, *, searched_all: bool, corrupt: int, retired: RetiredPass | None
    ) -> PassCosts:
        return PassCosts(
            pass_name=name,
            total=shown_figures(self.total),
            failed=shown_figures(self.failed),
            by_model={model: shown_figures(f) for model, f in sorted(self.by_model.items())},
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
        )
