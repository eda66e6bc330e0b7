"""What a Redis Cluster's outage is said as, from a deployment walk with ACL role users:

- A write refused for want of replicas (NOREPLICAS, ``min-replicas-to-write``) on a cluster
  named the URL, not the master that refused, and advised a Sentinel URL to a cluster user:
  it names that node, with a cluster's ways out (a replica back, or added with
  ``--cluster-slave``); a plain URL's words keep the Sentinel advice.
- ``swarm run`` through a cluster down (a master of some slots dead, no replica to take over)
  said only "Redis has not answered for 3s ... it may be paused, busy or out of reach": the
  client retries such a request for up to a minute, and the error that says why came only
  then. Its notice now says the cluster is down, once (not once per task).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm._keys import Keys
from redis_swarm._runner import OutcomeStatus
from redis_swarm._translate import refused_write

from ._cluster import start_cluster, state_of
from ._own_slot import both_started, two_slot_pool
from ._servers import ServerFactory
from ._waiting import until

pytestmark = pytest.mark.slow

SWARM = "cow"
CLUSTER_DOWN = "is down: a master of some of its slots failed"


def test_a_cluster_master_short_of_replicas_is_named_with_cluster_words(
    servers: ServerFactory,
) -> None:
    cluster = start_cluster(servers, masters=3, replicas=0)
    try:
        with Swarm(f"{cluster.url}?retries=0", swarm=SWARM) as swarm:
            swarm.post_task("q", "before")  # (the library loaded while writes are taken)
            own = cluster.client().get_node_from_key(Keys(SWARM).tasks).port  # type: ignore[no-untyped-call]
            master = cluster.node(own).client()
            master.config_set("min-replicas-to-write", "1")
            try:
                with pytest.raises(ConnectionFailed, match="NOREPLICAS") as refused:
                    swarm.post_task("q", "refused")
                said = str(refused.value)
                assert f"Redis Cluster node 127.0.0.1:{own} of" in said, said
                assert "not applied" in said, said
                assert f"add-node NEW:PORT 127.0.0.1:{own} --cluster-slave" in said, said
                assert "min-replicas-to-write 0" in said, said
                assert "Sentinel" not in said, said
                assert swarm.queue_stats()["q"]["pending"] == 1  # nothing applied
            finally:
                master.config_set("min-replicas-to-write", "0")
                master.close()
    finally:
        cluster.close()
    # A plain URL's words are unchanged: the Sentinel advice stays.
    plain = refused_write(redis.ResponseError("NOREPLICAS Not enough good replicas to write."),
                          "redis://127.0.0.1:7000")  # fmt: skip
    assert plain is not None and "a Sentinel URL finds the new master" in plain, plain


_AGENT = """\
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
(here / ("started-" + os.environ["SWARM_TASK_ID"])).touch()
while not (here / "go").exists():
    time.sleep(0.05)
print("done")
"""


def test_swarm_run_says_the_cluster_is_down_once(servers: ServerFactory, tmp_path: Path) -> None:
    """Two agents finish while a master of other slots is dead with no replica (the cluster
    refuses every command): the runner's notice of their unanswered requests says the
    cluster is down, once, named by the pool's URL; both tasks are done once the master is
    back."""
    cluster = start_cluster(servers, masters=3, replicas=0)
    lines: list[str] = []
    try:
        with Swarm(cluster.url, swarm=SWARM) as swarm:
            swarm.post_task("q", "one")
            swarm.post_task("q", "two")
            own = cluster.client().get_node_from_key(Keys(SWARM).tasks).port  # type: ignore[no-untyped-call]
            # (the URL's first node when it can be: a new handle meets it first)
            victim = next(p for p in cluster.ports[:3] if p != own)
            pool = two_slot_pool(swarm, tmp_path, lines.append, agent=_AGENT)
            thread = threading.Thread(target=pool.run)
            thread.start()
            try:
                until(lambda: both_started(tmp_path), "both agents started")
                cluster.node(victim).kill()
                until(lambda: state_of(own) == "fail", "the cluster said it is down")
                (tmp_path / "go").touch()
                until(
                    lambda: sum("has not answered" in line for line in lines) >= 2,
                    "the notice of both tasks",
                )
                time.sleep(1.0)  # (no later line repeats the words)
            finally:
                (tmp_path / "go").touch()
                cluster.node(victim).restart()
                thread.join(90)
            assert not thread.is_alive()
            told = [line for line in lines if CLUSTER_DOWN in line]
            assert len(told) == 1, lines
            assert "has not answered" in told[0], told
            assert f"the Redis Cluster at {cluster.url} is down" in told[0], told
            # (the probe's options are not shown: ``Settings.with_timeouts``)
            assert "retries=" not in told[0] and "timeout=" not in told[0], told
            assert "it may be paused" not in told[0], told
            statuses = {outcome.status for outcome in pool.outcomes}
            assert statuses == {OutcomeStatus.COMPLETED}, pool.outcomes
            assert len(pool.outcomes) == 2, pool.outcomes
    finally:
        cluster.close()
