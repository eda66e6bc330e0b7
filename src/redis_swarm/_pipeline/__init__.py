"""``swarm pipeline``: the seed's multi-pass method run headless from a plan file.

- ``plan``: the plan file (TOML), checked whole before anything runs;
- ``run``: a run of a plan (contexts, then each pass: tasks, the worker pool, the
  synthesis), resumable after being killed anywhere; the pass loop, pool and budget;
- ``lease``: one run drives a pipeline at a time (the lease it holds while it lives);
- ``names``: what a run is called in the swarm (queues, pass labels, synthesis ids);
- ``agents``: the one-shot agents, the synthesizer and the planner;
- ``prompts``: what they are asked, and the planner's task list parsed;
- ``records``: a pass as the swarm holds it, and the one list of what its agent runs cost;
- ``report``: what a pipeline did, read back: status, the Markdown report;
- ``lineage``: the tree behind a synthesis, finding, task or pipeline, with its totals;
- ``retiring``: a pipeline's settled bookkeeping freed (``swarm pipeline retire``).

What a task's runs cost (``Swarm.task_costs``), sums of usages and how every view shows
them (``usage_line``, ``Money``) are the core's (``_ops.views``, ``_usage``): ``swarm task
show`` uses them without this package.
"""

from __future__ import annotations

from .plan import AgentSpec, ContextSpec, PassSpec, Plan, TaskItem, load_plan, parse_plan
from .run import PassResult, Pipeline, pass_label, pipeline_queue, synthesis_id, which_run

__all__ = [
    "AgentSpec",
    "ContextSpec",
    "PassResult",
    "PassSpec",
    "Pipeline",
    "Plan",
    "TaskItem",
    "load_plan",
    "parse_plan",
    "pass_label",
    "pipeline_queue",
    "synthesis_id",
    "which_run",
]
