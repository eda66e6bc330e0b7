"""``swarm task ...``: post, claim, renew, report, fail, release, cancel, configure, show,
list, wait, requeue."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import click

from .._errors import Conflict, NotFound, SwarmError, ValidationError
from .._hooks import tokens
from .._models import Money, Task, TaskCosts, TaskStatus, Usage, iso, unknown_pass, usage_line
from .._printable import printable
from .._validate import (
    DEFAULT_RETRY_BACKOFF_S,
    MAX_CLAIM_BATCH,
    MAX_LEASE_S,
    MAX_PASS_WAIT_S,
    MAX_RETRY_AFTER_S,
    MAX_RETRY_BACKOFF_S,
    MAX_WAIT_S,
)
from ._app import EXIT_EMPTY, App, json_option, main, pass_app
from ._common import (
    Listing,
    Seconds,
    add_row,
    agent_option_default,
    complete_agents,
    complete_queues,
    complete_tasks,
    kv_table,
    listing,
    loads_json,
    make_table,
    paging_options,
    parse_json,
    print_table,
    read_bytes,
    read_text,
    short,
    task_json,
    when,
)

STATUSES = tuple(s.value for s in TaskStatus)
LEASE_SECONDS = click.IntRange(1, int(MAX_LEASE_S))  # a lease the core takes


def _default_worker() -> str:
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return agent_option_default() or f"worker-{host[:40] or 'host'}"


task_id_arg = click.argument("task_id", metavar="TASK_ID", shell_complete=complete_tasks)
token_option = click.option(
    "--token",
    required=True,
    help="The lease's token (the `token` printed by `task claim`: ATTEMPT.SECRET).",
)
usage_option = click.option(
    "--usage",
    "usage_arg",
    metavar="JSON|@FILE|-",
    help='What the agent run cost, any of {"cost_usd", "tokens_in", "tokens_out", '
    '"cached_in", "session_id", "models", "source"} (tokens_in: every input token, '
    "cached_in: those of them read from a prompt cache).",
)


def _usage(app: App, value: str | None) -> Usage | None:
    """The run's usage given with --usage; a usage error (exit 2) when it is not one."""
    if value is None:
        return None
    data = parse_json(value, app, what="--usage", thing='the usage\'s JSON ({"cost_usd": ...})')
    try:
        return Usage.parse(data)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--usage") from None


@main.group()
def task() -> None:
    """The work queue: post tasks, claim one, report its finding."""


def _limit(count: int, limit: int, name: str, settled: bool) -> str:
    """A count against its limit: "1 of at most 3 (max_attempts: dead-lettered at the
    limit)", what the limit does said only while the task is open (a completed task's "1 of
    at most 3" is no step towards a dead letter)."""
    then = "" if settled else ": dead-lettered at the limit"
    return f"{count} of at most {limit} ({name}{then})"


def _cost_pairs(spent: TaskCosts) -> list[tuple[str, Any]]:
    """What every agent run on the task cost (``Swarm.task_costs``), part by part, then in
    all: its failed runs, its finding, the findings reported on it after it was settled
    (their runs cost too), as ``swarm lineage TASK_ID`` counts them; nothing when no run's
    cost was recorded."""
    total = spent.total
    parts = [("failed runs cost", spent.task.failed_usage)]
    if spent.finding is not None:
        parts.append(("finding cost", spent.finding.usage))
    parts += [(f"superseded {f.id} cost", f.usage) for f in spent.superseded]
    recorded = [(label, usage) for label, usage in parts if usage is not None]
    if not recorded:
        return []
    costs = [usage.cost_usd for _, usage in recorded]
    money = Money([(costs, total["cost_usd"])])
    pairs: list[tuple[str, Any]] = [(label, money.line(u)) for label, u in recorded]
    covers = spent.COVERS
    if not spent.searched_all:
        covers += (
            f", those looked for among the first {spent.scan_limit:,} findings of its pass "
            "(else queue) reported since"
        )
    pairs.append(("cost in all", f"{money.line(total, costs)} ({covers})"))
    return pairs


def render_task(
    app: App, t: Any, *, headline: str | None = None, costs: Sequence[tuple[str, Any]] = ()
) -> None:
    """``t`` as a table; ``costs``: its cost rows (``_cost_pairs``) in place of what its
    failed runs cost alone."""
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
    for label, value in (
        ("dedupe key", t.dedupe_key),
        ("finding", t.finding_id),
        ("last error", t.last_error),
        ("dead reason", t.dead_reason),
    ):
        if value:
            pairs.append((label, value))
    print_table(app, kv_table(pairs))


def _emit_task(app: App, t: Any, headline: str) -> None:
    app.emit(task_json(t), lambda: render_task(app, t, headline=headline))


@task.command(short_help="Post a task (or many with --jsonl).")
@click.argument("queue", shell_complete=complete_queues)
@click.argument("description", required=False)
@click.option("--data", "data_arg", help="The task's data: JSON, @file or - (stdin).")
@click.option("--pass", "pass_name", help="The pass the task belongs to (any text).")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher first.")
@click.option(
    "--max-attempts",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Failures (fail, a crashed agent) before the task is dead-lettered.",
)
@click.option(
    "--max-abandons",
    type=click.IntRange(1),
    help="Expired leases (the worker vanished) before the task is dead-lettered "
    "[default: the queue's, see task configure, else 10].",
)
@click.option(
    "--lease",
    "lease_s",
    type=click.IntRange(1),
    default=900,
    show_default=True,
    help="Seconds a claim lasts unless renewed.",
)
@click.option("--delay", type=Seconds(), help="Claimable only after this many seconds.")
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
    lease_s: int,
    delay: float | None,
    dedupe_key: str | None,
    parent: str | None,
    jsonl: str | None,
) -> None:
    """Post a task to QUEUE (DESCRIPTION may be - for stdin), or many with --jsonl."""
    data = (
        parse_json(data_arg, app, what="--data", thing="the task's data as JSON")
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
    description = read_text(description, app, what="DESCRIPTION", thing="the task's description")
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
    return printable(f"already posted as {t.id} (dedupe key {t.dedupe_key}): nothing posted")


def _jsonl_specs(source: str, app: App) -> list[tuple[int, dict[str, Any]]]:
    """The tasks of a --jsonl input, each with its line number (blank lines skipped)."""
    raw = read_bytes(source, app, what="--jsonl", thing="the tasks (one JSON object per line)")
    specs: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        spec = loads_json(line, what="--jsonl", where=f"line {number} ")
        if not isinstance(spec, dict):
            raise click.BadParameter(f"line {number} is not a JSON object", param_hint="--jsonl")
        specs.append((number, spec))
    if not specs:
        raise click.BadParameter("no task in the input", param_hint="--jsonl")
    return specs


@task.command(short_help="Claim the next task (exit 3 if none).")
@click.argument("queues", nargs=-1, required=True, shell_complete=complete_queues)
@click.option(
    "--worker",
    default=_default_worker,
    help="Your worker name (default: SWARM_AGENT, else worker-HOSTNAME).",
)
@click.option("--lease", "lease_s", type=LEASE_SECONDS, help="Lease seconds (default: the task's).")
@click.option(
    "--wait",
    "wait_s",
    type=Seconds(most=MAX_WAIT_S),
    default=0,
    show_default=True,
    help="Seconds to wait for a task when the queues are empty.",
)
@click.option(
    "--count",
    type=click.IntRange(1, MAX_CLAIM_BATCH),
    help='Claim up to this many tasks at once (one round trip); JSON: {"items": [Task]}.',
)
@json_option
@pass_app
def claim(
    app: App,
    queues: tuple[str, ...],
    worker: str,
    lease_s: int | None,
    wait_s: float,
    count: int | None,
) -> None:
    """Claim the next task of QUEUES (highest priority, oldest first). Exit 3 if none."""
    if count is None:
        one = app.swarm.claim(list(queues), worker=worker, lease_s=lease_s, wait_s=wait_s)
        claimed = [] if one is None else [one]
    else:
        claimed = app.swarm.claim(
            list(queues), worker=worker, lease_s=lease_s, wait_s=wait_s, n=count
        )
    # After the claim, which reclaimed the expired leases of these queues (until then an
    # expired lease is still its holder's: a late renewal saves the work).
    _prune_tokens(app, worker)
    if not claimed:
        _nothing_to_claim(app, queues)
    unkept = [(t, error) for t in claimed if (error := _remember(app, worker, t)) is not None]
    if count is not None:
        app.emit({"items": [task_json(t) for t in claimed]}, lambda: _render_claimed(app, claimed))
    else:
        _emit_task(app, claimed[0], _claimed_line(claimed[0]))
    for t, error in unkept:  # after the tasks and their tokens: the claims stand
        _say_unkept(t, error)


def _nothing_to_claim(app: App, queues: Sequence[str]) -> NoReturn:
    message = f"nothing to claim in {', '.join(queues)}"
    if app.json:
        click.echo(json.dumps({"error": "Empty", "message": message}), err=True)
    else:
        click.echo(message, err=True)
    raise click.exceptions.Exit(EXIT_EMPTY)


def _remember(app: App, worker: str, t: Task) -> OSError | None:
    """Keep a claimed task's token for the session's hooks (docs/live.md). The error when
    it could not be kept (a home this process may not write): not the claim's failure, as
    the lease is taken; its token is printed all the same (``_say_unkept`` after it)."""
    if t.token:
        try:
            tokens.remember(app.swarm.settings, worker, t.id, t.token)
        except OSError as exc:
            return exc
    return None


def _say_unkept(t: Task, error: OSError) -> None:
    click.echo(
        printable(
            f"warning: the token of {t.id} could not be kept on this machine ({error}): the "
            "session's hooks will not know it; pass it yourself with --token "
            f"(swarm task report {t.id} --token {t.token} ...)"
        ),
        err=True,
    )


def _prune_tokens(app: App, worker: str) -> None:
    """Forget the tokens this machine keeps for ``worker`` whose lease is gone: it expired,
    or the task was settled by another process. One read per token kept: few are (a
    report through the CLI forgets its own). Never an error: the claim is made, and its
    tokens must still be printed."""

    def held(task_id: str, token: str) -> bool:
        try:
            t = app.swarm.get_task(task_id)
        except NotFound:
            return False
        except SwarmError:  # not known now: kept, to be looked at by the next claim
            return True
        attempt = token.partition(".")[0]
        return t.status is TaskStatus.CLAIMED and t.worker == worker and attempt == str(t.attempts)

    with contextlib.suppress(OSError):  # (an unwritable home fails the claim's own write)
        tokens.prune(app.swarm.settings, worker, held)


@contextlib.contextmanager
def _settling(app: App, task_id: str, token: str | None, *, ends: bool = True) -> Iterator[None]:
    """Forget, on this machine, the token of ``task_id`` the call in the block ended: when it
    succeeds and ``ends`` the task's lease (a report, fail, release or cancel: every token of
    the task then), or when it is refused because ``token``'s lease is gone, or the task
    settled or unknown (a Conflict or NotFound: that token only, as a newer claim may hold
    the task). Any other error (an outage) keeps it: the call may be tried again."""
    settings = app.swarm.settings
    try:
        yield
    except (Conflict, NotFound):
        tokens.forget_task(settings, task_id, token)
        raise
    if ends:
        tokens.forget_task(settings, task_id)


def _claimed_line(t: Task) -> str:
    return f"claimed {t.id} (token {t.token}); report it before {iso(t.lease_deadline)}"


def _render_claimed(app: App, claimed: Sequence[Task]) -> None:
    for t in claimed:
        render_task(app, t, headline=_claimed_line(t))


@task.command()
@task_id_arg
@token_option
@click.option("--lease", "lease_s", type=LEASE_SECONDS, help="Lease seconds from now.")
@json_option
@pass_app
def renew(app: App, task_id: str, token: str, lease_s: int | None) -> None:
    """Extend your lease on TASK_ID (it restarts from now)."""
    with _settling(app, task_id, token, ends=False):
        t = app.swarm.renew(task_id, token, lease_s)
    app.emit(task_json(t), lambda: click.echo(f"renewed {t.id} until {iso(t.lease_deadline)}"))


@task.command(short_help="Report a task's finding (completes it).")
@task_id_arg
@token_option
@click.option("--finding", "finding_arg", metavar="JSON|@FILE|-", help="The finding (JSON).")
@click.option("--summary", help="Report just a summary (instead of --finding).")
@click.option("--confidence", type=click.FloatRange(0, 1), help="With --summary.")
@click.option("--source", "sources", multiple=True, help="With --summary; repeatable.")
@click.option("--worker", default=agent_option_default, help="Who did it (default: SWARM_AGENT).")
@click.option("--model", help="The model that did it.")
@click.option("--context-version", help="The context version you read.")
@click.option(
    "--claim-next",
    "claim_next",
    multiple=True,
    metavar="QUEUE",
    shell_complete=complete_queues,
    help="Also claim the next task of QUEUE (repeatable), in the same round trip.",
)
@click.option(
    "--next-lease", "next_lease_s", type=LEASE_SECONDS, help="With --claim-next: its lease."
)
@click.option(
    "--wait",
    "wait_s",
    type=Seconds(most=MAX_WAIT_S),
    default=0.0,
    show_default=True,
    help="With --claim-next: seconds to wait for the next task when there is none.",
)
@usage_option
@json_option
@pass_app
def report(
    app: App,
    task_id: str,
    token: str,
    finding_arg: str | None,
    summary: str | None,
    confidence: float | None,
    sources: tuple[str, ...],
    worker: str | None,
    model: str | None,
    context_version: str | None,
    claim_next: tuple[str, ...],
    next_lease_s: int | None,
    wait_s: float,
    usage_arg: str | None,
) -> None:
    """Report the finding of TASK_ID; the first report completes the task. With
    --claim-next, also lease the next task (printed as `task claim` prints it; JSON:
    {"finding": ..., "next": task or null}), waiting up to --wait seconds for one. With
    --usage, record what the run cost on the finding."""
    if finding_arg is not None and summary is not None:
        raise click.UsageError("give --finding or --summary, not both")
    if finding_arg is None and summary is None:
        raise click.UsageError("give the finding with --finding JSON|@FILE|- or --summary TEXT")
    if finding_arg is not None and (confidence is not None or sources):
        raise click.UsageError(
            '--confidence and --source go with --summary: with --finding, put "confidence" '
            'and "sources" in its JSON'
        )
    if wait_s and not claim_next:
        raise click.UsageError("--wait is how long to wait for the next task: add --claim-next")
    if usage_arg == "-" and "-" in (finding_arg, summary):
        raise click.UsageError(
            "--usage and the finding cannot both read stdin (-): give one inline or as @FILE"
        )
    if finding_arg is not None:
        finding = parse_json(
            finding_arg, app, what="--finding", thing='the finding\'s JSON ({"summary": ...})'
        )
        if not isinstance(finding, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--finding")
        if "usage" in finding:  # kept in extra, it would read as recorded and count nowhere
            raise click.BadParameter(
                'holds "usage": what the run cost is no part of the finding; give it with '
                "--usage JSON",
                param_hint="--finding",
            )
    else:
        assert summary is not None
        finding = {"summary": read_text(summary, app, what="--summary", thing="the summary")}
        if confidence is not None:
            finding["confidence"] = confidence
        if sources:
            finding["sources"] = list(sources)
    usage = _usage(app, usage_arg)
    leasing: dict[str, Any] = {}  # report's keywords for the next claim, if any
    if claim_next:
        leasing = {"claim_next": list(claim_next), "next_lease_s": next_lease_s, "wait_s": wait_s}
    with _settling(app, task_id, token):
        reported = app.swarm.report(
            task_id, token, finding, worker=worker, model=model, context_version=context_version,
            usage=usage, **leasing,
        )  # fmt: skip
    if not claim_next:
        app.emit(reported, lambda: click.echo(f"reported {reported.id} for {task_id}"))
        return
    f, following = reported
    unkept = None
    if following is not None and following.worker:
        unkept = _remember(app, following.worker, following)

    def human() -> None:
        click.echo(f"reported {f.id} for {task_id}")
        if following is None:
            click.echo(f"nothing to claim in {', '.join(claim_next)}")
        else:
            render_task(app, following, headline=_claimed_line(following))

    app.emit({"finding": f, "next": None if following is None else task_json(following)}, human)
    if following is not None and unkept is not None:
        _say_unkept(following, unkept)


@task.command(short_help="Give a task up with the reason (it is retried).")
@task_id_arg
@token_option
@click.option("--error", "error", required=True, help="What went wrong: text, @file or -.")
@click.option(
    "--retry/--no-retry",
    default=True,
    show_default=True,
    help="Give the task back to its queue (until max attempts failures) or dead-letter it now.",
)
@click.option(
    "--retry-after",
    type=Seconds(most=MAX_RETRY_AFTER_S),
    metavar="SECONDS",
    help="Run it again no sooner than this (a rate limit's Retry-After; 0: at once), "
    "instead of the queue's backoff, for this failure only.",
)
@usage_option
@json_option
@pass_app
def fail(
    app: App,
    task_id: str,
    token: str,
    error: str,
    retry: bool,
    retry_after: float | None,
    usage_arg: str | None,
) -> None:
    """Give up TASK_ID with the reason (a failure); it is retried after the queue's backoff
    (see task configure) or --retry-after, until it has failed max_attempts times. With
    --usage, what the failed run cost adds to the task's failed_usage."""
    if error == "-" and usage_arg == "-":
        raise click.UsageError(
            "--error and --usage cannot both read stdin (-): give one inline or as @FILE"
        )
    error = read_text(error, app, what="--error", thing="what went wrong")
    usage = _usage(app, usage_arg)
    with _settling(app, task_id, token):
        t = app.swarm.fail(
            task_id, token, error, retry=retry, usage=usage, retry_after_s=retry_after
        )

    def human() -> None:
        due = f" until {when(t.not_before)}" if t.status is TaskStatus.DELAYED else ""
        click.echo(f"failed {t.id}: now {t.status.value}{due}")

    app.emit(task_json(t), human)


@task.command(short_help="Give a task back to its queue untouched.")
@task_id_arg
@token_option
@json_option
@pass_app
def release(app: App, task_id: str, token: str) -> None:
    """Give TASK_ID back to its queue untouched (counted neither as a failure nor as an
    abandon)."""
    with _settling(app, task_id, token):
        t = app.swarm.release(task_id, token)
    app.emit(task_json(t), lambda: click.echo(f"released {t.id}: now {t.status.value}"))


@task.command(short_help="Cancel a task.")
@task_id_arg
@json_option
@pass_app
def cancel(app: App, task_id: str) -> None:
    """Cancel TASK_ID: nobody will claim it; a running worker's lease ends."""
    with _settling(app, task_id, None):
        t = app.swarm.cancel(task_id)
    app.emit(task_json(t), lambda: click.echo(f"cancelled {t.id}"))


@task.command(short_help="Put a dead task back in its queue.")
@task_id_arg
@json_option
@pass_app
def requeue(app: App, task_id: str) -> None:
    """Put a dead task back in its queue with fresh budgets of failures and abandons."""
    t = app.swarm.requeue_dead(task_id)
    app.emit(task_json(t), lambda: click.echo(f"requeued {t.id} to {t.queue}"))


@task.command(short_help="Set a queue's defaults for the tasks posted to it.")
@click.argument("queue", shell_complete=complete_queues)
@click.option(
    "--max-abandons",
    type=click.IntRange(1),
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

    def human() -> None:
        click.echo(f"{queue}: max_abandons {settings['max_abandons']}")
        if "description" in settings:
            click.echo(f"{queue}: description {printable(settings['description'])}")
        if "retry_backoff_s" in settings:
            click.echo(f"{queue}: retry_backoff {settings['retry_backoff_s']:g} s")

    app.emit({"queue": queue, **settings}, human)


@task.command()
@task_id_arg
@json_option
@pass_app
def show(app: App, task_id: str) -> None:
    """Show everything about TASK_ID, with what every agent run on it cost (its failed runs,
    its finding, findings reported on it after it was settled)."""
    if app.json:  # the record alone: what every run on it cost is read for the table only
        app.emit(task_json(app.swarm.get_task(task_id)))
        return
    spent = app.swarm.task_costs(task_id)  # the task, and what every run on it cost
    render_task(app, spent.task, costs=_cost_pairs(spent))


@task.command("list")
@click.option("--queue", shell_complete=complete_queues)
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--pass", "pass_name")
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
    """List tasks, oldest first, with filters. The table fills up to --limit rows, asking
    again while a filter matched few of the tasks one call looks at (see TABLE_CALLS)."""

    def fetch(cur: str | None, size: int) -> Any:
        return app.swarm.list_tasks(
            queue=queue, status=status, pass_name=pass_name, cursor=cur, limit=size
        )

    if app.json or all_:  # --json: one call's page, short or not, as the API gives it
        found = listing(fetch, limit, cursor, all_)
    else:
        found = _table_rows(fetch, limit, cursor)

    def human() -> None:
        table = make_table(
            "id", "queue", "status", "failed", "abandoned", "pass", "worker", "description"
        )
        for t in found.items:
            add_row(
                table,
                t.id,
                t.queue,
                t.status,
                f"{t.failures}/{t.max_attempts}",
                f"{t.abandons}/{t.max_abandons}",
                short(t.pass_name, 24) if t.pass_name else None,
                t.worker,
                short(t.description, 60),
            )
        print_table(app, table)
        if not found.items and found.cursor:
            click.echo(
                f"no task matched among those the {TABLE_CALLS} calls looked at; the listing "
                "goes on after them (or list them all with --all):",
                err=True,
            )
        found.footer()

    app.emit(found.to_json([task_json(t) for t in found.items]), human)


# A filtered listing call looks at up to 5,000 tasks (list_tasks), so a selective filter in a
# big swarm gets short or empty pages with a cursor. The table asks again, up to this many
# calls, until it has --limit rows: 4 claimed tasks among 20,000 are shown, not an empty
# table and a cursor (docs/cli.md).
TABLE_CALLS = 20


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


def _no_such_pass(pass_name: str, passes: list[str]) -> NoReturn:
    raise NotFound(unknown_pass(pass_name, passes, "swarm status lists them"))


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
    cancelled); exit 3 on timeout. A pass no task was ever posted to (a misspelt name) is an
    error naming the passes there are."""
    if pass_name is not None and queue is not None:
        raise click.UsageError("wait for --pass or --queue, not both")
    stats = app.swarm.wait(pass_name=pass_name, queue=queue, timeout_s=timeout_s)
    if pass_name is not None and not any(stats.values()):
        # A misspelt pass reads as an empty one: nothing to wait for, and nothing to read after.
        _no_such_pass(pass_name, [p.name for p in app.swarm.status().passes])

    def human() -> None:
        what = (
            f"pass {pass_name!r}"
            if pass_name is not None
            else (f"queue {queue}" if queue is not None else "the swarm")
        )
        counts = ", ".join(f"{k} {v}" for k, v in stats.items() if v)
        click.echo(f"{what} settled: {counts or 'no tasks'}")

    app.emit(stats, human)
