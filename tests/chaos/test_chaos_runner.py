"""Chaos for ``swarm run``: three pools of 4 slots on 3-second leases, one SIGKILLed in turn
every 1.5 s for 12 s (and restarted), over 150 tasks. A vanished runner abandons its leases;
abandons are not failures, so every task ends completed by a finding and none is dead."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from redis_swarm import Swarm

from .._cli import subprocess_env, swarm_bin
from .._invariants import check_swarm
from .._servers import ServerFactory

SWARM = "runner-chaos"
QUEUE = "work"
TASKS = 150
POOLS = 3
KILL_EVERY_S = 1.5
KILL_FOR_S = 12.0

AGENT = """
import json, sys, time
sys.stdin.read()
time.sleep(0.4)
print(json.dumps({"summary": "done"}))
"""


@pytest.mark.slow
def test_sigkilled_pools_abandon_leases_but_every_task_completes(
    servers: ServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = servers.start()
    swarm = Swarm(server.url, swarm=SWARM)
    posted = swarm.post_tasks([{"queue": QUEUE, "description": f"t{i}"} for i in range(TASKS)])
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    env = subprocess_env(server.url, SWARM, swarm_bin(tmp_path / "bin").parent)
    command = [sys.executable, "-m", "redis_swarm", "run", "--queue", QUEUE,
               "--exec", f"{sys.executable} {script}", "--concurrency", "4", "--lease", "3",
               "--until-done"]  # fmt: skip

    def start() -> subprocess.Popen[bytes]:
        out = subprocess.DEVNULL
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)

    pools = [start() for _ in range(POOLS)]
    kills = 0
    try:
        began = time.monotonic()
        while time.monotonic() - began < KILL_FOR_S:
            time.sleep(KILL_EVERY_S)
            victim = kills % POOLS
            _until_it_holds_a_lease(swarm, pools[victim].pid)
            pools[victim].kill()
            pools[victim].wait(timeout=10)
            pools[victim] = start()
            kills += 1
        stats = swarm.wait(queue=QUEUE, timeout_s=90)
    finally:
        for pool in pools:
            pool.kill()
            pool.wait(timeout=10)
    tasks = [swarm.get_task(t.id) for t in posted]
    abandons = sum(t.abandons for t in tasks)
    with capsys.disabled():
        print(f"\n{kills} pools SIGKILLed; {abandons} leases abandoned; counts {stats}")
    assert stats["completed"] == TASKS and stats["dead"] == 0, stats
    assert all(t.finding_id and t.failures == 0 for t in tasks)
    assert abandons > 0  # the kills did hit running tasks
    check_swarm(server.client(), SWARM)
    swarm.close()


def _until_it_holds_a_lease(swarm: Swarm, pid: int, within_s: float = 15.0) -> None:
    """Wait until the pool of ``pid`` works on a task (its workers are named after its pid):
    on a loaded machine a pool started again may still be starting when its turn comes, and
    a kill then hits no lease."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        held = swarm.list_tasks(queue=QUEUE, status="claimed", limit=100).items
        if any(f"-{pid}-" in (t.worker or "") for t in held):
            return
        time.sleep(0.05)
