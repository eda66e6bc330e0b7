"""Freeing a pipeline's bookkeeping (``swarm pipeline retire NAME``): the tasks a pipeline
posts for itself, of no pass, that ``swarm retire PASS`` never frees: each run's planning
and synthesizer tasks (with their findings) and the lease task every run leaves. Their
queues are named here (``names``); the core's ``retire_queues`` frees the settled tasks of
each, as ``swarm retire --questions`` frees a queue of questions, the pipeline's lease
holding it off while a run drives the pipeline. The passes' own tasks are
``swarm retire PASS``'s.

A run that did not finish keeps its bookkeeping: the next ``swarm pipeline run`` resumes it
and reads what its planners wrote (retired, a planner not yet followed by its pass's tasks
would be paid again). The lease task of the highest generation stays too: the next run
numbers its own from it (see ``lease``), and one retired would be posted again.

What the last run's bookkeeping cost is kept first, when that run is finished
(``records.fold_bookkeeping``): the spend of a finished pipeline does not drop with its
cleanup; ``status`` and the report count it, said to be retired.

A pipeline run many times has many queues: only those holding tasks are named to the core,
``QUEUES_PER_CALL`` at a time. The agent runs paid for that no other record holds, which the
swarm keeps per run (``records.count_unrecorded``), go once their run has no task left, its
workers' and its bookkeeping (``Swarm.drop_unrecorded_runs``), ``QUEUES_PER_CALL`` runs at a
time: its cost counts them while it keeps a record; an unfinished run keeps its own, as it
keeps its bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._codec import iso, now_ms
from .._errors import Conflict, NotFound, SwarmError
from .._models import RetiredQuestions, Task, TaskStatus
from .._validate import MAX_PAGE
from .lease import newest_lease
from .names import (
    bookkeeping_queues,
    lease_generation,
    lease_queue,
    retired_owner,
    run_queues,
    synthesis_id,
    unrecorded_owner,
)
from .plan import Plan
from .records import fold_bookkeeping
from .report import stored_plan

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["QUEUES_PER_CALL", "PipelineRetired", "retire_pipeline"]

# The most queues named to one ``retire_queues`` call (the core takes up to a thousand): a
# pipeline's two a run, for a hundred runs.
QUEUES_PER_CALL = 200


@dataclass(frozen=True)
class PipelineRetired:
    """What ``retire_pipeline`` removed (or, ``dry_run``, would remove) of pipeline ``name``
    (its last run ``run``): per queue, the core's ``RetiredQuestions`` (its ``questions`` the
    tasks); ``unfinished``: the run whose bookkeeping was kept, not finished (None: every
    run's was retired); ``lease_kept``: the lease task kept as the highest generation
    (counted apart from ``recent``), None when the lease queue held none; ``unrecorded``: the
    agent runs paid for that no other record held, of the runs left with no task (deleted
    with them)."""

    name: str
    run: int
    dry_run: bool
    queues: list[RetiredQuestions] = field(default_factory=list)
    unfinished: int | None = None
    lease_kept: str | None = None
    unrecorded: int = 0

    def total(self, what: str) -> int:
        """``what`` (a count of ``RetiredQuestions``) summed over the queues (``recent``:
        but the lease task kept, which the core counts so)."""
        core = _CORE_NAME.get(what, what)
        apart = 1 if what == "recent" and self.lease_kept is not None else 0
        return max(0, sum(int(getattr(q, core)) for q in self.queues) - apart)

    def as_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.name,
            "run": self.run,
            "dry_run": self.dry_run,
            **{what: self.total(what) for what in _TOTALS},
            "unfinished_run": self.unfinished,
            "lease_kept": self.lease_kept,
            "unrecorded_runs": self.unrecorded,
            "queues": [q.to_dict() for q in self.queues],
        }


# The counts summed over the queues (``tasks`` is the core's ``questions``).
_TOTALS = ("tasks", "findings", "open", "recent", "cited", "other", "corrupt")
_CORE_NAME = {"tasks": "questions"}


def retire_pipeline(
    swarm: Swarm,
    name: str,
    *,
    older_than_s: float,
    dry_run: bool = False,
    queues_per_call: int = QUEUES_PER_CALL,
) -> PipelineRetired:
    """Remove the settled bookkeeping of every run of pipeline ``name`` that settled
    ``older_than_s`` ago or earlier: planning, synthesizer and lease tasks, with their
    findings, but the highest generation's lease task (see the module), naming the core
    ``queues_per_call`` queues at a time. NotFound for a pipeline no run stored a plan of;
    Conflict while a run holds its lease."""
    plan = stored_plan(swarm, name)
    unfinished = None if _finished(swarm, plan) else plan.run
    lease = lease_queue(plan.name)
    retired: list[RetiredQuestions] = []
    kept: Task | None = None
    # What the last run's bookkeeping cost, kept before it goes; not while a run holds the
    # lease (the core refuses the retirement: nothing is written). One that starts after
    # this look leaves the folded records unread: each counts only once its record went.
    if unfinished is None and not dry_run and _open_lease(swarm, plan.name) is None:
        fold_bookkeeping(swarm, plan)
    try:
        for queues in _in_calls(_holding_tasks(swarm, plan, unfinished), queues_per_call):
            retired += swarm.retire_queues(
                queues, older_than_s=older_than_s, dry_run=dry_run, unless_open=lease
            )
        newest = newest_lease(swarm, plan.name)
        kept = newest[0] if newest is not None else None
        # Every lease task settled before the highest was posted may go: the highest, and
        # any posted meanwhile by a run that started since, stay.
        retired += swarm.retire_queues(
            [lease], older_than_s=older_than_s, dry_run=dry_run, unless_open=lease,
            settled_before=kept.created_at if kept is not None else None,
        )  # fmt: skip
        unrecorded = _drop_unrecorded(swarm, plan, unfinished, retired, dry_run, queues_per_call)
    except Conflict as exc:
        raise Conflict(_running(swarm, plan)) from exc
    return PipelineRetired(
        plan.name, plan.run, dry_run, retired, unfinished, kept.id if kept is not None else None,
        unrecorded,
    )  # fmt: skip


def _drop_unrecorded(
    swarm: Swarm,
    plan: Plan,
    unfinished: int | None,
    retired: list[RetiredQuestions],
    dry_run: bool,
    per_call: int,
) -> int:
    """Delete (``dry_run``: count) the agent runs paid for that no
    other record holds of ``plan``'s runs left with no task (``_emptied_runs``),
    ``per_call`` runs at a time: how many. A run with a task left keeps them: its cost
    counts while its records do (a task settled within ``--older-than``, one a synthesis
    cites, its workers' tasks, which ``swarm retire PASS`` frees). The costs of its retired
    bookkeeping kept (``records.fold_bookkeeping``) go with them, not counted."""
    runs = _emptied_runs(swarm, plan, unfinished, retired)
    owners = [unrecorded_owner(plan.name, run) for run in runs]
    for some in _in_calls([retired_owner(plan.name, run) for run in runs], per_call):
        swarm.drop_unrecorded_runs(some, dry_run=dry_run)  # (and the costs folded: not counted)
    return sum(
        swarm.drop_unrecorded_runs(some, dry_run=dry_run) for some in _in_calls(owners, per_call)
    )


def _emptied_runs(
    swarm: Swarm, plan: Plan, unfinished: int | None, retired: list[RetiredQuestions]
) -> list[int]:
    """The runs of ``plan``'s pipeline (but the ``unfinished`` one) whose queues, the
    workers' and the bookkeeping, hold no task once ``retired`` is done (a dry run's: what
    it would remove taken off what they hold now; one HGETALL of the counters)."""
    stats = swarm.queue_stats()
    going = {r.queue: r.questions for r in retired if r.dry_run}
    return [
        run for run in _retired_runs(plan, unfinished)
        if all(
            sum(stats.get(queue, {}).values()) - going.get(queue, 0) <= 0
            for queue in run_queues(plan.name, run)
        )
    ]  # fmt: skip


def _retired_runs(plan: Plan, unfinished: int | None) -> range:
    """The runs of ``plan``'s pipeline whose bookkeeping is retired: every one but the last
    when it is ``unfinished``."""
    return range(1, plan.run + (unfinished is None))


def _holding_tasks(swarm: Swarm, plan: Plan, unfinished: int | None) -> list[str]:
    """The bookkeeping queues of ``plan``'s runs (but the ``unfinished`` one) that hold a
    task: those that never held one, or hold none since an earlier retirement, have
    nothing to free (one HGETALL of the counters)."""
    stats = swarm.queue_stats()
    runs = _retired_runs(plan, unfinished)
    return [
        queue for run in runs for queue in bookkeeping_queues(plan.name, run)
        if any(stats.get(queue, {}).values())
    ]  # fmt: skip


def _in_calls(queues: list[str], size: int) -> list[list[str]]:
    """``queues`` in lists of at most ``size``."""
    if size < 1:
        raise ValueError(f"queues_per_call is {size}: it must be at least 1")
    return [queues[at : at + size] for at in range(0, len(queues), size)]


def _finished(swarm: Swarm, plan: Plan) -> bool:
    """Whether every pass of ``plan`` (its last run) has its synthesis."""
    for index in range(len(plan.passes)):
        try:
            swarm.get_synthesis(synthesis_id(plan, index))
        except NotFound:
            return False
    return True


def _running(swarm: Swarm, plan: Plan) -> str:
    """Why the bookkeeping of a pipeline whose lease is held is not retired, who holds it,
    and what to do (a killed run's lease stays claimed until something takes it back)."""
    task = _open_lease(swarm, plan.name)
    why = (
        f"pipeline {plan.name} is being run: a run reads what it planned and posted, so "
        "nothing of it is retired while it holds the pipeline's lease"
    )
    if task is None:  # (settled meanwhile)
        return f"{why}. Run this again: the lease was just given up"
    who = f" ({task.worker or 'no one yet'} holds {task.id} since {iso(task.claimed_at)})"
    if task.status is not TaskStatus.CLAIMED or (task.lease_deadline or 0) >= _server_now(swarm):
        return f"{why}{who}. Run this again when that run ends"
    return (
        f"{why}{who}. Its lease ran out at {iso(task.lease_deadline)} unrenewed: if that "
        f"run was killed, take the pipeline back from it (swarm task cancel {task.id}), then "
        "run this again"
    )


def _open_lease(swarm: Swarm, name: str) -> Task | None:
    """The open task of pipeline ``name``'s lease queue (None: none is open now): a claimed
    one before one waiting to be, the highest generation first (then a task posted there
    by hand: the latest)."""
    queue = lease_queue(name)
    for status in (TaskStatus.CLAIMED, TaskStatus.PENDING, TaskStatus.DELAYED):
        held = swarm.list_tasks(queue=queue, status=status, limit=MAX_PAGE).items
        if held:
            return max(held, key=lambda t: (lease_generation(name, t.id) or 0, t.created_at))
    return None


def _server_now(swarm: Swarm) -> int:
    """The server's time (ms), which a lease's deadline is of; this machine's when the
    server does not say."""
    try:
        return swarm.server_info().server_time_ms
    except SwarmError:
        return now_ms()
