"""Agent runs of ``swarm pipeline run`` that were paid for but of which the swarm takes no
record count in the run's spend (its budget, its last status), once: a worker's run whose
outcome is LOST (its task cancelled while it ran), a synthesizer run whose synthesizer task
cannot be leased (settled by another run), and a failure the synthesizer's task refused
after waiting for Redis, its lease gone meanwhile."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._pipeline import Pipeline, load_plan, pipeline_queue
from redis_swarm._pipeline.names import synthesis_queue, synthesis_task_id
from redis_swarm._pipeline.records import (
    Unrecorded,
    anchor_of,
    count_unrecorded,
    read_pass,
    spending,
)
from redis_swarm._pipeline.report import read_passes, status_json
from redis_swarm._usage import Usage

from ._cli import Cli
from ._proxy import LatencyProxy
from .test_pipeline_cost import SYNTH, WORKER

PY = sys.executable

# A worker in Claude's JSON whose run on a task saying CANCEL-ME prints what it cost ($2),
# then cancels its task (as a user would, from elsewhere) and works on: the pool stops it.
CANCELLED_WORKER = r"""
import json, os, sys, time
prompt = sys.stdin.read()
if "CANCEL-ME" not in prompt:
    print(json.dumps({"type": "result", "is_error": False, "total_cost_usd": 0.1,
                      "result": json.dumps({"summary": "found"})}))
    sys.exit(0)
print(json.dumps({"type": "result", "is_error": False, "total_cost_usd": 2.0,
                  "result": json.dumps({"summary": "never taken"})}), flush=True)
from redis_swarm import Swarm
with Swarm.from_env() as swarm:
    swarm.cancel(os.environ["SWARM_TASK_ID"])
time.sleep(30)
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _plan(tmp_path: Path, worker: str, tasks: list[str], budget: str = "") -> Path:
    (tmp_path / "worker.py").write_text(worker)
    (tmp_path / "synth.py").write_text(SYNTH)
    path = tmp_path / "plan.toml"
    path.write_text(
        f"""
name = "uncounted"
{budget}

[workers]
exec = "{PY} {tmp_path}/worker.py"
concurrency = 1

[synthesizer]
exec = "{PY} {tmp_path}/synth.py"

[[passes]]
name = "One"
tasks = {json.dumps(tasks)}
"""
    )
    return path


def _run(cli: Cli, path: Path, *, expect: int, **env: str) -> dict[str, Any]:
    out = cli("--json", "pipeline", "run", str(path), expect=expect, env=env)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_a_worker_run_lost_to_a_cancel_counts_once(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """The run on the cancelled task said it cost $2 and was stopped (LOST, no record): the
    run's last status counts it with the other task's $0.10 and the synthesizer's $0.50,
    once, as a failed run of the pass."""
    path = _plan(tmp_path, CANCELLED_WORKER, ["CANCEL-ME please", "look at B"])
    data = _run(cli, path, expect=0)
    assert data["done"], data
    assert data["cost_usd"] == pytest.approx(2.6), data
    assert data["failed_cost_usd"] == pytest.approx(2.0), data
    assert data["passes"][0]["runs"] == 3, data  # (a worker's each, and the synthesizer's)


def test_a_lost_worker_run_spends_the_budget(cli: Cli, swarm: Swarm, tmp_path: Path) -> None:
    """The $2 of the stopped run spends max_cost_usd 1: the pool claims nothing more and the
    run stops, saying what it spent."""
    path = _plan(tmp_path, CANCELLED_WORKER, ["CANCEL-ME first", "B", "C"], "max_cost_usd = 1")
    data = _run(cli, path, expect=1)
    assert "the budget is spent: $2.0000" in (data["stopped_by"] or ""), data
    assert data["cost_usd"] == pytest.approx(2.0), data
    assert data["completed"] == 0, data


def test_a_synthesizer_run_whose_task_cannot_be_leased_counts(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The synthesizer task was settled (cancelled) by another: no refused run of the
    synthesizer ($0.50 each) can be recorded on it, yet each counts, and their sum spends
    max_cost_usd 1 after the second (not three tries and a failed pass, $0.10 shown)."""
    path = _plan(tmp_path, WORKER, ["look at A"], "max_cost_usd = 1")
    plan = load_plan(path)
    task_id = synthesis_task_id(plan, 0)
    # (as a run posts it: a task id names one task, and another there is a Conflict)
    swarm.post_task(synthesis_queue(plan), f"Synthesize {plan.passes[0].name}", task_id=task_id)
    swarm.cancel(task_id)
    data = _run(cli, path, expect=1, BAD_TRIES="5")
    assert (tmp_path / "synth-runs").read_text() == "2", data
    assert "the budget is spent: $1.1000" in (data["stopped_by"] or ""), data
    assert data["cost_usd"] == pytest.approx(1.1), data
    assert data["failed_cost_usd"] == pytest.approx(1.0), data
    assert data["passes"][0]["runs"] == 3, data


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_failure_given_up_after_an_outage_counts_once(
    redis_url: str, swarm: Swarm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first synthesizer run is refused ($0.50); Redis is out of reach when its failure
    is sent, and while it is, the synthesizer task is cancelled: once Redis answers, the
    failure is refused (the lease gone) and given up. Its run counts all the same: $0.10 +
    $0.50 + $0.50 once the second run's synthesis is taken."""
    monkeypatch.setenv("BAD_TRIES", "1")
    path = _plan(tmp_path, WORKER, ["look at A"])
    plan = load_plan(path)
    task_id = synthesis_task_id(plan, 0)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    said: list[str] = []
    with LatencyProxy(port) as proxy:
        url = f"{proxy.url}?socket_timeout=0.5&connect_timeout=0.5&retries=0"
        with Swarm(url, swarm="test") as through:
            real_fail = through.fail
            outages: list[threading.Thread] = []

            def outage() -> None:
                time.sleep(0.5)
                swarm.cancel(task_id)  # (directly: the run's Redis is out of reach)
                time.sleep(0.5)
                proxy.target = ("127.0.0.1", port)

            def fail(task: str, token: str | None, error: str, **kw: Any) -> Any:
                if task == task_id and not outages:
                    proxy.target = ("127.0.0.1", _dead_port())
                    proxy.cut()
                    outages.append(threading.Thread(target=outage, daemon=True))
                    outages[0].start()
                return real_fail(task, token, error, **kw)

            monkeypatch.setattr(through, "fail", fail)
            run = Pipeline(through, plan, say=said.append)
            run.run()
            assert outages, said
            outages[0].join(5)
            assert any("lease was gone" in line for line in said), said
            assert run.spent()[0] == pytest.approx(1.1), said
            status = status_json(run.plan, read_passes(swarm, run.plan))
    assert status["done"], said
    assert status["cost_usd"] == pytest.approx(1.1), said
    assert status["runs"] == 3, said
    assert swarm.get_task(task_id).failed_usage is None  # (no record of it: counted here)


def test_one_run_is_counted_once_under_its_key(swarm: Swarm, tmp_path: Path) -> None:
    """Two paths that meet the same run (its key) count it once, while its pass holds the
    record it names (a task of the swarm, not one of a swarm emptied since). (Kept in the
    swarm for every reader: tests/test_pipeline_unrecorded_shared.py.)"""
    plan = load_plan(_plan(tmp_path, WORKER, ["A"]))
    label = read_pass(swarm, plan, 0).label
    task = swarm.post_task(pipeline_queue(plan), "A", pass_name=label)
    usage = Usage(source="claude", cost_usd=0.25)
    run = Unrecorded(usage, "a run", anchor_of(task))
    assert count_unrecorded(swarm, plan, label, run, "k1")
    assert not count_unrecorded(swarm, plan, label, run._replace(what="the same run"), "k1")
    gone = Unrecorded(usage, "a run of a task no longer held", f"{task.id}@1")
    assert count_unrecorded(swarm, plan, label, gone, "k2")
    assert [s.usage and s.usage.cost_usd for s in spending(read_pass(swarm, plan, 0))] == [0.25]
