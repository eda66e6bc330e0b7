"""``swarm task show, list, wait``: a task with what every run on it cost, the tasks filtered
page by page, and a wait for a pass, a queue or the swarm to settle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .._errors import NotFound, TaskDataDamaged
from .._models import Task, TaskCosts, TaskStatus
from .._printable import printable
from .._usage import Money, unpriced_note
from .._validate import MAX_PASS_WAIT_S
from ._app import App, json_option, pass_app
from ._common import (
    Listing,
    Seconds,
    add_row,
    complete_queues,
    listing,
    make_table,
    never_posted,
    nothing_matched,
    paging_options,
    print_table,
    short,
    stream_all,
    task_json,
)
from ._tasks import render_task, task, task_id_arg

STATUSES = tuple(s.value for s in TaskStatus)


def _cost_pairs(spent: TaskCosts) -> list[tuple[str, Any]]:
    """What every agent run on the task cost (``Swarm.task_costs``), part by part, then in
    all: its failed runs, its finding, the findings reported on it after it was settled
    (their runs cost too), as ``swarm lineage TASK_ID`` counts them; nothing when no run's
    cost was recorded."""
    total = spent.total
    parts = [("failed runs cost", spent.task.failed_usage)]
    if spent.synthesis is not None:  # (a pipeline's synthesizer task: its finding says so)
        parts.append((f"synthesis {spent.synthesis.id} cost", spent.synthesis.usage))
    elif spent.finding is not None:
        parts.append(("finding cost", spent.finding.usage))
    parts += [(f"superseded {f.id} cost", f.usage) for f in spent.superseded]
    recorded = [(label, usage) for label, usage in parts if usage is not None]
    if not recorded:
        return []
    costs = [usage.cost_usd for _, usage in recorded]
    money = Money()
    pairs: list[tuple[str, Any]] = [(label, money.line(u)) for label, u in recorded]
    covers = spent.covers()
    if not spent.searched_all:
        covers += (
            f", those looked for among the first {spent.scan_limit:,} findings of its pass "
            "(else queue) reported since"
        )
    note = unpriced_note(*spent.runs())  # (as a pass's cost says it)
    pairs.append(("cost in all", f"{money.line(total, costs)}{note} ({covers})"))
    return pairs


@task.command()
@task_id_arg
@json_option
@pass_app
def show(app: App, task_id: str) -> None:
    """Show everything about TASK_ID, with what every agent run on it cost (its failed runs,
    its finding, findings reported on it after it was settled). A task whose data is stored
    damaged is shown without it (its status, dead reason, counts...), with a warning on
    stderr naming the repair (JSON: no "data", a "data_damaged" message)."""
    try:
        if app.json:  # the record alone: what every run on it cost is read for the table only
            found = app.swarm.get_task(task_id)
            record = task_json(found)
            lost = _lost_result(app, found)
            app.emit(record if lost is None else {**record, "finding_lost": lost})
            return
        spent = app.swarm.task_costs(task_id)  # the task, and what every run on it cost
    except TaskDataDamaged as damaged:
        _show_damaged(app, damaged)
        return
    lost = _finding_lost(app, spent)
    render_task(app, spent.task, costs=_cost_pairs(spent), finding_lost=lost is not None)
    if lost is not None:
        click.echo(printable(f"warning: {lost}"), err=True)


def _lost_result(app: App, task: Task) -> str | None:
    """``_finding_lost`` of ``task`` as ``--json`` reads it: its finding looked for alone
    (one round trip), and only when it is not stored, whether a late report holds its
    result (the core's ``finding_lost``)."""
    return _lost_words(app, task.id, app.swarm.finding_lost(task))


def _finding_lost(app: App, spent: TaskCosts) -> str | None:
    """What to say of a completed task whose finding is no longer stored (deleted by hand):
    its result is lost, as the doctor's findings_lost row says it, with what to do; None
    when it is stored, or a late report of the task (kept superseded) holds its result (the
    doctor names no such task either: the core's ``finding_lost``, the doctor's rule)."""
    return _lost_words(app, spent.task.id, app.swarm.finding_lost(spent))


def _lost_words(app: App, task_id: str, finding_id: str | None) -> str | None:
    """The warning of task ``task_id`` whose result, finding ``finding_id``, is lost (None:
    it is not)."""
    if finding_id is None:
        return None
    from .._durability import repair_cli
    from ._doctor import FINDINGS_LOST, LOST_FINDING_REDO, lost_finding_cleared

    # (the role of this login is not known here: the one rule says who, repair_cli)
    repair = repair_cli(app.swarm.settings)
    return (
        f"task {task_id} completed with finding {finding_id}, which is no longer stored "
        f"(deleted by hand): its result is lost (swarm doctor names it: {FINDINGS_LOST}); "
        f"{LOST_FINDING_REDO}. {lost_finding_cleared(app.swarm.keys, repair.cli, repair.by)}"
    )


def _show_damaged(app: App, damaged: TaskDataDamaged) -> None:
    """The record of a task whose data is stored damaged (``TaskDataDamaged``: the core does
    not hand such data out), and the error, which names the repair: its record is what one
    reads it for (a dead task's reason above all)."""
    record = task_json(damaged.task)
    record.pop("data", None)  # (not its data: None would read as a task posted without any)

    def human() -> None:
        render_task(app, damaged.task)
        click.echo(printable(f"warning: {damaged}"), err=True)

    app.emit({**record, "data_damaged": str(damaged)}, human)


# A filtered listing call looks at up to 5,000 tasks (list_tasks), so a selective filter in a
# big swarm gets short or empty pages with a cursor. The table asks again, up to this many
# calls, until it has --limit rows: 4 claimed tasks among 20,000 are shown, not an empty
# table and a cursor (docs/cli.md).
TABLE_CALLS = 20


@task.command(
    "list",
    help="List tasks, oldest first, with filters. The table fills up to --limit rows, asking "
    f"again (up to {TABLE_CALLS} calls) while a filter matched few of the tasks one call looks "
    "at.",
)
@click.option("--queue", shell_complete=complete_queues, help="Only the tasks of this queue.")
@click.option("--status", type=click.Choice(STATUSES), help="Only the tasks in this status.")
@click.option("--pass", "pass_name", help="Only the tasks of this pass.")
@paging_options
@json_option
@pass_app
def list_(
    app: App,
    queue: str | None,
    status: str | None,
    pass_name: str | None,
    limit: int,
    cursor: str | None,
    all_: bool,
) -> None:
    """``swarm task list`` (its help: the decorator's, which names ``TABLE_CALLS``)."""

    def fetch(cur: str | None, size: int) -> Any:
        return app.swarm.list_tasks(
            queue=queue, status=status, pass_name=pass_name, cursor=cur, limit=size
        )

    filters = [("--queue", queue), ("--status", status), ("--pass", pass_name)]
    if all_ and not app.json:  # every page printed as it comes: 50,000 rows start at once
        if not stream_all(app, fetch, _COLUMNS, _row):
            unknown = never_posted(app, [queue]) if queue is not None else None
            if unknown is None:
                _nothing_matched(filters, None)
            else:
                click.echo(printable(f"note: {unknown}"), err=True)
        return
    if app.json or all_:  # --json: one call's page, short or not, as the API gives it
        found = listing(fetch, limit, cursor, all_)
    else:
        found = _table_rows(fetch, limit, cursor)
    # Nothing listed for a queue no task was ever posted to (a misspelt name): a note, as
    # `findings --pass` says it of a pass; the listing stands.
    unknown = never_posted(app, [queue]) if queue is not None and not found.items else None

    def human() -> None:
        if found.items:
            table = make_table(*_COLUMNS)
            for t in found.items:
                add_row(table, *_row(t))
            print_table(app, table)
        elif found.cursor:
            click.echo(
                f"no task matched among those the {TABLE_CALLS} calls looked at; the listing "
                "goes on after them (or list them all with --all):",
                err=True,
            )
        elif unknown is None:  # (else the note says why)
            _nothing_matched(filters, cursor)
        found.footer()
        if unknown is not None:
            click.echo(printable(f"note: {unknown}"), err=True)

    listed = found.to_json([task_json(t) for t in found.items])
    app.emit({**listed, "notes": [unknown]} if unknown is not None else listed, human)


_COLUMNS = ("id", "queue", "status", "failed", "abandoned", "pass", "worker", "description")


def _row(t: Task) -> tuple[Any, ...]:
    """The cells of task ``t`` under ``_COLUMNS``."""
    return (
        t.id,
        t.queue,
        t.status,
        f"{t.failures}/{t.max_attempts}",
        f"{t.abandons}/{t.max_abandons}",
        short(t.pass_name, 24) if t.pass_name else None,
        t.worker,
        short(t.description, 60),
    )


def _nothing_matched(filters: list[tuple[str, str | None]], cursor: str | None) -> None:
    """Say on stderr that the listing found no task (rather than an empty table)."""
    said = nothing_matched("task", [*filters, ("after --cursor", cursor)])
    click.echo(printable(said), err=True)


def _table_rows(fetch: Callable[[str | None, int], Any], limit: int, cursor: str | None) -> Listing:
    """Up to ``limit`` tasks from ``cursor``, in at most ``TABLE_CALLS`` calls."""
    items: list[Task] = []
    corrupt: list[str] = []
    for _ in range(TABLE_CALLS):
        page = fetch(cursor, limit - len(items))
        items += page.items
        corrupt += page.corrupt
        cursor = page.cursor
        if cursor is None or len(items) >= limit:
            break
    return Listing(items, cursor, corrupt)


@task.command(short_help="Wait until a pass, queue or the swarm is settled.")
@click.option("--pass", "pass_name", help="Wait for this pass.")
@click.option("--queue", shell_complete=complete_queues, help="Wait for this queue.")
@click.option(
    "--timeout",
    "timeout_s",
    type=Seconds(most=MAX_PASS_WAIT_S),
    default=60,
    show_default=True,
    help="Seconds before giving up (exit 3).",
)
@json_option
@pass_app
def wait(app: App, pass_name: str | None, queue: str | None, timeout_s: float) -> None:
    """Block until every task of a pass, a queue, or the swarm is settled (completed, dead or
    cancelled); exit 3 on timeout. A pass or queue no task was ever posted to (a misspelt
    name) is an error naming the passes or queues there are."""
    if pass_name is not None and queue is not None:
        raise click.UsageError("wait for --pass or --queue, not both")
    # (A pass no task was ever posted to is refused by the core: NotFound, exit 1; a queue
    # so here, in the words of `task claim`: either would wait on nothing, misspelt.)
    if queue is not None:
        unknown = never_posted(app, [queue])
        if unknown is not None:
            raise NotFound(unknown)
    stats = app.swarm.wait(pass_name=pass_name, queue=queue, timeout_s=timeout_s)

    def human() -> None:
        what = (
            f"pass {pass_name!r}"
            if pass_name is not None
            else (f"queue {queue}" if queue is not None else "the swarm")
        )
        counts = ", ".join(f"{k} {v}" for k, v in stats.items() if v)
        click.echo(f"{what} settled: {counts or 'no tasks'}")

    app.emit(stats, human)
