"""What a pipeline did, read back from the swarm: per pass status, the Markdown report, and
the lineage of a synthesis, finding or task (which worker, model, attempt, context version
and cost stand behind each claim)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import NotFound
from .._models import Finding, Task, TaskStatus, Usage, iso, now_ms, usage_line, usd
from .names import plan_owner, stored_run
from .plan import Plan, parse_plan
from .records import (
    PassResult,
    add_figures,
    no_figures,
    plus,
    read_pass,
    spending,
    synthesizer_task,
    usage_figures,
)

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["lineage", "read_passes", "report_markdown", "status_json", "stored_plan", "tokens"]


def stored_plan(swarm: Swarm, name: str) -> Plan:
    """The plan the last run of pipeline ``name`` stored in the swarm."""
    owner = plan_owner(name)
    try:
        info = swarm.context_info(owner)
    except NotFound:
        raise NotFound(
            f"no pipeline {name!r} in swarm {swarm.name!r}: start it with "
            "swarm pipeline run PLAN.toml"
        ) from None
    text = swarm.get_context(owner, info.version)
    plan = parse_plan(text, Path(info.source or f"{name}.toml"), match_files=False)
    return dataclasses.replace(plan, run=stored_run(text))


def read_passes(swarm: Swarm, plan: Plan) -> list[PassResult]:
    """Every pass of ``plan`` as the swarm holds it (tasks, findings, synthesis, and what
    its agents' runs cost)."""
    return [read_pass(swarm, plan, index) for index in range(len(plan.passes))]


MONEY_PLACES = 10  # a sum of float dollars carries noise (0.24000000000000002): rounded here


def _json_figures(value: Any, key: str = "") -> Any:
    """``value`` as the JSON of ``status`` shows it: every sum of money rounded to
    ``MONEY_PLACES``, token counts as integers, unknown (None) as null."""
    if isinstance(value, dict):
        return {k: _json_figures(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_figures(v) for v in value]
    if isinstance(value, float) and key.endswith("cost_usd"):
        return round(value, MONEY_PLACES)
    if isinstance(value, float) and key.startswith("tokens_"):
        return int(value)
    return value


def pass_status(result: PassResult) -> dict[str, Any]:
    """One pass at a glance: tasks posted / completed / dead, findings, the synthesis, cost,
    tokens in and out (refused and failed runs included; ``failed_cost_usd`` is their part;
    None where no agent reported one), wall time (see ``_wall_ms``)."""
    usage = no_figures()
    failed = no_figures()
    for spent in spending(result):
        add_figures(usage, usage_figures(spent.usage))
        if spent.failed:
            add_figures(failed, usage_figures(spent.usage))
    wall = _wall_ms(result)
    counts = result.counts()
    return {
        "name": result.name,
        "label": result.label,
        "posted": len(result.tasks),
        "completed": counts.get("completed", 0),
        "dead": counts.get("dead", 0),
        "open": sum(n for s, n in counts.items() if not TaskStatus(s).settled),
        "findings": len(result.findings),
        "synthesis": result.synthesis.id if result.synthesis else None,
        "cost_usd": usage["cost_usd"],
        "failed_cost_usd": failed["cost_usd"],
        "tokens_in": usage["tokens_in"],
        "tokens_out": usage["tokens_out"],
        "wall_s": None if wall is None else round(wall / 1000, 3),
    }


def _wall_ms(result: PassResult) -> int | None:
    """A pass's wall time: from its first task posted to its synthesis. Without one, to the
    last time one of its tasks was claimed or completed, or to now while a worker holds one
    (to the end of that lease, when it ended: its holder is gone), so that a pass left
    unfinished shows the same time on every read; None before any task was claimed."""
    started = min((t.created_at for t in result.tasks), default=None)
    if started is None:
        return None
    if result.synthesis is not None:
        return result.synthesis.created_at - started
    now = now_ms()
    ends = [t for task in result.tasks for t in (task.claimed_at, task.completed_at) if t]
    ends += [
        min(now, task.lease_deadline or now)
        for task in result.tasks
        if task.status is TaskStatus.CLAIMED
    ]
    return max(0, max(ends) - started) if ends else None


def by_model(results: list[PassResult]) -> dict[str, dict[str, float | None]]:
    """Cost and tokens per model, over every agent run: Claude's per-model figures where the
    CLI gave them, else the record's model (``unknown`` when none is known)."""
    out: dict[str, dict[str, float | None]] = {}
    for result in results:
        for spent in spending(result):
            if spent.usage.models:
                for model, figures in spent.usage.models.items():
                    add_figures(out.setdefault(model, no_figures()), figures)
            else:
                entry = out.setdefault(spent.model or "unknown", no_figures())
                add_figures(entry, usage_figures(spent.usage))
    return out


def status_json(plan: Plan, results: list[PassResult]) -> dict[str, Any]:
    """The pipeline's status as JSON: per pass and in total; a sum no agent reported a
    figure for is null, not 0."""
    passes = [pass_status(r) for r in results]
    total: dict[str, float | None] = dict.fromkeys(
        ("cost_usd", "failed_cost_usd", "tokens_in", "tokens_out")
    )
    for p in passes:
        for key in total:
            total[key] = plus(total[key], p[key])
    done = all(p["synthesis"] for p in passes)
    out = {
        "pipeline": plan.name,
        "run": plan.run,
        "question": plan.question,
        "done": done,
        "passes": passes,
        **total,
        "by_model": by_model(results),
    }
    result: dict[str, Any] = _json_figures(out)
    return result


# --- the report


def tokens(count: int | None) -> str:
    """A token count as the status table and the report show it (``-``: none reported)."""
    return "-" if count is None else f"{count:,}"


def _finding_line(f: Finding, task: Task | None) -> str:
    parts = [f"worker {f.worker or '?'}", f"model {f.model or '?'}"]
    if task is not None:
        parts.append(f"task {task.id} ({task.description[:80]})")
    if f.usage is not None and f.usage.cost_usd is not None:
        parts.append(usd(f.usage.cost_usd))
    sources = f"; sources: {', '.join(f.sources[:10])}" if f.sources else ""
    return f"- **[{f.id}]** {f.summary}  \n  {', '.join(parts)}{sources}"


def report_markdown(plan: Plan, results: list[PassResult]) -> str:
    """The pipeline as Markdown: the question, each pass's synthesis with its citations
    resolved to findings, dead tasks with their reasons, cost per pass and per model."""
    status = status_json(plan, results)
    lines = [f"# Pipeline {plan.name}", ""]
    if plan.question:
        lines += [f"**Question:** {plan.question}", ""]
    for result, row in zip(results, status["passes"], strict=True):
        lines += [f"## {result.name}", ""]
        tasks = {t.id: t for t in result.tasks}
        findings = {f.id: f for f in result.findings}
        s = result.synthesis
        if s is None:
            lines += [
                f"Not synthesised yet ({row['completed']} of {row['posted']} tasks done).",
                "",
            ]
        else:
            cost = f", {usd(s.usage.cost_usd)}" if s.usage and s.usage.cost_usd is not None else ""
            lines += [f"Synthesis `{s.id}` (model {s.model or '?'}{cost}):", "", s.text, ""]
            if s.sources:
                lines += ["### Cited findings", ""]
                for fid in s.sources:
                    f = findings.get(fid)
                    if f is not None:
                        lines.append(_finding_line(f, tasks.get(f.task_id)))
                lines.append("")
        dead = [t for t in result.tasks if t.status is TaskStatus.DEAD]
        if dead:
            lines += ["### Dead tasks", ""]
            for t in dead:
                why = t.dead_reason or t.last_error or "no reason recorded"
                lines.append(f"- `{t.id}` {t.description[:120]}: {why[:300]}")
            lines.append("")
    lines += ["## Cost", ""]
    lines += _cost_tables(status)
    return "\n".join(lines) + "\n"


# The report's cost tables: each column, and the figure it shows ("": always shown).
PASS_COLUMNS = {"pass": "", "tasks": "", "completed": "", "dead": "", "findings": "",
                "cost": "cost", "failed runs": "cost", "tokens in": "tokens",
                "tokens out": "tokens", "wall time": ""}  # fmt: skip
MODEL_COLUMNS = {"model": "", "cost": "cost", "tokens in": "tokens", "tokens out": "tokens"}


def _table(columns: dict[str, str], rows: Iterable[list[str]], shown: set[str]) -> list[str]:
    """A Markdown table of ``rows`` (a cell per column), with the columns of a figure not in
    ``shown`` left out; an empty cell as ``| |``."""
    keep = [not figure or figure in shown for figure in columns.values()]

    def line(cells: list[str]) -> str:
        kept = [cell for cell, k in zip(cells, keep, strict=True) if k]
        return "|" + "".join(f" {cell} |" if cell else " |" for cell in kept)

    return [line(list(columns)), line(["---"] * len(columns)), *map(line, rows)]


def _cost_tables(status: dict[str, Any]) -> list[str]:
    """The report's cost per pass and per model. A figure no agent reported is unknown
    (``-``); a column whose figure no agent reported at all is left out (Codex reports no
    cost; scripted agents neither cost nor tokens), and so is the table per model when it
    is left with no figure, said in one line."""
    models = status["by_model"]
    sums = [status, *models.values()]
    shown = {
        figure
        for figure, keys in (("cost", ("cost_usd",)), ("tokens", ("tokens_in", "tokens_out")))
        if any(entry[key] is not None for entry in sums for key in keys)
    }
    if "cost" in shown:
        lead = ("Cost includes every agent run, refused and failed ones too (their part in "
                "its own column); `-` where no agent reported it.")  # fmt: skip
        if "tokens" not in shown:
            lead += " No agent reported its tokens: no token columns."
    elif shown:
        lead = (
            "No agent reported a cost (Codex, for one, reports only tokens): no cost "
            "columns. Tokens include every agent run, refused and failed ones too."
        )
    else:
        lead = ("No agent reported its usage (cost, tokens; scripted agents report none): "
                "no cost or token columns, and no table per model.")  # fmt: skip
    passes = [
        [p["name"], str(p["posted"]), str(p["completed"]), str(p["dead"]), str(p["findings"]),
         usd(p["cost_usd"]), usd(p["failed_cost_usd"]), tokens(p["tokens_in"]),
         tokens(p["tokens_out"]), f"{p['wall_s']:.1f} s" if p["wall_s"] is not None else ""]
        for p in status["passes"]
    ]  # fmt: skip
    passes.append(
        ["**total**", "", "", "", "", usd(status["cost_usd"]), usd(status["failed_cost_usd"]),
         tokens(status["tokens_in"]), tokens(status["tokens_out"]), ""]
    )  # fmt: skip
    lines = [lead, "", *_table(PASS_COLUMNS, passes, shown)]
    if shown and models:
        per_model = [
            [model, usd(e["cost_usd"]), tokens(e["tokens_in"]), tokens(e["tokens_out"])]
            for model, e in sorted(models.items())
        ]
        lines += ["", *_table(MODEL_COLUMNS, per_model, shown)]
    return lines


# --- lineage


def _task_of(swarm: Swarm, f: Finding) -> Task | None:
    """The task ``f`` reports on, None when it is gone."""
    try:
        return swarm.get_task(f.task_id)
    except NotFound:
        return None


def _finding_node(swarm: Swarm, f: Finding, t: Task | None) -> dict[str, Any]:
    """``f`` with ``t``, its task (``_task_of``), and what that task's failed runs cost."""
    node: dict[str, Any] = {
        "kind": "finding",
        "id": f.id,
        "summary": f.summary,
        "worker": f.worker,
        "model": f.model,
        "attempt": f.attempt,
        "context_owner": f.shard,
        "context_version": f.context_version,
        "cost_usd": f.usage.cost_usd if f.usage else None,
        "sources": list(f.sources),
    }
    if t is not None:
        node["task"] = {
            "id": t.id, "description": t.description, "pass": t.pass_name, "queue": t.queue,
            "attempts": t.attempts, "status": t.status.value, "failed_runs": _failed_runs(t),
        }  # fmt: skip
    # The answers its worker got by asking while on the task (swarm ask, peer assist).
    asked = swarm.answers_for(f.task_id)
    if asked:
        node["answers"] = [
            {"kind": "answer", "id": a.finding_id, "question": a.question, "text": a.summary,
             "answerer": a.answerer, "model": a.model, "queue": a.queue, "cost_usd": a.cost_usd}
            for a in asked
        ]  # fmt: skip
    return node


def _summed(usages: Iterable[Usage | None]) -> dict[str, Any]:
    """The ``FIGURES`` of ``usages`` summed, as lineage shows them (null: none reported)."""
    total = no_figures()
    for usage in usages:
        if usage is not None:
            add_figures(total, usage_figures(usage))
    summed: dict[str, Any] = _json_figures(total)
    return summed


def _failed_runs(task: Task | None) -> dict[str, Any] | None:
    """What the failed (or refused) runs on ``task`` cost, None when none is recorded."""
    if task is None or task.failed_usage is None:
        return None
    return _summed([task.failed_usage])


def _synthesis_node(swarm: Swarm, ident: str) -> dict[str, Any]:
    s = swarm.get_synthesis(ident)
    cited: list[dict[str, Any]] = []
    refused = synthesizer_task(swarm, s)
    # What it cost in all: its own run, its synthesizer's refused or failed runs, and every
    # finding it cites with the failed runs of that finding's task (what getting it took).
    usages = [s.usage, refused.failed_usage if refused else None]
    for fid in s.sources:  # each once: ``synthesize`` keeps no id twice
        try:
            f = swarm.get_finding(fid)
        except NotFound:
            cited.append({"kind": "finding", "id": fid, "missing": True})
            continue
        t = _task_of(swarm, f)
        usages += [f.usage, t.failed_usage if t else None]
        cited.append(_finding_node(swarm, f, t))
    return {
        "kind": "synthesis", "id": s.id, "pass": s.pass_name, "shard": s.shard,
        "model": s.model, "cost_usd": s.usage.cost_usd if s.usage else None,
        "created": iso(s.created_at), "failed_runs": _failed_runs(refused),
        "findings": cited, "total": _summed(usages),
    }  # fmt: skip


def lineage(swarm: Swarm, ident: str) -> dict[str, Any]:
    """The tree behind a synthesis (``s-``), finding (``f-``) or task (``t-``) id, or a
    pipeline's name: synthesis -> cited findings -> task, worker, model, attempt, context
    owner and version, cost. A synthesis ends with its ``total``: its own run, its
    synthesizer's refused or failed runs, its cited findings and their tasks' failed runs; a
    task shows what its failed runs cost (``failed_runs``)."""
    if ident.startswith("s-"):
        return _synthesis_node(swarm, ident)
    if ident.startswith("f-"):
        f = swarm.get_finding(ident)
        return _finding_node(swarm, f, _task_of(swarm, f))
    if ident.startswith("t-"):
        t = swarm.get_task(ident)
        node: dict[str, Any] = {
            "kind": "task", "id": t.id, "description": t.description, "pass": t.pass_name,
            "status": t.status.value, "attempts": t.attempts, "worker": t.worker,
            "context_owner": t.parent, "dead_reason": t.dead_reason,
            "failed_runs": _failed_runs(t),
        }  # fmt: skip
        if t.finding_id:
            # (its task is this node: not repeated under it)
            node["finding"] = _finding_node(swarm, swarm.get_finding(t.finding_id), None)
        return node
    plan = stored_plan(swarm, ident)
    return {
        "kind": "pipeline",
        "id": plan.name,
        "passes": [
            lineage(swarm, r.synthesis.id) if r.synthesis else {"kind": "pass", "id": r.label}
            for r in read_passes(swarm, plan)
        ],
    }


def _figures_text(figures: dict[str, Any]) -> str:
    """A cost and tokens as lineage shows them: "$0.1000 · 1,000 in / 100 out"."""
    return usage_line(figures["cost_usd"], figures["tokens_in"], figures["tokens_out"])


def lineage_text(node: dict[str, Any], depth: int = 0) -> list[str]:
    """The lineage tree as indented lines."""
    pad = "  " * depth
    kind = node.get("kind")
    if kind == "pipeline":
        lines = [f"{pad}pipeline {node['id']}"]
    elif kind == "synthesis":
        cost = f", {usd(node['cost_usd'])}" if node.get("cost_usd") is not None else ""
        lines = [
            f"{pad}synthesis {node['id']} ({node['pass']}, model {node['model'] or '?'}{cost})"
        ]
        if node.get("failed_runs"):
            lines.append(f"{pad}  failed runs: {_figures_text(node['failed_runs'])}")
    elif kind == "finding":
        if node.get("missing"):
            return [f"{pad}finding {node['id']} (missing)"]
        cost = f", {usd(node['cost_usd'])}" if node.get("cost_usd") is not None else ""
        context = "no context"  # its task named none for its worker to read
        if node.get("context_owner"):
            version = (node.get("context_version") or "?")[:12]
            context = f"context {node['context_owner']}@{version}"
        lines = [
            f"{pad}finding {node['id']}: {node['summary'][:80]}",
            f"{pad}  worker {node['worker'] or '?'}, model {node['model'] or '?'}, attempt "
            f"{node['attempt'] or '?'}, {context}{cost}",
        ]
        task = node.get("task")
        if task:
            lines.append(f"{pad}  task {task['id']} ({task['status']}): {task['description'][:80]}")
            if task.get("failed_runs"):
                lines.append(f"{pad}    failed runs: {_figures_text(task['failed_runs'])}")
        for a in node.get("answers", ()):
            lines.append(
                f"{pad}  asked {a['queue']}: {a['question'][:60]} -> answer {a['id']} by "
                f"{a['answerer'] or '?'}: {a['text'][:60]}"
            )
    elif kind == "task":
        lines = [f"{pad}task {node['id']} ({node['status']}, {node['attempts']} attempt(s)): "
                 f"{node['description'][:80]}"]  # fmt: skip
        if node.get("dead_reason"):
            lines.append(f"{pad}  dead: {node['dead_reason'][:160]}")
        if node.get("failed_runs"):
            lines.append(f"{pad}  failed runs: {_figures_text(node['failed_runs'])}")
    else:
        lines = [f"{pad}pass {node['id']}: not synthesised yet"]
    for child in (*node.get("passes", ()), *node.get("findings", ())):
        lines += lineage_text(child, depth + 1)
    if kind == "task" and node.get("finding"):
        lines += lineage_text(node["finding"], depth + 1)
    if kind == "synthesis":  # last: what everything above cost
        lines.append(f"{pad}  total: {_figures_text(node['total'])}")
    return lines
