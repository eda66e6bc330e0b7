"""``swarm pipeline ...``: the seed's multi-pass method run from a plan file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from .._pipeline import Plan, load_plan
from ._app import App, json_option, main, pass_app
from ._common import add_row, make_table, print_table, short


@main.group()
def pipeline() -> None:
    """Passes of tasks, a worker pool, a planner and a synthesizer, from a plan file."""


def plan_json(plan: Plan) -> dict[str, Any]:
    """The checked plan as JSON (paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data: dict[str, Any] = plain(dataclasses.asdict(plan))
    return data


@pipeline.command("check")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def pipeline_check(app: App, plan_file: Path) -> None:
    """Check PLAN_FILE without running anything: every problem with its key and line."""
    plan = load_plan(plan_file)

    def human() -> None:
        click.echo(f"{plan.path}: pipeline {plan.name!r} is a valid plan")
        table = make_table("pass", "context", "tasks")
        for p in plan.passes:
            tasks = f"planned (at most {p.max_tasks})" if p.planned else str(len(p.tasks))
            add_row(table, short(p.name, 50), p.context, tasks)
        print_table(app, table)
        for ctx in plan.contexts:
            click.echo(f"context {ctx.owner}: {len(ctx.files)} file(s)")

    app.emit(plan_json(plan), human)
