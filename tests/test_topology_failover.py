"""A master a failover replaced is neither a master nor a failure: the cluster still lists it
(CLUSTER NODES: ``master,fail`` and no slots; CLUSTER SHARDS: role master, health fail, beside
the replica that took over since Redis 7.2, in a shard of its own without slots before), and
``redis_swarm.topology`` (so ``swarm doctor``) counted it as a master serving its old shard's
slots there. It is a warning now, saying how to forget it. Real cluster of its own: the test
kills a master (3 masters, 3 replicas)."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_swarm import ClusterView, Settings, topology
from redis_swarm._topology import CLUSTER_SLOTS, _Layout

from ._cli import Cli
from ._cluster import LocalCluster, redis_cli, start_cluster
from ._servers import ServerFactory

SWARM = "topology"


def _until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(servers, masters=3, replicas=1)
    yield cluster
    cluster.close()
    for node in cluster.nodes:
        node.stop()


def test_a_master_a_failover_replaced_is_a_warning_not_a_master(cluster: LocalCluster) -> None:
    old = cluster.masters()[0]
    promoted = cluster.replica_of(old).port
    cluster.node(old).kill()
    _until(lambda: cluster.roles().get(promoted or 0) == "master", "its replica promoted")
    cluster.wait_ok()  # (every node serves the slots from the promoted replica)
    dead = f"127.0.0.1:{old}"
    # From Python, as a program would ask.
    found = topology(Settings.from_url(cluster.url))
    assert isinstance(found.cluster, ClusterView)
    assert found.cluster.masters == 3 and found.cluster.failed == (dead,)
    assert found.failing is False and found.cluster.slots_ok == CLUSTER_SLOTS
    # swarm doctor: the counts, the verdict, and the warning on the dead master.
    cli = Cli(cluster.url, swarm=SWARM)
    report = cli.json("doctor")
    assert report["ok"] is True, report
    assert report["cluster"] == found.cluster.to_dict() == {
        "state": "ok", "slots_assigned": 16384, "slots_ok": 16384, "masters": 3,
        "replicas": 2, "replicas_up": 2, "nodes": 6, "answering": 5, "replica_links_down": [],
        "replica_default_logins": [],
    }  # fmt: skip
    (warning,) = [w for w in report["warnings"] if dead in w]
    assert warning.startswith(f"cluster node {dead} failed and serves no slots"), warning
    assert "start it again, and it rejoins as a replica" in warning
    assert any(w.startswith(f"master 127.0.0.1:{promoted} has no replica online")
               for w in report["warnings"])  # fmt: skip
    rows = cli("doctor", env={"COLUMNS": "400"}).stdout
    assert "3 masters, 2 replicas, 2 of them up; 5 of 6 nodes answering" in rows
    # What it says to do works: every node forgets it.
    advice = warning.rpartition("make every node forget it: ")[2]
    assert advice.startswith("redis-cli --cluster call ") and "CLUSTER FORGET" in advice
    command = shlex.split(advice)
    subprocess.run([redis_cli(), *command[1:]], capture_output=True, timeout=30, check=True)
    report = cli.json("doctor")
    assert report["ok"] is True
    assert (report["cluster"]["nodes"], report["cluster"]["answering"]) == (5, 5)
    assert not [w for w in report["warnings"] if dead in w]


def _node(port: int, role: str, health: str = "online") -> dict[str, Any]:
    return {"id": f"{port:040d}", "port": port, "ip": "127.0.0.1", "endpoint": "127.0.0.1",
            "role": role, "replication-offset": 100, "health": health}  # fmt: skip


@pytest.mark.parametrize("replaced_first", [True, False])
def test_a_shard_that_keeps_its_replaced_master_has_one_master(replaced_first: bool) -> None:
    """CLUSTER SHARDS of Redis 7.2 and later after a failover (a reply as the server sends it:
    this Debian's Redis 7.0 lists the replaced master in a shard of its own)."""
    shard = [_node(7000, "master", "fail"), _node(7003, "master")]
    shards = [
        {"slots": [0, 5460], "nodes": shard if replaced_first else shard[::-1]},
        {"slots": [5461, 10922], "nodes": [_node(7001, "master"), _node(7004, "replica")]},
        {"slots": [10923, 16383], "nodes": [_node(7002, "master"), _node(7005, "replica")]},
    ]
    layout = _Layout.from_shards(shards, tls=False)
    assert layout.served == {"127.0.0.1:7003": 5461, "127.0.0.1:7001": 5462,
                             "127.0.0.1:7002": 5461}  # fmt: skip
    assert layout.failed() == ["127.0.0.1:7000"]
    assert layout.ids["127.0.0.1:7000"] == f"{7000:040d}"


def test_a_failed_master_keeps_its_slots_until_its_replica_takes_over() -> None:
    """Before the takeover, the failed master still serves its slots (they fail): a master
    that counts, not a node to forget."""
    shards = [{"slots": [0, 16383],
               "nodes": [_node(7000, "master", "fail"), _node(7003, "replica")]}]  # fmt: skip
    layout = _Layout.from_shards(shards, tls=False)
    assert layout.served == {"127.0.0.1:7000": CLUSTER_SLOTS}
    assert layout.replicas == {"127.0.0.1:7000": ["127.0.0.1:7003"]}
    assert layout.failed() == []


def test_a_shard_that_lists_a_replica_before_its_master() -> None:
    """Redis 7.2+ lists a shard's nodes in the order they joined it: the old master, back as
    a replica after a failover, comes before the master that replaced it."""
    shards = [{"slots": [0, 16383], "nodes": [_node(7000, "replica"), _node(7003, "master")]}]
    layout = _Layout.from_shards(shards, tls=False)
    assert layout.served == {"127.0.0.1:7003": CLUSTER_SLOTS}
    assert layout.replicas == {"127.0.0.1:7003": ["127.0.0.1:7000"]}
    assert layout.failed() == []
