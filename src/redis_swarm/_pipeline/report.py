"""What a pipeline did, read back from the swarm: per pass status and the Markdown report
(the lineage of a record is ``lineage``'s). How every view shows sums of money (``Money``)
is the core's (``_usage``)."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._codec import counted, first_few, iso, now_ms
from .._errors import NotFound
from .._models import SYNTHESIS_NAMED, Finding, Task, TaskStatus
from .._printable import printable
from .._usage import (
    Money,
    add_figures,
    add_model_figures,
    figure_json,
    no_figures,
    plus,
    unpriced_note,
    usage_figures,
)
from .names import (
    PLANNED_SYNTHESIS,
    bookkeeping_queues,
    findings_of,
    label_prefix,
    pass_label,
    pipeline_names,
    pipeline_queue,
    plan_owner,
    planning_queue,
    stored_run,
    synthesis_id,
    synthesis_queue,
    synthesizer_task_of,
    tasks_of,
)
from .plan import Plan, parse_plan
from .records import (
    EARLIER,
    EARLIER_PASSES,
    PassResult,
    Spent,
    pass_title_of,
    read_pass,
    read_runs,
    runs_without_cost,
    spending,
)

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = [
    "EARLIER",
    "EARLIER_PASSES",
    "SETTLED",
    "UNKNOWN",
    "bookkeeping_note",
    "bookkeeping_retired",
    "by_model",
    "json_figures",
    "no_cost_note",
    "pass_title",
    "read_earlier",
    "read_passes",
    "report_markdown",
    "retired_note",
    "status_json",
    "stored_plan",
    "tokens",
    "unshown",
    "wall_time",
]

UNKNOWN = "-"  # a worker, model or attempt nobody recorded, as every view of the CLI says it


def stored_plan(swarm: Swarm, name: str) -> Plan:
    """The plan the last run of pipeline ``name`` stored in the swarm."""
    owner = plan_owner(name)
    try:
        info = swarm.context_info(owner)
    except NotFound:
        raise NotFound(_unknown_pipeline(swarm, name)) from None
    text = swarm.get_context(owner, info.version)
    plan = parse_plan(text, Path(info.source or f"{name}.toml"), match_files=False)
    return dataclasses.replace(plan, run=stored_run(text))


_PIPELINES_NAMED = 10  # the pipelines a message about an unknown one lists


def _unknown_pipeline(swarm: Swarm, name: str) -> str:
    """What ``status`` and ``report`` say of a pipeline no run stored a plan of (a misspelt
    name, most often): the pipelines there are, as many as ``_PIPELINES_NAMED``, those
    close to ``name`` first (``difflib.get_close_matches``), then by name."""
    known = pipeline_names(swarm)
    # (those close to the name first: a near match must not hide past the first few)
    close = difflib.get_close_matches(name, known, n=_PIPELINES_NAMED)
    known = close + [n for n in known if n not in close]
    listed = first_few([repr(n) for n in known], _PIPELINES_NAMED)
    return (
        f"no pipeline {name!r} in swarm {swarm.name!r}. Check its name (the pipelines: "
        f"{listed}), or start it with swarm pipeline run PLAN.toml"
    )


def read_passes(swarm: Swarm, plan: Plan, *, retired: bool = False) -> list[PassResult]:
    """Every pass of ``plan`` as the swarm holds it (tasks, findings, synthesis, and what
    its agents' runs cost), then those of this run the plan no longer has (``read_earlier``):
    the pipeline paid for their runs too. The first ``len(plan.passes)`` are the plan's.
    With ``retired`` (what people read: ``status``, ``report``; not a budget check, which
    counts what the swarm holds), each pass of the plan that ``swarm retire`` removed the
    work of has that said (``PassResult.retired``): its rows would read as a pass with no
    task, and the totals drop by what its runs cost, silently."""
    current = [read_pass(swarm, plan, index) for index in range(len(plan.passes))]
    if retired:
        gone = swarm.retired_passes()
        for result in current:
            result.retired = gone.get(result.label)
    return current + read_earlier(swarm, plan, current)


def read_earlier(swarm: Swarm, plan: Plan, current: list[PassResult]) -> list[PassResult]:
    """The passes of this run of ``plan`` that the plan no longer has (a pass renamed or
    removed since it began: its records stay): every task of the run's queues (workers',
    planning, synthesizer) and finding (workers', planners') that no pass of ``current``
    holds, by the pass label it carries (a planning task's in its data, a synthesizer task's
    from its synthesis), each with its synthesis; one row (named "", titled
    ``EARLIER_PASSES``) for what names no pass. A pass each, named its old name (``earlier``,
    titled with ``EARLIER``); none when the plan is unchanged. Each pass's costs are read as
    a pass of the plan's are (``records.read_runs``): its runs no other record holds, and
    the runs of the workers that reported their tasks themselves, priced on their findings.

    Read in proportion to what it finds (``status`` and every budget check of a run read
    it): first the queues' task counts, one round trip and no more when ``current`` holds
    every task they count (the plan unchanged: a finding is of a task of its own queue, and
    the one thing that removes tasks, ``retire_pass``, takes a settled pass whole, its tasks
    with their findings and the queues' counts down by as many in the same step: a retired
    pass is held by no pass of ``current`` and counted by no queue). Else only the tasks
    and findings of this run's pass labels that no pass of ``current`` has, the planning
    tasks the planning queue's findings name and the synthesizer tasks of those passes'
    syntheses; a queue is listed in full only when these leave some of its tasks
    unaccounted for (tasks that name no pass, or posted since ``current`` was read).

    What a pass of the plan posted since ``current`` was read (a ``status`` while the run
    goes on) is that pass's, not an earlier one's: a task, finding or synthesizer task of a
    label or synthesis of the plan's is in no row here (the next read counts it in its
    pass)."""
    work, planning, synth = pipeline_queue(plan), planning_queue(plan), synthesis_queue(plan)
    unheld = _unheld(swarm, (work, planning, synth), current)
    if not any(unheld.values()):
        return []
    known_tasks = {t.id for r in current for t in (*r.tasks, *r.agent_tasks)}
    known = {f.id for r in current for f in (*r.findings, *r.superseded)}
    known |= {r.planning.id for r in current if r.planning is not None}
    held = {pass_label(plan, index) for index in range(len(plan.passes))}
    held_syntheses = {synthesis_id(plan, index) for index in range(len(plan.passes))}
    prefix = label_prefix(plan)
    out: dict[str, PassResult] = {}  # by label ("": none known), in the order first met

    def of(label: str) -> PassResult:
        if label not in out:
            out[label] = PassResult(label.removeprefix(prefix), label, earlier=True)
        return out[label]

    def unheld_of(
        queue: str, found: Iterable[Task | None], whole: Callable[[], list[Task]]
    ) -> tuple[list[Task], bool]:
        """The tasks of ``queue`` that no pass of ``current`` holds, as a listing orders
        them: those of ``found`` when they are all of them; else (True) ``whole``, every
        task of the queue (some name no pass, or were posted since ``current`` was read).
        All of them: as many as the queue's count, taken after ``found`` was listed (a task
        is removed only by ``retire_pass``, with its pass's other settled tasks and the
        count down by as many, so a task of ``found`` is one it counts, or one a retire took
        since, which makes the count smaller than ``found`` and the queue listed whole: an
        equal count leaves none out; a count from before could be made up by a task posted
        since, under a label ``found`` lists, for one it does not)."""
        mine = {t.id: t for t in found if t is not None and t.queue == queue}
        mine = {i: t for i, t in mine.items() if i not in known_tasks}
        if len(mine) != _unheld(swarm, (queue,), current)[queue]:
            return whole(), True
        return sorted(mine.values(), key=lambda t: (t.created_at, t.id)), False

    work_tasks: list[Task] = []
    work_findings: list[Finding] = []
    if unheld[work]:
        labels = [p.name for p in swarm.status().passes
                  if p.name.startswith(prefix) and p.name not in held]  # fmt: skip
        work_tasks, in_full = unheld_of(
            work,
            (t for label in labels for t in tasks_of(swarm, label, work)),
            lambda: tasks_of(swarm, None, work),
        )
        if in_full:  # (its findings too: some may name no pass)
            work_findings = findings_of(swarm, None, work, superseded=True)
        else:
            per_label = [findings_of(swarm, label, work, superseded=True) for label in labels]
            work_findings = sorted(chain(*per_label), key=lambda f: (f.created_at, f.id))
    planning_tasks: list[Task] = []
    planning_findings: list[Finding] = []
    if unheld[planning]:  # (the queue of a task or two per planned pass: its findings)
        planning_findings = findings_of(swarm, None, planning, superseded=True)
        reported = dict.fromkeys(f.task_id for f in planning_findings)
        planning_tasks, _ = unheld_of(
            planning,
            (_task(swarm, i) for i in reported if i not in known_tasks),
            lambda: tasks_of(swarm, None, planning, with_data=True),
        )

    labels_of: dict[str, str] = {}  # task id -> the label of its pass
    for task in work_tasks:
        if task.id not in known_tasks:
            labels_of[task.id] = task.pass_name or ""
            if labels_of[task.id] not in held:
                of(labels_of[task.id]).tasks.append(task)
    for task in planning_tasks:
        if task.id not in known_tasks:
            named_pass = task.data.get("pass") if isinstance(task.data, dict) else None
            label = task.pass_name or (named_pass if isinstance(named_pass, str) else "")
            labels_of[task.id] = label
            if label not in held:
                of(label).agent_tasks.append(task)
    for queue, found in ((work, work_findings), (planning, planning_findings)):
        for f in found:
            label = labels_of.get(f.task_id) or f.pass_name or ""
            if f.id in known or f.task_id in known_tasks or label in held:
                continue
            result = of(label)
            if f.superseded or (queue == planning and result.planning is not None):
                result.superseded.append(f)  # (a second planner's: its run cost all the same)
            elif queue == work:
                result.findings.append(f)
            else:
                result.planning = f
    syntheses = {r.synthesis.id for r in current if r.synthesis is not None}
    for label in [label for label in out if label]:
        cursor: str | None = None
        while True:  # (a page may come short with a cursor: its filter's scan is bounded)
            page = swarm.syntheses(pass_name=label, cursor=cursor, limit=100)
            for s in page.items:
                if s.id.startswith(PLANNED_SYNTHESIS) and s.id not in syntheses:
                    out[label].synthesis = s
            cursor = page.cursor
            if cursor is None:
                break
    by_synthesis = {r.synthesis.id: r for r in out.values() if r.synthesis is not None}
    synth_tasks: list[Task] = []
    if unheld[synth]:
        synth_tasks, _ = unheld_of(
            synth,
            (_task(swarm, synthesizer_task_of(s)) for s in by_synthesis),
            lambda: tasks_of(swarm, None, synth, with_data=True),
        )
    for task in synth_tasks:
        named = task.data.get(SYNTHESIS_NAMED) if isinstance(task.data, dict) else None
        named = named if isinstance(named, str) else None
        if task.id not in known_tasks and named not in held_syntheses:
            (by_synthesis.get(named or "") or of("")).agent_tasks.append(task)
    for result in out.values():  # (its runs no other record holds, its own reports priced)
        read_runs(swarm, plan, result)
    return sorted(out.values(), key=lambda r: not r.label)  # (the unnamed row last)


def _unheld(swarm: Swarm, queues: tuple[str, ...], current: list[PassResult]) -> dict[str, int]:
    """How many tasks of each of ``queues`` no pass of ``current`` holds: the queue's count
    (the core keeps it exact: one round trip for them all) less those ``current`` holds in
    it. Read after ``current`` (a task posted in between can only make it more, never hide
    a task of an earlier pass; a pass retired in between makes it less by its tasks that
    ``current`` holds, for that one read: the next one is exact again), and after any
    listing it is compared with."""
    counts = swarm.queue_stats()
    held: dict[str, set[str]] = {queue: set() for queue in queues}
    for result in current:
        for task in (*result.tasks, *result.agent_tasks):
            if task.queue in held:
                held[task.queue].add(task.id)
    return {q: sum(counts.get(q, {}).values()) - len(held[q]) for q in queues}


def _task(swarm: Swarm, task_id: str) -> Task | None:
    """Task ``task_id`` with its data, None when there is none."""
    try:
        return swarm.get_task(task_id)
    except NotFound:
        return None


def json_figures(value: Any, key: str = "") -> Any:
    """``value`` as the JSON of ``status`` shows it: every figure in it as ``figure_json``
    shows one (sums of money rounded, token counts as integers, unknown as null)."""
    if isinstance(value, dict):
        return {k: json_figures(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [json_figures(v) for v in value]
    return figure_json(key, value)


def pass_status(
    result: PassResult, spent: Sequence[Spent], *, earlier: bool = False
) -> dict[str, Any]:
    """One pass at a glance (``spent``: its ``spending``): tasks posted / completed / dead /
    cancelled (by hand) / open, findings, the synthesis, cost, tokens in and out (refused
    and failed runs included; ``failed_cost_usd`` is their part; None where no agent
    reported one), the agent runs behind them and how many of those reported no cost
    (``runs_without_cost``: the cost is then less than what was spent), wall time (see
    ``_wall_ms``); ``earlier``: a pass the plan no longer has (``read_earlier``), named by
    its old name alone (null: the runs that name no pass)."""
    usage = no_figures()
    failed = no_figures()
    for run in spent:
        if run.usage is None:  # (no cost reported: counted in runs_without_cost)
            continue
        add_figures(usage, usage_figures(run.usage))
        if run.failed:
            add_figures(failed, usage_figures(run.usage))
    wall = _wall_ms(result)
    counts = result.counts()
    runs, unpriced = runs_without_cost(result)
    return {
        "name": result.name or None,
        "label": result.label,
        "earlier": earlier,
        "posted": len(result.tasks),
        **{status.value: counts.get(status.value, 0) for status in SETTLED},
        "open": sum(n for s, n in counts.items() if not TaskStatus(s).settled),
        "findings": len(result.findings),
        "synthesis": result.synthesis.id if result.synthesis else None,
        "cost_usd": usage["cost_usd"],
        "failed_cost_usd": failed["cost_usd"],
        "tokens_in": usage["tokens_in"],
        "cached_in": usage["cached_in"],
        "tokens_out": usage["tokens_out"],
        "runs": runs,
        "runs_without_cost": unpriced,
        "wall_s": None if wall is None else round(wall / 1000, 3),
        "retired": _retired_json(result),
    }


def _retired_json(result: PassResult) -> dict[str, Any] | None:
    """What ``swarm retire`` removed of a pass, as its status says it (None: not retired),
    and whether a run posted the pass again since (``PassResult.posted_again``)."""
    retired = result.retired
    if retired is None:
        return None
    return {
        "at": iso(retired.at), "tasks": retired.tasks, "findings": retired.findings,
        "posted_again": result.posted_again,
    }  # fmt: skip


def retired_note(row: Mapping[str, Any]) -> str:
    """What ``status`` and ``report`` say of a pass of ``status_json`` that ``swarm retire``
    took the work of ("" when it was not retired): when, what went, and that the costs
    shown (its row's, the totals) no longer count what those runs cost."""
    retired = row.get("retired")
    if not retired:
        return ""
    synthesis = row["synthesis"]
    if retired.get("posted_again"):
        kept = "a run posted it again since: the tasks shown are those"
    elif synthesis:
        kept = f"its synthesis {synthesis} is kept"
    else:
        kept = "it has no synthesis: a run of the pipeline posts and runs its tasks again"
    return (
        f"pass {row['name']!r} was retired on {retired['at'] or 'an unknown date'} "
        f"(swarm retire): its {counted(retired['tasks'], 'settled task')} and "
        f"{counted(retired['findings'], 'finding')} were removed, and the costs shown no longer "
        f"count what their runs cost; {kept}"
    )


def bookkeeping_retired(swarm: Swarm, plan: Plan) -> dict[str, Any] | None:
    """What ``swarm pipeline retire`` removed of the bookkeeping of ``plan``'s run (its
    planning and synthesizer tasks: the costs ``status`` and the report show are that run's,
    so an earlier run's retired bookkeeping takes nothing from them), as status says it
    ({at, tasks, findings}, ``at`` the last retirement, ISO), or None: none was retired.
    Read from the core's records of retired queues (one round trip)."""
    queues = set(bookkeeping_queues(plan.name, plan.run))
    gone = [
        r for queue, r in swarm.retired_questions().items()
        if queue in queues and (r.questions or r.findings)
    ]  # fmt: skip
    if not gone:
        return None
    return {
        "at": iso(max((r.at for r in gone if r.at is not None), default=None)),
        "tasks": sum(r.questions for r in gone),
        "findings": sum(r.findings for r in gone),
    }


def bookkeeping_note(status: Mapping[str, Any]) -> str:
    """What ``status`` and ``report`` say of a pipeline whose last run's bookkeeping was
    retired ("": none was): when, what went, and that the costs shown no longer count its
    planners' runs."""
    retired = status.get("bookkeeping_retired")
    if not retired:
        return ""
    went = (
        f"the bookkeeping of run {status['run']} of pipeline {status['pipeline']} was retired on "
        f"{retired['at'] or 'an unknown date'} (swarm pipeline retire): "
        f"{counted(retired['tasks'], 'planning or synthesizer task')} and "
        f"{counted(retired['findings'], 'finding')} were removed"
    )
    if retired.get("counted"):  # (kept as the retirement removed them: fold_bookkeeping)
        cost = retired.get("counted_cost_usd")
        said = f" ({Money().line({'cost_usd': cost})})" if cost is not None else ""
        return (
            f"{went}; what their planners' runs and their synthesizers' failed runs cost{said} "
            "is still counted in the costs shown, retired (said so among the other agent runs)"
        )
    return (
        f"{went}, and the costs shown no longer count what their planners' runs and their "
        "synthesizers' failed runs cost"
    )


def pass_title(row: Mapping[str, Any]) -> str:
    """A pass of ``status_json`` as people see it named: a pass the plan no longer has with
    ``EARLIER`` after its old name, a retired one with ``RETIRED`` (``pass_title_of``)."""
    retired = row.get("retired")
    return pass_title_of(
        row["name"] or "", earlier=row["earlier"],
        retired=retired is not None and not retired.get("posted_again"),
    )  # fmt: skip


def wall_time(seconds: float | None) -> str:
    """A pass's wall time as the status table and the report show it ("": none yet)."""
    return "" if seconds is None else f"{seconds:.1f} s"


def no_cost_note(figures: Mapping[str, Any]) -> str:
    """What a sum of money leaves out, said after it: `` (2 of 7 runs reported no cost)``
    when some of the runs it sums reported a cost and some did not (as ``swarm run``'s last
    line says it; "" when every run did, or none: then no cost is shown at all)."""
    if figures["cost_usd"] is None:
        return ""
    return unpriced_note(figures["runs"], figures["runs_without_cost"])


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


def by_model(passes: Iterable[Sequence[Spent]]) -> dict[str, dict[str, float | None]]:
    """Cost and tokens per model, over every agent run (``passes``: each pass's
    ``spending``): the per-model figures where the CLI gave them (their cached tokens too,
    where it split them: Claude's, Gemini's; else a run of one model has them all), else
    the record's model (``unknown`` when none is known)."""
    out: dict[str, dict[str, float | None]] = {}
    for runs in passes:
        for spent in runs:
            if spent.usage is not None:  # (no cost reported: nothing to sum)
                add_model_figures(out, spent.usage, spent.model)
    return out


# The settled statuses a pass's status counts its tasks in, each under its own name (the
# open ones are counted together, as "open").
SETTLED = tuple(status for status in TaskStatus if status.settled)
# The counts of a pass that its status sums over every pass (the total row of every view).
COUNTS = ("posted", *(s.value for s in SETTLED), "open", "findings", "runs", "runs_without_cost")


def status_json(
    plan: Plan,
    results: list[PassResult],
    spent: list[list[Spent]] | None = None,
    *,
    bookkeeping: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The pipeline's status as JSON (``results``: ``read_passes``'s): per pass, the plan's
    and then those it no longer has (``"earlier": true``), and in total over them all, what
    every agent run the pipeline paid for cost; done when every pass of the plan has its
    synthesis. A sum no agent reported a figure for is null, not 0. ``spent``: each pass's
    ``spending`` (in the order of ``results``), when the caller needs it too (the report,
    lineage): read once per pass. ``bookkeeping``: ``bookkeeping_retired``'s, where read."""
    if spent is None:
        spent = [spending(r) for r in results]
    passes = [
        pass_status(r, runs, earlier=i >= len(plan.passes))
        for i, (r, runs) in enumerate(zip(results, spent, strict=True))
    ]
    counts = {key: sum(p[key] for p in passes) for key in COUNTS}
    total: dict[str, float | None] = dict.fromkeys(
        ("cost_usd", "failed_cost_usd", "tokens_in", "cached_in", "tokens_out")
    )
    for p in passes:
        for key in total:
            total[key] = plus(total[key], p[key])
    done = all(p["synthesis"] for p in passes if not p["earlier"])
    if bookkeeping is not None:  # (what its retired records cost, counted still)
        kept = [run for runs in spent for run in runs if run.retired]
        cost: float | None = None
        for run in kept:
            cost = plus(cost, run.usage.cost_usd if run.usage else None)
        bookkeeping = {**bookkeeping, "counted": len(kept), "counted_cost_usd": cost}
    out = {
        "pipeline": plan.name,
        "run": plan.run,
        "question": plan.question,
        "done": done,
        "passes": passes,
        **counts,
        **total,
        "by_model": by_model(spent),
        # (the passes whose retired tasks and findings these totals no longer count)
        "retired_passes": [p["name"] for p in passes if p["retired"] is not None],
        # (what swarm pipeline retire removed, which these totals no longer count either)
        "bookkeeping_retired": bookkeeping,
    }
    result: dict[str, Any] = json_figures(out)
    return result


# --- the report


def tokens(count: int | None) -> str:
    """A token count as the status table and the report show it (``-``: none reported)."""
    return UNKNOWN if count is None else f"{count:,}"


def _finding_line(f: Finding, task: Task | None, money: Money) -> str:
    parts = [f"worker {f.worker or UNKNOWN}", f"model {f.model or UNKNOWN}"]
    if task is not None:
        parts.append(f"task {task.id} ({task.description[:80]})")
    if f.usage is not None:
        parts.append(money.line(f.usage))
    sources = f"; sources: {', '.join(f.sources[:10])}" if f.sources else ""
    return f"- **[{f.id}]** {f.summary}  \n  {', '.join(parts)}{sources}"


def report_markdown(
    plan: Plan, results: list[PassResult], *, bookkeeping: Mapping[str, Any] | None = None
) -> str:
    """The pipeline as Markdown: the question, each pass's synthesis with its citations
    resolved to findings, dead tasks with their reasons, cancelled tasks, the pass's other
    agent runs (its planner's, uncited or superseded findings, failed runs) with what each
    cost, so that what a pass shows adds up to its cost; cost per pass and per model.
    Stored text (what agents wrote) is shown through ``printable``: no control character
    reaches it."""
    per_pass = [spending(result) for result in results]  # (once per pass: every part reads it)
    status = status_json(plan, results, per_pass, bookkeeping=bookkeeping)
    money = Money()  # (every cost as every view shows it: ``usd``'s decimals)
    lines = [f"# Pipeline {plan.name}", ""]
    if plan.question:
        lines += [f"**Question:** {plan.question}", ""]
    if status["bookkeeping_retired"]:
        lines += [_sentence(bookkeeping_note(status)), ""]
    for result, row, runs in zip(results, status["passes"], per_pass, strict=True):
        lines += [f"## {result.title}", ""]
        if row["earlier"]:
            lines += [_earlier_line(result), ""]
            continue
        if row["retired"] is not None:
            lines += [_sentence(retired_note(row)), ""]
        tasks = {t.id: t for t in result.tasks}
        findings = {f.id: f for f in result.findings}
        shown: set[str] = set()  # the records whose runs' cost is said above "Other runs"
        s = result.synthesis
        if s is None:
            lines += [
                f"Not synthesised yet ({row['completed']} of {row['posted']} tasks done).",
                "",
            ]
        else:
            shown.add(s.id)
            cost = f", {money.line(s.usage)}" if s.usage is not None else ""
            lines += [f"Synthesis `{s.id}` (model {s.model or UNKNOWN}{cost}):", "", s.text, ""]
            if s.sources:
                lines += ["### Cited findings", ""]
                gone: list[str] = []  # cited, and no longer stored (retired with the pass)
                for fid in s.sources:
                    f = findings.get(fid)
                    if f is not None:
                        shown.add(f.id)
                        lines.append(_finding_line(f, tasks.get(f.task_id), money))
                    else:
                        gone.append(fid)
                if gone:
                    lines.append(_gone_line(gone, row["retired"]))
                lines.append("")
        dead = [t for t in result.tasks if t.status is TaskStatus.DEAD]
        if dead:
            lines += ["### Dead tasks", ""]
            for t in dead:
                shown.add(t.id)
                why = t.dead_reason or t.last_error or "no reason recorded"
                spent = t.failed_usage
                cost = f" (its failed runs: {money.line(spent)})" if spent is not None else ""
                lines.append(f"- `{t.id}` {t.description[:120]}: {why[:300]}{cost}")
            lines.append("")
        cancelled = [t for t in result.tasks if t.status is TaskStatus.CANCELLED]
        if cancelled:  # (by hand: no run of the pipeline cancels a worker's task)
            lines += ["### Cancelled tasks", ""]
            for t in cancelled:
                shown.add(t.id)
                spent = t.failed_usage
                cost = f" (its failed runs: {money.line(spent)})" if spent is not None else ""
                lines.append(f"- `{t.id}` {t.description[:120]}{cost}")
            lines.append("")
        others = unshown(runs, shown)
        if others:
            lines += ["### Other agent runs", ""]
            lines += [f"- {other.what}: {money.line(other.usage)}" for other in others]
            lines.append("")
        if runs:
            parts = [run.usage.cost_usd if run.usage else None for run in runs]
            lines += [f"Pass cost, the runs above: {money.line(row, parts)}{no_cost_note(row)}", ""]
    lines += ["## Cost", ""]
    lines += _cost_tables(status, money)
    # (CRLF line ends an agent wrote are line ends: printable would show their \r)
    return printable("\n".join(lines).replace("\r\n", "\n") + "\n")


def _sentence(note: str) -> str:
    """A note of the report as a sentence: capitalised, with its full stop."""
    return note[:1].upper() + note[1:] + "."


_GONE_NAMED = 10  # the ids of findings no longer stored that the report names


def _gone_line(gone: Sequence[str], retired: Mapping[str, Any] | None) -> str:
    """The report's line for the findings a synthesis cites that are no longer stored:
    retired with the pass (``swarm retire``), or else missing (``swarm doctor`` looks)."""
    ids = first_few([f"[{fid}]" for fid in gone], _GONE_NAMED)
    if retired is not None:
        when = retired["at"] or "an unknown date"
        return f"- {ids}: retired with the pass on {when} (swarm retire): no longer stored"
    return f"- {ids}: no longer stored"


def unshown(runs: Iterable[Spent], shown: Container[str]) -> list[Spent]:
    """A pass's runs (``runs``: its ``spending``) whose record is not among ``shown``, the
    records a view of the pass already says the cost of: what it lists as the pass's other
    runs, so that what it shows adds up to the pass's cost (the report's "Other agent runs",
    a pipeline's lineage's "other runs of the pass")."""
    return [run for run in runs if run.record not in shown]


def _earlier_line(result: PassResult) -> str:
    """What the report says of a pass the plan no longer has."""
    what = (
        f"A pass of this run that the plan no longer has (renamed or removed since it "
        f"began; its synthesis `{result.synthesis.id}`)"
        if result.synthesis is not None
        else "Runs of this run's passes that the plan no longer has"
    )
    return f"{what}: what its agent runs cost counts in the totals below."


# The report's cost tables: each column, and the figure it shows ("": always shown).
PASS_COLUMNS = {"pass": "", "tasks": "", "completed": "", "dead": "",
                TaskStatus.CANCELLED.value: TaskStatus.CANCELLED.value, "findings": "",
                "cost": "cost", "failed runs": "cost", "tokens in": "tokens",
                "cached in": "cached", "tokens out": "tokens", "wall time": ""}  # fmt: skip
MODEL_COLUMNS = {"model": "", "cost": "cost", "tokens in": "tokens", "cached in": "cached",
                 "tokens out": "tokens"}  # fmt: skip


def _table(columns: dict[str, str], rows: Iterable[list[str]], shown: set[str]) -> list[str]:
    """A Markdown table of ``rows`` (a cell per column), with the columns of a figure not in
    ``shown`` left out; an empty cell as ``| |``."""
    keep = [not figure or figure in shown for figure in columns.values()]

    def line(cells: list[str]) -> str:
        kept = [cell for cell, k in zip(cells, keep, strict=True) if k]
        return "|" + "".join(f" {cell} |" if cell else " |" for cell in kept)

    return [line(list(columns)), line(["---"] * len(columns)), *map(line, rows)]


def _cost_tables(status: dict[str, Any], money: Money) -> list[str]:
    """The report's cost per pass and per model. A figure no agent reported is unknown
    (``-``); a column whose figure no agent reported at all is left out (Codex reports no
    cost; scripted agents neither cost nor tokens), and so is the table per model when it
    is left with no figure, said in one line."""
    models = status["by_model"]
    sums = [status, *models.values()]
    shown = {
        figure
        for figure, keys in (
            ("cost", ("cost_usd",)),
            ("tokens", ("tokens_in", "tokens_out")),
            ("cached", ("cached_in",)),
        )
        if any(entry[key] is not None for entry in sums for key in keys)
    }
    if "cost" in shown:
        lead = ("Cost includes every agent run, refused and failed ones too (their part in "
                "its own column); `-` where no agent reported it.")  # fmt: skip
        unpriced = no_cost_note(status).strip(" ()")
        if unpriced:  # (the sums are then less than what was spent)
            lead += f" Of the runs it sums, {unpriced}: the costs leave theirs out."
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
    rows = status["passes"]
    passes = [
        [pass_title(p), str(p["posted"]), str(p["completed"]), str(p["dead"]),
         str(p["cancelled"]), str(p["findings"]), money(p["cost_usd"]),
         money(p["failed_cost_usd"]), tokens(p["tokens_in"]), tokens(p["cached_in"]),
         tokens(p["tokens_out"]),
         wall_time(p["wall_s"])]
        for p in rows
    ]  # fmt: skip
    cost = money.total([p["cost_usd"] for p in rows], status["cost_usd"])
    failed = money.total([p["failed_cost_usd"] for p in rows], status["failed_cost_usd"])
    passes.append(
        ["**total**", str(status["posted"]), str(status["completed"]), str(status["dead"]),
         str(status["cancelled"]), str(status["findings"]), cost, failed,
         tokens(status["tokens_in"]), tokens(status["cached_in"]), tokens(status["tokens_out"]),
         ""]
    )  # fmt: skip
    # (a column of tasks cancelled by hand only when there are some)
    cancelled = {TaskStatus.CANCELLED.value} if status[TaskStatus.CANCELLED.value] else set()
    lines = [lead, "", *_table(PASS_COLUMNS, passes, shown | cancelled)]
    if shown and models:
        per_model = [
            [model, money(e["cost_usd"]), tokens(e["tokens_in"]), tokens(e["cached_in"]),
             tokens(e["tokens_out"])]
            for model, e in sorted(models.items())
        ]  # fmt: skip
        lines += ["", *_table(MODEL_COLUMNS, per_model, shown)]
    return lines
