"""An adversarial run of ``swarm pipeline``: a planner or synthesizer whose prompt its
``{prompt}`` cannot carry (over 128 KiB, or holding a NUL byte) fails its try saying what to
do, as a worker's run does, its task's lease given back (it stopped the run with a bare
``[Errno 7] Argument list too long: '/bin/sh'``, the planning task left claimed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import NotFound, Swarm
from redis_swarm._pipeline.names import plan_owner

from ._cli import Cli
from .test_pipeline_run import short_backoff, three_passes
from .test_pipeline_walk4_fixes import SELF_REPORT, write_plan

PY = sys.executable
ARGV_AGENT = "printf '%s' {prompt} | head -c 10"
BIG_QUESTION = "x" * 200_000  # more than one argument or environment variable holds


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def test_a_planner_whose_prompt_is_too_long_for_its_argument(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = three_passes(tmp_path, planner=ARGV_AGENT)
    path.write_text(
        path.read_text().replace(
            'question = "Where are timeouts inconsistent?"', f'question = "{BIG_QUESTION}"'
        )
    )
    short_backoff(swarm, path)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "Argument list too long: '/bin/sh'" not in out.stderr
    assert "the planner of pass 'Pass 2' gave no usable task list in 3 tries" in out.stderr
    assert "tries 1 to 3: cannot start the agent: Argument list too long" in out.stderr
    assert "give it on stdin or in {prompt_file} rather than {prompt}" in out.stderr
    (planning,) = swarm.list_tasks(queue="pipeline.audit.plan").items
    assert planning.status == "dead" and planning.failures == 3  # not left claimed
    assert (planning.last_error or "").startswith("cannot start the agent: Argument list")


def test_a_synthesizer_whose_prompt_is_too_long_for_its_argument(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = three_passes(tmp_path)
    text = path.read_text().replace(
        'question = "Where are timeouts inconsistent?"', f'question = "{BIG_QUESTION}"'
    )
    synth = f'exec = "{PY} {tmp_path}/synth.py"'
    path.write_text(text.replace(synth, f'exec = "{ARGV_AGENT}"'))
    short_backoff(swarm, path)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "Errno 7" not in out.stderr
    assert "the synthesizer of pass 'Pass 1' gave no usable synthesis in 3 tries" in out.stderr
    assert "cannot start the agent: Argument list too long (the prompt is" in out.stderr
    assert "give it on stdin or in {prompt_file} rather than {prompt}" in out.stderr
    (held,) = swarm.list_tasks(queue="pipeline.audit.synth").items
    assert held.status == "dead" and held.failures == 3


def test_a_synthesizer_given_a_nul_byte_in_its_prompt(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A finding holding a NUL byte reaches the synthesizer's prompt: with {prompt}, its
    try fails saying so (it crashed the run with "embedded null byte")."""
    (tmp_path / "nul_worker.py").write_text(
        'import json, sys\nsys.stdin.read()\nprint(json.dumps({"summary": "found a\\u0000b"}))\n'
    )
    path = three_passes(tmp_path)
    text = path.read_text().replace(f"{tmp_path}/worker.py", f"{tmp_path}/nul_worker.py")
    synth = f'exec = "{PY} {tmp_path}/synth.py"'
    path.write_text(text.replace(synth, f'exec = "{ARGV_AGENT}"'))
    short_backoff(swarm, path)
    out = cli("pipeline", "run", str(path), expect=1)
    assert "null byte" not in out.stderr
    assert "cannot start the agent: the prompt holds a NUL byte" in out.stderr
    assert "give it on stdin or in {prompt_file} rather than {prompt}" in out.stderr


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("P\\n1", "holds a control character (U+000A) at position 2"),
        ("P1\\u202e", "holds a bidirectional override (U+202E) at position 3"),
        (" P1 ", "' P1 ' ends with a space"),
    ],
)
def test_a_pass_name_run_would_refuse_is_refused_by_check(
    cli: Cli, swarm: Swarm, tmp_path: Path, name: str, said: str
) -> None:
    """``pipeline check`` took names the core refuses as a task's pass name; ``run`` then
    refused them pointing at the tasks' line, with a position in the derived label, after
    the plan was stored. Now both refuse them at the name, nothing stored."""
    path = three_passes(tmp_path)
    text = path.read_text().replace('name = "Pass 2"', f'name = "{name}"')
    path.write_text(text)
    line = text[: text.index(f'name = "{name}"')].count("\n") + 1
    expected = f"{path}:{line}: passes[2].name: the pass name {said}"
    for verb in ("check", "run"):
        out = cli("pipeline", verb, str(path), expect=2)
        assert expected in out.stderr, out.stderr
    assert swarm.contexts() == [] and swarm.list_tasks().items == ()


def test_two_pipelines_sharing_a_context_owner(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Pipeline B's [[contexts]] names the owner pipeline A published from other files: B's
    run is refused before it stores anything, naming the owner, A, and what to do; the same
    files under the same owner are no clash."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = three_passes(tmp_path / "a")
    assert cli("pipeline", "run", str(a)).code == 0
    before = swarm.context_info("notes")
    b = three_passes(tmp_path / "b")
    (tmp_path / "b" / "notes.md").write_text("other material\n")
    b.write_text(b.read_text().replace('name = "audit"', 'name = "other"'))
    out = cli("pipeline", "run", str(b), expect=1)
    assert "context owner 'notes'" in out.stderr and "pipeline 'audit''s too" in out.stderr
    assert 'Give this plan\'s context another owner (owner = "other-notes"' in out.stderr
    assert swarm.context_info("notes").version == before.version  # not flipped
    assert swarm.list_tasks(queue="pipeline.other").items == ()
    with pytest.raises(NotFound):  # its plan not stored either
        swarm.context_info(plan_owner("other"))
    # the same material under the same owner: no clash
    (tmp_path / "b" / "notes.md").write_text((tmp_path / "a" / "notes.md").read_text())
    assert cli("pipeline", "run", str(b)).code == 0


def test_lineage_counts_a_self_reported_worker_runs_cost(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """A worker of a pipeline's pool that reports its task itself (``swarm task report``,
    with swarm run's SWARM_TASK_TOKEN) has its run's cost ($0.01 by its CLI) kept by the
    pipeline: lineage prices its finding with it, as status and report do."""
    (tmp_path / "worker.py").write_text(SELF_REPORT)
    path = write_plan(tmp_path, f"{PY} {tmp_path}/worker.py", ["Find A", "Find B"])
    cli("pipeline", "run", str(path))
    tree = cli.json("lineage", "walk")
    (node,) = tree["passes"]
    assert [f["cost_usd"] for f in node["findings"]] == [pytest.approx(0.01)] * 2
    assert node["total"]["cost_usd"] == pytest.approx(0.07)  # 2 workers + the synthesis
    assert node["runs_without_cost"] == 0
    fid = node["findings"][0]["id"]
    assert cli.json("lineage", fid)["cost_usd"] == pytest.approx(0.01)
    task_id = swarm.get_finding(fid).task_id
    task_tree = cli.json("lineage", task_id)
    assert task_tree["total"]["cost_usd"] == pytest.approx(0.01)
    assert task_tree["runs_without_cost"] == 0


def test_pipeline_report_out_in_a_missing_folder(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """Said in words, with what to do, before the report is read (it printed a raw
    ``[Errno 2] No such file or directory``)."""
    (tmp_path / "worker.py").write_text(SELF_REPORT)
    cli("pipeline", "run", str(write_plan(tmp_path, f"{PY} {tmp_path}/worker.py", ["Find A"])))
    out = cli("pipeline", "report", "walk", "--out", str(tmp_path / "nope" / "r.md"), expect=2)
    assert "Errno" not in out.stderr
    assert f"the directory {tmp_path / 'nope'} does not exist: create it" in out.stderr
    assert "Invalid value for --out" in out.stderr and "--output" not in out.stderr
