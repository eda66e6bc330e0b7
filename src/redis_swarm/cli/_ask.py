"""``swarm ask``: ask a shard (or a queue of helpers) a question and print the answer;
``swarm serve``: answer the questions asked of a shard with an agent command."""

from __future__ import annotations

import hashlib
import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TextIO

import click
from click.core import ParameterSource

from .._codec import first_few
from .._env import ENV_TASK_ID, ENV_TASK_TOKEN, run_task_id, run_task_token
from .._errors import NotFound, SwarmError, ValidationError
from .._hints import CANCEL_TASK, SERVE_QUESTIONS, said_of
from .._models import Answer, Task, TaskStatus
from .._printable import asked_otherwise, printable, short, short_version
from .._usage import usd
from .._validate import DEFAULT_TIMEOUT_S, MAX_ASK_TIMEOUT_S, MAX_NAME, check_name
from ._app import App, json_option, main, pass_app
from ._common import (
    MAX_DATA_FILE_BYTES,
    Seconds,
    agent_option_default,
    complete_owners,
    echo_content,
    hold_interrupts,
    one_stdin,
    own_kept_token,
    parse_json,
    read_text,
    signals,
)
from ._run import drive_pool, finish_pool, pool_imports, refuse_option_like_slots
from ._tasks import LEASE_SECONDS


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


class _Said:
    """What ``swarm ask`` says on stderr while it waits (not with --json): the question's id
    once it is posted (a killed ask leaves it queued: the id is what to cancel), and the
    note for a question nobody has claimed yet (without it a newcomer asking a shard that
    nobody serves sees nothing until the timeout, and takes the wait for a hang)."""

    def __init__(self, app: App) -> None:
        self.quiet = app.json
        self.question: str | None = None  # the question waited for, once posted (or met)
        self.ours = True  # it is this ask's own (posted by it), not shared by its dedupe key

    def posted(self, question_id: str, posted: bool = True) -> None:
        """The question waited for: this ask's own (``posted``), whose id is what to withdraw
        should the ask be killed; or one its dedupe key met, which only the asker that posted
        it withdraws (withdrawing it would cut the other askers' wait short)."""
        self.question, self.ours = question_id, posted
        if self.quiet:
            return
        if posted:
            said = (
                f"question {question_id} asked; should this ask be killed, withdraw it: "
                # (said bare: the one hint of stderr is its error's, tests/test_cli_hints.py)
                f"{said_of(CANCEL_TASK, question_id).strip('()')}"
            )
        else:
            said = (
                f"question {question_id} asked before with this dedupe key: waiting for its "
                "answer (the asker that posted it withdraws it)"
            )
        click.echo(printable(said), err=True)

    def unclaimed(self, queue: str) -> None:
        if self.quiet:
            return
        which = "the question" if self.question is None else f"question {self.question}"
        click.echo(
            printable(
                f"waiting: no answerer has claimed {which} yet: is anyone serving queue "
                f"{queue!r}? {SERVE_QUESTIONS}"
            ),
            err=True,
        )

    def interrupted(self, target: str) -> str:
        """What became of the question when the interrupt came where the core could not say
        (before it started asking, or after it returned)."""
        if self.question is None:
            return f"interrupted before the question to {target!r} was posted: nothing was asked"
        if not self.ours:
            return (
                f"interrupted while asking {target!r}: question {self.question} stays open, "
                "shared with the asker that posted it (which withdraws it)"
            )
        return (
            f"interrupted while asking {target!r}: question {self.question} may still be "
            f"queued: withdraw it {said_of(CANCEL_TASK, self.question)}"
        )


def _interrupt_once() -> Callable[[int, Any], None]:
    """A handler of Ctrl-C (and SIGTERM, SIGHUP) for the wait: the first one interrupts it
    (the core then withdraws the question) and holds the next ones from that moment
    (``hold_interrupts``), so that the withdrawal ends and says what became of the question
    (exit 1). Held here, not once the interrupt is caught: leaving ``signals`` would restore
    Ctrl-C's default first, and a second one pressed right then ended the command with
    click's bare "Aborted!"."""

    def handler(_signum: int, _frame: Any) -> None:
        hold_interrupts()
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
    default=run_task_id,
    help=f"The task you are working on (default: {ENV_TASK_ID}, set by swarm run): the answer "
    f"is linked to it and its lease renewed while you wait (with {ENV_TASK_TOKEN}, or the "
    "token swarm task claim kept on this machine). The asker is then its lease holder.",
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
    wait goes on; the question's id is said on stderr once it is posted (not with --json).
    Exit 3 when no answer came within --timeout."""
    said = _Said(app)
    interrupt = _interrupt_once()
    try:
        # (from the start: an interrupt while the question is read is said as one too)
        with signals(interrupt, interrupt):
            one_stdin(("QUESTION", question), ("--data", data_arg))
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
                who = _asking_for(app, _working_on(app, task_id), asker)
            answer = app.swarm.ask(
                target, text, data=data, timeout_s=timeout_s, asker=who, keep=keep,
                dedupe_key=dedupe_key, on_unclaimed=said.unclaimed, on_posted=said.posted,
            )  # fmt: skip
    except KeyboardInterrupt as exc:
        # Ctrl-C: the core gave the question up and noted what became of it (cancelled, or
        # left queued with its id): one error line says so, not click's bare "Aborted!".
        hold_interrupts()  # (held already when the interrupt was a signal)
        notes = getattr(exc, "__notes__", None) or [said.interrupted(target)]
        raise SwarmError(" ".join(notes)) from None

    notes = _notes(app, target, text, answer, dedupe_key)

    def human() -> None:
        echo_content(answer.text)
        for note in notes:
            click.echo(printable(f"note: {note}"), err=True)
        click.echo(printable(_footer(answer)), err=True)

    app.emit({**answer.to_dict(), "notes": notes} if notes else answer.to_dict(), human)


def _asking_for(app: App, task: Task, asker: str | None) -> Task:
    """The task the asker works on, as the core takes it (``asker=task``): carrying its
    lease's token, so that the ask renews the lease while it waits; the token is swarm run's
    (SWARM_TASK_TOKEN, with SWARM_TASK_ID naming the task), else the one ``swarm task claim``
    kept on this machine for the lease holder, when the asker is that holder (never another
    worker's: ``own_kept_token``). The asker is the task's lease holder: an
    --asker naming another is refused (exit 2); a task no lease holds asks as --asker.
    When the lease cannot be renewed, a warning says so, and how to give the token."""
    holder = task.worker if task.status is TaskStatus.CLAIMED else None
    if holder is None:
        if not app.json:
            click.echo(
                printable(
                    f"note: {task.id} is {task.status.value}, held by no lease: the answer is "
                    "linked to it, no lease is renewed"
                ),
                err=True,
            )
        return task if asker is None else replace(task, worker=asker)
    given = click.get_current_context().get_parameter_source("asker")
    if asker is not None and asker != holder and given is ParameterSource.COMMANDLINE:
        # (SWARM_AGENT is not asked: a swarm run slot may run a task another slot claimed)
        raise ValidationError(  # (a usage error: exit 2)
            f"--asker {asker!r} contradicts --task {task.id}, whose lease {holder!r} holds: "
            "with --task the asker is the task's lease holder; leave --asker out"
        )
    token = run_task_token(task.id)
    # Asking as nobody in particular (no --asker, no SWARM_AGENT) is asking as the lease
    # holder; one named otherwise is another worker, whose ask must not keep the holder's
    # lease alive with the holder's kept token (_common's rule).
    me = asker or holder
    if token is None and me == holder:
        token = own_kept_token(app.swarm.settings, me, task.id, task.attempts)
    if token is None and not app.json:
        why = (
            "no token of it is kept on this machine (swarm task claim keeps it); give it as "
            f"{ENV_TASK_ID}={task.id} {ENV_TASK_TOKEN}=TOKEN (the token its claim printed)"
            if me == holder
            else f"you ask as {me} (SWARM_AGENT), and only {holder}'s own token renews its "
            f"lease: ask as the holder, --asker {holder}"
        )
        click.echo(
            printable(
                f"warning: the lease of {task.id} (held by {holder}) will not be renewed while "
                f"you wait: {why}"
            ),
            err=True,
        )
        return task
    return replace(task, token=token)


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
            f"task {task_id} does not exist; its id came from {ENV_TASK_ID} (set by swarm run "
            f"for its agent, and maybe left over in this shell): unset {ENV_TASK_ID}, or give "
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
    type=LEASE_SECONDS,
    default=None,
    help="Lease seconds, renewed while the agent answers: a dead server gives questions back "
    "this soon (default: each question's own, a third of its asker's timeout).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=Seconds(above_zero=True),
    default=DEFAULT_TIMEOUT_S,
    help="Kill an agent answering longer than this (the question is retried).  "
    f"[default: {DEFAULT_TIMEOUT_S:g}]",
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
    lease_s: float | None,
    timeout_s: float,
    inline_max_tokens: int,
    worker: str | None,
    model: str | None,
) -> None:
    """Answer the questions asked of OWNER (swarm ask OWNER ...) until Ctrl-C.

    Each question is a task of the queue ask.OWNER: CMD gets a prompt with the question, who
    asks (and for which task) and OWNER's context (inline when small, else how to read it);
    its whole output (or the result of Claude's / Codex's JSON output) is the answer. A failed
    run is retried like any task. Ctrl-C once: finish the running answers; twice (or
    SIGTERM): stop now, their questions given back; exit 1 when answers were stopped so, as
    swarm run exits.
    """
    # (`swarm --help` imports this module)
    from .._runner import ServeOptions, Server, TaskOutcome, slot_name
    from .._runner.serve import SESSION

    check_name("owner", owner)
    if worker is not None:
        check_name("worker", worker)
    if not session and SESSION in command:
        raise ValidationError(  # (a usage error: exit 2)
            f"not started: --exec names {SESSION}, which only --session fills (without it, "
            f"{SESSION} would be left out with the option before it, and every question would "
            f"start a new conversation): add --session, or take {SESSION} out of the command"
        )
    refuse_option_like_slots(app, worker, slots=concurrency)
    options = ServeOptions(
        owner=owner, command=command, concurrency=concurrency, session=session,
        lease_s=lease_s, timeout_s=timeout_s, inline_max_tokens=inline_max_tokens,
        worker=worker, model=model,
    )  # fmt: skip
    lines: queue.Queue[TaskOutcome | str] = queue.Queue()
    server = Server(app.swarm, options, on_outcome=lines.put, on_progress=lines.put)
    prefix = server.options.worker
    assert prefix is not None  # (the server's: --worker, else serve-OWNER)
    slots = [slot_name(prefix, n) for n in range(1, concurrency + 1)]
    _refuse_long_slots(prefix, slots[-1], given=worker is not None)
    held = _hold_slot_names(app, prefix, slots)  # (before a word: a refused one says only it)
    pool_imports()
    try:
        if not app.json:
            click.echo(
                f"serving the questions of {owner} (queue {server.options.queues[0]})", err=True
            )
        if not _askable(app, owner):
            click.echo(
                f"warning: {owner} has published no context: swarm ask {owner} is refused "
                f"until it does (or until an agent named {owner} registers); answers have no "
                "context",
                err=True,
            )
        if not app.json:
            _say_live_slots(app, slots)
        started = time.monotonic()
        stopped_by = drive_pool(app, server, lines, label="swarm serve")
    finally:
        if held is not None:
            held.close()
    finish_pool(app, server, stopped_by, time.monotonic() - started)  # (as swarm run ends)


def _refuse_long_slots(prefix: str, longest: str, *, given: bool) -> None:
    """Refuse, before the server starts, slot names (``prefix``-N) too long to be a worker:
    each slot's first claim would be refused, stopping the server (exit 1). Said as a bad
    option (exit 2), with the prefix that fits."""
    if len(longest) <= MAX_NAME:
        return
    room = MAX_NAME - (len(longest) - len(prefix))  # (the longest prefix its slots allow)
    which = "--worker" if given else f"the default worker prefix {prefix[:40]}..."
    raise click.UsageError(
        f"{which} makes slot names like {longest[:40]}... of {len(longest)} characters; a "
        f"worker has at most {MAX_NAME}: give a shorter prefix, --worker PREFIX of at most "
        f"{room} characters (slot N is PREFIX-N)"
    )


def _askable(app: App, owner: str) -> bool:
    """Whether ``swarm ask OWNER`` is taken: the core's rule (its ask resolves a target that
    is a context owner or a registered agent to the owner's ask queue), read with the public
    operations of each (``context_info``, ``get_agent``)."""
    for exists in (app.swarm.context_info, app.swarm.get_agent):
        try:
            exists(owner)
        except NotFound:
            continue
        return True
    return False


def _hold_slot_names(app: App, prefix: str, slots: list[str]) -> TextIO | None:
    """This machine's lock of the slot names ``prefix``-N, held while the server runs (the
    file it returns, to close; None where it cannot be taken: no flock on Windows, a home
    this process may not write). A second ``swarm serve`` under the same prefix is refused
    (a usage error, exit 2): it would run as the same agents (one record, one --session
    conversation) and its answers be taken for the first one's. The lock goes with its
    process, ``kill -9`` too, so a server restarted at once takes its names back."""
    if sys.platform == "win32":
        return None
    import fcntl

    settings = app.swarm.settings
    # (per server too: two servers' swarms of one name are two swarms, whose agents differ;
    # named by a digest of where the data lives, no credential in it, however the URL spells
    # it: the settings parsed it, their hosts are resolved)
    if settings.kind == "standalone":
        nodes = [(settings.host, settings.port)]
    else:
        nodes = list(settings.nodes)
    addresses = sorted(f"{_address(host, port)}|{port}" for host, port in nodes)
    path = os.path.realpath(settings.path) if settings.path else None
    where = f"{settings.kind}|{addresses}|{path}|{settings.db}|{settings.service_name}"
    server = hashlib.blake2b(where.encode(), digest_size=6).hexdigest()
    folder = settings.home / "serve" / settings.swarm
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        held = (folder / f"{prefix}.{server}.lock").open("a+", encoding="utf-8")
    except OSError:
        return None
    try:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        held.seek(0)
        pid = held.read().strip() or "?"
        held.close()
        raise ValidationError(
            f"another swarm serve on this machine (pid {pid}) answers as {first_few(slots, 2)}: "
            "two servers under one name would be one agent (one record, one --session "
            "conversation), their answers all said to be its; give this one a name of its "
            "own, --worker PREFIX (slots PREFIX-1, PREFIX-2, ...)"
        ) from None
    held.seek(0)
    held.truncate()
    held.write(f"{os.getpid()}\n")
    held.flush()
    return held


def _address(host: str, port: int) -> str:
    """``host`` as the serve lock keys it, one way for every spelling of one server: this
    machine's (localhost, 127.0.0.1, ::1, a name that resolves to loopback alone:
    ``_net.loopback_only``) as one; another resolved to its addresses (the first, sorted),
    or lowercased when it does not resolve now."""
    import ipaddress
    import socket

    from .._net import loopback_only

    name = host.lower().rstrip(".")
    if loopback_only(name):
        return "loopback"
    try:
        found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return name
    # (each address as ipaddress writes it: 0:0::1 and ::1 alike; no IPv6 zone)
    shown = sorted(str(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in found)
    return shown[0] if shown else name


def _say_live_slots(app: App, slots: list[str]) -> None:
    """A warning when a slot name this server takes is an agent alive now (its last sign of
    life within the minute): another machine's server of the same names, or one stopped (or
    killed) here within the minute. One read per slot."""
    for name in slots:
        try:
            agent = app.swarm.get_agent(name)
        except SwarmError:  # not registered (or not readable now): nothing to say
            continue
        if agent.alive:
            click.echo(
                printable(
                    f"warning: agent {name} was alive within the minute: if a swarm serve on "
                    "another machine answers as it, stop this one and start it with --worker "
                    "PREFIX of its own (a server of these names stopped or killed within the "
                    "minute shows so too)"
                ),
                err=True,
            )
            return
