"""The plan file of ``swarm pipeline run``: the issue's example read into a Plan; bad plans
refused whole, each problem with its key and line."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from redis_swarm import Limits, ValidationError
from redis_swarm._pipeline import Plan, TaskItem, load_plan
from redis_swarm._pipeline.plan import parse_plan, pass_changes, task_label
from redis_swarm._pipeline.prompts import parse_task_list
from redis_swarm._validate import MAX_DESCRIPTION_CHARS

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
        f"plan.toml:{line_of('[[passes]]', 1)}: passes[2]: give the pass "
        '"tasks" (a list) or "plan" (an instruction), not both',
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


def claude_on_path(tmp_path: Path) -> Cli:
    """A CLI whose PATH has a ``claude`` (the program of EXAMPLE's agents, which check
    looks for) and that reaches no server (checking a plan touches none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "claude").write_text("#!/bin/sh\n")
    (bin_dir / "claude").chmod(0o755)
    return Cli("redis://127.0.0.1:1", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})


def test_swarm_pipeline_check(tmp_path: Path) -> None:
    cli = claude_on_path(tmp_path)
    path = write(tmp_path, EXAMPLE)
    data = cli.json("pipeline", "check", str(path))
    assert data["name"] == "stdlib-audit" and len(data["passes"]) == 2
    assert data["contexts"][0]["files"][0].endswith("docs/a.md")
    human = cli("pipeline", "check", str(path)).stdout
    assert "valid plan" in human and "planned (at most 5)" in human
    path.write_text(EXAMPLE.replace("concurrency = 4", "concurrency = 0"))
    out = cli("pipeline", "check", str(path), expect=2)
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


ORIGINAL_TASKS = 'tasks = ["Find every timeout default", "Find retry loops and their bounds"]'


def test_task_data_and_descriptions_the_core_refuses_are_problems_of_the_plan(
    tmp_path: Path,
) -> None:
    """What post_tasks would refuse at run time (a TOML date, NaN, data past
    Limits.max_task_data_bytes, a description past MAX_DESCRIPTION_CHARS) is refused by the
    check, each at its line."""
    big = "x" * (MAX_DESCRIPTION_CHARS + 1)
    limit = Limits().max_task_data_bytes
    tasks = (
        "tasks = [\n"
        '  {description = "when", data = {at = 2024-01-01T00:00:00Z}},\n'
        '  {description = "n", data = {v = [1, {w = nan}]}},\n'
        '  {description = "i", data = inf},\n'
        f'  "{big}",\n'
        f'  {{description = "{big}"}},\n'
        f'  {{description = "huge", data = {{s = "{"y" * limit}"}}}},\n'
        "]"
    )
    text = EXAMPLE.replace(ORIGINAL_TASKS, tasks)
    start = text.splitlines().index("tasks = [") + 1
    message = problems(tmp_path, text)
    expected = [
        (1, 'passes[1].tasks[1].data: at is a TOML date or time, which task data (JSON) '
            'cannot hold: write it as a string, "2024-01-01T00:00:00+00:00"'),
        (2, "passes[1].tasks[2].data: v[2].w is nan, which task data (JSON) cannot hold"),
        (3, "passes[1].tasks[3].data: it is inf, which task data (JSON) cannot hold"),
        (0, f"passes[1].tasks[4]: the description is {len(big):,} characters; a task's "
            f"description may have {MAX_DESCRIPTION_CHARS:,}"),
        (5, f"passes[1].tasks[5].description: is {len(big):,} characters"),
        (6, f"passes[1].tasks[6].data: it is {limit + 8:,} bytes as JSON; "  # {"s":"..."}
            f"a task's data may have {limit:,}"),
    ]  # fmt: skip
    for offset, fragment in expected:
        assert f"plan.toml:{start + offset}: {fragment}" in message, message[:3000]
    assert f"{len(expected)} problem(s)" in message


def test_swarm_pipeline_check_of_task_data(tmp_path: Path) -> None:
    """The tour's plans: check refuses them (exit 1, the line named), with --json too (an
    error document on stderr, no traceback); a plan it accepts prints as valid JSON."""
    cli = claude_on_path(tmp_path)
    for data in ("{at = 2024-01-01T00:00:00Z}", "{v = nan}"):
        path = write(tmp_path, EXAMPLE.replace(
            ORIGINAL_TASKS, f'tasks = [{{description = "when", data = {data}}}]'
        ))  # fmt: skip
        line = (
            path.read_text()
            .splitlines()
            .index(f'tasks = [{{description = "when", data = {data}}}]')
        )
        out = cli("pipeline", "check", str(path), expect=2)
        assert f"plan.toml:{line + 1}: passes[1].tasks[1].data:" in out.stderr
        out = cli("--json", "pipeline", "check", str(path), expect=2)
        assert out.stdout == "" and "Traceback" not in out.stderr
        assert json.loads(out.stderr)["error"] == "ValidationError"
    path = write(tmp_path, EXAMPLE.replace(
        ORIGINAL_TASKS, 'tasks = [{description = "d", data = {at = "2024-01-01", v = 1.5}}]'
    ))  # fmt: skip
    data = json.loads(cli("--json", "pipeline", "check", str(path)).stdout)
    assert data["passes"][0]["tasks"][0]["data"] == {"at": "2024-01-01", "v": 1.5}


def test_a_missing_plan_file_is_a_usage_error(tmp_path: Path) -> None:
    """docs/cli.md: a missing file is a usage error (2), as a directory is."""
    cli = Cli("redis://127.0.0.1:1")
    for command in ("check", "run"):
        out = cli("pipeline", command, str(tmp_path / "nonexist.toml"), expect=2)
        assert "does not exist" in out.stderr
        out = cli("pipeline", command, str(tmp_path), expect=2)
        assert "is a directory" in out.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # one [passes] table where [[passes]] belong: at its header, not at line 1
            ("[[passes]]\nname = \"Pass 1", "[passes]\nname = \"Pass 1"),
            ("[passes]", "passes: must be an array of tables: write each one under its own "
             "[[passes]] header"),
        ),
        (
            ('[workers]\nexec = "claude -p --output-format json"\nconcurrency = 4\n'
             "lease_s = 600\n", 'workers = "a"\n'),
            ('workers = "a"', "workers: must be a table ([workers])"),
        ),
        (
            ('[[contexts]]\nowner = "stdlib"\npaths = ["docs/**/*.md", "notes.txt"]\n',
             '[contexts]\nowner = "stdlib"\n'),
            ("[contexts]", "contexts: must be an array of tables"),
        ),
        (  # an inline table: its keys at the line of the table's key
            ('[workers]\nexec = "claude -p --output-format json"\nconcurrency = 4\n'
             "lease_s = 600\n", 'workers = {exec = "claude -p", concurency = 4}\n'),
            ("workers = {", "workers.concurency: unknown key"),
        ),
    ],
)  # fmt: skip
def test_a_table_written_otherwise_is_named_at_its_line(
    tmp_path: Path, change: tuple[str, str], expected: tuple[str, str]
) -> None:
    assert change[0] in EXAMPLE
    text = EXAMPLE.replace(*change)
    if change[1].startswith("[passes]"):  # the second pass made a table of its own too
        text = text.replace("\n[[passes]]\n", "\n[[other]]\n")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith(expected[0]))
    message = problems(tmp_path, text)
    assert f"plan.toml:{line}: {expected[1]}" in message, message


def test_a_planners_task_the_core_would_refuse_is_refused() -> None:
    """Refused while the planner can be asked again (once stored, every run would stop)."""
    too_long = json.dumps(["a", "x" * (MAX_DESCRIPTION_CHARS + 1)])
    with pytest.raises(ValueError, match=r"item 2: its description is 65,537 characters"):
        parse_task_list(too_long)
    with pytest.raises(ValueError, match=r"item 1: its data: v is nan"):
        parse_task_list('[{"description": "a", "data": {"v": NaN}}]')


def test_task_label_names_the_plans_item(tmp_path: Path) -> None:
    """What an error of post_tasks calls a task at run time: as a problem of the plan."""
    tasks = 'tasks = [\n  "a",\n  {description = "b", data = 1},\n]'
    text = EXAMPLE.replace(ORIGINAL_TASKS, tasks)
    start = text.splitlines().index("tasks = [") + 1
    plan = load_plan(write(tmp_path, text))
    assert task_label(plan, 0, 1) == f"{plan.path}:{start + 2}: passes[1].tasks[2]"
    assert task_label(plan, 0, 0) == f"{plan.path}:{start}: passes[1].tasks[1]"
    assert task_label(plan, 1, 2) == f"{plan.path}: passes[2]: the planner's task 3"


def test_pass_changes(tmp_path: Path) -> None:
    old = load_plan(write(tmp_path, EXAMPLE))

    def changes(text: str) -> list[tuple[int, int, str]]:
        (tmp_path / "new").mkdir(exist_ok=True)
        new = load_plan(write(tmp_path / "new", text))
        return [(c.old, c.first, c.text) for c in pass_changes(old, new)]

    assert changes(EXAMPLE) == []
    added = EXAMPLE + '\n[[passes]]\nname = "Pass 3"\ntasks = ["x"]\n'
    assert changes(added) == []  # a pass added at the end: nothing rests on it
    assert changes(EXAMPLE.replace('"Pass 1: Signal Capture"', '"Pass One"')) == [
        (0, 0, "pass 1 'Pass 1: Signal Capture' was renamed 'Pass One'")
    ]
    assert changes(EXAMPLE.replace('"Find every timeout default", ', "")) == [
        (0, 0, "pass 1 'Pass 1: Signal Capture': its tasks changed")
    ]
    assert changes(EXAMPLE.replace("max_tasks = 5", "max_tasks = 6")) == [
        (1, 1, "pass 2 'Pass 2: Deep Dive': its planner's instruction changed")
    ]
    first, second = EXAMPLE.split("[[passes]]")[1:]
    swapped = EXAMPLE.split("[[passes]]")[0] + "[[passes]]" + second + "\n[[passes]]" + first
    assert changes(swapped) == [
        (0, 0, "pass 1 'Pass 1: Signal Capture' is now pass 2"),
        (1, 0, "pass 2 'Pass 2: Deep Dive' is now pass 1"),
    ]
    removed = EXAMPLE.split("[[passes]]")[0] + "[[passes]]" + first
    assert changes(removed) == [(1, 1, "pass 2 'Pass 2: Deep Dive' was removed")]


@pytest.mark.parametrize(
    ("name", "whose", "instead"),
    [
        ("research.plan", "the planning queue of pipeline 'research'", "research-plan"),
        ("research.synth", "the synthesizer's queue of pipeline 'research'", "research-synth"),
        ("research--run2", "the workers' queue of run 2 of pipeline 'research'", "research-run2"),
        ("research--run12", "the workers' queue of run 12 of pipeline", "research-run12"),
        ("research--run2.plan", "the planning queue of pipeline 'research--run2'", None),
    ],
)
def test_a_name_whose_queue_is_another_pipelines_is_refused(
    tmp_path: Path, name: str, whose: str, instead: str | None
) -> None:
    """A pipeline's queues are its workers' queue, pipeline.NAME, and that with an ending
    (the planning and synthesizer's queues, a later run's): a name with one of those
    endings would share that queue with the pipeline its name begins with (``research``'s
    planning tasks would be ``research.plan``'s work), so the plan is refused, at its line."""
    message = problems(tmp_path, EXAMPLE.replace('"stdlib-audit"', f'"{name}"'))
    assert f"plan.toml:1: name: pipeline name {name!r} ends with" in message, message
    assert f"its queue, pipeline.{name}, would be {whose}" in message, message
    if instead is not None:
        assert f"name it otherwise, e.g. {instead!r}" in message
    assert "1 problem(s)" in message


@pytest.mark.parametrize(
    "name",
    ["research", "research-plan", "research.plans", "research.lease", "research--run1",
     "research--run02", "research--run", ".plan", "plan", "research.plan.x"],
)  # fmt: skip
def test_a_name_whose_queues_are_its_own_is_a_plan(tmp_path: Path, name: str) -> None:
    """No other pipeline's queue ends so: run 1 has no ``--runN``, a run's number is written
    without a leading 0, the lease's queue (``pipeline-lease.NAME``) is no ``pipeline.``
    queue, and a name that is the ending alone leaves no other pipeline's name before it."""
    plan = load_plan(write(tmp_path, EXAMPLE.replace('"stdlib-audit"', f'"{name}"')))
    assert plan.name == name


def test_swarm_pipeline_check_refuses_a_name_whose_queue_is_another_pipelines(
    tmp_path: Path,
) -> None:
    """``check`` names the problem at the name's line, as it does every other; a stored run
    of such a name (from before it was refused) is still read back, as ``status`` does."""
    cli = claude_on_path(tmp_path)
    text = EXAMPLE.replace('"stdlib-audit"', '"research.plan"')
    path = write(tmp_path, text)
    out = cli("pipeline", "check", str(path), expect=2)
    assert "plan.toml:1: name: pipeline name 'research.plan' ends with '.plan'" in out.stderr
    assert parse_plan(text, path, match_files=False).name == "research.plan"


def _with_owner(owner: str) -> str:
    """The example plan with its context (and the passes that read it) under ``owner``."""
    return EXAMPLE.replace('"stdlib"', f'"{owner}"')


@pytest.mark.parametrize(
    ("owner", "whose", "instead"),
    [
        ("pipeline.research", "the plan of pipeline 'research'", "context-research"),
        ("pipeline.stdlib-audit", "this pipeline's own plan", "context-stdlib-audit"),
        ("pipeline.research.plan", "the plan of pipeline 'research.plan'", None),
    ],
)
def test_a_context_owner_that_is_a_pipelines_plan_is_refused(
    tmp_path: Path, owner: str, whose: str, instead: str | None
) -> None:
    """A run stores its plan as context pipeline.NAME (``plan_owner``), then publishes its
    contexts: one under a pipeline's plan owner would overwrite that plan (another
    pipeline's, which its status and resumed runs read, or its own), so it is refused at
    its line, with an owner to use. (A name a plan may no longer have, research.plan, may
    have a stored run: its plan is kept too.)"""
    message = problems(tmp_path, _with_owner(owner))
    assert f"plan.toml:16: contexts[1].owner: context owner {owner!r} is where {whose}" in message
    assert "the context would overwrite it; name the owner otherwise" in message
    if instead is not None:
        assert f"e.g. {instead!r}" in message
    assert "1 problem(s)" in message, message  # (the passes' context = OWNER: no more)


@pytest.mark.parametrize(
    "owner", ["stdlib", "pipeline", "pipelines.research", "Pipeline.research", "my.pipeline.x"]
)
def test_a_context_owner_that_is_no_pipelines_plan_is_a_plan(tmp_path: Path, owner: str) -> None:
    plan = load_plan(write(tmp_path, _with_owner(owner)))
    assert [c.owner for c in plan.contexts] == [owner]
    assert {p.context for p in plan.passes} == {owner}


def test_swarm_pipeline_check_refuses_a_context_owner_that_is_a_pipelines_plan(
    tmp_path: Path,
) -> None:
    """``check`` (and so ``run``, which reads the plan the same way) names it at its line; a
    stored plan that has one (run before it was refused) is still read back, as ``status``
    does."""
    cli = claude_on_path(tmp_path)
    text = _with_owner("pipeline.other")
    path = write(tmp_path, text)
    out = cli("pipeline", "check", str(path), expect=2)
    assert "plan.toml:16: contexts[1].owner: context owner 'pipeline.other' is where" in out.stderr
    out = cli("pipeline", "run", str(path), expect=2)
    assert "context owner 'pipeline.other' is where the plan of pipeline 'other'" in out.stderr
    assert parse_plan(text, path, match_files=False).contexts[0].owner == "pipeline.other"


def test_an_array_of_tables_written_with_single_brackets_is_named_in_the_toml_error(
    tmp_path: Path,
) -> None:
    # Two [passes] headers are not TOML at all: the parser's own words name no fix.
    message = problems(tmp_path, EXAMPLE.replace("[[passes]]", "[passes]"))
    assert "not valid TOML" in message
    assert "write each one under its own [[passes]] header" in message
    # a TOML error with every array written right says nothing of them
    plain = problems(tmp_path, EXAMPLE.replace("concurrency = 4", "concurrency = = 4"))
    assert "[[" not in plain


def test_a_pass_with_both_tasks_and_a_plan_is_told_not_both(tmp_path: Path) -> None:
    both = EXAMPLE.replace("max_tasks = 5\n", 'max_tasks = 5\ntasks = ["x"]\n')
    assert 'give the pass "tasks" (a list) or "plan" (an instruction), not both' in problems(
        tmp_path, both
    )
    neither = EXAMPLE.replace(
        'plan = "From the previous synthesis, list the questions that deserve a deeper look"\n'
        "max_tasks = 5\n",
        "",
    )
    assert 'give the pass either "tasks" (a list) or "plan"' in problems(tmp_path, neither)


def test_a_plan_saved_with_a_byte_order_mark_reads_as_without(tmp_path: Path) -> None:
    """Editors on Windows start UTF-8 files with a BOM, which TOML's parser refuses as a
    statement at line 1: the plan is read without it, by the CLI and by load_plan."""
    cli = claude_on_path(tmp_path)
    path = write(tmp_path, EXAMPLE)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert cli.json("pipeline", "check", str(path))["name"] == "stdlib-audit"
    assert load_plan(path).name == "stdlib-audit"
