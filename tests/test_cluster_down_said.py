"""A Redis Cluster that refuses commands while a master of some slots is down with no replica
to take over (CLUSTERDOWN, cluster-require-full-coverage) is an outage, said in words: it was
"Redis ... answered an error: The cluster is down", a refusal, so `swarm run` threw away its
agents' finished work instead of keeping it until the cluster serves again."""

from __future__ import annotations

import time

import pytest

from redis_swarm import ConnectionFailed, Swarm
from redis_swarm._keys import Keys

from ._cluster import start_cluster, state_of
from ._servers import ServerFactory

pytestmark = pytest.mark.slow


def test_a_cluster_down_is_an_outage_said_in_words(servers: ServerFactory) -> None:
    cluster = start_cluster(servers, masters=3, replicas=0)
    try:
        with Swarm(f"{cluster.url}?retries=0", swarm="cd") as swarm:
            swarm.post_task("q", "before")
            own = cluster.client().get_node_from_key(Keys("cd").tasks).port  # type: ignore[no-untyped-call]
            victim = next(p for p in cluster.masters() if p != own)
            cluster.node(victim).proc.kill()
            deadline = time.monotonic() + 30
            while state_of(own) != "fail":
                assert time.monotonic() < deadline, "the cluster never said it was down"
                time.sleep(0.1)
            with pytest.raises(ConnectionFailed) as caught:
                swarm.post_task("q", "during")
            said = str(caught.value)
            assert "Redis Cluster" in said and "is down" in said, said
            assert "answered an error" not in said and "not a wrong URL" in said, said
    finally:
        cluster.close()


def test_the_node_of_the_swarms_slot_down_is_named_not_the_url(servers: ServerFactory) -> None:
    """The master that holds the swarm's slot killed, with no replica: the other nodes of
    the URL answer, so the error names that node and what it means, not "check that the
    server runs and the URL is right" (it is)."""
    cluster = start_cluster(servers, masters=3, replicas=0)
    try:
        with Swarm(f"{cluster.url}?retries=0", swarm="cd") as swarm:
            swarm.post_task("q", "before")
            own = cluster.client().get_node_from_key(Keys("cd").tasks).port  # type: ignore[no-untyped-call]
            cluster.node(own).proc.kill()
            cluster.node(own).proc.wait()
            for _ in range(2):  # the kept connection reset, then a new one refused
                with pytest.raises(ConnectionFailed) as caught:
                    swarm.post_task("q", "during")
                said = str(caught.value)
                assert f"cannot reach the Redis Cluster node 127.0.0.1:{own} of" in said, said
                assert "a replica of it takes over" in said, said
                assert "URL is right" not in said, said
    finally:
        cluster.close()
