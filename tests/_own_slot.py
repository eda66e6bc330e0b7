"""An outage of the Redis Cluster master of a swarm's own slot (its hash tag's, where every
key of the swarm lives), killed under a running ``swarm run`` pool or pipeline, for the tests
of what they say through it (tests/test_run_own_slot_outage.py,
tests/test_run_outage_followups.py); and the pool they run (``two_slot_pool``, which
tests/test_cluster_outage_words.py runs through a master of other slots killed)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis_swarm import Swarm
from redis_swarm._keys import Keys
from redis_swarm._runner import Runner, RunOptions

from ._cluster import LocalCluster, start_cluster
from ._servers import ServerFactory
from ._waiting import until

# Long enough that the notice (3 s, then one quick probe) comes before a replica takes the
# dead master's slots over: the failover is what the run must ride out, not race.
NODE_TIMEOUT_MS = 6000
NOTICE_WITHIN_S = 10.0
NOTICE = "has not answered"  # (the words of the notice: ``request_watch.WatchedRequest.line``)

# A worker agent: notes its run, says it started, works 2 s.
_AGENT = """\
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
with open(here / "runs", "a") as runs:
    runs.write(os.environ["SWARM_TASK_ID"] + "\\n")
(here / ("started-" + os.environ["SWARM_TASK_ID"])).touch()
time.sleep(2)
print("done")
"""


Runnable = Callable[[], object]


@dataclass
class Heard:
    """The progress lines of a run, each with when it came (monotonic)."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    killed: float = 0.0  # when the master was killed (monotonic)

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    @property
    def said(self) -> list[str]:
        return [line for _, line in self.lines]

    def told(self) -> list[tuple[float, str]]:
        """The notices, each with its seconds after the kill."""
        return [(at - self.killed, line) for at, line in self.lines if NOTICE in line]

    def back(self) -> list[float]:
        """When each line saying Redis answers again came, in seconds after the kill."""
        return [at - self.killed for at, line in self.lines if "Redis answers again" in line]


@contextmanager
def own_slot_cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(servers, node_timeout_ms=NODE_TIMEOUT_MS)
    try:
        yield cluster
    finally:
        cluster.close()


def kill_own_master(cluster: LocalCluster, swarm: str, heard: Heard) -> None:
    """Kill the master of ``swarm``'s slot, noting when in ``heard``."""
    own = cluster.client().get_node_from_key(Keys(swarm).tasks).port  # type: ignore[no-untyped-call]
    cluster.node(own).kill()
    heard.killed = time.monotonic()


def killed_when(
    cluster: LocalCluster, swarm: str, heard: Heard, started: Callable[[], bool], run: Runnable
) -> None:
    """Run ``run`` in a thread, kill the master of ``swarm``'s slot once ``started()``, wait
    for the notice, then for the run to end (after the failover)."""
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        until(started, "the agents started")
        kill_own_master(cluster, swarm, heard)
        until(lambda: heard.told(), "the outage notice", timeout_s=NOTICE_WITHIN_S + 5)
    finally:
        thread.join(90)
    assert not thread.is_alive()


def two_slot_pool(
    swarm: Swarm, tmp_path: Path, on_progress: Callable[[str], None], agent: str = _AGENT
) -> Runner:
    """``swarm run`` of queue ``q`` until it is done, 2 tasks at once, each run of ``agent``
    (a Python script's text, written in ``tmp_path``) given ``tmp_path`` as its argument."""
    script = tmp_path / "agent.py"
    script.write_text(agent)
    options = RunOptions(
        queues=("q",),
        command=f"{sys.executable} {script} {tmp_path}",
        concurrency=2,
        # (renewed every 20 s: the first request of each run is its slot's beat)
        lease_s=60,
        until_done=True,
        poll_s=0.2,
    )
    return Runner(swarm, options, on_progress=on_progress)


def both_started(tmp_path: Path) -> bool:
    """Whether both slots' agents started (each touched its ``started-ID`` file)."""
    return len(list(tmp_path.glob("started-*"))) == 2


def pool_through_own_master_death(
    cluster: LocalCluster, swarm: Swarm, tmp_path: Path, heard: Heard, tasks: int = 3
) -> tuple[Runner, set[str]]:
    """``swarm run`` of ``tasks`` tasks, 2 at once (each 2 s), the master of the swarm's slot
    killed once two agents started: the pool and the tasks posted, once it ended."""
    posted = {swarm.post_task("q", f"task {n}").id for n in range(tasks)}
    pool = two_slot_pool(swarm, tmp_path, heard)
    killed_when(cluster, swarm.name, heard, lambda: both_started(tmp_path), pool.run)
    return pool, posted
