"""A resumed ``swarm pipeline run`` whose pass settled with no finding it could list, after a
user tour: a run refused a pass as "its 2 task(s) were cancelled" while ``swarm task show``
said both were completed with findings, at a moment when filtered listings came back empty.
A completed task's finding is now read by the id the task names (the pass is synthesized,
with a warning), and a refusal says the tasks' statuses as the swarm holds them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._keys import Keys
from redis_swarm._pipeline import load_plan, pass_label, synthesis_id

from ._cli import Cli
from .test_pipeline_run import plan_text, run_plan

PASS_2 = "audit: Pass 2"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _pass_2_settled_before_its_synthesis(cli: Cli, swarm: Swarm, path: Path) -> list[Any]:
    """Pass 1 costs $0.08 (3 workers and its synthesis), pass 2's two workers $0.02: a
    budget of $0.095 stops the run once pass 2 settled, before its synthesis. Returns pass 2's
    tasks (both completed, each with its finding)."""
    stopped = run_plan(cli, path, "--max-cost-usd", "0.095", expect=1)
    assert "budget is spent" in stopped["stopped_by"], stopped
    tasks = swarm.list_tasks(pass_name=PASS_2).items
    assert [t.status.value for t in tasks] == ["completed", "completed"]
    assert all(t.finding_id for t in tasks)
    return list(tasks)


def test_completed_tasks_whose_findings_the_listing_misses_are_synthesized(
    cli: Cli, swarm: Swarm, raw: Any, tmp_path: Path
) -> None:
    """The pass's findings index lost its entries (as the tour's listings found nothing):
    the findings the completed tasks name are read by id, the run says so, and the pass is
    synthesized citing them, instead of the run refused as "its 2 task(s) were cancelled"."""
    path = plan_text(tmp_path)
    tasks = _pass_2_settled_before_its_synthesis(cli, swarm, path)
    findings = {t.finding_id for t in tasks}
    raw.delete(Keys("test").findings_by("pass", PASS_2))
    assert swarm.findings(pass_name=PASS_2).items == ()  # what the run lists: nothing
    out = cli("pipeline", "run", str(path))
    assert "were cancelled" not in out.stderr, out
    assert (
        "warning: pass 2/2 'Pass 2': the listing of its findings left out 2 findings of its "
        "completed tasks (" in out.stderr
    ), out.stderr
    assert "2 read by id and used" in out.stderr
    plan = load_plan(path)
    synthesis = swarm.get_synthesis(synthesis_id(plan, 1))
    assert set(synthesis.sources) == findings
    assert pass_label(plan, 1) == PASS_2


def test_the_refusal_says_the_tasks_are_completed_not_cancelled(
    cli: Cli, swarm: Swarm, raw: Any, tmp_path: Path
) -> None:
    """Completed tasks whose findings cannot be read even by id (deleted around redis-swarm):
    the refusal says they are completed and how to look at them, not that they were
    cancelled."""
    path = plan_text(tmp_path)
    tasks = _pass_2_settled_before_its_synthesis(cli, swarm, path)
    keys = Keys("test")
    raw.delete(keys.findings_by("pass", PASS_2))
    raw.hdel(keys.findings, *[t.finding_id for t in tasks])
    out = cli("pipeline", "run", str(path), expect=1)
    assert "cancelled" not in out.stderr, out.stderr
    assert (
        "error: pass 2/2 'Pass 2': its tasks are 2 completed, but the findings its completed "
        "tasks name cannot be read ("
    ) in out.stderr, out.stderr
    assert tasks[0].id in out.stderr and "swarm task show ID" in out.stderr
    assert f"swarm pipeline run {path} --restart" in out.stderr


def test_tasks_cancelled_by_hand_are_still_said_cancelled(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The statuses are read by id: tasks cancelled by hand after a run stopped read as
    cancelled (the run had listed them open), and only those words are said."""
    path = plan_text(tmp_path)
    path.write_text(path.read_text().replace("concurrency = 3", "concurrency = 1"))
    # Pass 1 takes 3 claims; pass 2's first claim fails (retried later), the 4th: both of
    # pass 2's tasks are left open.
    stopped = run_plan(cli, path, "--max-tasks", "4", expect=1, FAIL_ON="again")
    assert "claims of max_tasks 4" in stopped["stopped_by"], stopped
    posted = swarm.list_tasks(pass_name=PASS_2).items
    assert sorted(t.status.value for t in posted) == ["delayed", "pending"]
    for task in posted:
        swarm.cancel(task.id)
    out = cli("pipeline", "run", str(path), expect=1)
    assert (
        "error: pass 2/2 'Pass 2': its 2 tasks were cancelled, so it has no finding to synthesize"
    ) in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("name", "said", "lineage_said"),
    [
        ("bad name", "pipeline name 'bad name' contains ' ': use only ASCII letters, digits",
         "ID 'bad name' contains ' ': use only ASCII letters, digits"),
        ("é", "pipeline name 'é' contains 'é': use only ASCII letters, digits",
         "ID 'é' contains 'é': use only ASCII letters, digits"),
        ("a" * 65, "pipeline name is 65 characters long; the limit is 64",
         "no synthesis, finding, task or pipeline is called"),
    ],
)  # fmt: skip
def test_a_pipeline_name_no_plan_may_have_is_said_as_such(
    cli: Cli, name: str, said: str, lineage_said: str
) -> None:
    """Not the context owner made of it ("owner 'pipeline.bad name' contains ' '"). Lineage
    takes an id or a pipeline name, and says so."""
    for command in ("status", "report"):
        out = cli("pipeline", command, name, expect=None)
        assert out.code != 0 and said in out.stderr, out
        assert "owner" not in out.stderr
    out = cli("lineage", name, expect=None)
    assert out.code != 0 and lineage_said in out.stderr, out
    assert "or a pipeline's name" in out.stderr and "owner" not in out.stderr, out
