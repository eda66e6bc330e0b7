"""``swarm pipeline ...``: the seed's multi-pass method run from a plan file."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .._pipeline import PassResult, Pipeline, Plan, load_plan, total_usage
from ._app import App, json_option, main, pass_app
from ._common import add_row, make_table, print_table, short, signals


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


@pipeline.command("run")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--worker", help="Worker name prefix of the pool (slot N claims as PREFIX-N).")
@click.option(
    "--max-cost-usd", type=click.FloatRange(0), help="The budget in USD (overrides the plan's)."
)
@click.option(
    "--max-tasks", type=click.IntRange(1), help="Task claims allowed (overrides the plan's)."
)
@json_option
@pass_app
def pipeline_run(
    app: App,
    plan_file: Path,
    worker: str | None,
    max_cost_usd: float | None,
    max_tasks: int | None,
) -> None:
    """Run PLAN_FILE: publish its contexts, then each pass (tasks, workers, synthesis).

    Run it again after it was stopped or killed: it resumes where it stopped (no task is
    posted twice, a pass already synthesised is not rerun). Ctrl-C once: let the running
    agents finish, then stop; twice: kill them (their tasks go back to the queue). When a
    budget (max_cost_usd, max_tasks) is spent, no task is claimed, the running ones finish
    and the run stops: raise the budget and run it again.
    """
    plan = load_plan(plan_file)
    if max_cost_usd is not None:
        plan = dataclasses.replace(plan, max_cost_usd=max_cost_usd)
    if max_tasks is not None:
        plan = dataclasses.replace(plan, max_tasks=max_tasks)
    started = time.monotonic()

    def say(line: str) -> None:
        if not app.json:
            click.echo(line, err=True)

    run = Pipeline(app.swarm, plan, say=say, worker_prefix=worker)
    with _signals(run):
        results = run.run()
    summary = run_json(plan, results, time.monotonic() - started)
    summary["stopped_by"] = run.budget_reason
    done = len(results) == len(plan.passes) and all(r.synthesis for r in results)

    def human() -> None:
        table = make_table("pass", "tasks", "completed", "dead", "findings", "synthesis", "cost")
        for entry in summary["passes"]:
            counts = entry["counts"]
            add_row(
                table, short(entry["name"], 40), entry["tasks"], counts.get("completed", 0),
                counts.get("dead", 0), entry["findings"], entry["synthesis"],
                f"${entry['usage']['cost_usd']:.4f}",
            )  # fmt: skip
        print_table(app, table)
        state = "done" if done else "stopped; run it again to resume"
        if run.budget_reason:
            state = f"stopped: {run.budget_reason}"
        click.echo(f"pipeline {plan.name}: {state}")

    app.emit(summary, human)
    if not done:
        raise click.exceptions.Exit(1)


def run_json(plan: Plan, results: list[PassResult], duration_s: float) -> dict[str, Any]:
    passes = []
    for r in results:
        usages = [f.usage for f in r.findings]
        if r.synthesis is not None:
            usages.append(r.synthesis.usage)
        passes.append(
            {
                "name": r.name,
                "label": r.label,
                "tasks": len(r.tasks),
                "counts": r.counts(),
                "findings": len(r.findings),
                "synthesis": r.synthesis.id if r.synthesis else None,
                "cited": list(r.synthesis.sources) if r.synthesis else [],
                "resumed": r.resumed,
                "usage": total_usage(usages),
            }
        )
    return {
        "pipeline": plan.name,
        "done": len(results) == len(plan.passes) and all(r.synthesis for r in results),
        "passes": passes,
        "duration_s": round(duration_s, 3),
    }


@contextmanager
def _signals(run: Pipeline) -> Iterator[None]:
    """Ctrl-C: finish the running agents, then stop; again (or SIGTERM): stop them now."""

    def on_sigint(_signum: int, _frame: Any) -> None:
        hard = run.stopped
        run.stop(hard=hard)
        click.echo(
            "stopping now: killing the running agents"
            if hard
            else "stopping after the running agents finish; Ctrl-C again to stop them now",
            err=True,
        )

    def on_sigterm(_signum: int, _frame: Any) -> None:
        run.stop(hard=True)

    with signals(on_sigint, on_sigterm):
        yield
