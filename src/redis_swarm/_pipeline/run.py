"""Running a plan: publish its contexts, then for each pass post its tasks, run the worker
pool until the pass settles, and have the synthesizer write the pass's synthesis.

Everything a run decides is derived from what the swarm holds, so a run killed anywhere
(SIGKILL, power loss) is resumed by running the plan again:

- a context whose files did not change publishes no new version;
- a pass's tasks carry deterministic dedupe keys (posting them again returns the same
  tasks); a planned pass whose tasks exist is not planned again;
- a pass's synthesis has a deterministic id: once written, the pass is done and is neither
  rerun nor rewritten;
- the tasks the dead run's workers held come back when their leases end, as any task does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import InvalidState, NotFound, SwarmError
from .._models import Finding, Synthesis, Task, TaskSpec, TaskStatus, Usage
from .._runner import (
    AgentOutput,
    Runner,
    RunOptions,
    TaskOutcome,
    build_command,
    default_worker_prefix,
    read_output,
    run_child,
)
from .plan import AgentSpec, PassSpec, Plan, TaskItem

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = [
    "PassResult",
    "Pipeline",
    "findings_of",
    "parse_task_list",
    "pass_label",
    "pipeline_queue",
    "plan_owner",
    "planner_prompt",
    "planning_queue",
    "stored_run",
    "stored_text",
    "synthesis_id",
    "synthesis_prompt",
    "tasks_of",
    "which_run",
]

AGENT_TRIES = 3  # runs of the synthesizer (or planner) before the pass fails
TAIL = 2000  # characters of an agent's output quoted when it fails
ARRAY_SEARCH = 256 * 1024  # the last characters of a planner's answer searched for its array
ARRAY_TRIES = 2000  # '[' positions tried at most
CITATION = re.compile(r"\[(f-[A-Za-z0-9_-]+)\]")  # "[f-...]", the form shown, is no id


def _run_suffix(plan: Plan, separator: str) -> str:
    return "" if plan.run == 1 else f"{separator}run{plan.run}"


def pipeline_queue(plan: Plan) -> str:
    """The queue of the pipeline's tasks (one pass at a time is open in it)."""
    return f"pipeline.{plan.name}{_run_suffix(plan, '--')}"


def planning_queue(plan: Plan) -> str:
    """The queue of the planning tasks: one per planned pass, run by the pipeline itself;
    its finding holds the planned tasks and what the planner cost."""
    return f"{pipeline_queue(plan)}.plan"


def plan_owner(name: str) -> str:
    """The context owner under which a run stores its plan file (what ``status`` reads)."""
    return f"pipeline.{name}"


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
    return f"{plan.name}{_run_suffix(plan, ' ')}: {plan.passes[index].name}"


def _digest(*parts: str, size: int = 24) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:size]


def synthesis_id(plan: Plan, index: int) -> str:
    """The id of a pass's synthesis: the same on every run of the plan."""
    run = () if plan.run == 1 else (str(plan.run),)
    return "s-pl-" + _digest(plan.name, str(index), plan.passes[index].name, *run)


def _dedupe_key(index: int, position: int, description: str) -> str:
    return f"pass{index + 1}.task{position + 1}.{_digest(description, size=16)}"


@dataclass
class PassResult:
    """What became of one pass in this run."""

    name: str
    label: str
    tasks: list[Task] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    synthesis: Synthesis | None = None
    resumed: bool = False  # its synthesis was already written: nothing was run
    planning: Finding | None = None  # a planned pass: its planner's tasks and cost

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for task in self.tasks:
            out[task.status.value] = out.get(task.status.value, 0) + 1
        return out


def tasks_of(swarm: Swarm, label: str, queue: str | None = None) -> list[Task]:
    """Every task of the pass ``label`` (in ``queue``)."""
    tasks: list[Task] = []
    cursor: str | None = None
    while True:
        page = swarm.list_tasks(queue=queue, pass_name=label, cursor=cursor, limit=1000)
        tasks += page.items
        cursor = page.cursor
        if cursor is None:
            return tasks


def findings_of(
    swarm: Swarm, label: str, queue: str | None = None, *, superseded: bool = False
) -> list[Finding]:
    """The findings of the pass ``label`` (of ``queue``'s tasks; with ``superseded``: the
    late ones too)."""
    found: list[Finding] = []
    cursor: str | None = None
    while True:
        page = swarm.findings(queue=queue, pass_name=label, cursor=cursor, limit=1000)
        found += [f for f in page.items if superseded or not f.superseded]
        cursor = page.cursor
        if cursor is None:
            return found


class Pipeline:
    """One run of a plan against a swarm. ``say`` hears what happens, one line at a time;
    ``stop`` (from a signal handler) ends the run after the running agents finish, or at
    once with ``hard``."""

    def __init__(
        self,
        swarm: Swarm,
        plan: Plan,
        *,
        say: Callable[[str], None] | None = None,
        worker_prefix: str | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.swarm = swarm
        self.plan = plan
        self._say = say or (lambda _line: None)
        self._worker_prefix = worker_prefix
        self._runner: Runner | None = None
        self._stopping = threading.Event()
        self._killing = threading.Event()
        self.results: list[PassResult] = []
        self.budget_reason: str | None = None  # why a budget stopped the run, if one did
        self._tick = tick  # called about 10 times a second while a worker pool runs
        self.current = ""  # the pass running now ("pass 2/3 'Deep Dive'")
        self.cost = 0.0  # the pipeline's cost so far (USD), kept while a pool runs

    # --- control

    def stop(self, *, hard: bool = False) -> None:
        self._stopping.set()
        if hard:
            self._killing.set()
        runner = self._runner
        if runner is not None:
            runner.abort() if hard else runner.drain()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    @property
    def runner(self) -> Runner | None:
        """The worker pool of the pass running now, if one runs."""
        return self._runner

    # --- the run

    def run(self) -> list[PassResult]:
        """Run (or resume) the plan; returns the passes it went through. A stopped run
        returns the passes so far, the last one unfinished."""
        self.publish_contexts()
        previous: list[Synthesis] = []
        for index in range(len(self.plan.passes)):
            result = self.run_pass(index, previous)
            self.results.append(result)
            if result.synthesis is None:
                break  # stopped
            previous.append(result.synthesis)
        return self.results

    def publish_contexts(self) -> None:
        """The plan itself (for ``swarm pipeline status``), then its contexts."""
        self.swarm.publish_context(
            plan_owner(self.plan.name),
            stored_text(self.plan),
            source=str(self.plan.path)[-200:],
            media_type="application/toml",
        )
        for ctx in self.plan.contexts:
            base = self.plan.path.parent
            names = [_relative(f, base) for f in ctx.files]
            if len(ctx.files) == 1:
                text = ctx.files[0].read_text(encoding="utf-8")
            else:
                text = "".join(
                    f"==> {name} <==\n{f.read_text(encoding='utf-8')}\n"
                    for name, f in zip(names, ctx.files, strict=True)
                )
            source = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
            info = self.swarm.publish_context(ctx.owner, text, source=source[:200])
            self._say(f"context {ctx.owner}: version {info.version[:12]} ({len(names)} file(s))")

    def run_pass(self, index: int, previous: list[Synthesis]) -> PassResult:
        spec = self.plan.passes[index]
        label = pass_label(self.plan, index)
        result = PassResult(spec.name, label)
        head = f"pass {index + 1}/{len(self.plan.passes)} {spec.name!r}"
        self.current = head
        with contextlib.suppress(NotFound):
            result.synthesis = self.swarm.get_synthesis(synthesis_id(self.plan, index))
        if result.synthesis is not None:
            result.resumed = True
            result.tasks = self._tasks_of(label)
            result.findings = self._findings_of(label)
            self._say(f"{head}: done before ({result.synthesis.id})")
            return result
        result.tasks = self._post(index, spec, previous)
        self._say(f"{head}: {len(result.tasks)} task(s)")
        if any(not t.status.settled for t in result.tasks):
            self._pool()
            result.tasks = self._tasks_of(label)
        if self.stopped or any(not t.status.settled for t in result.tasks):
            self._say(f"{head}: stopped before it settled")
            return result
        result.findings = self._findings_of(label)
        if not self._check_budget():
            return result
        counts = result.counts()
        self._say(
            f"{head}: settled, {counts.get('completed', 0)} completed, "
            f"{counts.get('dead', 0)} dead, {len(result.findings)} finding(s)"
        )
        result.synthesis = self._synthesize(index, result.findings, previous)
        if result.synthesis is not None:
            cited = len(result.synthesis.sources)
            self._say(f"{head}: synthesis {result.synthesis.id} citing {cited} finding(s)")
        return result

    # --- tasks

    def _task_data(self, data: Any, previous: list[Synthesis]) -> Any:
        extra: dict[str, Any] = {}
        if self.plan.question:
            extra["question"] = self.plan.question
        if previous:
            extra["previous_syntheses"] = [
                {"pass": s.pass_name, "id": s.id, "text": s.text} for s in previous
            ]
        if not extra:
            return data
        return {**extra, "data": data} if data is not None else extra

    def _post(self, index: int, spec: PassSpec, previous: list[Synthesis]) -> list[Task]:
        label = pass_label(self.plan, index)
        items = spec.tasks
        if spec.planned:
            posted = self._tasks_of(label)
            if posted:  # planned and posted by an earlier run: not planned again
                return posted
            items = self._planning(index, previous)
        workers = self.plan.workers
        specs = [
            TaskSpec(
                queue=pipeline_queue(self.plan),
                description=item.description,
                data=self._task_data(item.data, previous),
                pass_name=label,
                max_attempts=self.plan.max_attempts,
                lease_s=float(workers.lease_s),
                dedupe_key=_dedupe_key(index, position, item.description),
                parent=spec.context,
            )
            for position, item in enumerate(items)
        ]
        return self.swarm.post_tasks(specs)

    def _tasks_of(self, label: str) -> list[Task]:
        """The workers' tasks of the pass (not its planning task)."""
        return tasks_of(self.swarm, label, pipeline_queue(self.plan))

    def _findings_of(self, label: str) -> list[Finding]:
        """The workers' findings of the pass (not its planner's)."""
        return findings_of(self.swarm, label, pipeline_queue(self.plan))

    def progress(self) -> str:
        """One line: the pass running, its pool's counts, the cost so far."""
        runner = self._runner
        if runner is None:
            return f"{self.current} · ${self.cost:.4f}"
        c = runner.counts()
        state = " · finishing (Ctrl-C again to stop now)" if runner.draining else ""
        return (
            f"{self.current}: running {c['running']} · done {c['completed']} · failed "
            f"{c['failed']} · ${self.cost:.4f} so far{state}"
        )

    # --- the budget

    def spent(self) -> tuple[float, int]:
        """What the pipeline cost so far (USD, as its agents' CLIs reported it: every
        finding, superseded ones too, and every synthesis) and the claims of its tasks."""
        cost = 0.0
        claims = 0
        for index in range(len(self.plan.passes)):
            label = pass_label(self.plan, index)
            claims += sum(t.attempts for t in self._tasks_of(label))
            found = findings_of(self.swarm, label, superseded=True)  # the planner's too
            cost += sum(_cost(f.usage) for f in found)
            with contextlib.suppress(NotFound):
                cost += _cost(self.swarm.get_synthesis(synthesis_id(self.plan, index)).usage)
        return cost, claims

    def _over_budget(self, cost: float, claims: int) -> str | None:
        plan = self.plan
        if plan.max_cost_usd is not None and cost >= plan.max_cost_usd:
            return (
                f"the budget is spent: ${cost:.4f} of max_cost_usd ${plan.max_cost_usd:g}; "
                "raise it (in the plan or with --max-cost-usd) and run again to resume"
            )
        if plan.max_tasks is not None and claims >= plan.max_tasks:
            return (
                f"the task budget is spent: {claims} claims of max_tasks {plan.max_tasks}; "
                "raise it (in the plan or with --max-tasks) and run again to resume"
            )
        return None

    def _check_budget(self) -> bool:
        """False (and the run stops, saying why) when a budget of the plan is spent."""
        if self.plan.max_cost_usd is None and self.plan.max_tasks is None:
            return True
        reason = self._over_budget(*self.spent())
        if reason is not None:
            self.budget_reason = reason
            self._stopping.set()
            self._say(f"stopping: {reason}")
            return False
        return True

    # --- the worker pool

    def _pool(self) -> None:
        if not self._check_budget():
            return
        cost, claims = self.spent()
        plan = self.plan
        workers = plan.workers
        options = RunOptions(
            queues=(pipeline_queue(self.plan),),
            command=workers.exec,
            concurrency=workers.concurrency,
            until_done=True,
            lease_s=workers.lease_s,
            timeout_s=workers.timeout_s,
            worker=self._worker_prefix,
            model=workers.model,
            poll_s=0.5,
            max_tasks=None if plan.max_tasks is None else plan.max_tasks - claims,
        )
        self.cost = cost

        def on_outcome(outcome: TaskOutcome) -> None:
            if outcome.finding_id is None:
                return
            with contextlib.suppress(SwarmError):
                self.cost += _cost(self.swarm.get_finding(outcome.finding_id).usage)
            if plan.max_cost_usd is not None and self.cost >= plan.max_cost_usd:
                runner.drain()  # claim nothing more; the running agents finish

        runner = Runner(self.swarm, options, on_outcome=on_outcome)
        self._runner = runner
        if self.stopped:
            runner.drain()
        try:
            runner.run(self._tick)
        finally:
            self._runner = None
        if runner.crash is not None:
            raise runner.crash
        if runner.fatal:
            raise InvalidState(f"the worker pool stopped: {runner.fatal}")
        self._check_budget()

    # --- one-shot agents: the synthesizer (and the planner)

    def _run_agent(
        self, spec: AgentSpec, prompt: str, renew: Callable[[], str | None] | None = None
    ) -> tuple[AgentOutput | None, str]:
        """Run ``spec`` once on ``prompt``: its output read, or None and why it failed."""
        workdir = Path(tempfile.mkdtemp(prefix="swarm-pipeline-"))
        try:
            command = build_command(spec.exec, prompt, workdir)
            env = {
                **os.environ,
                "SWARM_URL": self.swarm.settings.render_url(mask=False),
                "SWARM_NAME": self.swarm.name,
                **command.env,
            }
            result = run_child(
                command.argv,
                stdin=command.stdin,
                env=env,
                timeout_s=spec.timeout_s or float(spec.lease_s),
                tick_s=max(0.2, spec.lease_s / 3),
                on_tick=renew,
                stop=self._killing,
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        text = result.stdout.text()
        if result.killed or result.returncode != 0:
            why = result.killed or f"exit code {result.returncode}"
            err = result.stderr.tail_text(TAIL).strip()
            return None, f"{why}; stderr: {err}" if err else why
        output = read_output(text)
        if output.error is not None:
            return None, output.error
        if not output.answer.strip():
            return None, "it printed nothing"
        return output, ""

    def _planning(self, index: int, previous: list[Synthesis]) -> tuple[TaskItem, ...]:
        """The tasks of planned pass ``index``: those its planning task's finding holds, or
        the planner is run now (holding the planning task's lease) and its answer stored as
        that finding, with what it cost."""
        spec = self.plan.passes[index]
        planner = self.plan.planner
        assert planner is not None
        queue = planning_queue(self.plan)
        task = self.swarm.post_task(
            queue, f"Plan the tasks of {spec.name}", pass_name=pass_label(self.plan, index),
            dedupe_key=f"plan.pass{index + 1}", parent=spec.context,
            lease_s=float(planner.lease_s), max_attempts=AGENT_TRIES,
        )  # fmt: skip
        while task.status is not TaskStatus.COMPLETED:
            if self.stopped:
                return ()
            claimed = self.swarm.claim([queue], worker=self._planner_name(), wait_s=1.0)
            if claimed is None:  # held by a dead run's planner until its lease ends
                task = self.swarm.get_task(task.id)
                if task.status is TaskStatus.DEAD:
                    raise InvalidState(
                        f"the planning task {task.id} of pass {spec.name!r} is dead "
                        f"({task.dead_reason}): requeue it with swarm task requeue {task.id}"
                    )
                continue
            return self._plan_tasks(index, previous, claimed)
        finding = self.swarm.get_finding(task.finding_id or "")
        return tuple(TaskItem(t["description"], t.get("data")) for t in finding.extra["tasks"])

    def _planner_name(self) -> str:
        return f"{self._worker_prefix or default_worker_prefix()}-planner"

    def _plan_tasks(
        self, index: int, previous: list[Synthesis], task: Task
    ) -> tuple[TaskItem, ...]:
        """Run the planner for pass ``index`` holding ``task`` (its planning task); store
        its tasks (at most ``max_tasks``) as the task's finding."""
        spec = self.plan.passes[index]
        planner = self.plan.planner
        assert planner is not None and spec.max_tasks is not None
        prompt = planner_prompt(self.plan, index, previous)
        complaint = ""
        last = ""

        def renew() -> str | None:
            with contextlib.suppress(SwarmError):
                self.swarm.renew(task.id, task.token, lease_s=planner.lease_s)
            return None

        for _try in range(AGENT_TRIES):
            if self.stopped:
                break
            output, why = self._run_agent(planner, prompt + complaint, renew)
            if output is None:
                last = why
                continue
            try:
                items = parse_task_list(output.answer)
            except ValueError as exc:
                last = output.answer.strip()[-TAIL:]
                complaint = f"\n\nYour previous answer was refused: {exc}. {_PLAN_FORMAT}"
                continue
            if len(items) > spec.max_tasks:
                self._say(f"planner: {len(items)} tasks, the first {spec.max_tasks} kept")
            kept = tuple(items[: spec.max_tasks])
            tasks = [{"description": t.description, "data": t.data} for t in kept]
            self.swarm.report(
                task.id, task.token,
                {"summary": f"{len(kept)} task(s) planned for {spec.name}", "tasks": tasks},
                worker=self._planner_name(), model=planner.model or output.model,
                usage=output.usage,
            )  # fmt: skip
            return kept
        with contextlib.suppress(SwarmError):  # the next run tries again, no attempt used
            self.swarm.release(task.id, task.token)
        if self.stopped:
            return ()
        raise InvalidState(
            f"the planner of pass {spec.name!r} gave no usable task list in {AGENT_TRIES} "
            f"tries; its last output ends: {last[-TAIL:]!r}. Fix the planner command, then run "
            "the pipeline again: it resumes at this pass"
        )

    def _synthesize(
        self, index: int, findings: list[Finding], previous: list[Synthesis]
    ) -> Synthesis | None:
        spec = self.plan.synthesizer
        ids = {f.id for f in findings}
        prompt = synthesis_prompt(self.plan, index, findings, previous)
        complaint = ""
        last = ""
        for _try in range(AGENT_TRIES):
            if self.stopped:
                return None
            output, why = self._run_agent(spec, prompt + complaint)
            if output is None:
                last = why
                complaint = ""
                continue
            text = output.answer.strip()
            cited = list(dict.fromkeys(CITATION.findall(text)))
            unknown = [c for c in cited if c not in ids]
            if unknown or (ids and not cited):
                last = text[-TAIL:]
                complaint = _citation_complaint(unknown)
                continue
            return self.swarm.synthesize(
                self.plan.name,
                pass_label(self.plan, index),
                text,
                cited,
                synthesis_id=synthesis_id(self.plan, index),
                model=spec.model or output.model,
                usage=output.usage,
            )
        raise InvalidState(
            f"the synthesizer of pass {self.plan.passes[index].name!r} gave no usable "
            f"synthesis in {AGENT_TRIES} tries; its last output ends: {last[-TAIL:]!r}. Fix "
            "the synthesizer command, then run the pipeline again: it resumes at this pass"
        )


def _citation_complaint(unknown: list[str]) -> str:
    if unknown:
        listed = ", ".join(f"[{c}]" for c in unknown[:20])
        return (
            f"\n\nYour previous answer cited {listed}, which is not a finding of this pass. "
            "Cite only the ids listed above, in square brackets."
        )
    return "\n\nYour previous answer cited no finding. Cite the findings you rely on as [f-...]."


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def synthesis_prompt(
    plan: Plan, index: int, findings: list[Finding], previous: list[Synthesis]
) -> str:
    """What the synthesizer of pass ``index`` is asked: the findings with their ids."""
    spec = plan.passes[index]
    lines = [
        f"You are the synthesizer of the research pipeline {plan.name!r}, pass "
        f"{index + 1} of {len(plan.passes)}: {spec.name!r}.",
    ]
    if plan.question:
        lines += ["", f"The question: {plan.question}"]
    for s in previous:
        lines += ["", f"The synthesis of {s.pass_name!r} ({s.id}):", s.text]
    lines += ["", f"The findings of this pass ({len(findings)}):"]
    for f in findings:
        sources = f" (sources: {'; '.join(f.sources[:10])})" if f.sources else ""
        lines.append(f"- [{f.id}] {f.summary}{sources}")
    if not findings:
        lines.append("(none: every task of the pass failed)")
    lines += [
        "",
        "Write the synthesis of this pass: what its findings establish together about the "
        "question, what they contradict, what is still open. Cite each finding you rely on by "
        "its id in square brackets, as [f-...], citing only the ids listed above. Answer with "
        "the synthesis text only (Markdown).",
    ]
    return "\n".join(lines) + "\n"


_PLAN_FORMAT = (
    "Answer with a JSON array of task descriptions only: strings, or objects "
    '{"description": "...", "data": {...}}, e.g. ["Find X", {"description": "Check Y", '
    '"data": {"file": "a.md"}}].'
)


def planner_prompt(plan: Plan, index: int, previous: list[Synthesis]) -> str:
    """What the planner of pass ``index`` is asked: its instruction, the question and the
    syntheses so far."""
    spec = plan.passes[index]
    lines = [
        f"You are the planner of the research pipeline {plan.name!r}, pass {index + 1} of "
        f"{len(plan.passes)}: {spec.name!r}. Each task you write is given to one worker, "
        "which reads the context and reports one finding.",
    ]
    if plan.question:
        lines += ["", f"The question: {plan.question}"]
    for s in previous:
        lines += ["", f"The synthesis of {s.pass_name!r} ({s.id}):", s.text]
    lines += ["", f"Your instruction: {spec.plan}", "", f"Write at most {spec.max_tasks} tasks."]
    lines += [_PLAN_FORMAT]
    return "\n".join(lines) + "\n"


def parse_task_list(text: str) -> list[TaskItem]:
    """The tasks in a planner's answer: a JSON array (the whole answer, a fenced block, or
    the last array in it) of strings or ``{"description", "data"}`` objects. Raises
    ValueError saying what is wrong."""
    value = _last_array(text)
    if value is None:
        raise ValueError("it holds no JSON array")
    if not value:
        raise ValueError("the array is empty")
    items: list[TaskItem] = []
    for n, item in enumerate(value, 1):
        if isinstance(item, str) and item.strip():
            items.append(TaskItem(item.strip()))
        elif (
            isinstance(item, dict)
            and isinstance(item.get("description"), str)
            and item["description"].strip()
            and set(item) <= {"description", "data"}
        ):
            items.append(TaskItem(item["description"].strip(), item.get("data")))
        else:
            raise ValueError(
                f'item {n} is neither a non-empty string nor a {{"description", "data"}} object'
            )
    return items


def _last_array(text: str) -> list[Any] | None:
    stripped = text.strip()
    for candidate in (stripped, *reversed(re.findall(r"```(?:json)?\s*\n(.*?)```", text, re.S))):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, list):
            return value
    decoder = json.JSONDecoder()
    found: list[Any] | None = None
    text = text[-ARRAY_SEARCH:]
    position = text.find("[")
    tries = 0
    while position != -1 and tries < ARRAY_TRIES:  # the last outermost array of strings, objects
        tries += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("[", position + 1)
            continue
        if isinstance(value, list) and value and all(isinstance(v, str | dict) for v in value):
            found = value
            position = text.find("[", end)
        else:
            position = text.find("[", position + 1)
    return found


def _cost(usage: Usage | None) -> float:
    return 0.0 if usage is None or usage.cost_usd is None else usage.cost_usd
