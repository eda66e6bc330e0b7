"""``swarm run`` when the Redis Cluster master of the swarm's own slot (its hash tag's, where
every key of the swarm lives) is killed, from a deployment walk:

The run said nothing at all until the replica took over: its agents' slots beat (their
heartbeat, ``slot_presence``) at the first tick of each run, and that beat waited inside the
client's retries (up to about a minute on a cluster) where no notice watched it, holding the
tick (and so the renewals, the agent's end, its report). Every request of the pool that can
wait through an outage is now watched by the one notice: within seconds the run says Redis
has not answered, and once a replica is promoted, that it answers again; every task is done
by its one agent run.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from redis_swarm import Swarm
from redis_swarm._keys import Keys
from redis_swarm._runner import OutcomeStatus, Runner, RunOptions

from ._cluster import start_cluster
from ._servers import ServerFactory
from ._waiting import until

pytestmark = pytest.mark.slow

SWARM = "own"
TASKS = 3
# Long enough that the notice (3 s, then one quick probe) comes before a replica takes the
# dead master's slots over: the failover is what the run must ride out, not race.
NODE_TIMEOUT_MS = 6000
NOTICE_WITHIN_S = 10.0

_AGENT = """\
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
with open(here / "runs", "a") as runs:
    runs.write(os.environ["SWARM_TASK_ID"] + "\\n")
(here / ("started-" + os.environ["SWARM_TASK_ID"])).touch()
time.sleep(2)
print("done")
"""


def test_swarm_run_says_so_when_its_own_slots_master_dies(
    servers: ServerFactory, tmp_path: Path
) -> None:
    cluster = start_cluster(servers, node_timeout_ms=NODE_TIMEOUT_MS)
    script = tmp_path / "agent.py"
    script.write_text(_AGENT)
    lines: list[str] = []
    heard: list[tuple[float, str]] = []  # (when each line came, monotonic)

    def progress(line: str) -> None:
        heard.append((time.monotonic(), line))
        lines.append(line)

    try:
        with Swarm(cluster.url, swarm=SWARM) as swarm:
            posted = {swarm.post_task("q", f"task {n}").id for n in range(TASKS)}
            own = cluster.client().get_node_from_key(Keys(SWARM).tasks).port  # type: ignore[no-untyped-call]
            options = RunOptions(
                queues=("q",),
                command=f"{sys.executable} {script} {tmp_path}",
                concurrency=2,
                # (renewed every 20 s: the first request of each run is its slot's beat)
                lease_s=60,
                until_done=True,
                poll_s=0.2,
            )
            pool = Runner(swarm, options, on_progress=progress)
            thread = threading.Thread(target=pool.run, daemon=True)
            thread.start()
            try:
                until(lambda: len(list(tmp_path.glob("started-*"))) == 2, "two agents started")
                cluster.node(own).kill()
                killed = time.monotonic()
                until(
                    lambda: any("has not answered" in line for line in lines),
                    "the outage notice",
                    timeout_s=NOTICE_WITHIN_S + 5,
                )
            finally:
                thread.join(90)
            assert not thread.is_alive()
            told = [(at - killed, line) for at, line in heard if "has not answered" in line]
            assert told[0][0] <= NOTICE_WITHIN_S, (told, lines)
            # (the probe's words: the node of the swarm's slot refused, or the cluster down)
            assert "it may be paused" not in told[0][1], told
            back = [at - killed for at, line in heard if "Redis answers again" in line]
            assert len(back) == 1 and back[0] > told[0][0], lines  # (once, after the notice)
            runs = (tmp_path / "runs").read_text().split()
            assert sorted(runs) == sorted(posted), runs  # every task run once, none twice
            assert len(pool.outcomes) == TASKS, pool.outcomes
            assert {o.status for o in pool.outcomes} == {OutcomeStatus.COMPLETED}, pool.outcomes
            assert {t.status.value for t in map(swarm.get_task, posted)} == {"completed"}
    finally:
        cluster.close()
