"""``swarm ask``: ask a shard (or a queue of helpers) a question and print the answer;
``swarm serve``: answer the questions asked of a shard with an agent command."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click
from click.core import ParameterSource

from .._errors import NotFound, SwarmError
from .._hints import SERVE_QUESTIONS
from .._models import Answer, Task
from .._printable import asked_otherwise, printable, short, short_version
from .._usage import usd
from .._validate import MAX_ASK_TIMEOUT_S, check_name
from ._app import App, json_option, main, pass_app
from ._common import (
    MAX_DATA_FILE_BYTES,
    Seconds,
    agent_option_default,
    complete_owners,
    content,
    hold_interrupts,
    parse_json,
    read_text,
    signals,
)
from ._run import drive_pool, pool_summary, refuse_option_like_slots


def _footer(answer: Answer) -> str:
    parts = [f"answered by {answer.answerer or '?'}"]
    if answer.model:
        parts.append(f"model {answer.model}")
    if answer.cost_usd is not None:
        parts.append(usd(answer.cost_usd))
    parts.append(f"finding {answer.finding_id}, question {answer.question_id}")
    return "-- " + ", ".join(parts)


def _notes(app: App, target: str, asked: str, answer: Answer, dedupe_key: str | None) -> list[str]:
    """What the asker should know of an answer it did not quite ask for: one its dedupe key
    shared from a question with other text, or one made from a version of the owner's
    context that is no longer the current one (one read: the owner's current version)."""
    notes: list[str] = []
    if dedupe_key is not None and answer.question.strip() != asked.strip():
        notes.append(
            f"dedupe key {short(dedupe_key)!r} matched "
            f"{asked_otherwise(answer.question_id, answer.question)}: this is its answer, not "
            "one to your text; ask with another key for that"
        )
    if answer.context_version is not None:
        try:
            current = app.swarm.context_info(target).version
        except SwarmError:  # no context (an agent asked), or unreadable: no note, the answer
            current = answer.context_version
        if current != answer.context_version:
            notes.append(
                f"the answer was made from version {short_version(answer.context_version)} of "
                f"{target}'s context, not from its current one, {short_version(current)} "
                "(republished since): ask with a key naming the version for a fresh answer"
            )
    return notes


def _say_unclaimed(queue: str) -> None:
    """The note for a question nobody has claimed yet: without it a newcomer asking a shard
    that nobody serves sees nothing until the timeout, and takes the wait for a hang."""
    click.echo(
        printable(
            f"waiting: no answerer has claimed the question yet: is anyone serving queue "
            f"{queue!r}? {SERVE_QUESTIONS}"
        ),
        err=True,
    )


def _interrupt_once() -> Callable[[int, Any], None]:
    """A handler of Ctrl-C (and SIGTERM, SIGHUP) for the wait: the first one interrupts it
    (the core then withdraws the question); the next ones, while it withdraws, are ignored,
    so that the withdrawal ends and says what became of the question (exit 1)."""
    interrupted = False

    def handler(_signum: int, _frame: Any) -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            raise KeyboardInterrupt

    return handler


@main.command(short_help="Ask a shard (or a queue of helpers) and wait for the answer.")
@click.argument("target", shell_complete=complete_owners)
@click.argument("question")
@click.option("--data", "data_arg", help="Material for the answerer: JSON, @file or - (stdin).")
@click.option(
    "--timeout",
    "timeout_s",
    # (above 0: a timeout of 0 would post the question and withdraw it at once)
    type=Seconds(above_zero=True, most=MAX_ASK_TIMEOUT_S),
    default=60,
    show_default=True,
    help=f"Seconds to wait for the answer (above 0, at most {MAX_ASK_TIMEOUT_S:g}); then exit "
    "3 (the question is cancelled, unless --keep, or another asker posted it: see --dedupe).",
)
@click.option("--keep", is_flag=True, help="On timeout or Ctrl-C, leave the question queued.")
@click.option(
    "--dedupe",
    "dedupe_key",
    help="Asking with the same key again returns its answer (with a note when the text "
    "differs); a dead one is put back in its queue.",
)
@click.option(
    "--asker",
    default=agent_option_default,
    help="Who asks (default: SWARM_AGENT).",
)
@click.option(
    "--task",
    "task_id",
    default=lambda: os.environ.get("SWARM_TASK_ID") or None,
    help="The task you are working on (default: SWARM_TASK_ID, set by swarm run): the answer "
    "is linked to it and its lease renewed while you wait.",
)
@json_option
@pass_app
def ask(
    app: App,
    target: str,
    question: str,
    data_arg: str | None,
    timeout_s: float,
    keep: bool,
    dedupe_key: str | None,
    asker: str | None,
    task_id: str | None,
) -> None:
    """Ask TARGET a QUESTION (- for stdin, @file) and print the answer.

    TARGET is a shard (a context owner: its questions go to the queue ask.OWNER, which
    `swarm serve OWNER` answers) or a queue of helpers such as `assist`. When no answerer
    has claimed the question after 2 s, a note on stderr says so (not with --json), and the
    wait goes on. Exit 3 when no answer came within --timeout."""
    text = read_text(question, app, what="QUESTION", thing="the question")
    data = (
        parse_json(
            data_arg,
            app,
            what="--data",
            thing="the question's data as JSON",
            max_bytes=MAX_DATA_FILE_BYTES,
        )
        if data_arg is not None
        else None
    )
    who: str | Task | None = asker
    if task_id is not None:
        who = _working_on(app, task_id)
        if task_id == os.environ.get("SWARM_TASK_ID") and os.environ.get("SWARM_TASK_TOKEN"):
            # swarm run's agent: its lease's token lets the ask renew the lease while it waits
            who = replace(who, token=os.environ["SWARM_TASK_TOKEN"])
    interrupt = _interrupt_once()
    try:
        with signals(interrupt, interrupt):
            answer = app.swarm.ask(
                target, text, data=data, timeout_s=timeout_s, asker=who, keep=keep,
                dedupe_key=dedupe_key, on_unclaimed=None if app.json else _say_unclaimed,
            )  # fmt: skip
    except KeyboardInterrupt as exc:
        # Ctrl-C: the core gave the question up and noted what became of it (cancelled, or
        # left queued with its id): one error line says so, not click's bare "Aborted!".
        hold_interrupts()  # the command ends now, with exit 1: no Ctrl-C cuts that short
        notes = getattr(exc, "__notes__", None) or [
            "interrupted: the question may still be queued (swarm task list --status pending)"
        ]
        raise SwarmError(" ".join(notes)) from None

    notes = _notes(app, target, text, answer, dedupe_key)

    def human() -> None:
        click.echo(content(answer.text))
        for note in notes:
            click.echo(printable(f"note: {note}"), err=True)
        click.echo(printable(_footer(answer)), err=True)

    app.emit({**answer.to_dict(), "notes": notes} if notes else answer.to_dict(), human)


def _working_on(app: App, task_id: str) -> Task:
    """The task the asker works on; one SWARM_TASK_ID names that does not exist is said to
    come from there: a shell that ran as swarm run's agent may have kept it."""
    try:
        return app.swarm.get_task(task_id)
    except NotFound as exc:
        source = click.get_current_context().get_parameter_source("task_id")
        if source is not ParameterSource.DEFAULT:  # given as --task: the core said it all
            raise
        raise NotFound(
            f"task {task_id} does not exist; its id came from SWARM_TASK_ID (set by swarm run "
            "for its agent, and maybe left over in this shell): unset SWARM_TASK_ID, or give "
            "--task with the task you work on",
            missing=exc.missing,
        ) from None


@main.command(short_help="Answer the questions asked of a shard with an agent command.")
@click.argument("owner", shell_complete=complete_owners)
@click.option(
    "--exec",
    "command",
    required=True,
    metavar="CMD",
    help="The agent command, run once per question with the prompt on stdin (or in {prompt} "
    "/ {prompt_file}); its whole output is the answer. With --session, {session} is the "
    "conversation to resume.",
)
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--session",
    is_flag=True,
    help="Keep one agent conversation per slot across questions: {session} in CMD gets the "
    "session id the previous answer reported (left out, with its option, when none is known).",
)
@click.option(
    "--lease",
    "lease_s",
    type=click.IntRange(1),
    default=None,
    help="Lease seconds, renewed while the agent answers: a dead server gives questions back "
    "this soon (default: each question's own, a third of its asker's timeout).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=Seconds(above_zero=True),
    default=600,
    show_default=True,
    help="Kill an agent answering longer than this (the question is retried).",
)
@click.option(
    "--inline-max-tokens",
    type=click.IntRange(0),
    default=20_000,
    show_default=True,
    help="A context up to this size is put in the prompt itself; a bigger one is read with "
    "swarm context search/read.",
)
@click.option("--worker", help="Worker name prefix (default: serve-OWNER); slot N is PREFIX-N.")
@click.option("--model", help="The model the agent uses, recorded on its answers.")
@json_option
@pass_app
def serve(
    app: App,
    owner: str,
    command: str,
    concurrency: int,
    session: bool,
    lease_s: int | None,
    timeout_s: float,
    inline_max_tokens: int,
    worker: str | None,
    model: str | None,
) -> None:
    """Answer the questions asked of OWNER (swarm ask OWNER ...) until Ctrl-C.

    Each question is a task of the queue ask.OWNER: CMD gets a prompt with the question, who
    asks (and for which task) and OWNER's context (inline when small, else how to read it);
    its whole output (or the result of Claude's / Codex's JSON output) is the answer. A failed
    run is retried like any task. Ctrl-C once: finish the running answers; twice: stop now.
    """
    from .._runner import ServeOptions, Server, TaskOutcome  # (`swarm --help` imports this module)

    check_name("owner", owner)
    if worker is not None:
        check_name("worker", worker)
    refuse_option_like_slots(app, worker, slots=concurrency)
    options = ServeOptions(
        owner=owner, command=command, concurrency=concurrency, session=session,
        lease_s=lease_s, timeout_s=timeout_s, inline_max_tokens=inline_max_tokens,
        worker=worker, model=model,
    )  # fmt: skip
    lines: queue.Queue[TaskOutcome | str] = queue.Queue()
    server = Server(app.swarm, options, on_outcome=lines.put, on_progress=lines.put)
    if not app.json:
        click.echo(f"serving the questions of {owner} (queue {server.options.queues[0]})", err=True)
    if not any(c.owner == owner for c in app.swarm.contexts()):
        click.echo(
            f"warning: {owner} has published no context: swarm ask {owner} is refused until it "
            f"does (or until an agent named {owner} registers); answers have no context",
            err=True,
        )
    started = time.monotonic()
    drive_pool(app, server, lines, label="swarm serve")
    if server.crash is not None:
        raise server.crash
    pool_summary(app, server, time.monotonic() - started)
    if server.fatal:
        raise SwarmError(server.fatal)
