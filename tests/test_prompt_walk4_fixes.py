"""A walkthrough of docs/pipeline.md and docs/agents.md: a worker's prompt offers `swarm ask`
only of a target something answers; an agent that prints its prompt back (``cat``, ``echo
{prompt}``) is refused, not stored or posted; a planner's duplicate tasks are posted once;
``swarm pipeline check`` warns of an exec's script path that only works from elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._config import Settings
from redis_swarm._context_records import ContextInfo
from redis_swarm._finding_text import finding_tags, parse_finding
from redis_swarm._models import Finding, Synthesis, Task
from redis_swarm._pipeline.plan import parse_plan
from redis_swarm._pipeline.prompts import (
    FINDINGS_REPEATED,
    PLAN_FORMAT,
    citation_problem,
    parse_task_list,
    planner_prompt,
    repeats_findings,
    synthesis_prompt,
)
from redis_swarm._prompts import (
    EXAMPLE_REPEATED,
    answered_targets,
    render_task_prompt,
    repeats_finding_example,
)

SETTINGS = Settings.from_url("redis://127.0.0.1:1/0", swarm="research")
TASK = Task(id="t-1", queue="pipeline.audit", description="Find the signals.", parent="stdlib")
INFO = ContextInfo(
    owner="stdlib", version="ab" * 32, size_bytes=1_000, tokens_est=250, chunks=1, source="docs"
)

PLAN = """\
name = "audit"
question = "Where are timeouts handled?"

[workers]
exec = "claude -p"

[planner]
exec = "cat"

[synthesizer]
exec = "cat"

[[passes]]
name = "survey"
plan = "Split the survey."
max_tasks = 5
"""


# --- 1. `swarm ask` offered only where something answers


def test_the_task_prompt_offers_ask_only_of_targets_something_answers() -> None:
    """A pipeline's pool claims only its own queue and nothing serves ask.OWNER: its agents
    were told to ask both, and each question held a paid agent for its whole timeout."""
    bare = render_task_prompt(TASK, settings=SETTINGS, context=INFO)
    assert "swarm ask" not in bare
    both = render_task_prompt(TASK, settings=SETTINGS, context=INFO, answered={"stdlib", "assist"})
    assert "`swarm ask stdlib 'one precise question'`" in both
    assert "`swarm ask assist 'one precise question'" in both
    assist = render_task_prompt(TASK, settings=SETTINGS, answered={"assist"})
    assert "swarm ask stdlib" not in assist and "swarm ask assist" in assist


def test_answered_targets_reads_the_live_answerers(redis_url: str) -> None:
    swarm = Swarm(redis_url, swarm="walk4-ask")
    try:
        assert answered_targets(swarm, TASK, ("pipeline.audit",)) == frozenset()
        assert answered_targets(swarm, TASK, ("main", "assist")) == {"assist"}
        swarm.publish_context("stdlib", "x\n", source="x")  # (a parent: an owner, or an agent)
        swarm.register("worker", name="w-stdlib", parent="stdlib")  # no answerer
        assert answered_targets(swarm, TASK, ("main",)) == frozenset()
        swarm.register("answerer", name="serve-stdlib-1", parent="stdlib")  # swarm serve's
        swarm.heartbeat("serve-stdlib-1")
        assert answered_targets(swarm, TASK, ("main",)) == {"stdlib"}
        orphan = Task(id="t-2", queue="main", description="d")
        assert answered_targets(swarm, orphan, ("main",)) == frozenset()
        # The shard itself live (a session answering with next_question): offered too.
        session = Task(id="t-3", queue="main", description="d", parent="shard-live")
        assert answered_targets(swarm, session, ("main",)) == frozenset()
        swarm.register("shard", name="shard-live")
        assert answered_targets(swarm, session, ("main",)) == {"shard-live"}
    finally:
        swarm.close()


# --- 2. an answer that is the prompt's own example


def test_a_finding_that_is_the_prompts_example_is_refused() -> None:
    """``swarm run --exec 'echo {prompt}'`` stored the prompt's example as the finding."""
    mark = "0123abcd"
    echoed = render_task_prompt(
        TASK, settings=SETTINGS, context=INFO, finding_tags=finding_tags(mark)
    )
    parsed = parse_finding(echoed, mark=mark)
    assert parsed is not None
    assert repeats_finding_example(parsed[0]) == EXAMPLE_REPEATED
    fenced = parse_finding(render_task_prompt(TASK, settings=SETTINGS))
    assert fenced is not None and repeats_finding_example(fenced[0]) == EXAMPLE_REPEATED
    real = {"summary": "Timeouts are read in two places.", "confidence": 0.8}
    assert repeats_finding_example(real) is None


def test_a_plan_that_is_the_prompts_example_is_refused() -> None:
    """``[planner] exec = "cat"`` planned "Find X" and "Check Y", posted and paid for."""
    plan = parse_plan(PLAN, Path("/nowhere/plan.toml"), match_files=False)
    prompt = planner_prompt(plan, 0, [])
    for answer in (prompt, prompt + f"\n\nYour previous answer was refused: x. {PLAN_FORMAT}"):
        with pytest.raises(ValueError) as refused:
            parse_task_list(answer)
        assert str(refused.value) == EXAMPLE_REPEATED
    assert len(parse_task_list('["Find X", "Check the timeouts"]')) == 2


def test_a_synthesis_that_repeats_the_prompts_findings_is_refused() -> None:
    """The echoed synthesizer prompt cites every finding: its citations alone took it."""
    plan = parse_plan(PLAN, Path("/nowhere/plan.toml"), match_files=False)
    findings = [
        Finding(id="f-1", task_id="t-1", summary="socket timeouts are floats"),
        Finding(id="f-2", task_id="t-2", summary="ssl reads its own", sources=("ssl.py:10",)),
    ]
    previous: list[Synthesis] = []
    echoed = synthesis_prompt(plan, 0, findings, previous)
    assert repeats_findings(echoed, findings) == FINDINGS_REPEATED
    real = "Timeouts differ [f-1], and ssl reads its own [f-2]."
    assert repeats_findings(real, findings) is None
    assert citation_problem(["f-1", "f-2"], ["f-1", "f-2"]) is None


# --- 3. a planner's duplicate tasks


def test_a_planners_duplicate_tasks_are_dropped_and_counted() -> None:
    items = parse_task_list('["Same task", " Same task ", "Other", {"description": "Same task"}]')
    assert [t.description for t in items] == ["Same task", "Other"]
    assert items.dropped == 2 and items.note == " (2 duplicate tasks dropped)"
    kept = parse_task_list(
        '[{"description": "Read", "data": {"f": 1}}, {"description": "Read", "data": {"f": 2}}]'
    )
    assert len(kept) == 2 and kept.dropped == 0 and kept.note == ""


# --- 4. an exec's script path from the wrong directory


def test_pipeline_check_warns_of_a_script_path_not_there_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/pipeline/plan.toml run from inside examples/pipeline: every task died on
    "can't open file .../examples/pipeline/examples/pipeline/worker.py"."""
    folder = tmp_path / "examples" / "pipeline"
    folder.mkdir(parents=True)
    (folder / "worker.py").write_text("print('{}')\n")
    text = PLAN.replace('exec = "claude -p"', 'exec = "python3 examples/pipeline/worker.py"')
    plan_file = folder / "plan.toml"
    monkeypatch.chdir(folder)
    plan = parse_plan(text, plan_file, programs=True)
    assert len(plan.warnings) == 1
    warning = plan.warnings[0]
    assert warning.startswith(f"warning: {plan_file}:5: workers.exec: 'examples/pipeline/")
    assert f"run from {tmp_path}," in warning
    monkeypatch.chdir(tmp_path)  # where the path is meant from: nothing to say
    assert parse_plan(text, plan_file, programs=True).warnings == ()
    # Relative to the plan's own folder, run from above it.
    nearby = PLAN.replace('exec = "claude -p"', 'exec = "python3 worker.py --out a/b"')
    warned = parse_plan(nearby, plan_file, programs=True).warnings
    assert len(warned) == 1 and f"run from {folder}," in warned[0]
    assert os.getcwd() == str(tmp_path)
    # A word the system cannot look up (a name too long) is no warning, and no failure.
    too_long = PLAN.replace('exec = "claude -p"', f'exec = "python3 {"a" * 300}.py"')
    assert parse_plan(too_long, plan_file, programs=True).warnings == ()
