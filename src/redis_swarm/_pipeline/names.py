"""What a pipeline run is called in the swarm (its queues, pass labels, synthesis ids,
the stored plan) and its tasks and findings read back: the same on every run of a plan, which
is what makes a killed run resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import TYPE_CHECKING, Any

from .._errors import Conflict, NotFound, ValidationError
from .._models import (
    PLANNED_SYNTHESIS,
    Finding,
    Task,
    pipeline_label_prefix,
    planning_task_of,
    retired_owner_of,
    synthesizer_task_of,
    unrecorded_owner,
)
from .._validate import DEFAULT_MAX_ATTEMPTS, MAX_PAGE, check_name

if TYPE_CHECKING:
    from .._client import Swarm
    from .plan import Plan

__all__ = [
    "MAX_PIPELINE_NAME",
    "PLANNED_SYNTHESIS",
    "bookkeeping_queues",
    "checked_name",
    "dedupe_key",
    "findings_of",
    "is_planning_queue",
    "label_prefix",
    "lease_generation",
    "lease_queue",
    "lease_task_id",
    "pass_label",
    "pipeline_names",
    "pipeline_queue",
    "plan_owner",
    "plan_owner_of",
    "planning_queue",
    "planning_task_id",
    "posted_once",
    "queue_clash",
    "retired_owner",
    "run_queues",
    "stored_run",
    "stored_text",
    "synthesis_id",
    "synthesis_queue",
    "synthesis_task_id",
    "synthesizer_task_of",
    "tasks_of",
    "unrecorded_owner",
    "which_run",
]


MAX_PIPELINE_NAME = 64  # (its longest queue, pipeline.NAME--runN.synth, is a queue name still)


def checked_name(value: object) -> str:
    """``value`` if it is a valid pipeline name (the characters and length of a name), else
    a ValidationError naming the pipeline name and what one may hold. (A plan file's is
    checked further: see ``queue_clash``.)"""
    return check_name("pipeline name", value, max_len=MAX_PIPELINE_NAME)


# What follows a pipeline's name in its queues' names: the mark of a run from 2 (then its
# number), and after the workers' queue of a run, the planning and the synthesizer's queues.
_QUEUE_RUN = "--run"
_PLANNING = ".plan"
_SYNTHESIS = ".synth"
_LATER_RUN = re.compile(rf"{re.escape(_QUEUE_RUN)}([2-9]|[1-9][0-9]+)\Z")  # (run 1: none)


def _suffix_of(run: int, mark: str) -> str:
    return "" if run == 1 else f"{mark}{run}"


def pipeline_queue(plan: Plan) -> str:
    """The queue of the pipeline's tasks (one pass at a time is open in it)."""
    return _workers_queue(plan.name, plan.run)


def _workers_queue(name: str, run: int) -> str:
    return f"pipeline.{name}{_suffix_of(run, _QUEUE_RUN)}"


def bookkeeping_queues(name: str, run: int) -> tuple[str, str]:
    """The queues of run ``run`` of pipeline ``name`` whose tasks are the pipeline's own
    bookkeeping, of no pass: its planning queue and its synthesizer's (``planning_queue``,
    ``synthesis_queue``). What ``swarm pipeline retire`` frees, with the lease's."""
    workers = _workers_queue(name, run)
    return f"{workers}{_PLANNING}", f"{workers}{_SYNTHESIS}"


def retired_owner(name: str, run: int) -> str:
    """Whose, in the swarm (``Swarm.unrecorded_runs``), the costs are of the bookkeeping of
    run ``run`` of pipeline ``name`` that ``swarm pipeline retire`` removed
    (``records.fold_bookkeeping``): apart from the runs no other record holds
    (``unrecorded_owner``), so that the pipeline's views and the core's ``pass_costs``
    count them by their own rule (``kept_costs``: once the records they stand for went)."""
    return retired_owner_of(unrecorded_owner(name, run))


def run_queues(name: str, run: int) -> tuple[str, ...]:
    """Every queue of run ``run`` of pipeline ``name``: its workers' and its bookkeeping
    (``bookkeeping_queues``)."""
    return (_workers_queue(name, run), *bookkeeping_queues(name, run))


def queue_clash(name: str) -> str | None:
    """Why a pipeline named ``name`` would share a queue with another (None: it would not),
    and what to name it instead. Its workers' queue is ``pipeline.NAME``, and every queue
    of a pipeline is that of its run's workers with something after it: a name that ends
    with one of those endings (``research.plan``) names another pipeline's queue
    (``research``'s planning queue), the two would take each other's tasks, and lineage
    would read one's workers' findings as the other's planner's. Refused when a plan is
    checked; the queues' names stay as they were, so that a stored run keeps its own."""
    endings = {_PLANNING: "planning queue", _SYNTHESIS: "synthesizer's queue"}
    later = _LATER_RUN.search(name)
    if later:
        endings[later[0]] = f"workers' queue of run {later[1]}"
    for ending, queue in endings.items():
        other = name.removesuffix(ending)
        if other != name and other:  # (a name that is the ending alone names no other)
            instead = f"{other}-{ending.lstrip('.-')}"
            return (
                f"pipeline name {name!r} ends with {ending!r}: its queue, pipeline.{name}, "
                f"would be the {queue} of pipeline {other!r} too, and the two would take "
                f"each other's tasks; name it otherwise, e.g. {instead!r}"
            )
    return None


def planning_queue(plan: Plan) -> str:
    """The queue of the planning tasks: one per planned pass, run by the pipeline itself;
    its finding holds the planned tasks and what the planner cost."""
    return bookkeeping_queues(plan.name, plan.run)[0]


def is_planning_queue(queue: str | None) -> bool:
    """Whether ``queue`` is a pipeline's planning queue (where no plan is at hand: lineage)."""
    return queue is not None and queue.startswith("pipeline.") and queue.endswith(_PLANNING)


def synthesis_queue(plan: Plan) -> str:
    """The queue of the synthesizer's tasks: one per pass whose synthesizer had a run
    refused or failed, posted then, run by the pipeline itself; its ``failed_usage`` is
    what those runs cost, its ``last_error`` why the last one was refused."""
    return bookkeeping_queues(plan.name, plan.run)[1]


def lease_queue(name: str) -> str:
    """The queue of pipeline ``name``'s lease (see ``lease``), named apart from the pipeline's
    queues, which all begin with ``pipeline.``: a pipeline named ``X.lease`` (queue
    ``pipeline.X.lease``) shares nothing with it, and no pool of a pipeline claims it."""
    return f"pipeline-lease.{name}"


def lease_task_id(name: str, generation: int) -> str:
    """The id of generation ``generation`` (from 1) of pipeline ``name``'s lease task: the
    same for every run, so that two runs starting together post the same task (one of them
    gets its claim). A generation is settled when a run holding it ends, or when it is
    cancelled by hand; the next run posts the next one."""
    return f"t-lease-{_digest(name)}-{generation}"


def lease_generation(name: str, task_id: str) -> int | None:
    """The generation ``task_id`` is the lease task of (``lease_task_id``), or None: it is
    not one of pipeline ``name``'s lease tasks (a task posted to its lease queue by hand)."""
    number = task_id.removeprefix(lease_task_id(name, 0).removesuffix("0"))
    if not (number.isascii() and number.isdigit()) or number.startswith("0"):
        return None
    return int(number)


# How the context owner of a pipeline's stored plan begins (``plan_owner``).
_PLAN_OWNER = "pipeline."


def plan_owner(name: str) -> str:
    """The context owner under which a run stores its plan file (what ``status`` reads).
    ``name`` is checked as a pipeline name (``checked_name``: a ValidationError naming the
    pipeline name and what one may hold), not as the owner made of it; a name a plan may
    no longer have (``queue_clash``) is taken, so that a run stored under it stays found."""
    return f"{_PLAN_OWNER}{checked_name(name)}"


def plan_owner_of(owner: str) -> str | None:
    """The pipeline whose ``plan_owner`` is ``owner`` (None: no pipeline's, whatever its
    name): a plan's ``[[contexts]]`` may not have it, as its context would overwrite that
    pipeline's stored plan (its own, or another's)."""
    name = owner.removeprefix(_PLAN_OWNER)
    if name == owner:
        return None
    try:
        return checked_name(name)
    except ValidationError:  # (no pipeline can be named so: it has no plan there)
        return None


def pipeline_names(swarm: Swarm) -> list[str]:
    """The pipelines a run of which stored its plan in ``swarm`` (``plan_owner``), by name:
    read from the swarm's contexts, where those plans are."""
    names = (plan_owner_of(info.owner) for info in swarm.contexts())
    return sorted(name for name in names if name is not None)


RUN_MARK = re.compile(r"\A# swarm pipeline run (\d+)\n")


def stored_text(plan: Plan) -> str:
    """The plan as a run stores it: its text after a line naming the run."""
    return f"# swarm pipeline run {plan.run}\n{plan.text}"


def stored_run(text: str) -> int:
    """The run a stored plan names (1 when it names none)."""
    match = RUN_MARK.match(text)
    return int(match.group(1)) if match else 1


def which_run(swarm: Swarm, plan: Plan, *, restart: bool = False) -> Plan:
    """``plan`` as the run to do now: the pipeline's last run (to resume it), or with
    ``restart`` the next one (a fresh start under the same name; the old run's records
    stay)."""
    try:
        last: int | None = stored_run(swarm.get_context(plan_owner(plan.name)))
    except NotFound:
        last = None
    number = (last or 0) + 1 if restart else (last or 1)
    return dataclasses.replace(plan, run=number)


def pass_label(plan: Plan, index: int) -> str:
    """The pass name its tasks, findings and synthesis carry in the swarm."""
    return f"{label_prefix(plan)}{plan.passes[index].name}"


def label_prefix(plan: Plan) -> str:
    """How the pass name of every pass of this run of ``plan`` begins (``pass_label``): those
    it no longer has too (a pass renamed or removed since the run began)."""
    return pipeline_label_prefix(plan.name, plan.run)


def _digest(*parts: str, size: int = 24) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:size]


def synthesis_id(plan: Plan, index: int) -> str:
    """The id of a pass's synthesis: the same on every run of the plan (``PLANNED_SYNTHESIS``
    and a digest, the core's rule of a synthesis a pipeline made: see ``planning_task_of``)."""
    run = () if plan.run == 1 else (str(plan.run),)
    return PLANNED_SYNTHESIS + _digest(plan.name, str(index), plan.passes[index].name, *run)


def synthesis_task_id(plan: Plan, index: int) -> str:
    """The id of a pass's synthesizer task (see ``synthesis_queue``): the same on every run,
    so that a run finds the one an earlier run posted. It carries no pass name: the pass's
    tasks (``swarm task list --pass``) stay its workers' (and its planner's)."""
    return synthesizer_task_of(synthesis_id(plan, index))


def planning_task_id(plan: Plan, index: int) -> str:
    """The id of a planned pass's planning task (see ``planning_queue``): the same on every
    run, so that a run finds the one an earlier run posted. Like the synthesizer task, it
    carries no pass name: its finding (the tasks planned) is bookkeeping, and a pass's
    findings (``swarm findings --pass``, what a synthesis may cite) stay its workers'. (A run
    from before this posted it with the pass name: ``records.read_pass`` and the planner
    still find that one by it.) Made from the synthesis id (``planning_task_of``), so that
    ``Swarm.pass_costs`` finds it from the pass's synthesis."""
    task_id = planning_task_of(synthesis_id(plan, index))
    assert task_id is not None  # (every synthesis_id begins with PLANNED_SYNTHESIS)
    return task_id


def dedupe_key(index: int, position: int, description: str, label: str | None = None) -> str:
    """The dedupe key of a task of pass ``index``: the same on every run. It names no pass,
    so a pass renamed since an earlier run posted its tasks meets that pass's tasks under
    it: its own are posted again with its ``label`` added (see ``Pipeline._post``)."""
    key = f"pass{index + 1}.task{position + 1}.{_digest(description, size=16)}"
    return key if label is None else f"{key}.{_digest(label, size=16)}"


def posted_once(
    swarm: Swarm,
    queue: str,
    description: str,
    data: Any,
    *,
    task_id: str,
    lease_s: float,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_abandons: int | None = None,
) -> Task:
    """The task of ``queue`` under ``task_id`` (one of those every run posts under the same
    id: a lease, a planning or synthesizer task): posted now, else the one posted first, as
    it is now. That one may hold another run's data (a lease names its run) or lease_s (the
    plan edited since): the core refuses such a post as another task (Conflict), so it is
    read then, one round trip more. A task of another queue under the id is not this one:
    its Conflict is raised."""
    try:
        return swarm.post_task(
            queue, description, data, task_id=task_id, lease_s=lease_s,
            max_attempts=max_attempts, max_abandons=max_abandons,
        )  # fmt: skip
    except Conflict:
        task = swarm.get_task(task_id)
        if task.queue != queue:
            raise
        return task


def tasks_of(
    swarm: Swarm, label: str | None, queue: str | None = None, *, with_data: bool = False
) -> list[Task]:
    """Every task of the pass ``label`` (None: of every pass and none) in ``queue``, with
    their data when ``with_data``."""
    tasks: list[Task] = []
    cursor: str | None = None
    while True:
        page = swarm.list_tasks(
            queue=queue, pass_name=label, cursor=cursor, limit=MAX_PAGE, with_data=with_data
        )
        tasks += page.items
        cursor = page.cursor
        if cursor is None:
            return tasks


def findings_of(
    swarm: Swarm, label: str | None, queue: str | None = None, *, superseded: bool = False
) -> list[Finding]:
    """The findings of the pass ``label`` (of ``queue``'s tasks; None: of every pass and
    none; with ``superseded``: the late ones too)."""
    found: list[Finding] = []
    cursor: str | None = None
    while True:
        page = swarm.findings(queue=queue, pass_name=label, cursor=cursor, limit=MAX_PAGE)
        found += [f for f in page.items if superseded or not f.superseded]
        cursor = page.cursor
        if cursor is None:
            return found
