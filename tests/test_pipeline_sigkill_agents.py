"""``swarm pipeline run`` killed with SIGKILL: its agents (the pool's workers, the
synthesizer) do not run on after it, paid for and recorded by nobody. Its guardian (see
``_runner/guardian``) kills them within a few seconds, an agent the runner was starting when
it died included. Real processes throughout (``swarm run``'s: tests/test_runner_guardian.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._runner import guardian
from redis_swarm._runner.reaper import MARK, new_mark

from ._cli import alive, subprocess_env
from .test_pipeline_run import PY, plan_text
from .test_runner_guardian import wait_for

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="pids are looked up in /proc")

GONE_S = 10.0  # the bound: the guardian's grace (2 s) plus its start and sweep

# An agent that notes its pid (and its child's: a shell's, say) in the folder given, then
# works for a long time.
SLOW = r"""
import os, subprocess, sys, time
sys.stdin.read()
child = subprocess.Popen(["sleep", "300"])
for pid in (os.getpid(), child.pid):
    open(os.path.join(sys.argv[1], str(pid)), "w").close()
time.sleep(300)
"""


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


def _pids(folder: Path, n: int, proc: subprocess.Popen[bytes]) -> list[int]:
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{n} agent pids not written within 60 s"
        time.sleep(0.05)
    return [int(p.name) for p in folder.iterdir()]


def _run_killed(redis_url: str, tmp_path: Path, path: Path, n: int) -> list[int]:
    """Run ``path`` until ``n`` pids are written, SIGKILL the run: the pids written."""
    pids = tmp_path / "pids"
    pids.mkdir()
    env = subprocess_env(redis_url, "test", tmp_path / "bin")
    proc = subprocess.Popen(
        [PY, "-m", "redis_swarm", "pipeline", "run", str(path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        agents = _pids(pids, n, proc)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    return agents


def _assert_gone(agents: list[int]) -> None:
    deadline = time.monotonic() + GONE_S
    try:
        while left := [pid for pid in agents if alive(pid)]:
            assert time.monotonic() < deadline, f"agents {left} left running after the SIGKILL"
            time.sleep(0.05)
    finally:
        for pid in agents:  # whatever the outcome: not left to the machine
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_sigkilled_pipeline_run_takes_its_workers_with_it(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    """Before, the pool's three workers (each a shell and its python, and what it started)
    ran on after the run's SIGKILL."""
    (tmp_path / "slow.py").write_text(SLOW)
    path = plan_text(tmp_path, worker=f"{PY} {tmp_path}/slow.py {tmp_path}/pids")
    path.write_text(path.read_text().replace("lease_s = 30", "lease_s = 30\ntimeout_s = 300"))
    _assert_gone(_run_killed(redis_url, tmp_path, path, 6))


def test_a_sigkilled_pipeline_run_takes_its_synthesizer_with_it(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    path = plan_text(tmp_path)
    synth = f'exec = "{PY} {tmp_path}/synth.py"'
    slow = f'exec = "{PY} {tmp_path}/slow.py {tmp_path}/pids"\ntimeout_s = 300'
    path.write_text(path.read_text().replace(synth, slow))
    _assert_gone(_run_killed(redis_url, tmp_path, path, 2))


def test_an_agent_the_dead_runner_was_starting_is_killed(tmp_path: Path) -> None:
    """The runner said ``mark`` and died before ``group``: its agent, forked, shows its mark
    only once its exec is done. Before, the guardian looked once, at once, found nothing,
    exited, and the agent ran on. Here the exec comes 0.3 s after the runner's death."""
    read, write = os.pipe()
    guard = subprocess.Popen(
        [PY, "-I", "-S", guardian.__file__], stdin=read, stdout=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    os.close(read)
    mark = new_mark()
    os.write(write, f"mark {mark}\n".encode())
    agent = subprocess.Popen(
        ["/bin/sh", "-c", f"sleep 0.3; exec env {MARK}={mark} sleep 300"], start_new_session=True
    )
    try:
        os.close(write)  # the runner's death, as the guardian sees it
        guard.wait(timeout=10)
        wait_for("the agent killed", lambda: agent.poll() is not None, GONE_S)
        assert agent.returncode == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()
        if guard.poll() is None:
            guard.kill()
            guard.wait()
