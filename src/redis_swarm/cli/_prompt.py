"""``swarm prompt ROLE``: a copy-paste init prompt for an agent joining this swarm."""

from __future__ import annotations

import click

from .._prompts import CLIENTS, DEFAULT_QUEUE, ROLES, VIAS, render_prompt
from .._validate import check_name
from ._app import App, json_option, main, pass_app
from ._common import complete_queues


@main.command(short_help="Print an init prompt for an agent of this swarm.")
@click.argument("role", type=click.Choice(ROLES))
@click.option(
    "--queue",
    shell_complete=complete_queues,
    help=f"The work queue the prompt uses (default: {DEFAULT_QUEUE}).",
)
@click.option(
    "--via",
    type=click.Choice(VIAS),
    default="cli",
    show_default=True,
    help="How the agent talks to the swarm: the swarm CLI, the MCP server, or Python.",
)
@click.option(
    "--for",
    "client",
    type=click.Choice(CLIENTS),
    default="generic",
    show_default=True,
    help="The agent's client: Claude Code, Codex, Gemini CLI, or any other.",
)
@click.option("--show-password", is_flag=True, help="Write the URL's password in clear.")
@json_option
@pass_app
def prompt(
    app: App, role: str, queue: str | None, via: str, client: str, show_password: bool
) -> None:
    """Print the init prompt of ROLE (worker, shard, coordinator) for this swarm.

    Paste it into a new agent session (or pass it to `claude -p`, `codex exec`, ...). The
    URL's password is masked unless --show-password.
    """
    if queue is not None:
        check_name("queue", queue)
    text = render_prompt(
        role,
        settings=app.settings,
        queue=queue,
        via=via,
        client=client,
        show_password=show_password,
    )
    data = {
        "role": role,
        "via": via,
        "client": client,
        "queue": queue or DEFAULT_QUEUE,
        "prompt": text,
    }
    app.emit(data, lambda: click.echo(text, nl=False))
    # (a worker's tasks, a shard's pass, are seldom in the default queue)
    if queue is None and role in ("worker", "shard") and not app.json:
        click.echo(
            f"note: the prompt names the queue {DEFAULT_QUEUE}, the default: pass --queue Q "
            "for the queue the tasks are posted to",
            err=True,
        )
