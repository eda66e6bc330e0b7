"""``swarm msg send|broadcast|inbox|mark-read|show|status``: messages between agents."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from .._errors import BroadcastsTrimmed, NotFound
from .._models import Inbox
from .._printable import printable, short
from .._validate import MAX_READ, MAX_WAIT_S, READ_DEFAULT, begins_like_option
from ._app import App, json_option, main, pass_app
from ._common import (
    Seconds,
    add_row,
    agent_option_default,
    agent_required,
    ago,
    complete_agents,
    echo_content,
    kv_table,
    make_table,
    one_stdin,
    parse_json,
    print_table,
    read_text,
    when,
)

Command = TypeVar("Command", bound=Callable[..., Any])

sender_option = click.option(
    "--from", "sender", default=agent_option_default, help="Who sends it (default: SWARM_AGENT)."
)


@main.group()
def msg() -> None:
    """Messages: per-agent inboxes and broadcasts."""


def message_options(command: Command) -> Command:
    """What a message carries besides its text, for `send` and `broadcast` alike."""
    command = click.option(
        "--data", "data_arg", help="Structured data: a JSON object, @file or - (stdin)."
    )(command)
    return click.option(
        "--kind", default="text", show_default=True, help="What kind of message it is."
    )(command)


@msg.command()
@click.argument("to", shell_complete=complete_agents)
@click.argument("body")
@sender_option
@message_options
@json_option
@pass_app
def send(app: App, to: str, body: str, sender: str | None, kind: str, data_arg: str | None) -> None:
    """Send BODY (text, @file or -) to the inbox of agent TO ('swarm msg broadcast BODY'
    sends to every agent)."""
    if to == "*":  # (MCP's send_message takes '*' for every agent; here, a command of its own)
        command = click.get_current_context().find_root().info_name or "swarm"
        raise click.BadParameter(
            f"'*' is no agent: to send to every agent, use '{command} msg broadcast BODY'",
            param_hint="TO",
        )
    text, data = _read_message(app, body, data_arg)
    try:
        m = app.swarm.send(to, text, sender=sender, kind=kind, data=data)
    except NotFound as exc:
        if not begins_like_option(to):
            raise
        # A name no agent can be registered under is a bad TO (exit 2), said in the core's
        # words (lua/message_send.lua), which every face gives; one stored under it before
        # that rule is still sent to, above.
        raise click.BadParameter(str(exc), param_hint="TO") from None
    app.emit(m, lambda: click.echo(f"sent {m.id} to {to}"))


@msg.command()
@click.argument("body")
@sender_option
@message_options
@json_option
@pass_app
def broadcast(app: App, body: str, sender: str | None, kind: str, data_arg: str | None) -> None:
    """Send BODY (text, @file or -) to every agent registered now, its sender aside (with
    none, says on stderr that it reached nobody)."""
    text, data = _read_message(app, body, data_arg)
    m = app.swarm.broadcast(text, sender=sender, kind=kind, data=data)
    app.emit(m, lambda: click.echo(f"broadcast {m.id}"))
    if m.unreached:  # (nobody ever reads it: the sender is told, in the core's words)
        click.echo(f"warning: {m.unreached}", err=True)


def _read_message(app: App, body: str, data_arg: str | None) -> tuple[str, dict[str, Any] | None]:
    """A message's text (BODY) and data (--data: a JSON object, found here before the swarm
    is asked: a usage error)."""
    one_stdin(("BODY", body), ("--data", data_arg))
    text = _read_body(body, app)
    if data_arg is None:
        return text, None
    data = parse_json(data_arg, app, what="--data", thing="the message's data as JSON")
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    return text, data


def _read_body(body: str, app: App) -> str:
    """BODY's text (the core refuses a blank one)."""
    return read_text(body, app, what="BODY", thing="the message text")


@msg.command()
@click.argument("agent", required=False, shell_complete=complete_agents)
@click.option("--peek", is_flag=True, help="Leave the messages unread.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_READ),
    default=READ_DEFAULT,
    show_default=True,
    help=f"Read at most N, the oldest (up to {MAX_READ}); the output says when more wait.",
)
@click.option(
    "--wait",
    "wait_s",
    type=Seconds(most=MAX_WAIT_S),
    default=0,
    help="With no unread message, wait up to S seconds for one (blocking, no polling).",
)
@json_option
@pass_app
def inbox(app: App, agent: str | None, peek: bool, limit: int, wait_s: float) -> None:
    """Read the unread messages to AGENT (default: SWARM_AGENT), broadcasts included, and
    mark them read (--peek: leave them unread). Each is shown on one line, its body cut to
    fit: 'msg show ID' prints one whole (--json: every body whole).

    Each message goes to one reader: two reading one inbox never both print it. A read
    stopped while it waits takes nothing; once messages are taken, Ctrl-C or SIGTERM no
    longer stops it: it prints them and ends as it would have (exit 0)."""
    if agent is None:  # (one given empty is refused by the core: the id is empty)
        agent = agent_option_default()
    if agent is None:
        raise click.UsageError("name the agent whose inbox to read (or set SWARM_AGENT)")
    with warnings.catch_warnings():
        # (said once, by ``_show``, from the read it shows: the look and the take below both
        # meet broadcasts trimmed unread, and both would warn)
        warnings.simplefilter("ignore", BroadcastsTrimmed)
        _read(app, agent, peek, limit, wait_s)


def _read(app: App, agent: str, peek: bool, limit: int, wait_s: float) -> None:
    """``inbox``'s reads, each shown (``_show``) as it is read."""
    if peek:
        _show(
            app, agent, app.swarm.inbox(agent, ack=False, limit=limit, wait_s=wait_s), limit, peek
        )
        return
    # Read with the core's acknowledged read, which takes the messages atomically: a peek
    # and a mark_read after printing (as before) let two readers both print one message.
    # What that order protected, a read interrupted before it printed losing nothing, is kept
    # by looking first (a peek, where --wait blocks: taking nothing) and then taking and
    # printing with the usual interruptions held back until the messages are written out.
    deadline = time.monotonic() + wait_s
    while True:
        waiting = app.swarm.inbox(
            agent, ack=False, limit=1, wait_s=max(0.0, deadline - time.monotonic())
        )
        if not waiting:
            _show(app, agent, waiting, limit, peek)
            return
        with _interruptions_held():
            items = app.swarm.inbox(agent, limit=limit)
            if items:  # (taken: a signal held till they are out ends nothing, exit 0)
                app.finish_uninterrupted()
            if items or time.monotonic() >= deadline:
                _show(app, agent, items, limit, peek)
                return
        # Another reader took them first: wait on for the next.


def _show(app: App, agent: str, items: Inbox, limit: int, peek: bool) -> None:
    """The messages read; when more wait than --limit let through, says so (JSON: more).
    Broadcasts trimmed before the agent read them are said first, on stderr (``trimmed``)."""
    if items.trimmed is not None:
        click.echo(f"warning: {printable(items.trimmed)}", err=True)

    def human() -> None:
        if not items:
            click.echo(f"no new messages for {agent}", err=True)
            return
        # (as the user typed the command: swarm, or python -m redis_swarm, say)
        command = click.get_current_context().find_root().info_name or "swarm"
        if _print_previews(app, items):
            click.echo(
                f"(bodies shown on one line, cut to fit: '{command} msg show ID --agent "
                f"{agent}' shows a message whole; --json gives them whole)",
                err=True,
            )
        if peek:  # (the way to take only what was shown: a read would take later ones too)
            click.echo(
                f"(left unread: '{command} msg mark-read {items[-1].id} --agent {agent}' marks "
                "these read, not those sent since)",
                err=True,
            )
        if items.more:
            ways = [] if peek else ["read again"]
            if limit < MAX_READ:
                ways.append(f"raise --limit (at most {MAX_READ})")
            if not ways:
                ways.append("read them without --peek to reach the rest")
            click.echo(
                f"(the oldest {len(items)}; more messages are waiting: {', or '.join(ways)})",
                err=True,
            )

    # (marked: whether these are read now, as the text output's note after a peek says)
    app.emit({"items": items, "more": items.more, "marked": bool(items) and not peek}, human)


@contextlib.contextmanager
def _interruptions_held() -> Iterator[None]:
    """Hold back Ctrl-C, SIGTERM and SIGHUP while messages are taken: a signal there would
    stop the read between taking and printing them (lost). Once some are taken the command
    finishes uninterrupted (``App.finish_uninterrupted``), so a held signal is let pass when
    they are written out; with none, it takes effect then. SIGKILL cannot be held."""
    if not hasattr(signal, "pthread_sigmask"):  # (not on Windows)
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
        sys.stdout.flush()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _receiver_option(what: str) -> Callable[[Command], Command]:
    return click.option(
        "--agent",
        default=agent_option_default,
        callback=agent_required(what),
        shell_complete=complete_agents,
        help=f"{what[:1].upper()}{what[1:]} (default: SWARM_AGENT).",
    )


@msg.command("mark-read")
@click.argument("through")
@_receiver_option("the agent whose messages to mark read")
@json_option
@pass_app
def mark_read(app: App, through: str, agent: str) -> None:
    """Mark AGENT's messages read through THROUGH, the last one shown (its id, as
    'msg inbox --peek' prints it, or its seq): those sent after it stay unread, so a peek
    then this takes exactly what was shown. Marking again, or an older one, changes
    nothing (and says so). THROUGH must be a message AGENT receives."""
    marked = app.swarm.mark_read(agent, through)
    app.emit(
        {"agent": agent, "through": through, "marked": marked},
        lambda: click.echo(
            f"marked read for {agent} through {through}"
            if marked
            else f"already read for {agent} through {through}: nothing changed"
        ),
    )


@msg.command()
@click.argument("message_id")
@_receiver_option("the agent that received it")
@json_option
@pass_app
def show(app: App, message_id: str, agent: str) -> None:
    """Show message MESSAGE_ID whole, as AGENT received it (its own inbox, or a broadcast
    sent since it registered, as its inbox lists them), read or not; marks nothing read. A
    message read stays showable while it is among the newest its inbox keeps (the error
    says how many)."""
    m = app.swarm.get_message(agent, message_id)

    def human() -> None:
        pairs: list[tuple[str, Any]] = [
            ("id", m.id),
            ("from", m.sender),
            ("to", "everyone (broadcast)" if m.to == "*" else m.to),
            ("kind", m.kind),
            ("sent", when(m.created_at)),
        ]
        if m.data:
            pairs.append(("data", m.data))
        print_table(app, kv_table(pairs))
        click.echo()
        echo_content(m.body)

    app.emit(m, human)


@msg.command()
@click.argument("message_id")
@json_option
@pass_app
def status(app: App, message_id: str) -> None:
    """Whether message MESSAGE_ID was read, and by whom (exit 0 either way)."""
    st = app.swarm.message_status(message_id)

    def human() -> None:
        where = "broadcast" if st.to == "*" else f"to {st.to}"
        if st.to != "*" and not st.read_by and not st.unread_by:
            # (JSON says not read: not known to be; in words, why)
            click.echo(
                f"{st.id} ({where}): no longer kept: {st.to} is not registered (it left, or "
                "was swept as stale) and its inbox, read or not, was dropped with it: whether "
                "it read this one is not known; if it matters, send it again once it is back"
            )
            return
        # (a broadcast not read with nobody unread: some readers left, read or not)
        departed = not st.read and not st.unread_by
        if st.read and not st.read_by:
            # (JSON says read: nobody could read it; in words, that nobody could)
            click.echo(
                f"{st.id} ({where}): no readers (no agent but its sender was registered when "
                "it was sent)"
            )
            return
        status = "read" if st.read else "not known to be read" if departed else "unread"
        click.echo(f"{st.id} ({where}): {status}")
        if st.read_by:
            click.echo(f"  read by: {', '.join(st.read_by)}")
        if st.unread_by:
            click.echo(f"  not yet read by: {', '.join(st.unread_by)}")
        if departed:
            click.echo(
                "  and agents registered when it was sent are no longer (they left, or were "
                "swept as stale): whether they read it is not known; if it matters, send it "
                "again"
            )

    app.emit(st, human)


# The narrowest a body's preview is cut to, however little room the other columns leave.
_PREVIEW_LEAST = 20


def _print_previews(app: App, items: Inbox) -> bool:
    """Print the messages read as a table, one line each: a body (with its data) shown on
    one line and cut to the room the other columns leave on the line (the terminal's width;
    into a pipe, COLUMNS or 80): a body of thousands of characters made every row that wide.
    Returns whether some body is not shown whole (cut, or its lines joined)."""
    from rich.measure import Measurement

    rows = [(m.id, m.sender, m.to, m.kind, ago(m.created_at), _body(m)) for m in items]
    width = app.out.width  # (before print_table: into a pipe it widens the console)
    table = make_table("id", "from", "to", "kind", "when", "body")
    for *cells, _ in rows:
        add_row(table, *cells, "")
    # What the other columns take, their padding and rules included: the table with every
    # body empty, less the body column's heading.
    others = Measurement.get(app.out, app.out.options, table).maximum - len("body")
    room = max(_PREVIEW_LEAST, width - others)
    table = make_table("id", "from", "to", "kind", "when", "body")
    body = table.columns[-1]
    body.no_wrap, body.overflow = True, "ellipsis"
    cut = False
    for *cells, whole in rows:
        line = short(whole, room)
        cut = cut or line != printable(whole)
        add_row(table, *cells, line)
    print_table(app, table)
    return cut


def _body(m: Any) -> str:
    body = str(m.body)
    if m.data:
        import json

        body += "\n" + json.dumps(m.data, ensure_ascii=False)
    return body
