"""``swarm demo``: the seed's Pass 1 with five real worker processes."""

from __future__ import annotations

import click

from ._app import App, json_option, main, pass_app


@main.command(short_help="Run Pass 1: a shard's 530 KB context searched by workers.")
@click.option("--workers", default=5, show_default=True, help="Worker processes to start.")
@json_option
@pass_app
def demo(app: App, workers: int) -> None:
    """Run Pass 1: a shard publishes a 530 KB context, 5 workers search it and report."""
    if workers < 1 or workers > 50:
        raise click.BadParameter("use between 1 and 50 workers", param_hint="--workers")
    from .._demo import run_demo  # (here: it brings redis-py, which --help does without)

    say = (lambda _line: None) if app.json else (lambda line: app.out.print(line, highlight=False))
    result = run_demo(app.settings, workers=workers, say=say)
    if app.json:
        app.emit(result.__dict__)
