"""Freeing a pipeline's bookkeeping (``swarm pipeline retire NAME``): the tasks a pipeline
posts for itself, of no pass, that ``swarm retire PASS`` never frees: each run's planning
and synthesizer tasks (with their findings) and the lease task every run leaves. Their
queues are named here (``names``); the core's ``retire_queues`` frees the settled tasks of
each, as ``swarm retire --questions`` frees a queue of questions, the pipeline's lease
holding it off while a run drives the pipeline. The passes' own tasks are
``swarm retire PASS``'s.

A run that did not finish keeps its bookkeeping: the next ``swarm pipeline run`` resumes it
and reads what its planners wrote (retired, a planner not yet followed by its pass's tasks
would be paid again)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._codec import iso, now_ms
from .._errors import Conflict, NotFound
from .._models import RetiredQuestions
from .names import bookkeeping_queues, lease_queue, synthesis_id
from .plan import Plan
from .report import stored_plan

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["PipelineRetired", "retire_pipeline"]


@dataclass(frozen=True)
class PipelineRetired:
    """What ``retire_pipeline`` removed (or, ``dry_run``, would remove) of pipeline ``name``
    (its last run ``run``): per queue, the core's ``RetiredQuestions`` (its ``questions`` the
    tasks); ``unfinished``: the run whose bookkeeping was kept, not finished (None: every
    run's was retired)."""

    name: str
    run: int
    dry_run: bool
    queues: list[RetiredQuestions] = field(default_factory=list)
    unfinished: int | None = None

    def total(self, what: str) -> int:
        """``what`` (a count of ``RetiredQuestions``) summed over the queues."""
        core = _CORE_NAME.get(what, what)
        return sum(int(getattr(q, core)) for q in self.queues)

    def as_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.name,
            "run": self.run,
            "dry_run": self.dry_run,
            **{what: self.total(what) for what in _TOTALS},
            "unfinished_run": self.unfinished,
            "queues": [q.to_dict() for q in self.queues],
        }


# The counts summed over the queues (``tasks`` is the core's ``questions``).
_TOTALS = ("tasks", "findings", "open", "recent", "cited", "other", "corrupt")
_CORE_NAME = {"tasks": "questions"}


def retire_pipeline(
    swarm: Swarm, name: str, *, older_than_s: float, dry_run: bool = False
) -> PipelineRetired:
    """Remove the settled bookkeeping of every run of pipeline ``name`` that settled
    ``older_than_s`` ago or earlier: planning, synthesizer and lease tasks, with their
    findings (see the module). NotFound for a pipeline no run stored a plan of; Conflict
    while a run holds its lease."""
    plan = stored_plan(swarm, name)
    unfinished = None if _finished(swarm, plan) else plan.run
    runs = range(1, plan.run + (unfinished is None))
    queues = [queue for run in runs for queue in bookkeeping_queues(plan.name, run)]
    lease = lease_queue(plan.name)
    try:
        retired = swarm.retire_queues(
            [*queues, lease], older_than_s=older_than_s, dry_run=dry_run, unless_open=lease
        )
    except Conflict as exc:
        raise Conflict(_running(swarm, plan)) from exc
    return PipelineRetired(plan.name, plan.run, dry_run, retired, unfinished)


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
    lease = lease_queue(plan.name)
    held = [t for t in swarm.list_tasks(queue=lease).items if not t.status.settled]
    why = (
        f"pipeline {plan.name} is being run: a run reads what it planned and posted, so "
        "nothing of it is retired while it holds the pipeline's lease"
    )
    if not held:  # (settled meanwhile)
        return f"{why}. Run this again: the lease was just given up"
    task = held[-1]
    who = f" ({task.worker or 'no one yet'} holds {task.id} since {iso(task.claimed_at)})"
    if (task.lease_deadline or 0) >= now_ms():
        return f"{why}{who}. Run this again when that run ends"
    return (
        f"{why}{who}. Its lease ran out at {iso(task.lease_deadline)} unrenewed: if that "
        f"run was killed, take the pipeline back from it (swarm task cancel {task.id}), then "
        "run this again"
    )
