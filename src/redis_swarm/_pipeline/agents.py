"""The pipeline's one-shot agents: the synthesizer of each pass and the planner of each
planned pass, run by the pipeline itself (not by the worker pool), each tried up to
``AGENT_TRIES`` times with what was wrong with its previous answer."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InvalidState, SwarmError
from .._models import Finding, Synthesis, Task, TaskStatus, now_ms
from .._runner import AgentOutput, build_command, default_worker_prefix, read_output, run_child
from .names import pass_label, planning_queue, synthesis_id
from .plan import AgentSpec, Plan, TaskItem
from .prompts import (
    CITATION,
    PLAN_FORMAT,
    citation_complaint,
    parse_task_list,
    planner_prompt,
    synthesis_prompt,
)

if TYPE_CHECKING:
    from .._client import Swarm

__all__ = ["AGENT_TRIES", "TAIL", "OneShotAgents", "leases_end"]

AGENT_TRIES = 3  # runs of the synthesizer (or planner) before the pass fails
TAIL = 2000  # characters of an agent's output quoted when it fails


def leases_end(tasks: Sequence[Task]) -> str:
    """When the leases of ``tasks`` end, as a run waiting for them says it: "its lease ends
    in 25 s", "their leases end in 3 to 25 s" (by this machine's clock)."""
    now = now_ms()
    left = sorted(max(0, round(((t.lease_deadline or now) - now) / 1000)) for t in tasks)
    span = f"{left[0]} s" if left[0] == left[-1] else f"{left[0]} to {left[-1]} s"
    return f"its lease ends in {span}" if len(tasks) == 1 else f"their leases end in {span}"


class OneShotAgents:
    """The synthesizer and the planner, as part of a ``Pipeline`` (which sets these)."""

    swarm: Swarm
    plan: Plan
    _say: Callable[[str], None]
    _worker_prefix: str | None
    _stopping: threading.Event
    _killing: threading.Event
    current: str  # the pass running now, as its progress lines name it

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

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
        shown: int | None = None  # the lease end last said
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
                if task.status is TaskStatus.CLAIMED and task.lease_deadline != shown:
                    # said again only when the lease moves: renewed, so its holder lives
                    again = "still " if shown is not None else ""
                    self._say(
                        f"{self.current}: waiting for its planning task {task.id}, {again}held "
                        f"by an earlier run's planner ({leases_end([task])})"
                    )
                    shown = task.lease_deadline
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
                complaint = f"\n\nYour previous answer was refused: {exc}. {PLAN_FORMAT}"
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
        """The synthesis of pass ``index``, citing at least one of its ``findings`` (never
        empty: a pass with no finding stops the run before, see ``Pipeline.run_pass``)."""
        assert findings, "a pass with no finding is not synthesized"
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
            if unknown or not cited:
                last = text[-TAIL:]
                complaint = citation_complaint(unknown)
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
