"""``swarm pipeline ...``: the seed's multi-pass method run from a plan file."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._errors import SwarmError
from .._models import RetiredQuestions
from .._printable import printable
from .._validate import MAX_NAME, check_name
from ._app import App, json_option, main, pass_app
from ._common import (
    Seconds,
    add_row,
    make_table,
    print_table,
    read_bytes,
    short,
    signals,
    writable_output,
)

if TYPE_CHECKING:
    # The pipeline and rich are imported by the command that uses them: `swarm --help`
    # imports this module.
    from rich.live import Live

    from .._pipeline import Pipeline, Plan
    from .._pipeline.retiring import PipelineRetired


@main.group(short_help="Run the passes of a plan file: workers, planner, synthesizer.")
def pipeline() -> None:
    """Passes of tasks, a worker pool, a planner and a synthesizer, from a plan file."""


def plan_json(plan: Plan) -> dict[str, Any]:
    """The checked plan as JSON (paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data: dict[str, Any] = plain(dataclasses.asdict(plan))
    return data


# A plan file that is missing, or a directory, is a usage error (exit 2), found by click.
_PLAN_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
# The longest of the suffixes a run adds to its --worker prefix (PREFIX-pipeline holds the
# run, PREFIX-planner and PREFIX-synthesizer claim, the pool's slot N is PREFIX-N).
_LONGEST_ROLE = "-synthesizer"


def _load_plan(app: App, plan_file: Path, url_env: str | None = None) -> Plan:
    """The checked plan of ``plan_file`` and its agents' programs (its warnings said on
    stderr: a script path that only exists from another folder), read to the CLI's input
    bound (a device or pipe that never ends, /dev/zero, is refused there, not read until
    memory runs out); not UTF-8: a usage error, as any unreadable input. ``url_env``: the
    ``--worker-url-env`` of a run or a check, checked with the plan (``parse_plan``), its
    URL against the server of ``app``'s."""
    from .._pipeline import parse_plan
    from .._pipeline.plan import plan_text

    data = read_bytes(str(plan_file), what="PLAN_FILE", thing="the plan")
    try:
        text = plan_text(data)
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"{printable(str(plan_file))} is not UTF-8 text (byte {exc.start:,} is not): "
            "save it as UTF-8",
            param_hint="PLAN_FILE",
        ) from None
    plan = parse_plan(
        text, plan_file.resolve(), programs=True, url_env=url_env, settings=app.settings
    )
    for warning in plan.warnings:  # (on stderr: stdout holds the check, or its JSON)
        click.echo(warning, err=True)
    return plan


class _Budget(click.types.FloatParamType):
    """A budget in USD, refused (exit 2) as the plan's ``max_cost_usd`` is (``budget_usd``:
    one rule): ``nan`` and ``inf`` are no budget, and would turn it off silently."""

    name = "usd"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from .._errors import ValidationError
        from .._pipeline.plan import budget_usd

        try:
            return budget_usd(float(value))
        except (TypeError, ValueError, ValidationError) as exc:
            rule = str(exc) if isinstance(exc, ValidationError) else "must be a number"
            self.fail(f"{value!r}: {rule}, as the plan's max_cost_usd", param, ctx)


# The agents' URL: ``run`` takes it, and ``check`` checks it as ``run`` would (``_load_plan``).
_worker_url_env = click.option(
    "--worker-url-env",
    "url_env",
    metavar="NAME",
    help="The environment variable holding a worker user's Redis URL (of the run's own "
    "server), which the agents the run starts reach the swarm with (overrides the plan's "
    "[workers] url_env; default: the run's own URL).",
)


@pipeline.command("check")
@click.argument("plan_file", type=_PLAN_FILE)
@_worker_url_env
@json_option
@pass_app
def pipeline_check(app: App, plan_file: Path, url_env: str | None) -> None:
    """Check PLAN_FILE without running anything: every problem with its key and line, and
    every agent command whose program is not found."""
    from .._pipeline.plan import unenforced_budget

    # Every problem at once: the plan's and its agents' programs' (which a run checks too,
    # before anything runs), and the agents' URL a run given --worker-url-env would use.
    plan = _load_plan(app, plan_file, url_env)
    warning = unenforced_budget(plan)
    if warning is not None:  # (on stderr: stdout holds the check, or its JSON)
        click.echo(warning, err=True)

    def human() -> None:
        click.echo(f"{plan.path}: pipeline {plan.name!r} is a valid plan")
        table = make_table("pass", "context", "tasks")
        for p in plan.passes:
            tasks = f"planned (at most {p.max_tasks})" if p.planned else str(len(p.tasks))
            add_row(table, short(p.name, 50), p.context, tasks)
        print_table(app, table)
        for ctx in plan.contexts:
            click.echo(f"context {ctx.owner}: {len(ctx.files)} file(s)")

    app.emit(plan_json(plan), human)


@pipeline.command("run")
@click.argument("plan_file", type=_PLAN_FILE)
@click.option("--worker", help="Worker name prefix of the pool (slot N claims as PREFIX-N).")
@click.option("--max-cost-usd", type=_Budget(), help="The budget in USD (overrides the plan's).")
@click.option(
    "--max-tasks", type=click.IntRange(1), help="Task claims allowed (overrides the plan's)."
)
@_worker_url_env
@click.option(
    "--restart",
    is_flag=True,
    help="Start over under the same name (a new run; the old run's records are kept).",
)
@click.option(
    "--wait",
    "wait_s",
    type=Seconds(),
    default=0,
    help="When another run drives this pipeline, wait up to S seconds for it to end, then "
    "resume (default: refuse at once).",
)
@json_option
@pass_app
def pipeline_run(
    app: App,
    plan_file: Path,
    worker: str | None,
    max_cost_usd: float | None,
    max_tasks: int | None,
    url_env: str | None,
    restart: bool,
    wait_s: float,
) -> None:
    """Run PLAN_FILE: publish its contexts, then each pass (tasks, workers, synthesis).

    Run it again after it was stopped or killed: it resumes where it stopped (no task is
    posted twice, a pass already synthesised is not rerun). One run drives a pipeline at a
    time: while one lives, another is refused at once (or waits, with --wait); a killed
    run's hold ends by itself within 30 s. Ctrl-C once: let the running agents finish, then
    stop; twice: kill them (their tasks go back to the queue). When a budget (max_cost_usd,
    max_tasks) is spent, no task is claimed, the running ones finish and the run stops:
    raise the budget and run it again.
    """
    from rich.live import Live
    from rich.text import Text

    from .._pipeline import Pipeline
    from .._pipeline.report import bookkeeping_retired, read_passes, status_json

    plan = _load_plan(app, plan_file, url_env)  # (refused as check refuses it, all at once)
    if worker is not None:  # (refused before the run holds the pipeline)
        check_name("worker", worker, max_len=MAX_NAME - len(_LONGEST_ROLE))
    if max_cost_usd is not None:
        plan = dataclasses.replace(plan, max_cost_usd=max_cost_usd)
    if max_tasks is not None:
        plan = dataclasses.replace(plan, max_tasks=max_tasks)
    started = time.monotonic()

    live_console = app.err if app.err.is_terminal and not app.json else None
    live: Live | None = None

    def say(line: str) -> None:  # progress on stderr, --json or not (stdout holds the JSON)
        if live is not None:
            live.console.print(printable(line), markup=False, highlight=False)
        else:
            click.echo(printable(line), err=True)

    def tick() -> None:
        if live is not None:
            live.update(Text(run.progress()))

    run = Pipeline(
        app.swarm, plan, say=say, worker_prefix=worker, tick=tick, restart=restart,
        wait_s=wait_s,
    )  # fmt: skip
    interrupted: list[str] = []  # the signal that stopped the run, if one did
    error: SwarmError | None = None
    with _signals(run, interrupted), ExitStack() as stack:
        if live_console is not None:  # a live line: the pass, its tasks, the cost so far
            live = stack.enter_context(
                Live(Text(""), console=live_console, refresh_per_second=8, transient=True)
            )
        try:
            run.run()
        except SwarmError as exc:  # reported after the status, as any stop is (exit 1)
            if not run.began:
                raise  # refused before it began (another run drives it): the error alone
            error = exc
    if not run.began:  # stopped while waiting for another run
        click.echo(f"pipeline {plan.name}: stopped while waiting; nothing was run", err=True)
        raise click.exceptions.Exit(1)
    plan = run.plan  # the run it was (resumed, or new with --restart)
    try:
        summary = status_json(
            plan, read_passes(app.swarm, plan, retired=True),
            bookkeeping=bookkeeping_retired(app.swarm, plan),
        )  # fmt: skip
    except SwarmError:
        if error is not None:  # (the swarm unreachable, most often): the first error alone
            raise error from None
        raise
    stopped_by = run.budget_reason
    if error is not None:
        stopped_by = str(error)
    elif stopped_by is None and interrupted and not summary["done"]:
        stopped_by = f"{interrupted[0]}: run it again to resume"
    summary["resumed"] = [r.name for r in run.results if r.resumed]
    summary["stopped_by"] = stopped_by
    summary["error"] = type(error).__name__ if error is not None else None
    summary["plan_changes"] = run.plan_changes
    summary["duration_s"] = round(time.monotonic() - started, 3)

    def human() -> None:
        _status_table(app, summary)
        spent = _spent(summary)
        if run.budget_reason:
            state = f"stopped: {run.budget_reason}"
        elif error is not None:
            state = f"stopped by the error that follows, {spent}"
        elif interrupted and not summary["done"]:  # (what stopped_by says)
            state = f"stopped: {interrupted[0]}, {spent}; run it again to resume"
        elif not summary["done"]:
            state = f"stopped, {spent}; run it again to resume"
        else:
            state = f"done, {spent}"
        click.echo(f"pipeline {plan.name}: {state}")

    app.emit(summary, human)
    if error is not None:
        raise error  # one line on stderr (JSON with --json), exit 1
    if not summary["done"]:
        raise click.exceptions.Exit(1)


def _tokens_cell(figures: dict[str, Any]) -> str:
    """Tokens in (the cached ones of them) / out, as the status tables show them."""
    from .._pipeline.report import tokens

    cached = figures["cached_in"]
    cached_part = f" ({tokens(cached)} cached)" if cached is not None else ""
    return f"{tokens(figures['tokens_in'])}{cached_part}/{tokens(figures['tokens_out'])}"


def _status_table(app: App, status: dict[str, Any]) -> None:
    """Per pass, then the totals; then the cost per model (as ``pipeline report``'s); then
    what ``swarm retire`` took of a pass, which its row and the totals no longer count."""
    from .._models import TaskStatus
    from .._pipeline.report import (
        SETTLED,
        bookkeeping_note,
        pass_title,
        retired_note,
        wall_time,
    )
    from .._usage import Money

    money = Money()
    # The tasks settled otherwise than done (dead; cancelled by hand, a column only when
    # some were), then those open.
    others = [s.value for s in SETTLED if s is not TaskStatus.COMPLETED]
    counted_as = [k for k in others if k != TaskStatus.CANCELLED.value or status[k]]
    table = make_table(
        "pass", "posted", TaskStatus.COMPLETED.value, *counted_as, "open", "findings",
        "synthesis", "cost", "failed runs", "tokens in (cached)/out", "wall",
    )  # fmt: skip
    rows = status["passes"]
    for p in rows:
        add_row(
            table, short(pass_title(p), 40), p["posted"], p[TaskStatus.COMPLETED.value],
            *(p[k] for k in counted_as), p["open"], p["findings"], p["synthesis"],
            money(p["cost_usd"]), money(p["failed_cost_usd"]), _tokens_cell(p),
            wall_time(p["wall_s"]) or None,
        )  # fmt: skip
    if len(rows) > 1:  # (one pass: its row is the total)
        add_row(
            table, "total", status["posted"], status[TaskStatus.COMPLETED.value],
            *(status[k] for k in counted_as), status["open"], status["findings"], None,
            money.total([p["cost_usd"] for p in rows], status["cost_usd"]),
            money.total([p["failed_cost_usd"] for p in rows], status["failed_cost_usd"]),
            _tokens_cell(status), None,
        )  # fmt: skip
    print_table(app, table)
    models = status["by_model"]
    if any(v is not None for figures in models.values() for v in figures.values()):
        per_model = make_table("model", "cost", "tokens in (cached)/out")
        for model, figures in sorted(models.items()):
            add_row(per_model, short(model, 60), money(figures["cost_usd"]), _tokens_cell(figures))
        print_table(app, per_model)
    for note in (*(retired_note(p) for p in rows), bookkeeping_note(status)):
        if note:
            click.echo(printable(note))


@pipeline.command("status")
@click.argument("name")
@json_option
@pass_app
def pipeline_status(app: App, name: str) -> None:
    """Per pass of pipeline NAME: tasks posted, completed, dead, cancelled, open; findings;
    the synthesis; cost, tokens in and out, wall time."""
    from .._pipeline.report import bookkeeping_retired, read_passes, status_json, stored_plan

    plan = stored_plan(app.swarm, name)
    status = status_json(
        plan, read_passes(app.swarm, plan, retired=True),
        bookkeeping=bookkeeping_retired(app.swarm, plan),
    )  # fmt: skip

    def human() -> None:
        if plan.question:
            click.echo(printable(f"question: {plan.question}"))
        _status_table(app, status)
        state = "done" if status["done"] else "not finished"
        click.echo(f"pipeline {name}: {state}, {_spent(status)}")

    app.emit(status, human)


def _spent(status: dict[str, Any]) -> str:
    """What the pipeline cost, as its status line ends (the table's total, as shown there,
    and how many runs reported no cost: ``no_cost_note``)."""
    from .._pipeline.report import no_cost_note
    from .._usage import Money

    cost = status["cost_usd"]
    if cost is None:
        return "no agent reported a cost"
    shown = Money().total([p["cost_usd"] for p in status["passes"]], cost)
    spent = f"{shown} spent" if status["done"] else f"{shown} so far"
    return spent + no_cost_note(status)


@pipeline.command("report")
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it here.")
@pass_app
def pipeline_report(app: App, name: str, out: Path | None) -> None:
    """The Markdown report of pipeline NAME: each pass's synthesis with its citations
    resolved to findings (summary, worker, model, sources), dead tasks, cost per pass and
    per model."""
    from .._pipeline.report import (
        bookkeeping_retired,
        read_passes,
        report_markdown,
        stored_plan,
    )

    if out is not None:
        writable_output(str(out), "--out")  # (before the report is read: it takes a while)
    plan = stored_plan(app.swarm, name)
    text = report_markdown(
        plan, read_passes(app.swarm, plan, retired=True),
        bookkeeping=bookkeeping_retired(app.swarm, plan),
    )  # fmt: skip
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:  # (checked before: changed since, or a full disk)
            raise click.BadParameter(
                f"cannot write {out}: {exc.strerror}: pick another path", param_hint="--out"
            ) from None
        click.echo(f"wrote {out}", err=True)


# As ``swarm retire --questions``'s: a minute (what a run that just ended still reads).
_DEFAULT_OLDER_THAN_S = RetiredQuestions.DEFAULT_OLDER_THAN_S


@pipeline.command("retire", short_help="Free the settled bookkeeping of a pipeline's runs.")
@click.argument("name")
@click.option(
    "--older-than", "older_than", type=Seconds(), default=None, metavar="SECONDS",
    help="Only what settled at least this many seconds ago (default "
    f"{_DEFAULT_OLDER_THAN_S:g}; 0 for every settled one).",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@json_option
@pass_app
def pipeline_retire(app: App, name: str, older_than: float | None, dry_run: bool) -> None:
    """Remove the settled bookkeeping of pipeline NAME's runs: the completed, cancelled and
    dead planning and synthesizer tasks of each run, with their findings, and the lease
    task every run leaves but the last (the next run numbers its own from it), the counters
    brought down by as much. Refused while a run drives the pipeline (holds its lease); the
    last run, when not finished, keeps its own (the next run resumes it); a finding a
    synthesis cites stays. The passes' own tasks and findings stay: swarm retire PASS frees
    them."""
    from .._pipeline.retiring import retire_pipeline

    older = _DEFAULT_OLDER_THAN_S if older_than is None else older_than
    done = retire_pipeline(app.swarm, name, older_than_s=older, dry_run=dry_run)
    app.emit(done.as_json(), lambda: click.echo(printable(_retired_line(done))))


def _retired_line(done: PipelineRetired) -> str:
    """What ``pipeline retire`` removed, and what it kept and why."""
    from .._codec import counted

    verb = "would retire" if done.dry_run else "retired"
    kept = [f"{counted(done.total('open'), 'open task')} kept"]
    if done.total("recent"):
        kept.append(f"{done.total('recent'):,} settled more recently kept")
    if done.total("cited"):
        kept.append(f"{done.total('cited'):,} kept: a synthesis cites their finding")
    if done.total("other"):
        # (a planning task a run from before posted with its pass name: the pass's; a
        # synthesizer task a run from before posted with its pass's context: a shard's)
        kept.append(
            f"{counted(done.total('other'), 'task')} posted with a pass or context kept: "
            "swarm retire PASS frees a pass's"
        )
    if done.total("corrupt"):
        kept.append(f"{counted(done.total('corrupt'), 'record')} stored unreadable kept")
    if done.lease_kept is not None:
        kept.append("the last lease task kept: the next run numbers its own from it")
    if done.unfinished is not None:
        kept.append(
            f"run {done.unfinished} is not finished: its bookkeeping stays for the run that "
            "resumes it"
        )
    # (the records of agent runs no other record held, of the runs retired: they go too)
    runs = ""
    if done.unrecorded:
        runs = f", {counted(done.unrecorded, 'record')} of runs no other record held"
    return (
        f"{verb} the bookkeeping of pipeline {done.name}: {counted(done.total('tasks'), 'task')}, "
        f"{counted(done.total('findings'), 'finding')}{runs} ({'; '.join(kept)})"
    )


@main.command(short_help="The lineage of a synthesis, finding, task or pipeline.")
@click.argument("ident", metavar="ID")
@json_option
@pass_app
def lineage(app: App, ident: str) -> None:
    """The tree behind ID: a synthesis (s-...) -> its cited findings -> each one's task,
    worker, model, attempt, context owner and version, cost and tokens, ending with what the
    synthesis cost in all (its run, its refused or failed runs, its cited findings) and what
    that total leaves out; a finding (f-...) or task (t-...) the same from there (a task
    ending with what every run on it cost: its finding, superseded ones, failed runs); a
    pipeline's name: its passes' syntheses, each pass's whole cost, and the pipeline's."""
    from .._pipeline.lineage import lineage as lineage_tree
    from .._pipeline.lineage import lineage_text

    tree = lineage_tree(app.swarm, ident)
    app.emit(tree, lambda: click.echo("\n".join(printable(line) for line in lineage_text(tree))))


@contextmanager
def _signals(run: Pipeline, interrupted: list[str]) -> Iterator[None]:
    """Ctrl-C: finish the running agents, then stop; again (or SIGTERM, or SIGHUP: the
    terminal closed): stop them now. ``interrupted`` gets what stopped the run."""

    def on_sigint(_signum: int, _frame: Any) -> None:
        hard = run.stopped
        interrupted.append("interrupted (Ctrl-C)")
        run.stop(hard=hard)
        click.echo(
            "stopping now: killing the running agents"
            if hard
            else "stopping after the running agents finish; Ctrl-C again to stop them now",
            err=True,
        )

    def on_sigterm(signum: int, _frame: Any) -> None:  # SIGTERM, or SIGHUP (see ``signals``)
        interrupted.append(f"terminated ({signal.Signals(signum).name})")
        run.stop(hard=True)

    with signals(on_sigint, on_sigterm):
        yield
