"""``swarm retire PASS`` / ``swarm retire --questions TARGET``: free a settled pass's tasks
and findings (``Swarm.retire_pass``), or the settled questions asked of a target and their
answers (``Swarm.retire_questions``)."""

from __future__ import annotations

import click

from .._codec import counted
from .._models import RetiredPass, RetiredQuestions
from .._printable import printable
from ._app import App, json_option, main, pass_app
from ._common import Seconds

_ONE_OF = (
    "give exactly one of PASS (retire a settled pass) or --questions TARGET (retire the "
    "settled questions asked of TARGET): swarm retire P, or swarm retire --questions OWNER"
)


@main.command(short_help="Remove a settled pass's work, or settled questions, to free memory.")
@click.argument("pass_name", metavar="[PASS]", required=False)
@click.option(
    "--questions", "target", metavar="TARGET",
    help="Retire the settled questions asked of TARGET (an owner or agent, or the assist "
    "queue) and their answers, instead of a pass.",
)  # fmt: skip
@click.option(
    "--older-than", "older_than", type=Seconds(), default=None, metavar="SECONDS",
    help="With --questions: only those settled at least this many seconds ago (default "
    f"{RetiredQuestions.DEFAULT_OLDER_THAN_S:g}, so that no answer goes before a waiting "
    "asker reads it; more when askers come back later for kept questions; 0 for every "
    "settled one).",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@json_option
@pass_app
def retire(
    app: App, pass_name: str | None, target: str | None, older_than: float | None, dry_run: bool
) -> None:
    """Remove the settled work of PASS: its completed, cancelled and dead tasks, their data
    and every finding they got (superseded ones too), the counters brought down by as much.
    Syntheses stay, and a record of the retirement (lineage names it); a finding a
    synthesis of another pass cites stays, with its task. Refused while PASS has open
    tasks: wait for them (swarm task wait --pass PASS) or cancel them first (swarm task
    cancel --pass PASS).

    With --questions TARGET instead: remove the completed, cancelled and dead questions
    asked of TARGET (its queue ask.TARGET; or the assist queue) settled at least
    --older-than seconds ago (default: a minute), with their answers; open questions stay,
    and lineage says which questions were retired."""
    if (pass_name is None) == (target is None):
        raise click.UsageError(_ONE_OF)
    if target is None:
        if older_than is not None:
            raise click.UsageError("--older-than goes with --questions TARGET, not with PASS")
        assert pass_name is not None
        done = app.swarm.retire_pass(pass_name, dry_run=dry_run)
        app.emit(done, lambda: click.echo(printable(_pass_line(done))))
        return
    if older_than is None:
        older_than = RetiredQuestions.DEFAULT_OLDER_THAN_S
    retired = app.swarm.retire_questions(target, older_than_s=older_than, dry_run=dry_run)
    app.emit(retired, lambda: click.echo(printable(_questions_line(retired))))


def _them(n: int) -> str:
    return "it" if n == 1 else "them"


def _pass_line(done: RetiredPass) -> str:
    verb = "would retire" if done.dry_run else "retired"
    left = [f"{counted(done.kept, 'open task')} kept"]
    if done.cited:
        left.append(
            f"{counted(done.cited, 'settled task')} kept: a synthesis of another pass cites "
            f"{_them(done.cited)}"
        )
    if done.corrupt:
        left.append(_unreadable(done.corrupt))
    return (
        f"{verb} pass {done.pass_name}: {counted(done.tasks, 'task')}, "
        f"{counted(done.findings, 'finding')} ({'; '.join(left)})"
    )


def _questions_line(done: RetiredQuestions) -> str:
    verb = "would retire" if done.dry_run else "retired"
    left = [f"{counted(done.open, 'open question')} kept"]
    if done.recent:
        left.append(f"{done.recent:,} settled within {done.older_than_s:g} s kept")
    if done.cited:
        their = "its" if done.cited == 1 else "their"
        left.append(f"{done.cited:,} kept: a synthesis cites {their} answer")
    if done.other:
        left.append(
            f"{counted(done.other, 'task')} with a pass or shard kept: swarm retire PASS frees "
            f"{_them(done.other)}"
        )
    if done.corrupt:
        left.append(_unreadable(done.corrupt))
    return (
        f"{verb} questions of {done.queue}: {counted(done.questions, 'question')}, "
        f"{counted(done.findings, 'finding')} ({'; '.join(left)})"
    )


def _unreadable(n: int) -> str:
    return f"{counted(n, 'record')} stored unreadable kept: swarm doctor names {_them(n)}"
