"""``swarm bench``: latency of the configured server (a face over ``_bench.run_bench``)."""

from __future__ import annotations

import click

from .._codec import byte_size
from ._app import App, json_option, main, pass_app


@main.command(short_help="Measure the configured server: PING, contexts, tasks.")
@click.option("--quick", is_flag=True, help="Fewer samples: a few seconds, noisier figures.")
@json_option
@pass_app
def bench(app: App, quick: bool) -> None:
    """Measure the configured server: PING, contexts (publish, fetch cold and warm, against
    a raw GET of the same bytes), post, claim + report. Runs in a scratch swarm, removed at
    the end; the live swarm is not touched. Needs an admin user: any other is refused."""
    from .._bench import run_bench  # (here: it brings redis-py, which --help does without)

    progress = None if app.json else (lambda msg: app.err.print(f"[dim]measuring {msg}[/]"))
    results = run_bench(app.settings, quick=quick, progress=progress)
    data = {"url": app.settings.url, "quick": quick, "results": [r.to_dict() for r in results]}

    def human() -> None:
        from rich.table import Table  # (here: `swarm --help` imports this module to list it)

        table = Table(title=f"swarm bench: {app.settings.url}")
        for name in ("operation", "size", "p50 ms", "p99 ms", "vs raw GET"):
            table.add_column(name, justify="left" if name == "operation" else "right")
        for r in results:
            table.add_row(
                r.name,
                byte_size(r.size_bytes),
                f"{r.p50_ms:.3f}",
                f"{r.p99_ms:.3f}",
                f"{r.vs_floor:.2f}x" if r.vs_floor is not None else "",
            )
        app.out.print(table)

    app.emit(data, human)
