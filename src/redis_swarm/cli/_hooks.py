"""``swarm hook EVENT``: the command a Claude Code, Codex or Gemini CLI hook runs (docs/live.md).

It reads the client's hook JSON on stdin and answers in that client's format: JSON on stdout
and exit 0. It never exits 2 (which the clients read as "block"): a swarm it cannot reach or
an input it cannot read gives exit 1, which every client reports and goes on from.
"""

from __future__ import annotations

import json
import sys

import click

from .._errors import SwarmError
from .._hooks import CLIENTS, HookOptions, canonical_event, handle, render
from ._app import App, main, pass_app
from ._common import agent_option_default

MAX_INPUT_BYTES = 4 * 1024 * 1024


@main.command(short_help="Answer a Claude Code / Codex / Gemini CLI hook event (stdin JSON).")
@click.argument("event")
@click.option("--client", default="claude", show_default=True, help="claude, codex or gemini.")
@click.option("--role", default="worker", show_default=True, help="The session's swarm role.")
@click.option("--queue", "queues", multiple=True, help="A queue the session works (repeatable).")
@click.option("--loop", is_flag=True, help="Stop hands the session its next task.")
@click.option("--max-tasks", type=int, default=0, help="With --loop: at most N tasks (0: any).")
@pass_app
def hook(
    app: App, event: str, client: str, role: str, queues: tuple[str, ...], loop: bool,
    max_tasks: int,
) -> None:  # fmt: skip
    """Read the hook input of EVENT (SessionStart, UserPromptSubmit, Stop, SubagentStart,
    SubagentStop, PreCompact; Gemini: BeforeAgent, AfterAgent, PreCompress) on stdin and
    answer it. The agent is SWARM_AGENT, else derived from the input's session_id."""
    try:
        if client not in CLIENTS:
            raise ValueError(f"unknown client {client!r}: use one of {', '.join(CLIENTS)}")
        name = canonical_event(event, client)
        raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        if len(raw) > MAX_INPUT_BYTES:
            raise ValueError("the hook input is over 4 MiB")
        payload = json.loads(raw or b"{}")
        if not isinstance(payload, dict):
            raise ValueError("the hook input is not a JSON object")
        options = HookOptions(
            client=client, role=role, queues=queues, loop=loop, max_tasks=max(0, max_tasks),
            agent=agent_option_default(),
        )  # fmt: skip
        answer = handle(app.swarm, name, payload, options)
    except (ValueError, SwarmError) as exc:
        # exit 1: the clients show it and carry on (exit 2 would block the session)
        click.echo(f"swarm hook {event}: {exc}", err=True)
        sys.exit(1)
    click.echo(render(answer, name, client))
