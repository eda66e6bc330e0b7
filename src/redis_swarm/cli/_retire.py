"""``swarm retire PASS``: free a settled pass's tasks and findings (``Swarm.retire_pass``)."""

from __future__ import annotations

import click

from .._printable import printable
from ._app import App, json_option, main, pass_app


@main.command(short_help="Remove a settled pass's tasks and findings, to free memory.")
@click.argument("pass_name", metavar="PASS")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@json_option
@pass_app
def retire(app: App, pass_name: str, dry_run: bool) -> None:
    """Remove the settled work of PASS: its completed, cancelled and dead tasks, their data
    and every finding they got (superseded ones too), the counters brought down by as much.
    Syntheses stay, and a record of the retirement (lineage names it); a finding a
    synthesis of another pass cites stays, with its task. Refused while PASS has open
    tasks: wait for them (swarm task wait --pass PASS) or cancel them first."""
    done = app.swarm.retire_pass(pass_name, dry_run=dry_run)

    def human() -> None:
        verb = "would retire" if done.dry_run else "retired"
        left = [f"{done.kept} open tasks kept"]
        if done.cited:
            left.append(f"{done.cited} settled tasks kept: a synthesis of another pass cites them")
        if done.corrupt:
            left.append(f"{done.corrupt} records stored unreadable kept: swarm doctor names them")
        click.echo(
            printable(
                f"{verb} pass {done.pass_name}: {done.tasks} tasks, {done.findings} findings "
                f"({'; '.join(left)})"
            )
        )

    app.emit(done, human)
