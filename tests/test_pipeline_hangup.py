"""``swarm pipeline run`` in a terminal that is closed (SIGHUP, then every write to the
terminal failing): the run ends as on SIGTERM, its agents killed, their tasks and the
pipeline's lease given back, so that a rerun resumes it at once. Run as a real process
whose controlling terminal is a pseudo-terminal the test closes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._models import TaskStatus
from redis_swarm._pipeline import load_plan, pass_label, pipeline_queue

from ._cli import Cli, subprocess_env
from .test_pipeline_lease import lease_task, start, wait_for
from .test_pipeline_run import PY, plan_text

AGENT_PIDS = "agent-pids"


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _in_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """``argv`` as the leader of a session of its own whose controlling terminal is a new
    pseudo-terminal; returns the process and the terminal's master side."""
    master, slave = pty.openpty()

    def take_the_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        preexec_fn=take_the_terminal,
    )  # fmt: skip
    os.close(slave)
    return proc, master


def _drain(master: int) -> bytes:
    """What the terminal shows so far (without blocking)."""
    out = b""
    os.set_blocking(master, False)
    try:
        while chunk := os.read(master, 65536):
            out += chunk
    except (BlockingIOError, OSError):
        pass
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_closing_the_terminal_stops_the_run_as_sigterm_does(
    redis_url: str, cli: Cli, swarm: Swarm, tmp_path: Path
) -> None:
    path = plan_text(tmp_path)
    # The workers note their pid, then work for a long time.
    worker = (tmp_path / "worker.py").read_text()
    (tmp_path / "worker.py").write_text(
        worker.replace(
            "prompt = sys.stdin.read()",
            "prompt = sys.stdin.read()\n"
            f"open({str(tmp_path / AGENT_PIDS)!r}, 'a').write(str(os.getpid()) + '\\n')",
        )
    )
    env = {**subprocess_env(redis_url, "test", tmp_path / "bin"), "WORKER_SLEEP": "60"}
    env.pop("COLUMNS", None)
    proc, master = _in_a_terminal([PY, "-m", "redis_swarm", "pipeline", "run", str(path)], env)
    try:
        wait_for(lambda: lease_task(swarm) is TaskStatus.CLAIMED, "the run's lease")
        pids = tmp_path / AGENT_PIDS
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 3, "3 agents")
        agents = [int(p) for p in pids.read_text().split()]
        shown = _drain(master)
        assert b"pass 1/2 'Pass 1': 3 tasks" in shown, shown
        os.close(master)  # the terminal closed: its session leader gets SIGHUP
        master = -1
        proc.wait(timeout=60)
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in agents):
        assert time.monotonic() < deadline, "the agents were left running"
        time.sleep(0.05)
    assert lease_task(swarm) is TaskStatus.CANCELLED  # given up: a rerun need not wait
    plan = load_plan(path)
    tasks = swarm.list_tasks(queue=pipeline_queue(plan), pass_name=pass_label(plan, 0)).items
    assert len(tasks) == 3
    assert {t.status for t in tasks} == {TaskStatus.PENDING}, tasks  # released, not held
    assert all(t.failures == 0 for t in tasks)  # a hangup is no failure of theirs
    out = cli("pipeline", "run", str(path))  # resumed at once
    assert "waiting for the run holding" not in out.stderr
    assert "pipeline audit: done" in out.stdout


def test_a_hangup_is_named_as_what_stopped_the_run(
    redis_url: str, swarm: Swarm, tmp_path: Path
) -> None:
    """SIGHUP to a run whose output goes to pipes (nohup-less, under a supervisor): it stops
    as on SIGTERM, and its summary names SIGHUP as what stopped it (not SIGTERM)."""
    path = plan_text(tmp_path)
    env = {**subprocess_env(redis_url, "test", tmp_path / "bin"), "WORKER_SLEEP": "60"}
    proc = start(path, env)
    try:
        wait_for(lambda: lease_task(swarm) is TaskStatus.CLAIMED, "the run's lease")
        wait_for(lambda: swarm.queue_stats().get("pipeline.audit", {}).get("claimed", 0) == 3,
                 "3 tasks claimed")  # fmt: skip
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    summary = json.loads(out)
    assert summary["stopped_by"] == "terminated (SIGHUP): run it again to resume"
    assert lease_task(swarm) is TaskStatus.CANCELLED
