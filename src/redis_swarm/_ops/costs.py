"""What a pass cost: every agent run behind it, summed (``pass_costs``), however the pass
was run: by a pipeline, by hand (``swarm task post --pass`` and ``swarm run``) or by the
seed's roles.

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

from .._errors import NotFound
from .._models import Finding, PassCosts, RetiredPass, Synthesis, Task, runs_of, unknown_pass
from .._protocol import Batch, Cmd, OpContext, Operation, together
from .._usage import add_figures, add_model_figures, no_figures, shown_figures, usage_figures
from ._work import LIST_BUDGET, check_label, finding_from, page, task_from
from .findings import synthesis_from
from .views import pass_counts

__all__ = ["COST_PAGE", "SCAN_LIMIT", "pass_costs"]

T = TypeVar("T")

SCAN_LIMIT = LIST_BUDGET  # the records of each kind (findings, tasks, syntheses) one call reads
COST_PAGE = 25  # records per round trip: findings may be 256 KiB each

# What ``unknown_pass`` says there is not to do with a pass no task was ever posted to.
_NO_RUNS = "no agent run to count"


def pass_costs(ctx: OpContext, pass_name: str) -> Operation[PassCosts]:
    """What every agent run behind pass ``pass_name`` cost (``PassCosts``): its findings,
    superseded ones too, the failed runs summed on its tasks, its syntheses. One round trip
    for a pass of up to ``COST_PAGE`` records of each kind, one more per page after that, up
    to ``SCAN_LIMIT`` of each (``searched_all`` says whether that was all).

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
    return tally.costs(
        name,
        searched_all=all(whole for whole, _ in scanned),
        corrupt=sum(corrupt for _, corrupt in scanned),
        retired=retired,
    )


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
    """The sums of a pass's records of agent runs, added one record at a time."""

    def __init__(self) -> None:
        self.total = no_figures()
        self.failed = no_figures()
        self.by_model: dict[str, dict[str, float | None]] = {}
        self.runs = self.unpriced = 0
        self.findings = self.superseded = self.tasks = self.syntheses = 0

    def add(self, record: Finding | Task | Synthesis) -> None:
        runs, unpriced = runs_of((record,))
        self.runs += runs
        self.unpriced += unpriced
        if isinstance(record, Task):
            self.tasks += 1
            # (a failed run's model is in its usage when the CLI or ``--model`` named it)
            usage, model = record.failed_usage, None
            if usage is not None:
                add_figures(self.failed, usage_figures(usage))
        else:
            if isinstance(record, Finding):
                self.findings += 1
                self.superseded += record.superseded
            else:
                self.syntheses += 1
            usage, model = record.usage, record.model
        if usage is not None:
            add_figures(self.total, usage_figures(usage))
            add_model_figures(self.by_model, usage, model)

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
        )
