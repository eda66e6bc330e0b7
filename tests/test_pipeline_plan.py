"""The plan file of ``swarm pipeline run``: the issue's example read into a Plan; bad plans
refused whole, each problem with its key and line."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from redis_swarm import ValidationError
from redis_swarm._pipeline import Plan, TaskItem, load_plan

from ._cli import Cli

EXAMPLE = """\
name = "stdlib-audit"                # the pipeline's name; its state lives in the swarm
question = "Where does the stdlib handle timeouts inconsistently?"

[workers]
exec = "claude -p --output-format json"
concurrency = 4
lease_s = 600

[planner]
exec = "claude -p --output-format json"

[synthesizer]
exec = "claude -p --output-format json"

[[contexts]]
owner = "stdlib"
paths = ["docs/**/*.md", "notes.txt"]

[[passes]]
name = "Pass 1: Signal Capture"
context = "stdlib"
tasks = ["Find every timeout default", "Find retry loops and their bounds"]

[[passes]]
name = "Pass 2: Deep Dive"
context = "stdlib"
plan = "From the previous synthesis, list the questions that deserve a deeper look"
max_tasks = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "docs" / "sub").mkdir(parents=True, exist_ok=True)
    (tmp_path / "docs" / "a.md").write_text("alpha\n")
    (tmp_path / "docs" / "sub" / "b.md").write_text("beta\n")
    (tmp_path / "notes.txt").write_text("notes\n")
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ValidationError) as info:
        load_plan(write(tmp_path, text))
    return str(info.value)


def test_the_issue_example_is_a_plan(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, EXAMPLE))
    assert plan.name == "stdlib-audit" and plan.question and plan.question.startswith("Where")
    assert plan.workers.exec == "claude -p --output-format json"
    assert (plan.workers.concurrency, plan.workers.lease_s) == (4, 600)
    assert plan.planner is not None and plan.synthesizer.concurrency == 1
    (ctx,) = plan.contexts
    assert ctx.owner == "stdlib"
    assert [f.relative_to(tmp_path.resolve()).as_posix() for f in ctx.files] == [
        "docs/a.md", "docs/sub/b.md", "notes.txt",
    ]  # fmt: skip
    first, second = plan.passes
    assert first.tasks == (
        TaskItem("Find every timeout default"), TaskItem("Find retry loops and their bounds"),
    ) and not first.planned  # fmt: skip
    assert second.planned and second.max_tasks == 5 and second.tasks == ()
    assert plan.max_cost_usd is None and plan.max_tasks is None and plan.max_attempts == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.name = "other"  # type: ignore[misc]
    assert isinstance(plan, Plan)


def test_tasks_with_data_and_the_budget(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        'tasks = ["Find every timeout default", "Find retry loops and their bounds"]',
        'tasks = [{description = "Look", data = {term = "timeout"}}, "Plain"]',
    ).replace('question = "', 'max_cost_usd = 2.5\nmax_tasks = 40\nquestion = "')
    plan = load_plan(write(tmp_path, text))
    assert plan.passes[0].tasks == (TaskItem("Look", {"term": "timeout"}), TaskItem("Plain"))
    assert plan.max_cost_usd == 2.5 and plan.max_tasks == 40


def test_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    message = problems(tmp_path, EXAMPLE.replace("concurrency = 4", "concurrency = = 4"))
    assert "not valid TOML" in message and "line 6" in message


def test_every_problem_is_named_with_its_key_and_line(tmp_path: Path) -> None:
    bad = (
        EXAMPLE.replace("concurrency = 4", "concurency = 4")
        .replace("lease_s = 600", 'lease_s = "ten"')
        .replace('[synthesizer]\nexec = "claude -p --output-format json"', "[synthesizer]")
        .replace('paths = ["docs/**/*.md", "notes.txt"]', 'paths = ["docs/**/*.md", "nope/*.txt"]')
        .replace('context = "stdlib"\nplan', 'context = "other"\ntasks = ["x"]\nplan')
        .replace("max_tasks = 5", "max_tasks = 0")
    )
    message = problems(tmp_path, bad)
    lines = bad.splitlines()

    def line_of(fragment: str, nth: int = 0) -> int:
        return [i for i, line in enumerate(lines, 1) if fragment in line][nth]

    expected = [
        f"plan.toml:{line_of('concurency')}: workers.concurency: unknown key",
        f"plan.toml:{line_of('lease_s')}: workers.lease_s: must be a whole number",
        f'plan.toml:{line_of("[synthesizer]")}: synthesizer: "exec" is missing',
        f"plan.toml:{line_of('paths =')}: contexts[1].paths: 'nope/*.txt' matches no file",
        f"plan.toml:{line_of('other')}: passes[2].context: no [[contexts]] has owner 'other'",
        f"plan.toml:{line_of('[[passes]]', 1)}: passes[2]: give the pass either",
        f"plan.toml:{line_of('max_tasks')}: passes[2].max_tasks: must be a whole number from 1",
    ]
    for fragment in expected:
        assert fragment in message, message
    assert "7 problem(s)" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[planner]\nexec", "[planer]\nexec"), "unknown key; the keys here are"),
        (('name = "stdlib-audit"', 'name = "stdlib audit"'), "name: pipeline name"),
        (('name = "Pass 2: Deep Dive"', 'name = "Pass 1: Signal Capture"'), "named twice"),
        (
            (
                '[workers]\nexec = "claude -p --output-format json"',
                "[workers]\nexec = \"a '{prompt}'\"",
            ),
            "inside single quotes",
        ),
        (('[[contexts]]\nowner = "stdlib"', '[[contexts]]\nowner = "std lib"'), "owner"),
        (('tasks = ["Find', 'tasks = [1, "Find'), "passes[1].tasks[1]: must be a non-empty"),
        (('question = "Where', 'question = 3\nx = "Where'), "question: must be a non-empty"),
    ],
)
def test_bad_plans_are_refused(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    assert change[0] in EXAMPLE
    assert expected in problems(tmp_path, EXAMPLE.replace(*change))


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (
            'tasks = [{description = "x", dat = {term = "a"}}]',
            [(0, "passes[1].tasks[1].dat: unknown key; the keys here are data, description")],
        ),
        (
            'tasks = [{description = "x", extra = 1}]',
            [(0, "passes[1].tasks[1].extra: unknown key; the keys here are data, description")],
        ),
        (  # one item per line: each problem at its own line
            'tasks = [\n  "a",\n  {description = "b", dat = 1},\n  {data = 2},\n'
            '  {description = "", dat = 3},\n]',
            [
                (2, "passes[1].tasks[2].dat: unknown key"),
                (3, 'passes[1].tasks[3]: "description" is missing: add it'),
                (4, "passes[1].tasks[4].description: must be a non-empty string"),
                (4, "passes[1].tasks[4].dat: unknown key"),
            ],
        ),
    ],
)
def test_a_task_table_names_its_item_key_and_line(
    tmp_path: Path, tasks: str, expected: list[tuple[int, str]]
) -> None:
    original = 'tasks = ["Find every timeout default", "Find retry loops and their bounds"]'
    text = EXAMPLE.replace(original, tasks)
    start = text.splitlines().index(tasks.splitlines()[0]) + 1
    message = problems(tmp_path, text)
    for offset, fragment in expected:
        assert f"plan.toml:{start + offset}: {fragment}" in message, message
    assert f"{len(expected)} problem(s)" in message


def test_a_plan_needs_its_agents_and_passes(tmp_path: Path) -> None:
    message = problems(tmp_path, 'name = "p"\n')
    for fragment in ("[workers] is missing", "[synthesizer] is missing", "[[passes]]"):
        assert fragment in message
    planned_without_planner = EXAMPLE.replace(
        '[planner]\nexec = "claude -p --output-format json"\n', ""
    )
    assert "add a [planner]" in problems(tmp_path, planned_without_planner)
    with pytest.raises(ValidationError, match="cannot read the plan"):
        load_plan(tmp_path / "missing.toml")


def test_swarm_pipeline_check(tmp_path: Path) -> None:
    cli = Cli("redis://127.0.0.1:1")  # checking a plan touches no server
    path = write(tmp_path, EXAMPLE)
    data = cli.json("pipeline", "check", str(path))
    assert data["name"] == "stdlib-audit" and len(data["passes"]) == 2
    assert data["contexts"][0]["files"][0].endswith("docs/a.md")
    human = cli("pipeline", "check", str(path)).stdout
    assert "valid plan" in human and "planned (at most 5)" in human
    path.write_text(EXAMPLE.replace("concurrency = 4", "concurrency = 0"))
    out = cli("pipeline", "check", str(path), expect=1)
    assert "plan.toml:6: workers.concurrency: must be a whole number from 1" in out.stderr


def test_the_plans_of_the_docs_are_valid(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "pipeline.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(), re.S)
    assert len(blocks) == 3  # the reference, Claude Code, Codex
    for n, block in enumerate(blocks):
        base = tmp_path / str(n)
        base.mkdir()
        plan = load_plan(write(base, block))
        assert plan.passes and plan.workers.exec
