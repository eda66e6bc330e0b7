"""An adversarial walk of ``swarm pipeline``: ``check`` refuses a plan whose context is over
the core's size limit (its publish would refuse it), as a plan problem at its line; ``run``
checks the contexts' sizes before it stores anything, so a refused run leaves no plan nor
lease behind (``pipeline status`` found a pipeline "not finished" that never ran a pass);
and ``check`` says every problem at once, a planned pass whose name it refused too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_swarm import Swarm, ValidationError
from redis_swarm._pipeline import Pipeline, load_plan
from redis_swarm._protocol import Limits
from redis_swarm._validate import MAX_CONTEXT_BYTES

from ._cli import Cli
from .test_pipeline_cost import write_plan

PLAN = """
name = "big"

[workers]
exec = "PY AGENTS/worker.py"

[synthesizer]
exec = "PY AGENTS/synth.py"

[[contexts]]
owner = "notes"
paths = ["a.md", "b.md"]

[[passes]]
name = "One"
tasks = ["task X"]
context = "notes"
"""
SIZE = 40_000_000  # each file: under the limit alone, over it together


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def big_plan(tmp_path: Path) -> Path:
    for name in ("a.md", "b.md"):
        with (tmp_path / name).open("wb") as out:
            out.truncate(SIZE)  # (NUL bytes: UTF-8 text, and a sparse file)
    return write_plan(tmp_path, PLAN)


def test_check_refuses_a_context_over_the_size_limit(cli: Cli, tmp_path: Path) -> None:
    path = big_plan(tmp_path)
    out = cli("pipeline", "check", str(path), expect=2)
    joined = 2 * SIZE + len("==> a.md <==\n\n==> b.md <==\n\n")  # what a run publishes
    line = PLAN.splitlines().index('paths = ["a.md", "b.md"]') + 1
    assert f"{path}:{line}: contexts[1].paths: its 2 files make a context of {joined:,}" in (
        out.stderr
    )
    assert f"the limit is {MAX_CONTEXT_BYTES:,}" in out.stderr
    assert "several [[contexts]]" in out.stderr
    # One file under the limit is not refused for its size.
    (tmp_path / "b.md").write_text("small\n")
    cli("pipeline", "check", str(path))


def test_a_refused_run_stores_nothing(
    cli: Cli, swarm: Swarm, raw: redis.Redis, tmp_path: Path
) -> None:
    path = big_plan(tmp_path)
    out = cli("pipeline", "run", str(path), expect=2)
    assert "contexts[1].paths" in out.stderr and "the limit is" in out.stderr
    assert raw.dbsize() == 0
    cli("pipeline", "status", "big", expect=1)


def test_run_checks_the_sizes_before_it_stores_anything(
    redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    """The plan checked, then its files grown (or a swarm of a lower limit): the run
    refuses the context at its line before the plan, a lease or a task is stored; it used
    to fail at the context's publish, the plan and its lease stored already."""
    (tmp_path / "a.md").write_text("a" * 600)
    (tmp_path / "b.md").write_text("b" * 600)
    plan = load_plan(write_plan(tmp_path, PLAN))
    limits = Limits(max_context_bytes=1000)
    with (
        Swarm(redis_url, swarm="test", limits=limits) as small,
        pytest.raises(ValidationError) as caught,
    ):
        Pipeline(small, plan).run()
    message = str(caught.value)
    assert message.startswith(f"{plan.path}:")
    assert "contexts[1].paths: its 2 files make a context of 1,228 bytes" in message
    assert "the limit is 1,000" in message and message.endswith("nothing was stored")
    assert raw.dbsize() == 0


def test_run_publishes_a_context_of_several_files_as_before(swarm: Swarm, tmp_path: Path) -> None:
    """The text a run publishes (now made in plan.py, where the check sizes it) is what it
    was: each file after a header naming it; its size is what the check measures."""
    (tmp_path / "a.md").write_text("alpha\n")
    (tmp_path / "b.md").write_text("beta\n")
    plan = load_plan(write_plan(tmp_path, PLAN))
    Pipeline(swarm, plan).publish_contexts()
    text = "==> a.md <==\nalpha\n\n==> b.md <==\nbeta\n\n"
    assert swarm.get_context("notes") == text
    info = swarm.context_info("notes")
    assert info.source == "a.md and 1 more" and info.size_bytes == len(text)


def test_check_says_a_planned_pass_needs_a_planner_whatever_its_name(
    cli: Cli, tmp_path: Path
) -> None:
    """Its name refused (a space first), the pass was left out of the passes the check
    asked for "plan": the missing [planner] was said only once the name was mended."""
    body = PLAN[: PLAN.index("[[contexts]]")] + '[[passes]]\nname = " P2"\nplan = "more"\n'
    path = write_plan(tmp_path, body)
    out = cli("pipeline", "check", str(path), expect=2)
    assert "has 2 problem(s)" in out.stderr and "passes[1].name" in out.stderr
    assert 'a pass has "plan": add a [planner] with its exec command' in out.stderr
