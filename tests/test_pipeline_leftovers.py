"""Leftovers of ``swarm pipeline run``: a stop during an outage does not wait for the
lease renewal under way (the renewing thread gives the lease up once it ends); a planner
stopped by a lost lease counts what it cost in the run's budget; a planner's failed lease
renewal is tried again within a second, as a worker's is; a rerun deregisters the agents a
killed run left registered, once stale, keeping a live process's that took its names again
and one a direct message waits for."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm._models import BEAT_EVERY_S, STALE_AFTER_S, TaskStatus
from redis_swarm._pipeline import Pipeline, load_plan, pipeline_queue
from redis_swarm._pipeline.lease import RunLease, sweep_killed
from redis_swarm._pipeline.names import lease_queue, planning_queue

from ._cli import Cli
from ._clock import FakeClock
from ._servers import ServerFactory
from ._waiting import until
from .test_pipeline_planner_lease import run_with_planner_overtaken
from .test_pipeline_run import (
    SYNTH,
    WORKER,
    hang_command,
    killed_while_held,
    plan_text,
    swarm,  # noqa: F401  (the fixture)
)

PY = sys.executable


def test_a_stop_during_an_outage_does_not_wait_for_the_renewal_under_way(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """Redis paused while the lease is being renewed (the client retries it for ~6 s):
    release returns at once, and once Redis answers, the renewing thread gives the lease up
    (cancelled, its holder deregistered), with no loss said and no renewal after it."""
    server = servers.start()
    url = f"{server.url}?socket_timeout=0.5&connect_timeout=0.5&retries=6"
    plan = load_plan(plan_text(tmp_path, lease_s=3))  # renewed every second
    said: list[str] = []
    whys: list[str] = []
    try:
        with Swarm(url, swarm="lease-stop") as swarm:
            lease = RunLease(swarm, plan, holder="run-a-pipeline", say=said.append,
                             on_lost=whys.append)  # fmt: skip
            assert lease.acquire()
            held = lease.task
            assert held is not None
            began = time.monotonic()
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(max(0.0, began + 2.0 - time.monotonic()))  # (a renewal under way)
                stopping = time.monotonic()
                lease.release()
                took = time.monotonic() - stopping
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            assert took < 1.5, (took, said)  # (the renewal's retries ran on for ~6 s)
            assert any("is given up once its renewal under way ends" in line for line in said)
            with Swarm(server.url, swarm="lease-stop") as other:
                until(
                    lambda: other.get_task(held.id).status is TaskStatus.CANCELLED,
                    "the renewing thread to give the lease up",
                    timeout_s=15,
                )
                until(
                    lambda: "run-a-pipeline" not in {a.id for a in other.agents()},
                    "the holder deregistered",
                )
                deadline = other.get_task(held.id).lease_deadline
                time.sleep(1.2)  # (no renewal after it: the thread ended)
                assert other.get_task(held.id).lease_deadline == deadline
    finally:
        server.stop()
    assert not whys and lease.lost is None, (whys, said)


# A planner whose first run prints its answer, what it cost ($5), then works on (killed when
# its lease is lost); a later run answers at once.
COSTLY_PLANNER = r"""
import json, os, sys, time
sys.stdin.read()
marks = sys.argv[1]
first = not os.path.exists(os.path.join(marks, "started"))
tasks = ["Look at one thing"]
text = "```json\n" + json.dumps(tasks) + "\n```"
print(json.dumps({"type": "result", "is_error": False, "result": text,
                  "total_cost_usd": 5.0 if first else 0.01}), flush=True)
if first:
    open(os.path.join(marks, "started"), "w").close()
    time.sleep(60)
"""


def _one_planned_pass(tmp_path: Path, planner: str, planner_extra: str = "") -> Path:
    """A plan of one planned pass, its workers and synthesizer the scripted ones."""
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "synth.py").write_text(SYNTH)
    path = tmp_path / "plan.toml"
    path.write_text(
        f"""
name = "left"
max_attempts = 2

[workers]
exec = "{PY} {tmp_path}/worker.py"
concurrency = 1
lease_s = 30

[synthesizer]
exec = "{PY} {tmp_path}/synth.py"

[planner]
exec = "{planner}"
{planner_extra}

[[passes]]
name = "One"
plan = "List what to look at"
max_tasks = 2
"""
    )
    return path


def test_a_planner_stopped_by_a_lost_lease_counts_in_the_budget(
    redis_url: str,
    swarm: Swarm,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The planner's run said it cost $5, then its lease was lost (the run paused past it,
    another holder took the planning task) and it was stopped: no record of it is taken, but
    the $5 counts, and spend the $1 budget: the run stops there, running no worker."""
    (tmp_path / "planner.py").write_text(COSTLY_PLANNER)
    marks = tmp_path / "marks"
    marks.mkdir()
    path = _one_planned_pass(
        tmp_path, f"{PY} {tmp_path}/planner.py {marks}", "lease_s = 1\ntimeout_s = 60"
    )
    path.write_text(
        path.read_text().replace("max_attempts = 2", "max_attempts = 2\nmax_cost_usd = 1")
    )
    code, said, _ = run_with_planner_overtaken(redis_url, swarm, path, marks, tmp_path, 30)
    assert "(this run: $5.0000" in said, said  # (what the stopped planner's run cost, said)
    assert "the budget is spent: $5.0000" in said, said
    assert code == 1, said
    work = pipeline_queue(load_plan(path))
    assert not swarm.list_tasks(queue=work, status=TaskStatus.COMPLETED).items  # (no worker ran)


def test_a_planner_renewal_that_failed_is_tried_again_within_a_second(
    servers: ServerFactory, tmp_path: Path
) -> None:
    """The planner's lease (12 s) is renewed every 4 s; one renewal fails (Redis paused):
    it is said, and tried again within a second or two once Redis answers, as a worker's
    is, not 4 s later."""
    server = servers.start()
    url = f"{server.url}?socket_timeout=0.3&connect_timeout=0.3&retries=0"
    path = _one_planned_pass(tmp_path, hang_command(tmp_path), "lease_s = 12\ntimeout_s = 60")
    (tmp_path / "pids").mkdir()
    said: list[str] = []
    failed = "waiting for Redis to renew the lease of"
    crashed: list[BaseException] = []
    try:
        with (
            Swarm(url, swarm="planner-retry") as swarm,
            Swarm(server.url, swarm="planner-retry") as reader,
        ):
            run = Pipeline(swarm, load_plan(path), say=said.append)

            def drive() -> None:
                try:
                    run.run()
                except BaseException as exc:  # (said by the assertion below)
                    crashed.append(exc)

            thread = threading.Thread(target=drive, daemon=True)
            thread.start()
            try:
                queue = planning_queue(load_plan(path))

                def planning() -> list[object]:
                    return list(reader.list_tasks(queue=queue, status=TaskStatus.CLAIMED).items)

                until(lambda: bool(planning()), "the planner's claim")
                (task,) = reader.list_tasks(queue=queue, status=TaskStatus.CLAIMED).items
                claimed = task.lease_deadline
                os.kill(server.proc.pid, signal.SIGSTOP)
                try:
                    until(lambda: any(failed in line for line in said), "a failed renewal")
                finally:
                    os.kill(server.proc.pid, signal.SIGCONT)
                back = time.monotonic()
                until(
                    lambda: reader.get_task(task.id).lease_deadline != claimed,
                    "the renewal tried again",
                )
                assert time.monotonic() - back < 3.0, said  # (4 s after the failed one before)
            finally:
                run.stop(hard=True)
                thread.join(30)
    finally:
        server.stop()
    assert not crashed, crashed


def test_a_rerun_deregisters_the_agents_a_killed_run_left(
    redis_url: str,
    cli: Cli,
    swarm: Swarm,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Killed (SIGKILL) while its worker held a task: the rerun resumes, and the killed run's
    agents (its lease holder, its pool's slot), stale and holding nothing once it is done,
    are deregistered, said so; none is left registered for good."""
    hang = hang_command(tmp_path)
    path = plan_text(tmp_path, worker=hang, lease_s=2)
    text = path.read_text().replace("concurrency = 3", "concurrency = 1")
    good = text.replace(hang, f"{PY} {tmp_path}/worker.py")
    path.write_text(text.replace("lease_s = 2", "lease_s = 2\ntimeout_s = 60"))
    killed_while_held(redis_url, tmp_path, path, 1)
    plan = load_plan(path)
    (killed,) = swarm.list_tasks(queue=lease_queue(plan.name)).items  # (its lease)
    assert killed.worker is not None and killed.worker.endswith("-pipeline")
    prefix = killed.worker.removesuffix("-pipeline")
    left = {a.id for a in swarm.agents() if a.id.startswith(f"{prefix}-")}
    assert f"{prefix}-pipeline" in left and f"{prefix}-1" in left, left
    # Their last sign of life made older than STALE_AFTER_S (a handle whose clock lags by
    # more), as if the kill were that long ago: a rerun removes only stale agents.
    lag_ms = round((STALE_AFTER_S + 5) * 1000)
    with Swarm(redis_url, swarm="test", clock=lambda: int(time.time() * 1000) - lag_ms) as old:
        for agent_id in left:
            old.heartbeat(agent_id)
    assert not any(a.alive for a in swarm.agents() if a.id in left), swarm.agents()
    path.write_text(good)
    out = cli("pipeline", "run", str(path), "--wait", "60")
    assert "pipeline audit: done" in out.stdout, out.stderr
    assert "a killed run of pipeline audit left registered" in out.stderr, out.stderr
    assert not {a.id for a in swarm.agents()} & left, swarm.agents()


def _killed_run(handle: Swarm, tmp_path: Path, agents: tuple[str, ...]) -> str:
    """A run killed now: its lease task (posted naming its holder run-x-pipeline, claimed
    for 1 s, left unrenewed) and ``agents`` registered. Returns the plan's name."""
    plan = load_plan(plan_text(tmp_path))
    RunLease(handle, plan, holder="run-x-pipeline")._open_task()  # (as the killed run did)
    assert handle.claim([lease_queue(plan.name)], worker="run-x-pipeline", lease_s=1) is not None
    for agent_id in agents:
        handle.register("worker", name=agent_id)
    return plan.name


def _reclaimed(handle: Swarm, name: str) -> None:
    """The killed run's lease task dead-lettered now (its expired lease reclaimed: what the
    rerun's own claim does, seconds before its sweep)."""
    handle.reap()
    assert len(handle.list_tasks(queue=lease_queue(name), status=TaskStatus.DEAD).items) == 1


def test_only_a_killed_runs_silent_agents_holding_nothing_are_deregistered(
    redis_url: str, tmp_path: Path
) -> None:
    """A killed run's lease task, dead, names its holder run-x-pipeline: of run-x's names,
    those stale, silent since and holding no lease go; one seen since (the name taken
    again), one holding a task's lease, another run's and this run's own names stay."""
    clock = FakeClock()
    with Swarm(redis_url, swarm="test", clock=clock) as handle:
        name = _killed_run(handle, tmp_path, ("run-x-synthesizer", "run-x-1", "run-y-3",
                                             "other-pipeline"))  # fmt: skip
        handle.post_task("elsewhere", "held", task_id="t-held")
        assert handle.claim(["elsewhere"], worker="run-x-2", lease_s=3600) is not None
        clock.advance(STALE_AFTER_S + 5)
        _reclaimed(handle, name)
        clock.advance(0.01)
        handle.heartbeat("run-x-1")  # (a sign of life after the run died)
        assert sweep_killed(handle, name, holder="run-x-pipeline") == []  # (its own names)
        removed = sweep_killed(handle, name, holder="run-y-pipeline")
        assert sorted(removed) == ["run-x-pipeline", "run-x-synthesizer"]
        kept = {a.id for a in handle.agents()}
        assert kept == {"run-x-1", "run-x-2", "run-y-3", "other-pipeline"}


def test_a_killed_runs_names_live_again_or_awaited_by_a_message_are_kept(
    redis_url: str, tmp_path: Path
) -> None:
    """A live process took the killed run's names again (its --worker prefix, or the same
    run-HOST-PID): its synthesizer, holding no lease, beat last before the rerun reclaimed
    the killed run's lease (beats come every BEAT_EVERY_S), well within STALE_AFTER_S. It is
    not deregistered, nor is a stale one a direct message waits for (its inbox kept); a
    stale one with none goes. Once the synthesizer too is stale, a later sweep (the run's
    end) removes it; the awaited one stays still."""
    clock = FakeClock()
    with Swarm(redis_url, swarm="test", clock=clock) as handle:
        name = _killed_run(handle, tmp_path, ("run-x-synthesizer", "run-x-1", "run-x-2"))
        handle.send("run-x-2", "your review of t-1, please", sender="someone")
        clock.advance(STALE_AFTER_S)
        handle.heartbeat("run-x-synthesizer")  # (the live process's, before the reclaim)
        clock.advance(BEAT_EVERY_S / 2)
        _reclaimed(handle, name)
        removed = sweep_killed(handle, name, holder="run-y-pipeline")
        assert sorted(removed) == ["run-x-1", "run-x-pipeline"]
        assert {a.id for a in handle.agents()} == {"run-x-synthesizer", "run-x-2"}
        clock.advance(STALE_AFTER_S)
        assert sweep_killed(handle, name, holder="run-y-pipeline") == ["run-x-synthesizer"]
        assert {a.id for a in handle.agents()} == {"run-x-2"}
        (waiting,) = handle.inbox("run-x-2")
        assert waiting.body == "your review of t-1, please"
