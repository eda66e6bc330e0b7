"""``swarm task``: the group, its posting commands (post, configure), and a task as a table
(``render_task``, which the other commands of the group print too).

The group's other commands are in their own modules, imported only when one of them runs
(``TASK_MODULES``, as cli/__init__'s COMMAND_MODULES for ``main``): ``_task_work`` (claim,
renew, report, fail, release, cancel, requeue), ``_task_views`` (show, list, wait)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .._hints import REQUEUE_TASK, said_of
from .._models import Task, TaskStatus
from .._printable import printable
from .._usage import usage_line
from .._validate import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF_S,
    DEFAULT_TASK_LEASE_S,
    MAX_ATTEMPTS,
    MAX_DELAY_S,
    MAX_DESCRIPTION_CHARS,
    MAX_LEASE_S,
    MAX_PRIORITY,
    MAX_RETRY_BACKOFF_S,
    MIN_LEASE_S,
)
from ._app import App, _Group, json_option, main, pass_app
from ._common import (
    MAX_DATA_FILE_BYTES,
    Seconds,
    agent_option_default,
    complete_agents,
    complete_queues,
    complete_tasks,
    kv_table,
    loads_json,
    never_posted,
    one_stdin,
    parse_json,
    print_table,
    read_bytes,
    read_text,
    task_json,
    utf8_text,
    when,
)

# A lease, in seconds: the core's bounds (from 1 ms to 30 days, as the Python API and
# --jsonl's lease_s take), a value outside them a usage error (exit 2).
LEASE_SECONDS = Seconds(least=MIN_LEASE_S, most=MAX_LEASE_S)


# A task's --max-attempts and --max-abandons: the core's bound, said by click (1<=x<=1000).
ATTEMPTS = click.IntRange(1, MAX_ATTEMPTS)

task_id_arg = click.argument("task_id", metavar="TASK_ID", shell_complete=complete_tasks)


@main.group()
def task() -> None:
    """The work queue: post tasks, claim one, report its finding."""


# Which module adds which of ``task``'s other commands (as COMMAND_MODULES does ``main``'s):
# an agent's `swarm task claim` or `report` imports the worker's commands alone.
TASK_MODULES: dict[str, tuple[str, ...]] = {
    "_task_work": ("cancel", "claim", "fail", "release", "renew", "report", "requeue"),
    "_task_views": ("list", "show", "wait"),
}
assert isinstance(task, _Group)  # (as main's subgroups are: the type checker is told)
task.lazy = {
    name: f"{__package__}.{module}" for module, names in TASK_MODULES.items() for name in names
}


def _limit(count: int, limit: int, name: str, settled: bool) -> str:
    """A count against its limit: "1 of at most 3 (max_attempts: dead-lettered at the
    limit)", what the limit does said only while the task is open (a completed task's "1 of
    at most 3" is no step towards a dead letter)."""
    then = "" if settled else ": dead-lettered at the limit"
    return f"{count} of at most {limit} ({name}{then})"


def render_task(
    app: App,
    t: Any,
    *,
    headline: str | None = None,
    costs: Sequence[tuple[str, Any]] = (),
    finding_lost: bool = False,
) -> None:
    """``t`` as a table; ``costs``: its cost rows (``_task_views._cost_pairs``) in place of what its
    failed runs cost alone; ``finding_lost``: its finding is no longer stored (its row says
    so: ``_task_views._finding_lost`` says what to do)."""
    if headline:
        click.echo(printable(headline))
    pairs: list[tuple[str, Any]] = [
        ("id", t.id),
        ("queue", t.queue),
        ("status", t.status),
    ]
    since = t.status_since  # None: a record stored before the time of every status was kept
    if since is not None:
        pairs.append(("status since", when(since)))
    pairs += [
        ("pass", t.pass_name),
        ("description", t.description),
    ]
    if t.data is not None:
        pairs.append(("data", t.data))
    # Three counts that people read as one: claims (the record's `attempts`) counts every
    # lease taken; failures and abandons each count against their own limit (docs/tasks.md).
    settled = TaskStatus(t.status).settled
    pairs += [
        ("claims", t.attempts),
        ("failures", _limit(t.failures, t.max_attempts, "max_attempts", settled)),
        ("abandons", _limit(t.abandons, t.max_abandons, "max_abandons", settled)),
    ]
    spent = t.failed_usage
    if costs:
        pairs += costs
    elif spent is not None:  # what the failed attempts cost, as their agents' CLIs said
        pairs.append(("failed runs cost", usage_line(spent)))
    pairs += [
        ("token", t.token),
        ("priority", t.priority),
        ("lease_s", t.lease_s),
        ("parent", t.parent),
        ("worker", t.worker),
    ]
    if t.lease_deadline:
        pairs.append(("lease until", when(t.lease_deadline)))
    pairs.append(("created", when(t.created_at)))
    for label, value in (
        ("not before", t.not_before),
        ("completed", t.completed_at),
    ):
        if value:
            pairs.append((label, when(value)))
    finding = t.finding_id
    if finding and finding_lost:
        finding = f"{finding} (no longer stored: its result is lost, see below)"
    for label, value in (
        ("dedupe key", t.dedupe_key),
        ("finding", finding),
        ("last error", t.last_error),
        ("dead reason", t.dead_reason),
    ):
        if value:
            pairs.append((label, value))
    print_table(app, kv_table(pairs))


@task.command(short_help="Post a task (or many with --jsonl).")
@click.argument("queue", shell_complete=complete_queues)
@click.argument("description", required=False)
@click.option("--data", "data_arg", help="The task's data: JSON, @file or - (stdin).")
@click.option("--pass", "pass_name", help="The pass the task belongs to (any text).")
@click.option(
    "--priority",
    type=click.IntRange(-MAX_PRIORITY, MAX_PRIORITY),
    default=0,
    show_default=True,
    help="Higher first.",
)
@click.option(
    "--max-attempts",
    type=ATTEMPTS,
    default=DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    help="Failures (fail, a crashed agent) before the task is dead-lettered.",
)
@click.option(
    "--max-abandons",
    type=ATTEMPTS,
    help="Expired leases (the worker vanished) before the task is dead-lettered "
    "[default: the queue's, see task configure, else 10].",
)
@click.option(
    "--lease",
    "lease_s",
    type=LEASE_SECONDS,
    default=int(DEFAULT_TASK_LEASE_S),
    show_default=True,
    help="Seconds a claim lasts unless renewed.",
)
@click.option(
    "--delay",
    type=Seconds(most=MAX_DELAY_S),  # (the core's bound: a century, as --jsonl's delay_s)
    help="Claimable only after this many seconds.",
)
@click.option("--dedupe", "dedupe_key", help="Posting the same key twice yields one task.")
@click.option(
    "--parent",
    default=agent_option_default,
    shell_complete=complete_agents,
    help="The shard that owns the context workers read (default: SWARM_AGENT).",
)
@click.option(
    "--jsonl",
    "jsonl",
    metavar="FILE|-",
    help="Post many tasks: one JSON object per line (description, data, priority, ...); "
    "the options above are defaults.",
)
@json_option
@pass_app
def post(
    app: App,
    queue: str,
    description: str | None,
    data_arg: str | None,
    pass_name: str | None,
    priority: int,
    max_attempts: int,
    max_abandons: int | None,
    lease_s: float,
    delay: float | None,
    dedupe_key: str | None,
    parent: str | None,
    jsonl: str | None,
) -> None:
    """Post a task to QUEUE (DESCRIPTION may be - for stdin), or many with --jsonl."""
    one_stdin(("DESCRIPTION", description), ("--jsonl", jsonl), ("--data", data_arg))
    data = (
        parse_json(
            data_arg,
            app,
            what="--data",
            thing="the task's data as JSON",
            max_bytes=MAX_DATA_FILE_BYTES,
        )
        if data_arg is not None
        else None
    )
    defaults: dict[str, Any] = {
        "queue": queue,
        "pass_name": pass_name,
        "priority": priority,
        "max_attempts": max_attempts,
        "max_abandons": max_abandons,
        "lease_s": lease_s,
        "delay_s": delay or None,  # counted on the server's clock
        "parent": parent,
    }
    if jsonl is not None:
        if description is not None:
            raise click.UsageError("give either DESCRIPTION or --jsonl, not both")
        if dedupe_key is not None:
            # One key names one task: as a default it would fold the whole file into its
            # first task.
            raise click.UsageError(
                '--dedupe names one task: with --jsonl, put "dedupe_key" in each line that '
                "needs one"
            )
        lines = _jsonl_specs(jsonl, app)
        # A line's own not_before wins over the default delay (the core takes one of them).
        specs = [
            {**defaults, **({"delay_s": None} if "not_before" in spec else {}), **spec}
            for _, spec in lines
        ]
        if data is not None:
            for spec in specs:
                spec.setdefault("data", data)
        ids = [app.swarm.new_task_id() for _ in specs]
        labels = [f"line {number}" for number, _ in lines]
        tasks = app.swarm.post_tasks(specs, task_ids=ids, labels=labels)

        def human() -> None:
            for task_id, t in zip(ids, tasks, strict=True):
                click.echo(_posted_line(t, task_id))

        app.emit({"items": [task_json(t) for t in tasks]}, human)
        return
    if description is None:
        raise click.UsageError("missing DESCRIPTION (or --jsonl FILE)")
    description = read_text(
        description,
        app,
        what="DESCRIPTION",
        thing="the task's description",
        max_chars=MAX_DESCRIPTION_CHARS,
    )
    task_id = app.swarm.new_task_id()
    t = app.swarm.post_task(
        queue,
        description,
        data,
        pass_name=pass_name,
        priority=priority,
        max_attempts=max_attempts,
        lease_s=lease_s,
        delay_s=defaults["delay_s"],
        dedupe_key=dedupe_key,
        parent=parent,
        max_abandons=max_abandons,
        task_id=task_id,
    )
    app.emit(task_json(t), lambda: click.echo(_posted_line(t, task_id)))


def _posted_line(t: Task, task_id: str) -> str:
    """What a post did: a task posted under the id it was given is new; any other is the
    task its dedupe key found, posted before, and this post's values were not applied."""
    if t.id == task_id:
        return f"posted {t.id} to {t.queue}"
    found = f"already posted as {t.id} (dedupe key {t.dedupe_key})"
    # A task found that will never run (again) by itself is said so: the post ran nothing.
    if t.status is TaskStatus.DEAD:  # (only a dead task is requeued: lua/task_update.lua)
        return printable(
            f"{found}, now dead: nothing posted; requeue it to run it again "
            f"{said_of(REQUEUE_TASK, t.id)}"
        )
    if t.status is TaskStatus.CANCELLED:  # (never requeued: another key posts it anew)
        return printable(
            f"{found}, now cancelled: nothing posted; post it with another dedupe key to run "
            "it again"
        )
    return printable(f"{found}: nothing posted")


def _jsonl_specs(source: str, app: App) -> list[tuple[int, dict[str, Any]]]:
    """The tasks of a --jsonl input, each with its line number (blank lines skipped)."""
    raw = read_bytes(source, app, what="--jsonl", thing="the tasks (one JSON object per line)")
    specs: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(utf8_text(raw, source, what="--jsonl").splitlines(), 1):
        if not line.strip():
            continue
        spec = loads_json(line, what="--jsonl", where=f"line {number} ")
        if not isinstance(spec, dict):
            raise click.BadParameter(f"line {number} is not a JSON object", param_hint="--jsonl")
        specs.append((number, spec))
    if not specs:
        raise click.BadParameter("no task in the input", param_hint="--jsonl")
    return specs


@task.command(short_help="Set a queue's defaults for the tasks posted to it.")
@click.argument("queue", shell_complete=complete_queues)
@click.option(
    "--max-abandons",
    type=ATTEMPTS,
    help="Expired leases (the worker vanished) a task survives before it is dead-lettered.",
)
@click.option(
    "--description",
    help="What the queue's tasks are for (swarm a2a shows it as the queue's skill).",
)
@click.option(
    "--retry-backoff",
    type=Seconds(most=MAX_RETRY_BACKOFF_S),
    metavar="SECONDS",
    help="The wait after a task's first failure before it may run again, doubled at each "
    f"further failure up to {MAX_RETRY_BACKOFF_S:g} s (0: at once)  "
    f"[default: {DEFAULT_RETRY_BACKOFF_S:g}].",
)
@json_option
@pass_app
def configure(
    app: App,
    queue: str,
    max_abandons: int | None,
    description: str | None,
    retry_backoff: float | None,
) -> None:
    """Set QUEUE's defaults for the tasks posted to it from now on (a task's own value wins),
    its description and its retry backoff (from the next failure on); without an option,
    show them."""
    settings = app.swarm.configure_queue(
        queue, max_abandons=max_abandons, description=description, retry_backoff_s=retry_backoff
    )
    # A queue is configured before its first post too: a note, not a refusal, where a
    # misspelt name sets defaults no task will ever read (stderr: --json's stdout stands).
    unknown = never_posted(app, [queue])
    if unknown is not None:
        click.echo(printable(f"note: {unknown}; its settings are kept all the same"), err=True)

    def human() -> None:
        click.echo(f"{queue}: max_abandons {settings['max_abandons']}")
        if "description" in settings:
            click.echo(f"{queue}: description {printable(settings['description'])}")
        if "retry_backoff_s" in settings:
            click.echo(f"{queue}: retry_backoff {settings['retry_backoff_s']:g} s")

    app.emit({"queue": queue, **settings}, human)
