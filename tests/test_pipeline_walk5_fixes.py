"""An adversarial walk of ``swarm pipeline``: ``check`` refuses a plan whose context is over
the core's size limit (its publish would refuse it), as a plan problem at its line; ``run``
checks the contexts' sizes before it stores anything, so a refused run leaves no plan nor
lease behind (``pipeline status`` found a pipeline "not finished" that never ran a pass);
and ``check`` says every problem at once, a planned pass whose name it refused too.

Then a user's walk: a pass renamed keeps the cost of its workers that reported their tasks
themselves (dropped from every total and the budget); the tasks that runs failing alike (a
broken agent command) left dead before they stopped the pool are given back by the next run
(they stayed dead, the pass synthesized without them), which the stop says; ``check`` takes
``--worker-url-env`` as ``run`` does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_swarm import Swarm, ValidationError
from redis_swarm._pipeline import Pipeline, load_plan, pipeline_queue
from redis_swarm._protocol import Limits
from redis_swarm._validate import MAX_CONTEXT_BYTES

from ._cli import Cli, subprocess_env
from .test_pipeline_cost import write_plan
from .test_pipeline_run import SYNTH, WORKER
from .test_pipeline_walk4_fixes import SELF_REPORT
from .test_pipeline_walk4_fixes import write_plan as write_walk_plan

PY = sys.executable

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


# --- a pass renamed: its self-reported workers' runs still count


def renamed_after_a_run(cli: Cli, tmp_path: Path, top: str = "") -> Path:
    """A pass "One" of 4 tasks whose workers report their tasks themselves ($0.01 each by
    their CLI) and a synthesis ($0.05): run to its end, then the pass renamed in the plan."""
    (tmp_path / "worker.py").write_text(SELF_REPORT)
    tasks = ["Find A", "Find B", "Find C", "Find D"]
    path = write_walk_plan(tmp_path, f"{PY} {tmp_path}/worker.py", tasks)
    path.write_text(top + path.read_text())  # (a top-level key: before the tables)
    first = cli.json("pipeline", "run", str(path))
    assert first["done"] and first["cost_usd"] == pytest.approx(0.09), first
    path.write_text(path.read_text().replace('name = "One"', 'name = "One renamed"'))
    return path


def test_a_renamed_pass_keeps_the_cost_of_its_self_reported_runs(cli: Cli, tmp_path: Path) -> None:
    """Its row (no longer in the plan) counted its synthesis alone: $0.0500, its four
    worker runs "reported no cost", in every total, while every agent said what it cost."""
    path = renamed_after_a_run(cli, tmp_path)
    again = cli.json("pipeline", "run", str(path))
    status = cli.json("pipeline", "status", "walk")
    for view in (again, status):
        assert view["cost_usd"] == pytest.approx(0.18), view
        assert (view["runs"], view["runs_without_cost"]) == (10, 0)
        earlier = view["passes"][1]
        assert earlier["earlier"] and earlier["name"] == "One"
        assert earlier["cost_usd"] == pytest.approx(0.09)
        assert (earlier["runs"], earlier["runs_without_cost"]) == (5, 0)
    out = cli("pipeline", "run", str(path)).stdout
    assert "pipeline walk: done, $0.1800 spent" in out and "reported no cost" not in out, out
    report = cli("pipeline", "report", "walk").stdout
    assert "reported no cost" not in report and "$0.1800" in report, report


def test_the_budget_counts_a_renamed_pass_self_reported_runs(cli: Cli, tmp_path: Path) -> None:
    """$0.09 spent by the first run, the renamed pass's: the second run's workers spend
    the budget of $0.12 (it counted $0.05, ran every task, synthesized and said done)."""
    path = renamed_after_a_run(cli, tmp_path, top="max_cost_usd = 0.12\n")
    out = cli("--json", "pipeline", "run", str(path), expect=1)
    summary = json.loads(out.stdout)
    assert not summary["done"] and "max_cost_usd" in (summary["stopped_by"] or ""), summary
    assert summary["cost_usd"] >= 0.12


# --- runs failing alike: the tasks they left dead are given back by the next run

ALIKE = """
name = "alike"
question = "Where?"
max_attempts = ATTEMPTS

[workers]
exec = "PY AGENTS/worker.py"
concurrency = 1

[synthesizer]
exec = "PY AGENTS/synth.py"

[[passes]]
name = "P1"
tasks = ["Find A", "Find B", "Find C", "Find D", "Find E", "Find F"]
"""
# Every worker run fails with the same error (the command broken): its prompt holds the
# question.
BROKEN = {"FAIL_ON": "Where?"}


def alike_plan(tmp_path: Path, attempts: int) -> Path:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "synth.py").write_text(SYNTH)
    path = tmp_path / "plan.toml"
    text = ALIKE.replace("ATTEMPTS", str(attempts)).replace("AGENTS", str(tmp_path))
    path.write_text(text.replace("PY", PY))
    return path


def run_broken(redis_url: str, tmp_path: Path, path: Path, **env: str) -> str:
    """A run of ``path`` in a process of its own, its agents given ``env``: its stderr."""
    full = {**subprocess_env(redis_url, "test", tmp_path / "bin"), **env}
    done = subprocess.run(
        [PY, "-m", "redis_swarm", "pipeline", "run", str(path)],
        env=full, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    return done.stderr


@pytest.mark.parametrize(("attempts", "dead"), [(1, 3), (2, 1)])
def test_tasks_left_dead_by_runs_failing_alike_are_given_back(
    cli: Cli, swarm: Swarm, redis_url: str, tmp_path: Path, attempts: int, dead: int
) -> None:
    """Two tasks completed, then the command broke: its runs (one at a time, a retry at
    once) fail alike and stop the pool, the tasks they left dead said in the stop; the
    next run (another process: nothing of the stop kept but the tasks) gives them back
    and the pass rests on all six (it synthesized on the tasks that were left)."""
    path = alike_plan(tmp_path, attempts)
    swarm.configure_queue(pipeline_queue(load_plan(path)), retry_backoff_s=0)
    cli("pipeline", "run", str(path), "--max-tasks", "2", expect=1)
    stderr = run_broken(redis_url, tmp_path, path, **BROKEN)
    assert "every run fails with: exit code 1; stderr: cannot do Where?" in stderr
    said = (
        f"then run the pipeline again (swarm pipeline run {path}): it gives the "
        f"{dead} task{'s' * (dead > 1)} these runs left dead (out of attempts) back to the "
        "queue, with fresh max_attempts, and resumes the pass"
    )
    assert said in " ".join(stderr.split()), stderr
    assert "swarm task requeue" not in stderr
    tasks = swarm.list_tasks(queue="pipeline.alike").items
    assert sum(t.status == "dead" for t in tasks) == dead
    out = cli("pipeline", "run", str(path))
    said = " ".join(out.stderr.split())  # (the progress, on stderr)
    assert (
        f"pass 1/1 'P1': {dead} dead task{'s' * (dead > 1)} given back to the queue (the "
        "failure that stopped the worker pool: exit code 1; stderr: cannot do Where?)"
    ) in said, out.stderr
    assert "settled, 6 completed, 0 dead, 6 findings" in said
    assert "pipeline alike: done" in out.stdout


def test_swarm_run_stopped_by_runs_failing_alike_says_what_its_next_run_does(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """``swarm run`` gives back no dead task: its stop says which are retried and how to
    give back the others."""
    (tmp_path / "worker.py").write_text(WORKER)
    for n in range(4):
        swarm.post_task("q", f"Where? {n}", max_attempts=1)
    worker = f"{PY} {tmp_path}/worker.py"
    out = cli("run", "--queue", "q", "--until-done", "--exec", worker, env=BROKEN, expect=1)
    assert (
        "then run again: the tasks still in the queue are retried; those these runs left "
        "dead (out of attempts) are not: swarm task requeue ID gives one back"
    ) in " ".join(out.stderr.split()), out.stderr


def settle_with_own_failures(cli: Cli, swarm: Swarm, tmp_path: Path, **env: str) -> dict[str, Any]:
    """Pass P1 run to its end, its last three tasks failing (``env``) after the others
    completed, its synthesizer down (the run stops before the synthesis); then run again
    with the synthesizer back: the summary of that run."""
    path = alike_plan(tmp_path, 1)
    text = path.read_text().replace(
        '"Find D", "Find E", "Find F"', '"Find X1", "Find X2", "Find X3"'
    )
    down = tmp_path / "down.py"
    down.write_text("import sys\nsys.stdin.read()\nsys.exit('the synthesizer is down')\n")
    path.write_text(text.replace(f"{tmp_path}/synth.py", f"{down}"))
    swarm.configure_queue("pipeline.alike.synth", retry_backoff_s=0.05)
    cli("pipeline", "run", str(path), env=env, expect=1)
    path.write_text(text)
    out = cli("--json", "pipeline", "run", str(path))
    summary: dict[str, Any] = json.loads(out.stdout)
    return summary


@pytest.mark.parametrize("own", [True, False])
def test_tasks_dead_of_failures_that_stopped_no_pool_stay_dead(
    cli: Cli, swarm: Swarm, tmp_path: Path, own: bool
) -> None:
    """Three tasks failed after the others completed (each with its own error, or all with
    one: the pool went on, tasks had completed) and the pass settled, then the run stopped
    before the synthesis: the next run does not give them back (its pool would fail them
    alike, stop, and the pass never end), the pass goes on with its findings, as before."""
    env = {"FAIL_ON": "Find X", **({"FAIL_OWN": "1"} if own else {})}
    summary = settle_with_own_failures(cli, swarm, tmp_path, **env)
    assert summary["done"], summary
    (row,) = summary["passes"]
    assert (row["completed"], row["dead"]) == (3, 3)


# --- pipeline check --worker-url-env


def test_check_takes_worker_url_env_as_run_does(cli: Cli, tmp_path: Path) -> None:
    path = write_plan(tmp_path, PLAN.replace('["a.md", "b.md"]', '["a.md"]'))
    (tmp_path / "a.md").write_text("notes\n")
    env = {"WALK5_WORKER_URL": None}
    for verb in ("check", "run"):
        out = cli("pipeline", verb, str(path), "--worker-url-env", "WALK5_WORKER_URL",
                  env=env, expect=2)  # fmt: skip
        said = "--worker-url-env WALK5_WORKER_URL: the environment variable WALK5_WORKER_URL"
        assert f"{said} is not set" in out.stderr, out.stderr
    out = cli("pipeline", "check", str(path), "--worker-url-env", "redis://x", expect=2)
    assert "--worker-url-env 'redis://x'" in out.stderr, out.stderr
    checked = cli.json(
        "pipeline", "check", str(path), "--worker-url-env", "WALK5_WORKER_URL",
        env={"WALK5_WORKER_URL": cli.env["SWARM_URL"]},
    )  # fmt: skip
    assert checked["workers"]["url_env"] == "WALK5_WORKER_URL"
