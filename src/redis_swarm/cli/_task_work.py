"""``swarm task claim, renew, report, fail, release, cancel, requeue``: a task taken, worked
under its lease and given back or settled (cancel and requeue also every task of a pass or
queue at once: ``Swarm.cancel_tasks``, ``Swarm.requeue_tasks``), and the lease tokens this
machine keeps for a live session's hooks (docs/live.md)."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .. import _lease_tokens as tokens
from .._codec import counted, iso
from .._env import ENV_TASK_ID, ENV_TASK_TOKEN, run_task_token
from .._errors import (
    Conflict,
    InvalidState,
    LeaseLost,
    NotFound,
    SwarmError,
    TaskDeadLettered,
    ValidationError,
)
from .._models import OPEN_STATUSES, Task, TaskStatus
from .._printable import printable
from .._usage import Usage
from .._validate import MAX_CLAIM_BATCH, MAX_RETRY_AFTER_S, MAX_WAIT_S, check_failure_reason
from ._app import App, json_option, pass_app, usage_failure
from ._common import (
    Number,
    Seconds,
    agent_option_default,
    complete_queues,
    complete_tasks,
    default_worker,
    never_posted,
    nothing_to_claim,
    one_stdin,
    own_kept_token,
    parse_json,
    read_text,
    task_json,
    when,
)
from ._tasks import LEASE_SECONDS, render_task, task, task_id_arg

token_option = click.option(
    "--token",
    help="The lease's token (the `token` printed by `task claim`: ATTEMPT.SECRET; default: "
    f"{ENV_TASK_TOKEN} when {ENV_TASK_ID} names TASK_ID, as swarm run sets them for its agent, "
    "else the one your worker's claim on this machine kept for TASK_ID: SWARM_AGENT's, else "
    "worker-HOSTNAME's).",
)


def _kept_token(app: App, task_id: str, token: str | None, worker: str | None = None) -> str:
    """``token``, else the token of ``task_id`` this shell's worker kept when it claimed the
    task here (``worker``, else the claim's default: SWARM_AGENT, else worker-HOST). Never
    another worker's: a worker whose lease ran out and went to another worker on this machine
    would report with the new holder's token, and the fencing that keeps its late report
    superseded would be gone. Inside ``swarm run``, its agent's task's token
    (SWARM_TASK_TOKEN, when SWARM_TASK_ID names ``task_id``), as ``swarm ask --task`` takes
    it: the run's claim kept none on disk. When none is kept, a task settled or gone is said
    so (``_unless_settled``: no token would help), else a usage error saying where tokens
    are kept and how to pass one."""
    if token is not None:
        return token
    run_token = run_task_token(task_id)
    if run_token is not None:
        return run_token
    settings = app.swarm.settings
    holder = worker or default_worker()
    kept = own_kept_token(settings, holder, task_id)
    if kept:
        return kept
    _unless_settled(app, task_id)
    # (the ways this command takes to name the worker: --worker is report's alone)
    takes_worker = "worker" in click.get_current_context().params
    naming = "--worker W, or SWARM_AGENT=W" if takes_worker else "SWARM_AGENT=W"
    raise click.UsageError(
        printable(
            f"no --token given, and {holder} kept no token of {task_id} on this machine (a "
            f"`swarm task claim --worker {holder}` here keeps it in "
            f"{tokens.folder(settings)}, one file per worker): pass the `token` its claim "
            "printed with --token ATTEMPT.SECRET, or name the worker that claimed it "
            f"({naming})"
        )
    )


def _unless_settled(app: App, task_id: str) -> None:
    """For a call with no token to give: the task gone (the core's NotFound, as it says it),
    or settled (its kept tokens are dropped, and no lease of it is left to act on), said as
    the refusal it is (exit 1), rather than sending the user to look for a token. Open, or
    not read (an outage, a damaged record): nothing said here."""
    t = _settled_now(app, task_id)
    if t is not None:
        raise LeaseLost(_no_lease_line(t))


def _settled_now(app: App, task_id: str) -> Task | None:
    """``task_id`` read now if it is settled (``tokens.outlived``); None when it is open or
    cannot be read (an outage, a damaged record: its token is kept, the call may be tried
    again). Gone: the core's NotFound, which each caller takes its own way (a call with no
    token says it; a refused call forgets the token: ``tokens.outlived(None)``)."""
    try:
        t = app.swarm.get_task(task_id)
    except NotFound:
        raise
    except SwarmError:
        return None
    return t if tokens.outlived(t.status) else None


def _no_lease_line(t: Task) -> str:
    """A settled task's refusal of a call that would act on its lease: its status, as the
    core's refusal of a lease's token names it ("task T is completed, no longer held by
    attempt N: stop working on it"), without an attempt, which no token named."""
    return f"task {t.id} is {t.status.value}, held by no lease: stop working on it"


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


def _emit_task(app: App, t: Any, headline: str) -> None:
    app.emit(task_json(t), lambda: render_task(app, t, headline=headline))


@task.command(short_help="Claim the next task (exit 3 if none).")
@click.argument("queues", nargs=-1, required=True, shell_complete=complete_queues)
@click.option(
    "--worker",
    default=default_worker,
    help="Your worker name (default: SWARM_AGENT, else worker-HOSTNAME, which every shell of "
    "this host given neither shares, with its kept tokens).",
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
    lease_s: float | None,
    wait_s: float,
    count: int | None,
) -> None:
    """Claim the next task of QUEUES (highest priority, oldest first). Exit 3 if none."""
    if wait_s > 0 and not app.json:
        unknown = never_posted(app, queues)
        if unknown is not None:  # (a task may yet be posted to it: the wait goes on)
            click.echo(printable(f"note: {unknown}; waiting all the same"), err=True)
    with _saying_dead_lettered(app) as dead_lettered:  # (after what follows, or its error)
        if count is None:
            one = app.swarm.claim(list(queues), worker=worker, lease_s=lease_s, wait_s=wait_s)
            claimed = [] if one is None else [one]
        else:
            claimed = app.swarm.claim(
                list(queues), worker=worker, lease_s=lease_s, wait_s=wait_s, n=count
            )
        # The wait is over: a Ctrl-C from here on would leave a lease taken, untold
        app.finish_uninterrupted()
        # After the claim, which reclaimed the expired leases of these queues (until then an
        # expired lease is still its holder's: a late renewal saves the work).
        _prune_tokens(app, worker)
        if not claimed:
            _say_dead_lettered(app, dead_lettered)  # (first: why it found nothing, maybe)
            nothing_to_claim(app, queues)
        unkept = [(t, error) for t in claimed if (error := _remember(app, worker, t)) is not None]
        if count is not None:
            items = {"items": [task_json(t) for t in claimed]}
            app.emit(items, lambda: _render_claimed(app, claimed))
        else:
            _emit_task(app, claimed[0], _claimed_line(claimed[0]))
        for t, error in unkept:  # after the tasks and their tokens: the claims stand
            _say_unkept(t, error)
    given = click.get_current_context().get_parameter_source("worker")
    if not app.json and given is ParameterSource.DEFAULT and agent_option_default() is None:
        click.echo(printable(f"note: {_host_default_note(worker)}"), err=True)


def _saying_dead_lettered(app: App) -> contextlib.AbstractContextManager[list[TaskDeadLettered]]:
    """Around a claim (or a report's ``claim_next``) and what a command prints of it: the
    tasks it dead-lettered are collected, and said on the way out if not before, however it
    ends (a claim that dead-lettered some and then failed, its connection lost mid-wait,
    says them too, before its error): ``TaskDeadLettered.told_to``."""
    return TaskDeadLettered.told_to(lambda dead: _say_one(app, dead))


def _say_dead_lettered(app: App, dead_lettered: list[TaskDeadLettered]) -> None:
    """Say now, and take off the list (said once), what a claim dead-lettered so far."""
    told, dead_lettered[:] = list(dead_lettered), []
    for dead in told:
        _say_one(app, dead)


def _say_one(app: App, dead: TaskDeadLettered) -> None:
    """Say on stderr a task a claim met stored damaged and dead-lettered instead of handing
    it out (``TaskDeadLettered``, in its words: the reason names the repair); one JSON
    object a line with --json. Not the claim's failure: its exit status stands."""
    if app.json:
        said = {"warning": "TaskDeadLettered", "task_id": dead.task_id, "message": str(dead)}
        click.echo(json.dumps(said), err=True)
    else:
        click.echo(printable(dead.line()), err=True)


def _host_default_note(worker: str) -> str:
    return (
        f"claimed as {worker}, the name of a claim with no --worker and no SWARM_AGENT: every "
        "shell of this host without them claims as it and shares its kept tokens; name "
        "yourself with --worker W (or export SWARM_AGENT=W)"
    )


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
    """Forget the tokens this machine keeps for ``worker`` whose task is settled or gone
    (``tokens.outlived``, the rule the hooks apply too): one whose lease ran out and moved
    on stays while its task is open, for the worker's late report. One round trip
    (``task_statuses``) for the tokens kept. Never an error: the claim is made, and its
    tokens must still be printed."""
    with contextlib.suppress(OSError):  # (an unwritable home fails the claim's own write)
        tokens.prune(app.swarm.settings, worker, app.swarm.task_statuses)


@contextlib.contextmanager
def _settling(
    app: App, task_id: str, token: str | None, *, ends: bool = True, reports: bool = False
) -> Iterator[None]:
    """Forget, on this machine, the token of ``task_id`` the call in the block ended: when it
    succeeds and ``ends`` the lease (a report, fail or release: ``token``, the one it used,
    alone; a cancel, ``token`` None: every token of the task, settled now), or when it is
    refused (NotFound, or a Conflict) and the task is settled or gone (``tokens.outlived``,
    read after the refusal): a Conflict of a task still open (another report's finding id
    given, `--finding-id`) keeps it, for the report sent again right. Another worker's
    token of the task (its lease ran out and moved to that worker, or the other way round)
    is that worker's
    own to report with, and stays: forgetting it left that worker's report no token to
    prove its lease with; its next claim or hook drops it once the task is settled. A
    renew, fail or release refused with LeaseLost keeps ``token``: the lease expired and
    moved on, or the task settled, and a report with any token the task issued is still
    accepted (it completes an open task, or is kept superseded: docs/tasks.md), as the
    refusal says; kept while the task is open (``tokens.outlived``). A report
    (``reports``) refused with LeaseLost forgets it: a token the task never issued. Any
    other error (an outage) keeps it: the call may be tried again."""
    settings = app.swarm.settings
    try:
        yield
    except LeaseLost:
        if reports:
            tokens.forget_task(settings, task_id, token)
        raise
    except (Conflict, NotFound):
        try:
            outlived = _settled_now(app, task_id) is not None
        except NotFound:
            outlived = tokens.outlived(None)  # (gone: no work of it is left to report)
        if outlived:
            tokens.forget_task(settings, task_id, token)
        raise
    if ends:
        tokens.forget_task(settings, task_id, token)


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
def renew(app: App, task_id: str, token: str | None, lease_s: float | None) -> None:
    """Extend your lease on TASK_ID (it restarts from now)."""
    token = _kept_token(app, task_id, token)
    with _settling(app, task_id, token, ends=False):
        t = app.swarm.renew(task_id, token, lease_s)
    app.emit(task_json(t), lambda: click.echo(f"renewed {t.id} until {iso(t.lease_deadline)}"))


@task.command(short_help="Report a task's finding (completes it).")
@task_id_arg
@token_option
@click.option("--finding", "finding_arg", metavar="JSON|@FILE|-", help="The finding (JSON).")
@click.option("--summary", help="Report just a summary (instead of --finding).")
@click.option("--confidence", type=Number(0, 1), help="With --summary.")
@click.option("--source", "sources", multiple=True, help="With --summary; repeatable.")
@click.option("--worker", default=agent_option_default, help="Who did it (default: SWARM_AGENT).")
@click.option("--model", help="The model that did it.")
@click.option("--context-version", help="The context version you read.")
@click.option(
    "--finding-id",
    metavar="ID",
    help="The finding's id, new or its first try's: a retry stores nothing twice and "
    "completes a report stopped half-way.",
)
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
    token: str | None,
    finding_arg: str | None,
    summary: str | None,
    confidence: float | None,
    sources: tuple[str, ...],
    worker: str | None,
    model: str | None,
    context_version: str | None,
    finding_id: str | None,
    claim_next: tuple[str, ...],
    next_lease_s: float | None,
    wait_s: float,
    usage_arg: str | None,
) -> None:
    """Report the finding of TASK_ID; the first report completes the task. With
    --finding-id, under that id (a report sent again with it stores nothing twice). With
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
    one_stdin(
        ("--usage", usage_arg), ("the finding", summary if finding_arg is None else finding_arg)
    )
    if finding_arg is not None:
        finding = parse_json(
            finding_arg, app, what="--finding", thing='the finding\'s JSON ({"summary": ...})'
        )
        if not isinstance(finding, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--finding")
        if "id" in finding:  # (else kept in extra, without a word, under a new id)
            raise click.BadParameter(
                'holds "id": the finding\'s id is not part of its JSON: pass it with --finding-id',
                param_hint="--finding",
            )
        # (a "usage" key is the core's to refuse: Swarm.report's finding validation)
    else:
        assert summary is not None
        finding = {"summary": read_text(summary, app, what="--summary", thing="the summary")}
        if confidence is not None:
            finding["confidence"] = confidence
        if sources:
            finding["sources"] = list(sources)
    usage = _usage(app, usage_arg)
    token = _kept_token(app, task_id, token, worker)
    leasing: dict[str, Any] = {}  # report's keywords for the next claim, if any
    if claim_next:
        leasing = {"claim_next": list(claim_next), "next_lease_s": next_lease_s, "wait_s": wait_s}
    with _saying_dead_lettered(app):  # (after what follows, or the error that ends it)
        with _settling(app, task_id, token, reports=True):
            reported = app.swarm.report(
                task_id, token, finding, worker=worker, model=model,
                context_version=context_version, finding_id=finding_id, usage=usage, **leasing,
            )  # fmt: skip
            app.finish_uninterrupted()  # (taken, and the next task leased: say them whole)
        f = reported if not claim_next else reported[0]
        overtaken = f.overtaken_said()
        if overtaken is not None:  # (JSON output has it as overtaken_by; a script reads that)
            click.echo(printable(f"warning: {overtaken}"), err=True)
        if not claim_next:
            app.emit(reported, lambda: click.echo(f"reported {reported.id} for {task_id}"))
            return
        following = reported[1]
        unkept = None
        if following is not None and following.worker:
            unkept = _remember(app, following.worker, following)

        def human() -> None:
            click.echo(f"reported {f.id} for {task_id}")
            if following is None:
                click.echo(f"nothing to claim in {', '.join(claim_next)}")
            else:
                render_task(app, following, headline=_claimed_line(following))

        nxt = None if following is None else task_json(following)
        app.emit({"finding": f, "next": nxt}, human)
        if following is not None and unkept is not None:
            _say_unkept(following, unkept)


@task.command(short_help="Give a task up with the reason, --error (it is retried).")
@task_id_arg
@token_option
@click.option(
    "--error", "--reason", "error", required=True, help="What went wrong: text, @file or -."
)
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
    token: str | None,
    error: str,
    retry: bool,
    retry_after: float | None,
    usage_arg: str | None,
) -> None:
    """Give up TASK_ID with the reason, --error (or --reason): a failure; it is retried after
    the queue's backoff (see task configure) or --retry-after, until it has failed
    max_attempts times. With --usage, what the failed run cost adds to the task's
    failed_usage."""
    one_stdin(("--error", error), ("--usage", usage_arg))
    error = read_text(error, app, what="--error", thing="what went wrong")
    try:
        check_failure_reason(error)  # (blank: found here, a usage error, as the core says it)
    except SwarmError as exc:
        usage_failure(exc)
    usage = _usage(app, usage_arg)
    token = _kept_token(app, task_id, token)
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
def release(app: App, task_id: str, token: str | None) -> None:
    """Give TASK_ID back to its queue untouched (counted neither as a failure nor as an
    abandon)."""
    token = _kept_token(app, task_id, token)
    with _settling(app, task_id, token):
        t = app.swarm.release(task_id, token)
    app.emit(task_json(t), lambda: click.echo(f"released {t.id}: now {t.status.value}"))


# What TASK_ID and the bulk options of cancel and requeue are, said by their usage errors.
_ONE_OR_ALL = (
    "give TASK_ID (one task) or --pass PASS and/or --queue QUEUE (every {what} task of a "
    "pass or queue), not both"
)
_NEITHER = (
    "give TASK_ID (one task), or --pass PASS and/or --queue QUEUE to {verb} every {what} task "
    "of a pass or queue (--dry-run counts them first)"
)


def _one_or_all(
    task_id: str | None,
    pass_name: str | None,
    queue: str | None,
    what: str,
    verb: str,
    *bulk_only: object,
) -> bool:
    """Whether the command is the bulk one (--pass, --queue); a usage error for neither or
    both, or for a bulk option (``bulk_only``: given, not at their defaults) with TASK_ID."""
    bulk = pass_name is not None or queue is not None
    if task_id is not None and (bulk or any(bulk_only)):
        raise click.UsageError(_ONE_OR_ALL.format(what=what))
    if task_id is None and not bulk:
        raise click.UsageError(_NEITHER.format(what=what, verb=verb))
    return bulk


def _of(pass_name: str | None, queue: str | None) -> str:
    """What a bulk change was of: 'pass "P"', 'queue q', or both."""
    parts = ([f"pass {json.dumps(pass_name)}"] if pass_name is not None else []) + (
        [f"queue {queue}"] if queue is not None else []
    )
    return " in ".join(parts)


def _asks(app: App, yes: bool) -> bool:
    """Whether a bulk change asks first: on a terminal (a person types the answer), unless
    --yes or --json; a pipe, a script or an agent is never asked."""
    return not (yes or app.json) and sys.stdin.isatty()


def _confirm(verb: str, done: str, count: int, noun: str, of: str) -> None:
    """Ask whether to ``verb`` the ``count`` tasks a dry run counted (none: nothing asked);
    not confirmed, the command ends, nothing ``done``."""
    question = f"{verb} {counted(count, noun)} of {of}?"
    if count and not click.confirm(printable(question), err=True):
        raise click.ClickException(f"nothing was {done} (not confirmed)")


F = TypeVar("F", bound=Callable[..., Any])


def _bulk_options(doing: str) -> Callable[[F], F]:
    """The options of a change of every task of a pass or queue (``doing``: what it does to
    each, "Cancel every open task"): --pass, --queue, --dry-run, --yes."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                click.option("--pass", "pass_name", metavar="PASS", help=f"{doing} of PASS."),
                click.option(
                    "--queue",
                    metavar="QUEUE",
                    shell_complete=complete_queues,
                    help=f"{doing} of QUEUE (with --pass: those of PASS in QUEUE).",
                ),
                click.option(
                    "--dry-run",
                    is_flag=True,
                    help="With --pass/--queue: count them; change nothing.",
                ),
                click.option(
                    "--yes",
                    "-y",
                    is_flag=True,
                    help="With --pass/--queue: do not ask first (a terminal is asked; a pipe "
                    "never is).",
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


_STATUS_HELP = (
    "With --pass/--queue: only the open tasks of this status (repeat it for several; default "
    "pending, delayed and claimed)."
)


@task.command(short_help="Cancel a task, or every open task of a pass or queue.")
@click.argument("task_id", metavar="[TASK_ID]", required=False, shell_complete=complete_tasks)
@_bulk_options("Cancel every open task")
@click.option(
    "--status", "statuses", type=click.Choice(OPEN_STATUSES), multiple=True, help=_STATUS_HELP
)
@json_option
@pass_app
def cancel(
    app: App,
    task_id: str | None,
    pass_name: str | None,
    queue: str | None,
    statuses: tuple[str, ...],
    dry_run: bool,
    yes: bool,
) -> None:
    """Cancel TASK_ID: nobody will claim it; a running worker's lease ends. A dead task is
    dropped from the dead letters for good (requeue runs it again instead). A task already
    cancelled stays as it was (said so, exit 0); a completed one is refused.

    With --pass PASS and/or --queue QUEUE instead: cancel every open task (pending, delayed,
    claimed) of the pass or queue, hundreds per round trip, each as one cancel (its event,
    its counters), and say how many were cancelled, found already settled, or skipped.
    Dead tasks are left (requeue --pass runs them again; swarm retire removes them). On a
    terminal it counts them and asks first (--yes does not ask); --dry-run only counts.
    A shard's or coordinator's command: a worker's user is refused. Then a settled pass
    can be retired (swarm retire PASS)."""
    if _one_or_all(task_id, pass_name, queue, "open", "cancel", statuses, dry_run, yes):
        status = list(statuses) or None
        if not dry_run and _asks(app, yes):
            first = app.swarm.cancel_tasks(
                pass_name=pass_name, queue=queue, status=status, dry_run=True
            )
            _confirm("cancel", "cancelled", first.cancelled, "open task", _of(pass_name, queue))
        done = app.swarm.cancel_tasks(
            pass_name=pass_name, queue=queue, status=status, dry_run=dry_run
        )
        app.emit(done, lambda: click.echo(printable(_bulk_cancel_line(done))))
        return
    assert task_id is not None
    with _settling(app, task_id, None):
        # The core's cancel of a cancelled task returns it unchanged: only its status before
        # tells whether this call cancelled it (and whether it was dead).
        before = app.swarm.get_task(task_id).status
        t = app.swarm.cancel(task_id, dead=True)  # (a coordinator drops a dead one)
    app.emit(task_json(t), lambda: click.echo(_cancelled_line(t, before)))


def _left(settled: int, settled_as: str, skipped: int, skipped_ids: Sequence[str]) -> str:
    """What a bulk change left, in words."""
    them = "it was" if settled == 1 else "they were"
    parts = [f"{counted(settled, 'task')} {settled_as}, left as {them}"]
    if skipped:
        named = ", ".join(skipped_ids[:3]) + (", ..." if skipped > 3 else "")
        parts.append(f"{counted(skipped, 'task')} skipped ({named}: swarm task show ID says why)")
    return "; ".join(parts)


def _bulk_cancel_line(done: Any) -> str:
    """A ``CancelledTasks`` (``Swarm.cancel_tasks``) in words."""
    verb = "would cancel" if done.dry_run else "cancelled"
    of = _of(done.pass_name, done.queue)
    left = _left(done.settled, "already settled", done.skipped, done.skipped_ids)
    line = f"{verb} {counted(done.cancelled, 'open task')} of {of} ({left})"
    whole = done.pass_name is not None and done.queue is None and not done.dry_run
    if whole and not done.skipped and tuple(done.statuses) == OPEN_STATUSES:  # (none left)
        line += f"; swarm retire {shlex.quote(done.pass_name)} now frees the pass"
    return line


def _cancelled_line(t: Task, before: TaskStatus) -> str:
    if before is TaskStatus.DEAD:
        return f"cancelled {t.id}: it was dead; dropped from the dead letters for good"
    if before is not TaskStatus.CANCELLED:
        return f"cancelled {t.id}"
    when = t.status_since
    return f"{t.id} was already cancelled{f' at {iso(when)}' if when else ''}: nothing changed"


@task.command(short_help="Put a dead task, or every dead task of a pass or queue, back.")
@click.argument("task_id", metavar="[TASK_ID]", required=False, shell_complete=complete_tasks)
@_bulk_options("Requeue every dead task")
@json_option
@pass_app
def requeue(
    app: App,
    task_id: str | None,
    pass_name: str | None,
    queue: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Put a dead task back in its queue with fresh budgets of failures and abandons.

    With --pass PASS and/or --queue QUEUE instead: every dead task of the pass or queue,
    each as one requeue, and say how many were requeued, found not dead, or skipped (data
    stored damaged: repair it first). On a terminal it counts them and asks first (--yes
    does not ask); --dry-run only counts. A shard's or coordinator's command."""
    if _one_or_all(task_id, pass_name, queue, "dead", "requeue", dry_run, yes):
        if not dry_run and _asks(app, yes):
            n = app.swarm.requeue_tasks(pass_name=pass_name, queue=queue, dry_run=True).requeued
            _confirm("requeue", "requeued", n, "dead task", _of(pass_name, queue))
        done = app.swarm.requeue_tasks(pass_name=pass_name, queue=queue, dry_run=dry_run)
        app.emit(done, lambda: click.echo(printable(_bulk_requeue_line(done))))
        return
    assert task_id is not None
    try:
        t = app.swarm.requeue_dead(task_id)
    except InvalidState as exc:
        raise _with_next_step(app, task_id, exc) from exc
    app.emit(task_json(t), lambda: click.echo(f"requeued {t.id} to {t.queue}"))


def _bulk_requeue_line(done: Any) -> str:
    """A ``RequeuedTasks`` (``Swarm.requeue_tasks``) in words."""
    verb = "would requeue" if done.dry_run else "requeued"
    left = _left(done.not_dead, "not dead", done.skipped, done.skipped_ids)
    return (
        f"{verb} {counted(done.requeued, 'dead task')} of {_of(done.pass_name, done.queue)} "
        f"({left})"
    )


def _with_next_step(app: App, task_id: str, exc: InvalidState) -> InvalidState:
    """The core's refusal to requeue a task that is not dead, followed, for a settled one
    (cancelled, completed: it stays as history), by how to run its work again."""
    try:
        t = app.swarm.get_task(task_id)
    except SwarmError:  # gone since (retired), or the server: the refusal as it was
        return exc
    if t.status not in (TaskStatus.CANCELLED, TaskStatus.COMPLETED):
        return exc  # still open: it runs (or waits) as it is
    return InvalidState(
        f"{exc}; a {t.status.value} task stays as it is, as history: to run its work again, "
        f"post it anew ('swarm task post {shlex.quote(t.queue)} DESCRIPTION --data JSON', "
        f"with the description and data 'swarm task show {t.id}' shows)"
    )
