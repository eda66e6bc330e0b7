"""What a reviewer found in reading a run's passes the plan no longer has (``read_earlier``)
while the swarm changes under it (a ``status`` during a run), each race set up at the moment
it matters: a task of the plan's own pass posted after the plan's passes were read is no
earlier pass's, and a task posted after the queues were counted hides no other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
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
from redis_swarm._pipeline.report import EARLIER_PASSES, read_earlier, read_passes

from .test_pipeline_earlier_cost import PLAN, current_of, fill, paid, renamed

GONE = "Gone (no longer in the plan)"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


@pytest.fixture
def plan(swarm: Swarm) -> Plan:
    plan = parse_plan(PLAN, Path("big.toml"), match_files=False)
    fill(swarm, plan)
    return plan


def test_what_the_plans_pass_posts_after_current_was_read_is_no_earlier_pass(
    swarm: Swarm, plan: Plan
) -> None:
    """The plan unchanged, ``current`` read, then pass 1 posts a task (reported) and its
    synthesizer task: they are pass 1's, read by the next ``status``, never a row of an
    earlier pass (they were: ``Wide (no longer in the plan)`` and ``EARLIER_PASSES``)."""
    current = current_of(swarm, plan)
    late = swarm.post_task(pipeline_queue(plan), "late", pass_name=pass_label(plan, 0), priority=5)
    paid(swarm, late.id, pipeline_queue(plan), 0.5)
    swarm.post_task(
        synthesis_queue(plan),
        "synthesise pass 1",
        {"synthesis": synthesis_id(plan, 0)},
        task_id=synthesis_task_id(plan, 0),
    )
    assert read_earlier(swarm, plan, current) == []
    results = read_passes(swarm, plan)  # (the next read: in pass 1)
    assert len(results) == 2 and late.id in [t.id for t in results[0].tasks]
    assert synthesis_task_id(plan, 0) in [t.id for t in results[0].agent_tasks]


def test_a_renamed_passs_planner_after_current_was_read_is_no_earlier_pass(
    swarm: Swarm, plan: Plan
) -> None:
    """Pass 2 renamed ("Kept"), ``current`` read, then Kept's planner runs (its planning task
    and finding) and a task of it is posted: the earlier passes are Gone's alone, as they
    were before (Kept had a row of its own)."""
    changed = renamed(plan)
    current = current_of(swarm, changed)
    kept = pass_label(changed, 1)
    planning = swarm.post_task(
        planning_queue(changed), "plan pass 2", {"pass": kept}, task_id=planning_task_id(changed, 1)
    )
    paid(swarm, planning.id, planning_queue(changed), 0.02)
    swarm.post_task(pipeline_queue(changed), "planned", pass_name=kept, priority=1)
    earlier = read_earlier(swarm, changed, current)
    assert [r.title for r in earlier] == [GONE]
    gone = earlier[0]
    assert len(gone.tasks) == 4 and len(gone.findings) == 2
    assert gone.planning is not None and gone.planning.task_id == planning_task_id(plan, 1)
    assert sorted(t.id for t in gone.agent_tasks) == sorted(
        [planning_task_id(plan, 1), synthesis_task_id(plan, 1)]
    )


def test_a_task_posted_after_the_counts_hides_no_other(
    swarm: Swarm, plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pass 2 renamed, and a task posted by hand (no pass: the queue must be listed in full
    to find it). Right after the queues are counted, another task of the old pass is posted:
    its listing then holds as many tasks as the count had left unheld, one of them the new
    one. A count from before the listing took it for all of them, and the task by hand was
    hidden; the count is now taken after the listing."""
    by_hand = swarm.post_task(pipeline_queue(plan), "by hand")
    changed = renamed(plan)
    current = current_of(swarm, changed)
    counted = swarm.queue_stats

    def counted_then_posted() -> dict[str, dict[str, int]]:
        counts = counted()
        monkeypatch.setattr(swarm, "queue_stats", counted)  # (once)
        swarm.post_task(pipeline_queue(plan), "late", pass_name=pass_label(plan, 1))
        return counts

    monkeypatch.setattr(swarm, "queue_stats", counted_then_posted)
    earlier = read_earlier(swarm, changed, current)
    assert [r.title for r in earlier] == [GONE, EARLIER_PASSES]
    assert len(earlier[0].tasks) == 5  # (the 4 of the fill and the late one)
    assert [t.id for t in earlier[1].tasks] == [by_hand.id]
