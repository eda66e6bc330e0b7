"""``swarm doctor`` on a Redis Cluster fails (ok false, exit 1) only when the cluster refuses
some of its keys: a master down, slots unserved or failing, cluster_state fail. It failed the
whole cluster when only a replica was down, which refuses no key: that is a warning. Real
cluster of its own (the test breaks it): 3 masters, 3 replicas."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ._cli import Cli
from ._cluster import LocalCluster, start_cluster
from ._servers import ServerFactory

SWARM = "doctor"
PROMPT_S = 10.0  # said at once, not after the URL's failover retries


@pytest.fixture
def cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(servers, masters=3, replicas=1)
    yield cluster
    cluster.close()
    for node in cluster.nodes:
        node.stop()


def _doctor(url: str, expect: int) -> dict[str, Any]:
    started = time.monotonic()
    report: dict[str, Any] = Cli(url, swarm=SWARM).json("doctor", expect=expect)
    took = time.monotonic() - started
    assert took < PROMPT_S, f"{took:.1f} s: the doctor waited on the cluster's retries"
    return report


def test_a_replica_down_is_a_warning_and_a_master_down_fails(cluster: LocalCluster) -> None:
    master = cluster.masters()[0]
    replica = cluster.replica_of(master)
    replica.kill()
    # Every slot is still served: the cluster works. Also through a URL that names the
    # replica that is down first.
    urls = [cluster.url, f"redis+cluster://127.0.0.1:{replica.port},127.0.0.1:{master}"]
    for url in urls:
        report = _doctor(url, expect=0)
        assert report["ok"] is True, report
        state = report["cluster"]
        assert state["state"] == "ok" and state["slots_ok"] == 16384
        assert (state["answering"], state["nodes"], state["replicas_up"]) == (5, 6, 2)
        warnings = report["warnings"]
        assert any(w.startswith(f"cluster node 127.0.0.1:{replica.port} does not answer")
                   for w in warnings), (url, warnings)  # fmt: skip
        assert any(w.startswith(f"master 127.0.0.1:{master} has no replica online")
                   for w in warnings), (url, warnings)  # fmt: skip
        assert report["corrupt_records"]["checked"] is True
    # (A master down and replaced by its replica is a warning too: test_topology_failover.py.)
    # The master down too: no replica to take over, its slots are refused (before the other
    # nodes even mark it failed).
    cluster.node(master).kill()
    report = _doctor(cluster.url, expect=1)
    assert report["ok"] is False
    assert report["cluster"]["answering"] == 4
    assert any(w.startswith(f"cluster node 127.0.0.1:{master} does not answer")
               for w in report["warnings"])  # fmt: skip
