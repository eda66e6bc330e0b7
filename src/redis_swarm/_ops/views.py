"""The reads every face shows: the swarm's status, and the newest records for the live views.

``status`` is the swarm at a glance (queues, passes, agents, contexts, totals), assembled here
and nowhere else so that ``swarm status``, the MCP tool, the dashboard and the seed's
``get_swarm_status`` cannot disagree. It runs the listings it is made of side by side
(``together``): one round trip whatever the size of the swarm, the newest event id first, so
that a follower starting from it misses nothing that happened while the rest was read; two
more when there are queues, for who holds the newest leases (``agents`` gives an agent that
said no task the one it holds: one place decides it).

The listings page forward, oldest first, which is right for processing everything; a live
view wants the opposite, the newest few. ``recent`` reads them newest first straight from
the indexes, in two or three round trips. (Who holds the newest leases is ``status``'s, in
its roster: the dashboard reads both, and the leases once.)

``task_costs`` is what every agent run on one task cost, as ``swarm task show`` and a
task's lineage (``swarm lineage``) total it, in two round trips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .._codec import UNREADABLE
from .._context_records import ContextInfo
from .._models import (
    STALE_AFTER_S,
    SYNTHESIS_NAMED,
    Agent,
    AgentCounts,
    Finding,
    Page,
    PassProgress,
    Recent,
    SwarmStatus,
    Synthesis,
    Task,
    TaskCosts,
    TaskStatus,
    synthesis_run_for,
)
from .._protocol import Batch, Cmd, OpContext, Operation, together
from .._validate import MAX_PAGE
from . import agents as agent_ops
from . import contexts as context_ops
from . import events as event_ops
from . import tasks as task_ops
from ._work import (
    LIST_BUDGET,
    STATUSES,
    check_number,
    counter,
    decoded,
    finding_from,
    newest,
    page,
    synthesis_from,
    task_from,
    text,
)

__all__ = ["passes", "recent", "status", "task_costs"]

R = TypeVar("R")

MAX_VIEW = 500
# Statuses after which a task needs no more work: what a pass's progress counts as done.
_SETTLED = frozenset(s.value for s in TaskStatus if s.settled)


def _bounded(kind: str, value: object) -> int:
    """A count of ``recent``: an integer from 1 to ``MAX_VIEW``, else a ValidationError (a
    count out of range was clamped: 0 read as 1, 10**30 as 500)."""
    return int(check_number(kind, value, 1, MAX_VIEW, integer=True))


# --- the status


def status(ctx: OpContext, stale_after_s: float = STALE_AFTER_S) -> Operation[SwarmStatus]:
    """The swarm at a glance: the newest event id, the task counts of every queue with a
    task left (``_with_tasks``) and of every pass, the agents (alive after a heartbeat within
    ``stale_after_s``; each with its task, see ``agents.agents``) and the current version of
    every context. One round trip, two more for the leases when there are queues."""
    results = yield from together(
        event_ops.last_event_id(ctx),
        task_ops.queue_stats(ctx),
        passes(ctx),
        agent_ops.agents(ctx, stale_after_s=stale_after_s),
        context_ops.contexts(ctx),
    )
    newest: str = results[0]
    queues = _with_tasks(results[1])
    agents: list[Agent] = results[3]
    contexts: list[ContextInfo] = results[4]
    by_role: dict[str, int] = {}
    for agent in agents:
        if agent.alive:
            by_role[agent.role] = by_role.get(agent.role, 0) + 1
    alive = sum(by_role.values())
    return SwarmStatus(
        swarm=ctx.settings.swarm,
        last_event_id=newest,
        queues=queues,
        totals={s.value: sum(c.get(s.value, 0) for c in queues.values()) for s in TaskStatus},
        passes=results[2],
        agents=AgentCounts(
            total=len(agents), alive=alive, stale=len(agents) - alive, by_role=by_role
        ),
        roster=tuple(sorted(agents, key=_agent_order)),
        contexts=tuple(contexts),
    )


def _with_tasks(queues: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``queues`` (``queue_stats``: every queue ever posted to) but those with no task left:
    retiring a pass (``swarm retire``, ``swarm pipeline retire``) brings its queues' counters
    down to zero and leaves them, and every view listed such a queue at zero for ever. Only
    a retirement removes tasks, so a queue all at zero is one whose every task went; one
    with any task counted, open or settled, stays (``queue_stats`` keeps every queue)."""
    return {queue: counts for queue, counts in queues.items() if any(counts.values())}


def _agent_order(agent: Agent) -> tuple[bool, str, str]:
    # Live agents first, then by role and id: the list does not jump around between reads.
    return (not agent.alive, agent.role, agent.id)


def passes(ctx: OpContext) -> Operation[tuple[PassProgress, ...]]:
    """Every pass with its task counts, by name (one HGETALL of the counters)."""
    raw = yield Cmd("HGETALL", ctx.keys.pass_counts)
    return tuple(_progress(name, counts) for name, counts in pass_counts(raw).items())


def pass_counts(raw: Any) -> dict[str, dict[str, int]]:
    """``pass-id -> name`` and ``pass-id|status -> count`` fields, as {name: {status: n}}."""
    names = pass_names(raw)
    values: dict[str, dict[str, Any]] = {}
    for field, value in dict(raw or {}).items():
        pid, sep, state = text(field).partition("|")
        if sep:
            values.setdefault(pid, {})[state] = value
    return {
        names[pid]: {
            # (a counter holding no integer: named as the doctor names it, by its pass)
            state: counter(f"pass {names[pid]!r} {state}", value)
            for state, value in values.get(pid, {}).items()
        }
        for pid in sorted(names, key=lambda p: names[p])
    }


def pass_names(raw: Any) -> dict[str, str]:
    """The ``pass-id -> name`` fields of the pass counters, as {pass-id: name}."""
    return {text(f): text(v) for f, v in dict(raw or {}).items() if "|" not in text(f)}


def _progress(name: str, counts: dict[str, int]) -> PassProgress:
    # Every status, zeros too, as queue_stats and pass_stats give them: a reader need not
    # know which statuses exist to read a count.
    counts = {state: int(counts.get(state, 0)) for state in STATUSES}
    settled = sum(n for state, n in counts.items() if state in _SETTLED)
    return PassProgress(name=name, counts=counts, total=sum(counts.values()), settled=settled)


# --- the newest records


def recent(
    ctx: OpContext, findings: int = 50, syntheses: int = 20, dead: int = 50
) -> Operation[Recent]:
    """The newest ``findings``, ``syntheses`` and dead-lettered tasks (newest first; the
    tasks without their data; each count 1 to 500), in two or three round trips."""
    found, made, dead_tasks, corrupt = yield from _newest_records(
        ctx,
        _bounded("findings", findings),
        _bounded("syntheses", syntheses),
        _bounded("dead", dead),
    )
    return Recent(findings=found, syntheses=made, dead=dead_tasks, corrupt=corrupt)


# The newest findings, syntheses and dead letters, and the ids of those stored unreadable.
_Newest = tuple[tuple[Finding, ...], tuple[Synthesis, ...], tuple[Task, ...], tuple[str, ...]]


def _newest_records(
    ctx: OpContext, n_findings: int, n_syntheses: int, n_dead: int
) -> Operation[_Newest]:
    """The newest findings, syntheses and dead-lettered tasks, and the ids of those among
    them stored unreadable, in two or three round trips."""
    k = ctx.keys
    finding_ids, synthesis_ids, queues = yield Batch(
        (
            Cmd("ZREVRANGE", k.finding_index, 0, n_findings - 1),
            Cmd("ZREVRANGE", k.synthesis_index, 0, n_syntheses - 1),
            Cmd("HKEYS", k.counts),
        )
    )
    queue_names = task_ops.queue_names(queues)
    finding_ids = [text(i) for i in finding_ids]
    synthesis_ids = [text(i) for i in synthesis_ids]

    second: list[Cmd] = []
    if finding_ids:
        second.append(Cmd("HMGET", k.findings, *finding_ids))
    if synthesis_ids:
        second.append(Cmd("HMGET", k.syntheses, *synthesis_ids))
    second += [Cmd("ZREVRANGE", k.dead(q), 0, n_dead - 1, "WITHSCORES") for q in queue_names]
    replies = list((yield Batch(tuple(second)))) if second else []
    found = replies.pop(0) if finding_ids else []
    made = replies.pop(0) if synthesis_ids else []

    # The newest dead letters across queues, by time of death.
    dead_ids = newest(replies, n_dead)
    tasks: list[Any] = (yield Cmd("HMGET", k.tasks, *dead_ids)) if dead_ids else []

    corrupt: list[str] = []

    def readable(ids: list[str], raws: list[Any], decode: Callable[[Any], R]) -> tuple[R, ...]:
        out: list[R] = []
        for record_id, raw in zip(ids, raws, strict=True):
            if raw:  # None: deleted since it was indexed
                try:
                    out.append(decode(raw))
                except UNREADABLE:  # written around the operations: named, not fatal
                    corrupt.append(record_id)
        return tuple(out)

    return (
        readable(finding_ids, found, finding_from),
        readable(synthesis_ids, made, synthesis_from),
        # a view never shows payloads
        readable(dead_ids, tasks, lambda raw: task_from(raw, None)),
        tuple(corrupt),
    )


# --- what a task cost


def task_costs(ctx: OpContext, task_id: str) -> Operation[TaskCosts]:
    """What every agent run on task ``task_id`` cost, record by record (``TaskCosts``): the
    task, then its finding and, for a completed or cancelled task (the only ones a late
    report is superseded on), its superseded findings, in one more round trip.

    No index holds a task's findings (a superseded report changes nothing on its task), so
    its superseded ones are looked for among the findings of its pass (else its queue)
    reported since it settled, by the server (``index_page``'s filters: this task's id, and
    superseded): only they are sent back, not every finding looked through. One call looks
    through at most ``LIST_BUDGET`` of them (``searched_all`` says whether that was all).

    A pipeline's synthesizer task completed with the synthesis written (its finding names
    it: ``_closes``) has that synthesis read too (beside its finding), as the run of it that
    was taken: its finding says so and no agent run reported it (``TaskCosts.synthesis``)."""
    task = yield from task_ops.get_task(ctx, task_id)
    k = ctx.keys
    reads: list[Operation[Any]] = []
    if task.finding_id:
        reads.append(_maybe_finding(ctx, task.finding_id))
    sid = synthesis_run_for(task) if task.finding_id else None
    if sid is not None:
        reads.append(_maybe_synthesis(ctx, sid))
    late = task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED)
    if late:
        index = (
            k.findings_by("pass", task.pass_name)
            if task.pass_name is not None
            else k.findings_by("queue", task.queue)
        )
        since = task.status_since or task.created_at
        filters = ["task_id", task.id, "superseded", "true"]
        reads.append(
            page(ctx, (index, k.findings), None, MAX_PAGE, since, False, filters,
                 lambda raw, _: finding_from(raw))
        )  # fmt: skip
    results = (yield from together(*reads)) if reads else []
    finding: Finding | None = results.pop(0) if task.finding_id else None
    written: Synthesis | None = results.pop(0) if sid is not None else None
    synthesis = written if written is not None and _closes(task, finding, written) else None
    if not late:
        return TaskCosts(task, finding, synthesis=synthesis)
    found: Page[Finding] = results[0]
    return TaskCosts(
        task, finding, found.items, searched_all=found.cursor is None, scan_limit=LIST_BUDGET,
        synthesis=synthesis,
    )  # fmt: skip


def _closes(task: Task, finding: Finding | None, synthesis: Synthesis) -> bool:
    """Whether ``finding``, ``task``'s, is the one a pipeline completes its synthesizer task
    with once ``synthesis`` is written: it names the synthesis, and no agent run reported
    it (no usage: the synthesis holds what its run cost)."""
    return (
        finding is not None and finding.task_id == task.id and finding.usage is None
        and finding.extra.get(SYNTHESIS_NAMED) == synthesis.id
    )  # fmt: skip


def _maybe_synthesis(ctx: OpContext, synthesis_id: str) -> Operation[Synthesis | None]:
    """A synthesis, or None when it is not stored or cannot be read (the task's costs are
    shown without it: ``swarm doctor`` names a synthesis stored unreadable)."""
    raw = yield Cmd("HGET", ctx.keys.syntheses, synthesis_id)
    try:
        return None if raw is None else synthesis_from(raw)
    except UNREADABLE:
        return None


def _maybe_finding(ctx: OpContext, finding_id: str) -> Operation[Finding | None]:
    """A finding, or None when it is not stored (CorruptRecord when it cannot be read)."""
    raw = yield Cmd("HGET", ctx.keys.findings, finding_id)
    return None if raw is None else decoded("finding", finding_id, finding_from, raw)


# --- shared with the doctor's scan (``doctor``) and retiring (``retire``)

# The entries of a hash (HSCAN's COUNT) or of an index one command reads.
SCAN_COUNT = 1_000


def _hash_items(entries: Any) -> list[tuple[Any, Any]]:
    """HSCAN's field-value pairs, as a dict (redis-py parsed it) or a flat list."""
    if isinstance(entries, dict):
        return list(entries.items())
    return list(zip(entries[::2], entries[1::2], strict=True))
