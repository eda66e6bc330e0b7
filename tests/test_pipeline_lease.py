"""One run drives a pipeline at a time (``_pipeline/lease``), with real ``swarm pipeline run``
processes: two runs started together run each pass's synthesizer once; a run refused while
another lives says who holds the pipeline and what to do; a killed run's hold ends with its
lease and the next run resumes; a run stopped by a signal gives it up at once; a run whose
lease is cancelled (a takeover) stops. And a plan whose begun passes moved is refused before
anything runs."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redis_swarm import Conflict, Swarm
from redis_swarm._models import TaskStatus
from redis_swarm._pipeline import load_plan, pipeline_queue
from redis_swarm._pipeline.names import lease_queue, lease_task_id
from redis_swarm._pipeline.report import stored_plan

from ._cli import Cli, subprocess_env
from .test_pipeline_run import (
    PY,
    SYNTH,
    final_state,
    hang_command,
    killed_while_held,
    plan_text,
    run_plan,
)

QUEUE = lease_queue("audit")


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def counted_synth(tmp_path: Path, path: Path) -> Path:
    """The plan's synthesizer made to append a line to the file returned at each run."""
    log = tmp_path / "synth.log"
    (tmp_path / "synth.py").write_text(
        SYNTH.replace(
            "prompt = sys.stdin.read()",
            f"prompt = sys.stdin.read()\nopen({str(log)!r}, 'a').write('ran\\n')",
        )
    )
    assert f"{tmp_path}/synth.py" in path.read_text()
    return log


def start(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``swarm --json pipeline run PATH`` in a process of its own."""
    cmd = [PY, "-m", "redis_swarm", "--json", "pipeline", "run", str(path)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lease_task(swarm: Swarm) -> TaskStatus | None:
    """The status of the last generation of the pipeline's lease task (None: none posted)."""
    counts = swarm.queue_stats().get(QUEUE)
    if not counts:
        return None
    return swarm.get_task(lease_task_id("audit", sum(counts.values()))).status


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_runs_at_once_run_each_synthesizer_once(redis_url: str, tmp_path: Path) -> None:
    """Started together: one drives the pipeline to the end, the other is refused at once
    (exit 1, the error alone), and each pass's synthesizer runs once."""
    path = plan_text(tmp_path)
    log = counted_synth(tmp_path, path)
    env = {**subprocess_env(redis_url, "test", tmp_path / "bin"), "WORKER_SLEEP": "1"}
    procs = [start(path, env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    refused = next(out for p, out in zip(procs, outs, strict=True) if p.returncode == 1)
    done = next(out for p, out in zip(procs, outs, strict=True) if p.returncode == 0)
    assert refused[0] == ""  # no status document: it never began
    error = json.loads(refused[1])
    assert error["error"] == "Conflict"
    assert "pipeline audit is being run by run-" in error["message"]
    assert json.loads(done[0])["done"]
    assert log.read_text() == "ran\n" * 2  # one synthesizer run per pass
    with Swarm(redis_url, swarm="test") as swarm:
        state = final_state(swarm, path)
        assert all(len(p["syntheses"]) == 1 and p["cited_ok"] for p in state.values())
        assert lease_task(swarm) is TaskStatus.CANCELLED  # given up at the end
        swarm.wait(timeout_s=1)  # nothing left open: the swarm is settled


def test_a_killed_runs_hold_ends_with_its_lease(
    redis_url: str, cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """SIGKILL leaves the lease held: a rerun at once is refused, saying who holds it, since
    when, when its lease ends and what to do; ``--wait`` resumes as soon as it ends (3 s,
    as the workers' leases), and the run reaches the end."""
    hang = hang_command(tmp_path)
    path = plan_text(tmp_path, worker=hang, lease_s=3)
    good = path.read_text().replace(hang, f"{PY} {tmp_path}/worker.py")
    path.write_text(path.read_text().replace("lease_s = 3", "lease_s = 3\ntimeout_s = 60"))
    killed_while_held(redis_url, tmp_path, path, 3)
    path.write_text(good)
    assert lease_task(swarm) is TaskStatus.CLAIMED
    out = cli("pipeline", "run", str(path), expect=1)
    assert out.stdout == ""
    message = " ".join(out.stderr.split())
    assert re.search(
        r"error: pipeline audit is being run by run-\S+-\d+-pipeline since \d{4}-\d\d-\d\dT"
        r"[\d:.]+Z: two runs at once would run each pass's synthesizer twice",
        message,
    ), message
    assert f"swarm pipeline run {path} --wait 3600" in message
    assert re.search(r"If it was killed, its lease ends in [0-3] s", message), message
    assert f"swarm task cancel {lease_task_id('audit', 1)}" in message
    assert final_state(swarm, path)["audit: Pass 1"]["statuses"] == ["claimed"] * 3  # untouched
    started = time.monotonic()
    out = cli("pipeline", "run", str(path), "--wait", "30")
    assert "waiting for the run holding pipeline audit: run-" in out.stderr
    assert "pipeline audit: done" in out.stdout
    assert time.monotonic() - started < 25
    # The killed run's lease, run out, is dead-lettered (settled, never left pending for no
    # one); the run that resumed held the next generation and gave it up at its end.
    killed = swarm.get_task(lease_task_id("audit", 1))
    assert killed.status is TaskStatus.DEAD and killed.abandons == 1
    assert swarm.get_task(lease_task_id("audit", 2)).status is TaskStatus.CANCELLED
    assert all(len(p["syntheses"]) == 1 for p in final_state(swarm, path).values())
    swarm.wait(timeout_s=1)  # nothing left open


def test_a_lease_given_back_by_hand_is_never_held_beside_the_open_one(
    swarm: Swarm, tmp_path: Path
) -> None:
    """A settled generation requeued by hand (``swarm task requeue``) is cancelled by the next
    run's claim, not held: two runs never hold two generations at once."""
    from redis_swarm._pipeline.lease import RunLease

    plan = load_plan(plan_text(tmp_path))
    # (as a run posts it: a task id names one task, and another there is a Conflict)
    first = swarm.post_task(
        QUEUE, "The lease of pipeline audit: held by the run driving it",
        task_id=lease_task_id("audit", 1), max_abandons=1,
    )  # fmt: skip
    claimed = swarm.claim([QUEUE], worker="old-run")
    assert claimed is not None and claimed.id == first.id
    swarm.fail(first.id, claimed.token, "killed", retry=False)  # generation 1 settled (dead)
    holder = RunLease(swarm, plan, holder="run-a")
    assert holder.acquire() and holder.task is not None
    assert holder.task.id == lease_task_id("audit", 2)
    swarm.requeue_dead(first.id)  # an operator gives the dead generation back
    other = RunLease(swarm, plan, holder="run-b")
    try:
        with pytest.raises(Conflict, match="is being run by run-a"):
            other.acquire()
        assert swarm.get_task(first.id).status is TaskStatus.CANCELLED
    finally:
        holder.release()


def test_a_stopped_run_gives_the_pipeline_up_at_once(
    redis_url: str, cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """SIGTERM: the run stops and gives its lease up (the holder's agent name too), so a
    rerun right away is not refused; one waiting for a live run gives up after --wait."""
    path = plan_text(tmp_path)
    env = {**subprocess_env(redis_url, "test", tmp_path / "bin"), "WORKER_SLEEP": "30"}
    proc = start(path, env)
    try:
        wait_for(lambda: lease_task(swarm) is TaskStatus.CLAIMED, "the run's lease")
        holder = swarm.get_task(lease_task_id("audit", 1)).worker
        assert holder is not None and holder.endswith("-pipeline")
        assert holder in {a.id for a in swarm.agents()}
        out = cli("pipeline", "run", str(path), "--wait", "0.3", expect=1)
        assert "(after waiting 0.3 s)" in out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert lease_task(swarm) is TaskStatus.CANCELLED
    assert holder not in {a.id for a in swarm.agents()}
    out = cli("pipeline", "run", str(path))
    assert "waiting for the run holding" not in out.stderr
    assert "pipeline audit: done" in out.stdout


def test_a_run_whose_lease_is_cancelled_stops(
    redis_url: str, cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """The takeover the refusal names: cancelling the lease task stops its run at its next
    renewal (its agents killed, their tasks back in the queue), exit 1 saying why; the next
    run resumes."""
    path = plan_text(tmp_path, lease_s=3)
    path.write_text(path.read_text().replace("lease_s = 3", "lease_s = 3\ntimeout_s = 60"))
    env = {**subprocess_env(redis_url, "test", tmp_path / "bin"), "WORKER_SLEEP": "30"}
    proc = start(path, env)
    try:
        wait_for(
            lambda: final_state(swarm, path)["audit: Pass 1"]["statuses"] == ["claimed"] * 3,
            "the workers",
        )
        cancelled = time.monotonic()
        swarm.cancel(lease_task_id("audit", 1))
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - cancelled < 10
    assert proc.returncode == 1, stderr
    summary = json.loads(stdout)
    assert not summary["done"] and summary["error"] == "LeaseLost"
    assert "run 1 of pipeline audit lost its lease on the pipeline" in summary["stopped_by"]
    assert "is cancelled" in summary["stopped_by"]
    assert final_state(swarm, path)["audit: Pass 1"]["statuses"] == ["pending"] * 3
    out = cli("pipeline", "run", str(path))
    assert "pipeline audit: done" in out.stdout


def test_a_moved_pass_is_refused_before_anything_runs(
    cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    """Passes swapped in a finished plan would each run again beside what they did (new
    dedupe keys and synthesis ids, the same pass names): the run is refused, nothing posted
    nor stored, and says how to go on; the plan put back resumes, --restart starts over. A
    removed first pass moves the next one: refused too; a pass added at the end is not."""
    path = plan_text(tmp_path)
    good = path.read_text()
    assert run_plan(cli, path)["done"]
    queue = pipeline_queue(load_plan(path))
    tasks = len(swarm.list_tasks(queue=queue, limit=1000).items)
    head, first, second = good.split("[[passes]]")
    path.write_text(head + "[[passes]]" + second.rstrip() + "\n\n[[passes]]" + first)
    out = cli("pipeline", "run", str(path), expect=1)
    message = " ".join(out.stderr.split())
    assert out.stdout == ""
    assert (
        "error: the plan moves passes that run 1 of pipeline audit began: pass 1 'Pass 1' is "
        "now pass 2; pass 2 'Pass 2' is now pass 1."
    ) in message
    assert "Nothing was run" in message and f"swarm pipeline run {path} --restart" in message
    assert "swarm context get pipeline.audit" in message
    assert len(swarm.list_tasks(queue=queue, limit=1000).items) == tasks
    assert [p.name for p in stored_plan(swarm, "audit").passes] == ["Pass 1", "Pass 2"]
    path.write_text(head + "[[passes]]" + second)  # pass 1 removed: pass 2 moved
    assert "'Pass 2' is now pass 1" in cli("pipeline", "run", str(path), expect=1).stderr
    path.write_text(good + '\n[[passes]]\nname = "Pass 3"\ncontext = "notes"\ntasks = ["c"]\n')
    again = run_plan(cli, path)
    assert again["done"] and again["resumed"] == ["Pass 1", "Pass 2"]
    path.write_text(head + "[[passes]]" + second.rstrip() + "\n\n[[passes]]" + first)
    restarted = run_plan(cli, path, "--restart")
    assert restarted["done"] and restarted["run"] == 2 and restarted["resumed"] == []
    assert load_plan(path).passes[0].name == "Pass 2"
