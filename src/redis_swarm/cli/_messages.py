"""``swarm msg send|broadcast|inbox|status``: messages between agents."""

from __future__ import annotations

from typing import Any

import click

from ._app import App, json_option, main, pass_app
from ._common import (
    add_row,
    agent_option_default,
    ago,
    complete_agents,
    make_table,
    parse_json,
    print_table,
    read_text,
)

sender_option = click.option(
    "--from", "sender", default=agent_option_default, help="Who sends it (default: SWARM_AGENT)."
)


@main.group()
def msg() -> None:
    """Messages: per-agent inboxes and broadcasts."""


@msg.command()
@click.argument("to", shell_complete=complete_agents)
@click.argument("body")
@sender_option
@click.option("--kind", default="text", show_default=True, help="What kind of message it is.")
@click.option("--data", "data_arg", help="Structured data: JSON, @file or - (stdin).")
@json_option
@pass_app
def send(app: App, to: str, body: str, sender: str | None, kind: str, data_arg: str | None) -> None:
    """Send BODY (text, @file or -) to the inbox of agent TO."""
    if body == "-" and data_arg == "-":
        raise click.UsageError("only one of BODY and --data can come from stdin")
    text = _read_body(body, app)
    data = (
        parse_json(data_arg, app, what="--data", thing="the message's data as JSON")
        if data_arg is not None
        else None
    )
    m = app.swarm.send(to, text, sender=sender, kind=kind, data=data)
    app.emit(m, lambda: click.echo(f"sent {m.id} to {to}"))


@msg.command()
@click.argument("body")
@sender_option
@json_option
@pass_app
def broadcast(app: App, body: str, sender: str | None) -> None:
    """Send BODY (text, @file or -) to every agent."""
    m = app.swarm.broadcast(_read_body(body, app), sender=sender)
    app.emit(m, lambda: click.echo(f"broadcast {m.id}"))


def _read_body(body: str, app: App) -> str:
    """BODY's text (the core refuses a blank one)."""
    return read_text(body, app, what="BODY", thing="the message text")


@msg.command()
@click.argument("agent", required=False, shell_complete=complete_agents)
@click.option("--peek", is_flag=True, help="Leave the messages unread.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(0, 86_400),
    default=0,
    help="With no unread message, wait up to S seconds for one (blocking, no polling).",
)
@json_option
@pass_app
def inbox(app: App, agent: str | None, peek: bool, limit: int, wait_s: float) -> None:
    """Read (and mark read) the messages to AGENT (default: SWARM_AGENT), broadcasts included.

    They are marked read once printed: an interrupted read shows them again next time."""
    agent = agent or agent_option_default()
    if not agent:
        raise click.UsageError("name the agent whose inbox to read (or set SWARM_AGENT)")
    items = app.swarm.inbox(agent, ack=False, limit=limit, wait_s=wait_s)

    def human() -> None:
        if not items:
            click.echo(f"no new messages for {agent}", err=True)
            return
        table = make_table("id", "from", "to", "kind", "when", "body")
        for m in items:
            add_row(table, m.id, m.sender, m.to, m.kind, ago(m.created_at), _body(m))
        print_table(app, table)

    app.emit({"items": items}, human)
    if items and not peek:
        app.swarm.mark_read(agent, items[-1].seq)


@msg.command()
@click.argument("message_id")
@json_option
@pass_app
def status(app: App, message_id: str) -> None:
    """Whether message MESSAGE_ID was read, and by whom (exit 0 either way)."""
    st = app.swarm.message_status(message_id)

    def human() -> None:
        where = "broadcast" if st.to == "*" else f"to {st.to}"
        click.echo(f"{st.id} ({where}): {'read' if st.read else 'unread'}")
        if st.read_by:
            click.echo(f"  read by: {', '.join(st.read_by)}")
        if st.unread_by:
            click.echo(f"  not yet read by: {', '.join(st.unread_by)}")

    app.emit(st, human)


def _body(m: Any) -> str:
    body = str(m.body)
    if m.data:
        import json

        body += "\n" + json.dumps(m.data, ensure_ascii=False)
    return body
