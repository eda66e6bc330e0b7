"""Agent runs of ``swarm pipeline run`` paid for that no other record holds (a worker's run
lost to a cancel, here) are kept in the swarm: ``swarm pipeline status`` from another process
counts them, and so does a rerun's budget; a write whose reply was lost, or that could not be
sent (Redis out of reach), is counted once, kept in the process until it is written; a swarm
emptied since, or another server under the same names, is not confused; ``swarm pipeline
retire`` deletes them, and they are among the swarm's keys (deleted with it)."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import redis_swarm
from redis_swarm import ConnectionFailed, Swarm, ValidationError
from redis_swarm._keys import Keys, swarm_key_patterns
from redis_swarm._pipeline import load_plan, pipeline_queue
from redis_swarm._pipeline.names import unrecorded_owner
from redis_swarm._pipeline.records import Unrecorded, anchor_of, count_unrecorded, read_pass
from redis_swarm._usage import Usage

from ._cli import Cli, run_swarm
from ._servers import ServerFactory
from .test_pipeline_cost import WORKER
from .test_pipeline_uncounted_costs import CANCELLED_WORKER, _plan, _run

# The code under test (this checkout's, or the tree the test is run against), for a process.
SRC = str(Path(redis_swarm.__file__).resolve().parent.parent)


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _another_process(redis_url: str, *args: str, expect: int = 0) -> dict[str, Any]:
    """``swarm --json ARGS`` run by another process, on the swarm "test"."""
    env = {**os.environ, "SWARM_URL": redis_url, "SWARM_NAME": "test", "PYTHONPATH": SRC}
    done = run_swarm(["--json", *args], env, timeout=120)
    assert done.returncode == expect, done
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_status_from_another_process_counts_a_lost_worker_run(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    """The $2 run lost to a cancel counts in ``swarm pipeline status`` of another process, as
    in the run's own last status: $0.10 + $2 + the synthesizer's $0.50, three runs. Its
    record is one of the swarm's keys, which deleting the swarm deletes."""
    path = _plan(tmp_path, CANCELLED_WORKER, ["CANCEL-ME please", "look at B"])
    assert _run(cli, path, expect=0)["cost_usd"] == pytest.approx(2.6)
    status = _another_process(redis_url, "pipeline", "status", "uncounted")
    assert status["cost_usd"] == pytest.approx(2.6), status
    assert status["failed_cost_usd"] == pytest.approx(2.0), status
    assert status["passes"][0]["runs"] == 3, status
    key = Keys("test").unrecorded_runs(unrecorded_owner("uncounted", 1))
    assert fnmatch.fnmatchcase(key, swarm_key_patterns("test")[0])


def test_a_rerun_in_another_process_counts_what_was_paid(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    """The first run's lost $2 spent max_cost_usd 1; the rerun, another process, counts it
    and stops before running anything more (not $0 spent, its two tasks and a synthesis run)."""
    budget = "max_cost_usd = 1"
    path = _plan(tmp_path, CANCELLED_WORKER, ["CANCEL-ME first", "B", "C"], budget)
    assert "the budget is spent: $2.0000" in (_run(cli, path, expect=1)["stopped_by"] or "")
    again = _another_process(redis_url, "pipeline", "run", str(path), expect=1)
    assert "the budget is spent: $2.0000" in (again["stopped_by"] or ""), again
    assert again["completed"] == 0, again
    assert not (tmp_path / "synth-runs").exists()


def _one_task(swarm: Swarm, tmp_path: Path) -> tuple[Any, str, Any]:
    """The plan of one pass, its label, and a task of that pass (an unrecorded run's anchor)."""
    plan = load_plan(_plan(tmp_path, WORKER, ["A"]))
    label = read_pass(swarm, plan, 0).label
    return plan, label, swarm.post_task(pipeline_queue(plan), "A", pass_name=label)


def _costs(swarm: Swarm, plan: Any) -> list[float | None]:
    return [run.usage.cost_usd for run in read_pass(swarm, plan, 0).unrecorded if run.usage]


def test_a_write_whose_reply_was_lost_counts_once(
    swarm: Swarm, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's first write reaches Redis, its reply lost: kept in the process, it is
    counted once (not in the swarm and the process both), written again at the next read
    (the swarm has it: nothing added), and counted once by another handle."""
    plan, label, task = _one_task(swarm, tmp_path)
    real = swarm.record_unrecorded_run

    def reply_lost(*args: Any, **kw: Any) -> bool:
        real(*args, **kw)
        monkeypatch.setattr(swarm, "record_unrecorded_run", real)
        raise ConnectionFailed("the reply was lost")

    monkeypatch.setattr(swarm, "record_unrecorded_run", reply_lost)
    run = Unrecorded(Usage(source="claude", cost_usd=0.25), "a worker run", anchor_of(task))
    assert count_unrecorded(swarm, plan, label, run, "k1")
    assert _costs(swarm, plan) == [0.25]
    assert not count_unrecorded(swarm, plan, label, run._replace(what="met again"), "k1")
    with Swarm(redis_url, swarm="test") as other:
        assert len(other.unrecorded_runs(unrecorded_owner(plan.name, plan.run))) == 1
        assert _costs(other, plan) == [0.25]


def _counted_out_of_reach(
    swarm: Swarm, monkeypatch: pytest.MonkeyPatch, plan: Any, label: str, task: Any, key: str
) -> Any:
    """A $0.50 run of ``task`` counted under ``key`` while its write cannot reach Redis (the
    handle's write raises as an outage does); the handle's real write, to put back."""
    real = swarm.record_unrecorded_run

    def out_of_reach(*args: Any, **kw: Any) -> bool:
        raise ConnectionFailed("Redis is out of reach")

    monkeypatch.setattr(swarm, "record_unrecorded_run", out_of_reach)
    run = Unrecorded(Usage(source="claude", cost_usd=0.5), "a worker run", anchor_of(task))
    assert count_unrecorded(swarm, plan, label, run, key)
    return real


def test_a_run_counted_while_redis_is_out_of_reach_is_written_later(
    swarm: Swarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted while its write cannot reach Redis, the run counts in this process at once,
    and is written to the swarm at the next chance (the next read of the pass)."""
    plan, label, task = _one_task(swarm, tmp_path)
    real = _counted_out_of_reach(swarm, monkeypatch, plan, label, task, "k2")
    owner = unrecorded_owner(plan.name, plan.run)
    assert swarm.unrecorded_runs(owner) == []
    assert _costs(swarm, plan) == [0.5]  # (counted here, not written yet)
    monkeypatch.setattr(swarm, "record_unrecorded_run", real)
    assert _costs(swarm, plan) == [0.5]
    assert [r.usage.cost_usd for r in swarm.unrecorded_runs(owner) if r.usage] == [0.5]


def test_an_emptied_swarm_and_another_server_are_not_confused(
    swarm: Swarm, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    servers: ServerFactory,
) -> None:  # fmt: skip
    """A run counted while Redis was out of reach, for a task of a swarm then emptied (a new
    task under the same id there since), is written to it at the next chance but counted by
    no one; another server under the same names is never written to."""
    plan, label, task = _one_task(swarm, tmp_path)
    real = _counted_out_of_reach(swarm, monkeypatch, plan, label, task, "k3")
    owner = unrecorded_owner(plan.name, plan.run)
    other = servers.start()
    try:
        with Swarm(other.url, swarm="test") as elsewhere:
            elsewhere.post_task(pipeline_queue(plan), "A", pass_name=label, task_id=task.id)
            assert _costs(elsewhere, plan) == []
            assert elsewhere.unrecorded_runs(owner) == []
    finally:
        other.stop()
    swarm.redis.flushall()
    swarm.post_task(pipeline_queue(plan), "A", pass_name=label, task_id=task.id)
    monkeypatch.setattr(swarm, "record_unrecorded_run", real)
    assert _costs(swarm, plan) == []
    assert len(swarm.unrecorded_runs(owner)) == 1  # (written: its anchor is not held)


def test_pipeline_retire_deletes_them(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """``swarm pipeline retire`` deletes the runs no other record holds of a run it leaves
    with no task (a dry run counts them only); while its workers' tasks are kept (``swarm
    retire PASS`` frees those), so are they: the run's cost counts while its records do."""
    path = _plan(tmp_path, CANCELLED_WORKER, ["CANCEL-ME please", "look at B"])
    assert _run(cli, path, expect=0)["done"]
    owner = unrecorded_owner("uncounted", 1)
    assert len(swarm.unrecorded_runs(owner)) == 1
    args = ("--json", "pipeline", "retire", "uncounted", "--older-than", "0")
    assert json.loads(cli(*args).stdout)["unrecorded_runs"] == 0
    assert len(swarm.unrecorded_runs(owner)) == 1
    plan = load_plan(path)
    for index in range(len(plan.passes)):
        swarm.retire_pass(read_pass(swarm, plan, index).label)
    assert json.loads(cli(*args, "--dry-run").stdout)["unrecorded_runs"] == 1
    assert len(swarm.unrecorded_runs(owner)) == 1
    assert json.loads(cli(*args).stdout)["unrecorded_runs"] == 1
    assert swarm.unrecorded_runs(owner) == []


def test_a_retire_that_keeps_a_runs_records_keeps_its_unrecorded_runs(
    cli: Cli, redis_url: str, tmp_path: Path
) -> None:
    """``--older-than`` an hour retires nothing of a run just ended: the $2 run lost to a
    cancel stays counted (it was deleted with every finished run's, whatever their age)."""
    path = _plan(tmp_path, CANCELLED_WORKER, ["CANCEL-ME please", "look at B"])
    assert _run(cli, path, expect=0)["done"]
    args = ("--json", "pipeline", "retire", "uncounted", "--older-than", "3600")
    retired = json.loads(cli(*args).stdout)
    assert (retired["tasks"], retired["unrecorded_runs"]) == (0, 0), retired
    status = _another_process(redis_url, "pipeline", "status", "uncounted")
    assert status["cost_usd"] == pytest.approx(2.6), status


def test_the_owners_to_drop_are_checked_at_the_edge(swarm: Swarm) -> None:
    """A name alone (not a list of them) and over a thousand are refused with what to give;
    any iterable of names is taken (a generator raised TypeError)."""
    swarm.record_unrecorded_run("pipeline p run 1", "k", "p", "a run")
    for wrong in ("pipeline p run 1", [f"o{i}" for i in range(1001)]):
        with pytest.raises(ValidationError, match="a list of at most 1,000 names"):
            swarm.drop_unrecorded_runs(wrong)
    assert swarm.drop_unrecorded_runs(o for o in ["pipeline p run 1"]) == 1
    assert swarm.unrecorded_runs("pipeline p run 1") == []
