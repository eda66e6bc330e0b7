"""The lineage of a synthesis, finding, task or pipeline: which worker, model, attempt,
context version and agent runs stand behind each claim, and what they cost, each total
saying what it covers."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any

from .._codec import counted, iso
from .._errors import NotFound, ValidationError
from .._models import (
    Finding,
    RetiredPass,
    Synthesis,
    Task,
    TaskCosts,
    runs_of,
)
from .._printable import short, short_version
from .._usage import FIGURES, Money, Sum, Usage, summed_figures
from .._validate import check_name
from .names import is_planning_queue, plan_owner, synthesizer_task_of
from .records import EARLIER_PASSES, Spent, spending, synthesizer_task
from .report import (
    EARLIER,
    UNKNOWN,
    bookkeeping_note,
    bookkeeping_retired,
    no_cost_note,
    read_passes,
    status_json,
    stored_plan,
    unshown,
)

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["COVERS", "lineage", "lineage_text"]

# What each total of a lineage covers, said under it (and as ``total_covers`` in JSON).
COVERS = {
    "synthesis": (
        "its own runs (refused and failed ones too) and the findings it cites with their "
        "tasks' failed runs, not the pass's other runs (dead tasks, uncited or superseded "
        "findings, a planner): swarm pipeline status counts those too"
    ),
    "task": TaskCosts.COVERS,
    "pipeline": (
        "every agent run of every pass, those of passes no longer in the plan too (planner, "
        "workers, dead tasks, superseded findings, synthesizer; refused and failed runs "
        "too), as swarm pipeline status counts it"
    ),
    "pass": "every agent run of the pass, as swarm pipeline status counts it",
}


def _figures(usage: Usage | None) -> dict[str, Any] | None:
    """What one run (or the failed runs summed on a task) cost; None when not recorded."""
    return None if usage is None else summed_figures([usage])


def _task_of(swarm: Swarm, f: Finding) -> Task | None:
    """The task ``f`` reports on, None when it is gone."""
    try:
        return swarm.get_task(f.task_id)
    except NotFound:
        return None


def _priced(swarm: Swarm, f: Finding) -> Finding:
    """``f`` with what its run cost when its agent reported it itself with no usage (a
    worker of a pipeline's ``swarm run`` pool calling ``swarm task report``: the pipeline
    keeps that run's cost among its run's unrecorded runs): every view prices the finding
    with it (``Swarm.priced_findings``, by the rule ``Swarm.pass_costs`` and
    ``records.read_pass`` price it by), so lineage does too: one run, counted once. ``f`` as
    it is otherwise."""
    (priced,) = swarm.priced_findings([f])
    return priced


def _finding_node(swarm: Swarm, f: Finding, t: Task | None) -> dict[str, Any]:
    """``f`` with ``t``, its task (``_task_of``), and what that task's failed runs cost."""
    node: dict[str, Any] = {
        "kind": "finding",
        "id": f.id,
        "summary": f.summary,
        "worker": f.worker,
        "model": f.model,
        "attempt": f.attempt,
        # (a planner's task named its pass's context before 0.x; the planner reads none)
        "context_owner": None if is_planning_queue(f.queue) else f.shard,
        "context_version": f.context_version,
        "cost_usd": f.usage.cost_usd if f.usage else None,
        "usage": _figures(f.usage),
        "superseded": f.superseded,
        "sources": list(f.sources),
    }
    if t is not None:
        node["task"] = {
            "id": t.id, "description": t.description, "pass": t.pass_name, "queue": t.queue,
            "attempts": t.attempts, "status": t.status.value,
            "failed_runs": _figures(t.failed_usage),
        }  # fmt: skip
    # The answers its worker got by asking while on the task (swarm ask, peer assist).
    asked = swarm.answers_for(f.task_id)
    if asked:
        node["answers"] = [
            {"kind": "answer", "id": a.finding_id, "question": a.question, "text": a.summary,
             "answerer": a.answerer, "model": a.model, "queue": a.queue, "cost_usd": a.cost_usd,
             "usage": _figures(a.usage)}  # (not in any total: swarm status --pass says so)
            for a in asked
        ]  # fmt: skip
    # The questions asked there that are no longer stored: retired since (swarm retire
    # --questions), their answers gone, not lost; when is unknown (None) of one shared by
    # its dedupe key (its poster's entry alone records it). ``ended``: how it ended, the
    # status it was retired in (completed: answered; cancelled or dead: no answer; None:
    # unknown, retired before that was kept, or shared)
    retired = swarm.retired_asked(f.task_id)
    if retired:
        node["retired_questions"] = [
            {"kind": "question", "id": qid,
             "retired": iso(gone.at) if gone.at is not None else None,
             "ended": gone.outcome.value if gone.outcome is not None else None}
            for qid, gone in retired.items()
        ]  # fmt: skip
    return node


def _synthesis_node(swarm: Swarm, s: Synthesis) -> dict[str, Any]:
    cited: list[dict[str, Any]] = []
    refused = synthesizer_task(swarm, s)
    # What it cost in all: its own run, its synthesizer's refused or failed runs, and every
    # finding it cites with the failed runs of that finding's task (what getting it took).
    usages = [s.usage, refused.failed_usage if refused else None]
    records: list[Finding | Synthesis | Task | None] = [s, refused]  # (the runs behind it)
    retired: dict[str, RetiredPass] | None = None  # read at the first finding missing
    found: dict[str, Finding] = {}
    for fid in s.sources:  # each once: ``synthesize`` keeps no id twice
        with contextlib.suppress(NotFound):
            found[fid] = swarm.get_finding(fid)
    # (the self-reported ones priced together: one round trip, however many it cites)
    found = dict(zip(found, swarm.priced_findings(list(found.values())), strict=True))
    for fid in s.sources:
        f = found.get(fid)
        if f is None:
            if retired is None:
                retired = swarm.retired_passes()
            cited.append(_missing_node(fid, retired.get(s.pass_name)))
            continue
        t = _task_of(swarm, f)
        usages += [f.usage, t.failed_usage if t else None]
        records += [f, t]
        cited.append(_finding_node(swarm, f, t))
    runs, unpriced = runs_of(records)
    return {
        "kind": "synthesis", "id": s.id, "pass": s.pass_name, "shard": s.shard,
        "model": s.model, "cost_usd": s.usage.cost_usd if s.usage else None,
        "usage": _figures(s.usage), "created": iso(s.created_at),
        "failed_runs": _figures(refused.failed_usage if refused else None),
        "findings": cited, "total": summed_figures(usages), "total_covers": COVERS["synthesis"],
        "runs": runs, "runs_without_cost": unpriced,
    }  # fmt: skip


def _missing_node(fid: str, retired: RetiredPass | None) -> dict[str, Any]:
    """A finding a synthesis cites that is no longer stored: retired with the synthesis's
    pass (``swarm retire``; ``retired`` is that pass's record), else missing. The finding's
    own pass is the synthesis's: a retirement keeps every finding a synthesis of another
    pass cites (and a finding gone has no record left to name its pass)."""
    node: dict[str, Any] = {"kind": "finding", "id": fid, "missing": True}
    if retired is not None:
        node["retired"] = {"pass": retired.pass_name, "at": iso(retired.at) if retired.at else None}
    return node


def _task_node(swarm: Swarm, spent: TaskCosts) -> dict[str, Any]:
    """A task's node from its costs (their total covers ``COVERS["task"]``)."""
    if spent.finding is not None:  # (its agent may have reported it itself: priced)
        spent = dataclasses.replace(spent, finding=_priced(swarm, spent.finding))
    t = spent.task
    node: dict[str, Any] = {
        "kind": "task", "id": t.id, "description": t.description, "pass": t.pass_name,
        "status": t.status.value, "attempts": t.attempts, "worker": t.worker,
        "context_owner": t.parent, "dead_reason": t.dead_reason,
        "failed_runs": _figures(t.failed_usage),
    }  # fmt: skip
    if spent.finding is not None:
        # (its task is this node: not repeated under it)
        node["finding"] = _finding_node(swarm, spent.finding, None)
    node["superseded"] = [_finding_node(swarm, f, None) for f in spent.superseded]
    node["superseded_searched_all"] = spent.searched_all
    node["superseded_scan_limit"] = spent.scan_limit
    # (a pipeline's synthesizer task: the synthesis written, its run that was taken)
    written = spent.synthesis
    node["synthesis"] = (
        None if written is None else {"id": written.id, "usage": _figures(written.usage)}
    )
    node["total"] = spent.total
    node["total_covers"] = spent.covers()
    # the runs behind total, and how many of them reported no cost (as a pass's say it)
    node["runs"], node["runs_without_cost"] = spent.runs()
    return node


def _pipeline_node(swarm: Swarm, name: str) -> dict[str, Any]:
    plan = stored_plan(swarm, name)
    results = read_passes(swarm, plan)
    per_pass = [spending(result) for result in results]  # (once per pass: the status's too)
    status = status_json(plan, results, per_pass, bookkeeping=bookkeeping_retired(swarm, plan))
    passes: list[dict[str, Any]] = []
    for result, row, runs in zip(results, status["passes"], per_pass, strict=True):
        if row["earlier"]:  # a pass the plan no longer has: its runs, in its total
            node = {"kind": "pass", "id": result.label, "name": row["name"], "earlier": True}
        elif result.synthesis is not None:
            node = _synthesis_node(swarm, result.synthesis)
            node["other_runs"] = _other_runs(runs, node)
        else:
            node = {"kind": "pass", "id": result.label, "other_runs": _other_runs(runs, None)}
        node["pass_total"] = {key: row[key] for key in FIGURES}
        # the runs behind pass_total, and how many of them reported no cost
        node["pass_runs"], node["pass_runs_without_cost"] = row["runs"], row["runs_without_cost"]
        passes.append(node)
    return {
        "kind": "pipeline", "id": plan.name, "passes": passes,
        "total": {key: status[key] for key in FIGURES}, "total_covers": COVERS["pipeline"],
        "runs": status["runs"], "runs_without_cost": status["runs_without_cost"],
        # (what swarm pipeline retire removed: its planners' runs no longer in the total)
        "bookkeeping_retired": status["bookkeeping_retired"],
        "bookkeeping_note": bookkeeping_note(status),
    }  # fmt: skip


def _other_runs(runs: list[Spent], synthesis: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The runs of the pass (``runs``: its ``spending``) its ``synthesis`` tree
    (``_synthesis_node``) does not show (``unshown``), each with what it cost: its planner's,
    uncited and superseded findings, failed runs of tasks that gave no cited finding, so
    that the pass's tree adds up to its ``pass_total``."""
    shown: set[str] = set()
    if synthesis is not None:
        shown.add(synthesis["id"])
        if synthesis["failed_runs"] is not None:  # (its synthesizer task's, see there)
            shown.add(synthesizer_task_of(synthesis["id"]))
        for f in synthesis["findings"]:
            shown.add(f["id"])
            if "task" in f:
                shown.add(f["task"]["id"])
    return [
        {"what": spent.what, "id": spent.record, "model": spent.model, "failed": spent.failed,
         "cost_usd": spent.usage.cost_usd if spent.usage else None,
         "usage": _figures(spent.usage)}
        for spent in unshown(runs, shown)
    ]  # fmt: skip


def lineage(swarm: Swarm, ident: str) -> dict[str, Any]:
    """The tree behind a synthesis (``s-``), finding (``f-``) or task (``t-``, or an id its
    poster chose) id, or a pipeline's name: synthesis -> cited findings -> task, worker,
    model, attempt, context owner and version, what each run cost. A synthesis, a task and a
    pipeline end with their ``total`` and what it covers (``total_covers``, see ``COVERS``):
    a synthesis's runs and what it cites; a task's finding, superseded findings and failed
    runs; every run of a pipeline (each pass's, ``pass_total``), as ``pipeline status``
    counts them. An id nothing has is a NotFound saying what lineage takes; one nothing can
    have (empty, a character no id or name holds) a ValidationError saying it."""
    ident = _checked(ident)
    if not ident.startswith(("s-", "f-", "t-")) and _is_pipeline(swarm, ident):
        return _pipeline_node(swarm, ident)
    try:  # the record named: a NotFound after it is about a record it leads to
        if ident.startswith("s-"):
            named: Synthesis | Finding | TaskCosts = swarm.get_synthesis(ident)
        elif ident.startswith("f-"):
            named = swarm.get_finding(ident)
        else:  # (a task posted under an id of its poster's too)
            named = swarm.task_costs(ident)
    except (NotFound, ValidationError):
        raise NotFound(_unknown(swarm, ident)) from None
    if isinstance(named, Synthesis):
        return _synthesis_node(swarm, named)
    if isinstance(named, Finding):
        return _finding_node(swarm, _priced(swarm, named), _task_of(swarm, named))
    return _task_node(swarm, named)


def _is_pipeline(swarm: Swarm, name: str) -> bool:
    """Whether a run of pipeline ``name`` stored its plan in ``swarm`` (False when ``name``
    can be no pipeline's, a task id longer than a pipeline's name, say)."""
    try:
        swarm.context_info(plan_owner(name))
    except (NotFound, ValidationError):
        return False
    return True


def _takes() -> str:
    """What swarm lineage takes, and where each kind is listed."""
    return (
        "swarm lineage takes a synthesis id (swarm synth list lists them), a finding id "
        "(swarm findings), a task id (swarm task list) or a pipeline's name (swarm context "
        f"list shows each pipeline's plan as {plan_owner('NAME')})"
    )


def _checked(ident: str) -> str:
    """``ident`` when it can be an id or a pipeline's name (both are names: ``check_name``),
    else a ValidationError saying what lineage takes, not what a pipeline name may hold."""
    if not ident:
        raise ValidationError(
            f"the ID is empty: give a finding, task or synthesis id, or a pipeline name; {_takes()}"
        )
    try:
        return check_name("ID", ident)
    except ValidationError as exc:
        raise ValidationError(
            f"{exc}; give a finding, task or synthesis id, or a pipeline name: {_takes()}"
        ) from None


def _unknown(swarm: Swarm, ident: str) -> str:
    """What lineage says of an id nothing in ``swarm`` has, and what it takes instead."""
    return (
        f"no synthesis, finding, task or pipeline is called {ident!r} in swarm "
        f"{swarm.name!r}: {_takes()}"
    )


# --- as text


def _retired_how(question: dict[str, Any]) -> str:
    """What lineage says of a question asked that was retired (a node's
    ``retired_questions``): when, and whether it was answered (a cancelled or dead one never
    was; one retired before that was kept is said as before, with its answer)."""
    at, ended = question["retired"], question.get("ended")
    if at is None:
        return "no longer stored: retired with its answer, when unknown"
    if ended in ("cancelled", "dead"):
        return f"{ended}, no answer; retired on {at}"
    return f"retired with its answer on {at}"


def _cost(figures: dict[str, Any] | None) -> float | None:
    return None if figures is None else figures.get("cost_usd")


def _pass_sum(node: dict[str, Any]) -> Sum | None:
    """A pass of a pipeline's ``pass_total`` with its parts shown above it: its synthesis's
    total and its other runs (None: a pass the plan no longer has, shown as one total)."""
    if "pass_total" not in node or node.get("earlier"):
        return None
    parts = [_cost(node["total"])] if node.get("kind") == "synthesis" else []
    parts += [run["cost_usd"] for run in node.get("other_runs", ())]
    return parts, _cost(node["pass_total"])


def _sums(node: dict[str, Any]) -> list[Sum]:
    """The sums of money ``node``'s text shows (each total with the parts shown above it;
    its own total first)."""
    pass_sum = _pass_sum(node)
    return _own_sums(node) + ([pass_sum] if pass_sum is not None else [])


def _own_sums(node: dict[str, Any]) -> list[Sum]:
    kind = node.get("kind")
    if kind == "pipeline":
        out: list[Sum] = [([_cost(p["pass_total"]) for p in node["passes"]], _cost(node["total"]))]
        for child in node["passes"]:
            out += _sums(child)
        return out
    if kind == "synthesis":
        parts = [_cost(node["usage"]), _cost(node["failed_runs"])]
        for f in node["findings"]:
            parts += [_cost(f.get("usage")), _cost(f.get("task", {}).get("failed_runs"))]
        return [(parts, _cost(node["total"]))]
    if kind == "task":
        found = [node["finding"]] if node.get("finding") else []
        parts = [_cost(node["failed_runs"])]
        if node.get("synthesis"):  # (its finding only says the synthesis is written)
            found = [node["synthesis"]]
        parts += [_cost(f["usage"]) for f in (*found, *node["superseded"])]
        return [(parts, _cost(node["total"]))]
    return []


def _total_lines(pad: str, money: Money, figures: dict[str, Any], parts: Sum | None,
                 covers: str, label: str = "total", note: str = "") -> list[str]:  # fmt: skip
    """A total (``note`` after it) and what it covers, on two lines."""
    shown = money.line(figures, parts[0] if parts else ())
    return [f"{pad}  {label}: {shown}{note}", f"{pad}  ({label} of {covers})"]


def _runs_note(figures: dict[str, Any], runs: Any, unpriced: Any) -> str:
    """How many of the runs behind a pipeline's or a pass's total reported no cost."""
    if runs is None:
        return ""
    return no_cost_note({**figures, "runs": runs, "runs_without_cost": unpriced})


def lineage_text(node: dict[str, Any], depth: int = 0) -> list[str]:
    """The lineage tree as indented lines, every cost said with its tokens (``usage_line``)
    as every view says it (``Money``: a total its parts do not add up to as shown reads
    "≈")."""
    money = Money()
    pad = "  " * depth
    kind = node.get("kind")
    sums = _sums(node)
    if kind == "pipeline":
        lines = [f"{pad}pipeline {node['id']}"]
        if node.get("bookkeeping_note"):
            lines.append(f"{pad}  ({node['bookkeeping_note']})")
    elif kind == "synthesis":
        cost = f", {money.line(node['usage'])}" if node.get("usage") else ""
        lines = [
            f"{pad}synthesis {node['id']} ({node['pass']}, model {node['model'] or UNKNOWN}{cost})"
        ]
        if node.get("failed_runs"):
            lines.append(f"{pad}  failed runs: {money.line(node['failed_runs'])}")
    elif kind == "finding":
        if node.get("retired"):
            when = f" on {node['retired']['at']}" if node["retired"]["at"] else ""
            return [
                f"{pad}finding {node['id']} (retired with pass {node['retired']['pass']}{when})"
            ]
        if node.get("missing"):
            return [f"{pad}finding {node['id']} (missing)"]
        cost = f", {money.line(node['usage'])}" if node.get("usage") else ""
        context = "no context"  # its task named none for its worker to read
        if node.get("context_owner"):
            version = short_version(node.get("context_version") or UNKNOWN)
            context = f"context {node['context_owner']}@{version}"
        late = " (superseded: reported after its task was settled)" * bool(node.get("superseded"))
        lines = [
            f"{pad}finding {node['id']}{late}: {short(node['summary'], 80)}",
            f"{pad}  worker {node['worker'] or UNKNOWN}, model {node['model'] or UNKNOWN}, "
            f"attempt {node['attempt'] or UNKNOWN}, {context}{cost}",
        ]
        task = node.get("task")
        if task:
            lines.append(
                f"{pad}  task {task['id']} ({task['status']}): {short(task['description'], 80)}"
            )
            if task.get("failed_runs"):
                lines.append(f"{pad}    failed runs: {money.line(task['failed_runs'])}")
        for a in node.get("answers", ()):
            lines.append(
                f"{pad}  asked {a['queue']}: {short(a['question'], 60)} -> answer {a['id']} "
                f"by {a['answerer'] or UNKNOWN} ({money.line(a.get('usage'))}): "
                f"{short(a['text'], 60)}"
            )
        for q in node.get("retired_questions", ()):
            lines.append(
                f"{pad}  asked: question {q['id']} ({_retired_how(q)}: swarm retire --questions)"
            )
    elif kind == "task":
        attempts = counted(node["attempts"], "attempt")
        lines = [f"{pad}task {node['id']} ({node['status']}, {attempts}): "
                 f"{short(node['description'], 80)}"]  # fmt: skip
        if node.get("dead_reason"):
            lines.append(f"{pad}  dead: {short(node['dead_reason'], 160)}")
        if node.get("failed_runs"):
            lines.append(f"{pad}  failed runs: {money.line(node['failed_runs'])}")
        if node.get("synthesis"):
            written = node["synthesis"]
            cost = money.line(written["usage"])  # (None: "cost unknown")
            lines.append(f"{pad}  synthesis {written['id']} (its run that was taken): {cost}")
    elif node.get("earlier"):
        lines = [f"{pad}pass {node['id']} {EARLIER}" if node["id"] else f"{pad}{EARLIER_PASSES}"]
    else:
        lines = [f"{pad}pass {node['id']}: not synthesised yet"]
    for child in (*node.get("passes", ()), *node.get("findings", ())):
        lines += lineage_text(child, depth + 1)
    if kind == "task":
        for child in (*([node["finding"]] if node.get("finding") else ()), *node["superseded"]):
            lines += lineage_text(child, depth + 1)
        if not node["superseded_searched_all"]:
            lines.append(
                f"{pad}  (findings reported on it after it settled were looked for among the "
                f"first {node['superseded_scan_limit']:,} of its pass (else queue) only)"
            )
    if kind in ("synthesis", "task", "pipeline"):  # last: what everything above cost
        recorded = any(v is not None for v in node["total"].values())
        if kind != "task" or recorded:
            note = _runs_note(node["total"], node.get("runs"), node.get("runs_without_cost"))
            lines += _total_lines(pad, money, node["total"], sums[0], node["total_covers"],
                                  note=note)  # fmt: skip
    if node.get("other_runs"):  # a pass of a pipeline: what its tree above leaves out
        lines.append(f"{pad}  other runs of the pass:")
        for run in node["other_runs"]:
            lines.append(f"{pad}    {run['what']}: {money.line(run['usage'])}")
    if "pass_total" in node:  # a pass of a pipeline: what all of it cost
        total = node["pass_total"]
        note = _runs_note(total, node.get("pass_runs"), node.get("pass_runs_without_cost"))
        lines += _total_lines(
            pad, money, total, _pass_sum(node), COVERS["pass"], "pass total", note
        )
    return lines
