"""What reading a run's passes the plan no longer has (``read_earlier``) costs: ``pipeline
status``, ``report``, ``lineage`` and every budget check of a run read it. Counted in the
commands the server runs (INFO commandstats): with the plan unchanged, one HGETALL of the
queues' task counts and no listing; with a pass renamed, the listings of that pass's records
alone, not of the run's thousands of other tasks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, Usage
from redis_swarm._pipeline.names import (
    pass_label,
    pipeline_queue,
    planning_queue,
    planning_task_id,
    synthesis_id,
    synthesis_queue,
    synthesis_task_id,
)
from redis_swarm._pipeline.plan import Plan, parse_plan
from redis_swarm._pipeline.records import PassResult, read_pass
from redis_swarm._pipeline.report import EARLIER_PASSES, read_earlier, read_passes

from ._raw import command_calls, net_output_bytes, reset_stats, script_calls

WIDE = 2_500  # the tasks of the pass that stays: three pages of a listing, and more

PLAN = """
name = "big"

[workers]
exec = "true"

[synthesizer]
exec = "true"

[planner]
exec = "true"

[[passes]]
name = "Wide"
tasks = ["one"]

[[passes]]
name = "Gone"
plan = "what to look at"
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def paid(swarm: Swarm, task_id: str, queue: str, cost: float) -> str:
    """Claim task ``task_id`` of ``queue`` and report a finding that cost ``cost``."""
    task = swarm.claim(queue, worker="w")
    assert task is not None and task.id == task_id
    finding = swarm.report(
        task.id, task.token, {"summary": "found"}, usage=Usage("claude-json", cost_usd=cost)
    )
    return finding.id


def fill(swarm: Swarm, plan: Plan) -> None:
    """A run of ``plan`` as the swarm would hold it: pass 1 with WIDE tasks (ten of them
    reported), pass 2 (planned) with its planning task and finding, four tasks (two
    reported), its synthesis, and its synthesizer task (a refused run, $0.05)."""
    work, wide, gone = pipeline_queue(plan), pass_label(plan, 0), pass_label(plan, 1)
    posted = swarm.post_tasks(
        [{"queue": work, "description": f"task {i}", "pass_name": wide} for i in range(WIDE)]
    )
    for task in posted[:10]:
        paid(swarm, task.id, work, 0.01)
    planning = swarm.post_task(
        planning_queue(plan), "plan pass 2", {"pass": gone}, task_id=planning_task_id(plan, 1)
    )
    paid(swarm, planning.id, planning_queue(plan), 0.02)
    found = []
    for i in range(4):
        task = swarm.post_task(work, f"planned {i}", pass_name=gone, priority=1)
        if i < 2:
            found.append(paid(swarm, task.id, work, 0.01))
    synthesis = synthesis_id(plan, 1)
    swarm.post_task(
        synthesis_queue(plan),
        "synthesise pass 2",
        {"synthesis": synthesis},
        task_id=synthesis_task_id(plan, 1),
    )
    refused = swarm.claim(synthesis_queue(plan), worker="synth")
    assert refused is not None
    swarm.fail(refused.id, refused.token, "refused", usage=Usage("claude-json", cost_usd=0.05))
    swarm.synthesize(
        "synth", gone, "what pass 2 found", found, synthesis_id=synthesis,
        usage=Usage("claude-json", cost_usd=0.05),
    )  # fmt: skip


def current_of(swarm: Swarm, plan: Plan) -> list[PassResult]:
    return [read_pass(swarm, plan, index) for index in range(len(plan.passes))]


def earlier_calls(swarm: Swarm, raw: Any, plan: Plan) -> tuple[list[PassResult], dict[str, int]]:
    """``read_earlier`` of ``plan`` and the commands it ran (and "bytes": what the server
    sent)."""
    current = current_of(swarm, plan)
    reset_stats(raw)
    earlier = read_earlier(swarm, plan, current)
    sent = net_output_bytes(raw)
    return earlier, {**command_calls(raw), "bytes": sent}


@pytest.fixture
def plan(swarm: Swarm) -> Plan:
    plan = parse_plan(PLAN, Path("big.toml"), match_files=False)
    fill(swarm, plan)
    return plan


def renamed(plan: Plan) -> Plan:
    """``plan`` with its pass 2 renamed."""
    passes = (plan.passes[0], dataclasses.replace(plan.passes[1], name="Kept"))
    return dataclasses.replace(plan, passes=passes)


def test_an_unchanged_plan_lists_nothing(swarm: Swarm, raw: Any, plan: Plan) -> None:
    """Every task of the run's queues held by a pass of the plan: the queues' counts tell it
    in one command, and nothing is listed (the run's queues were listed in full before, a
    page per 1,000 tasks, and every finding of them)."""
    earlier, calls = earlier_calls(swarm, raw, plan)
    assert earlier == []
    del calls["bytes"]
    assert calls == {"hgetall": 1}


def test_a_renamed_pass_lists_its_own_records_alone(swarm: Swarm, raw: Any, plan: Plan) -> None:
    """Pass 2 renamed: its tasks, findings, planning task, synthesizer task and synthesis
    read, in a handful of commands however many tasks pass 1 has (WIDE: the run's queues
    listed in full took a script call per 1,000 tasks and more)."""
    changed = renamed(plan)
    earlier, calls = earlier_calls(swarm, raw, changed)
    assert [r.title for r in earlier] == ["Gone (no longer in the plan)"]
    gone = earlier[0]
    assert gone.label == "big: Gone" and len(gone.tasks) == 4 and len(gone.findings) == 2
    assert gone.synthesis is not None and gone.synthesis.id == synthesis_id(plan, 1)
    assert gone.planning is not None and gone.planning.task_id == planning_task_id(plan, 1)
    assert sorted(t.id for t in gone.agent_tasks) == sorted(
        [planning_task_id(plan, 1), synthesis_task_id(plan, 1)]
    )
    # its tasks and findings, the planning queue's finding, its synthesis: a page each
    assert script_calls(calls) <= 4, calls
    # the counts, the pass names (status), its planning and synthesizer tasks by id
    print(calls, net_output_bytes(raw))
    # and the totals count it: pass 2's workers, planner, synthesis and refused run
    results = read_passes(swarm, changed)
    assert [len(r.findings) for r in results] == [10, 0, 2]


def test_tasks_naming_no_pass_still_count(swarm: Swarm, plan: Plan) -> None:
    """A task of the run's workers' queue that names no pass (posted by hand) has no label
    to be found by: the queue is listed in full, and it shows in the row EARLIER_PASSES,
    after the renamed pass's."""
    extra = swarm.post_task(pipeline_queue(plan), "by hand", priority=2)
    paid(swarm, extra.id, pipeline_queue(plan), 0.5)
    earlier = read_earlier(swarm, plan, current_of(swarm, plan))
    assert [r.title for r in earlier] == [EARLIER_PASSES]
    assert [t.id for t in earlier[0].tasks] == [extra.id] and len(earlier[0].findings) == 1
    earlier = read_earlier(swarm, renamed(plan), current_of(swarm, renamed(plan)))
    assert [r.title for r in earlier] == ["Gone (no longer in the plan)", EARLIER_PASSES]
    assert len(earlier[0].tasks) == 4 and [t.id for t in earlier[1].tasks] == [extra.id]
