"""``swarm ask``: ask a shard (or a queue of helpers) a question and print the answer."""

from __future__ import annotations

import os

import click

from .._models import Answer, Task
from .._printable import printable
from ._app import App, json_option, main, pass_app
from ._common import (
    Seconds,
    agent_option_default,
    complete_owners,
    content,
    parse_json,
    read_text,
)


def _footer(answer: Answer) -> str:
    parts = [f"answered by {answer.answerer or '?'}"]
    if answer.model:
        parts.append(f"model {answer.model}")
    if answer.cost_usd is not None:
        parts.append(f"${answer.cost_usd:.4f}")
    parts.append(f"finding {answer.finding_id}, question {answer.question_id}")
    return "-- " + ", ".join(parts)


@main.command(short_help="Ask a shard (or a queue of helpers) and wait for the answer.")
@click.argument("target", shell_complete=complete_owners)
@click.argument("question")
@click.option("--data", "data_arg", help="Material for the answerer: JSON, @file or - (stdin).")
@click.option(
    "--timeout",
    "timeout_s",
    type=Seconds(),
    default=60,
    show_default=True,
    help="Seconds to wait for the answer; then exit 3 (the question is cancelled).",
)
@click.option("--keep", is_flag=True, help="On timeout, leave the question queued.")
@click.option("--dedupe", "dedupe_key", help="Asking with the same key again returns its answer.")
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
    `swarm serve OWNER` answers) or a queue of helpers such as `assist`. Exit 3 when no
    answer came within --timeout."""
    text = read_text(question, app, what="QUESTION")
    data = parse_json(data_arg, app, what="--data") if data_arg is not None else None
    who: str | Task | None = asker
    if task_id is not None:
        who = app.swarm.get_task(task_id)
    answer = app.swarm.ask(
        target, text, data=data, timeout_s=timeout_s, asker=who, keep=keep,
        dedupe_key=dedupe_key,
    )  # fmt: skip

    def human() -> None:
        click.echo(content(answer.text))
        click.echo(printable(_footer(answer)), err=True)

    app.emit(answer.to_dict(), human)
