"""``swarm doctor`` on Sentinel and on a Redis Cluster, real servers: the deployment's own state
(the master the sentinels name, how many sentinels and replicas they know, whether they can
agree a failover; a cluster's state, slots, masters and replicas) and its problems, flagged.
And a worker's doctor on a cluster shows the real version, where it showed '?' (INFO is
refused to it, and the cluster client has no node to send HELLO to)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from redis_swarm import SentinelView, Settings, apply_role, topology

from ._cli import SRC, Cli
from ._cluster import LocalCluster, start_cluster
from ._sentinel import SERVICE, LocalSentinel, guarded_sentinel
from ._servers import ServerFactory, free_port
from ._waiting import until

SWARM = "doctor"
PROMPT_S = 10.0  # a failing cluster is diagnosed at once, not after the URL's retries


def _warnings(report: dict[str, Any]) -> list[str]:
    """The doctor's warnings but the one of servers that keep nothing on disk (the test
    servers': appendonly no, save ''; tests/test_doctor_persistence.py)."""
    return [w for w in report.get("warnings", []) if "in memory only" not in w]


def _rows(cli: Cli, expect: int = 0) -> dict[str, str]:
    """The human report: row name -> its text, lines joined (warnings under 'warning')."""
    rows: dict[str, str] = {}
    last = ""
    for line in cli("doctor", expect=expect, env={"COLUMNS": "400"}).stdout.splitlines():
        if line.startswith("warning:"):
            rows["warning"] = rows.get("warning", "") + line
        elif line.strip():
            key, _, value = line.strip().partition(" ")
            if line.startswith("  ") and last:  # a wrapped row
                rows[last] += " " + line.strip()
            else:
                rows[key], last = value.strip(), key
    return rows


# --- Sentinel


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    with guarded_sentinel(servers) as setup:
        yield setup


def _on_sentinels(setup: LocalSentinel, *command: Any) -> None:
    for node in setup.sentinels:
        with redis.Redis(port=node.port or 0) as client:
            client.execute_command(*command)


def test_sentinel_names_its_master_sentinels_and_replicas(sentinel: LocalSentinel) -> None:
    sentinel.wait_ready()
    cli = Cli(sentinel.url, swarm=SWARM)
    report = cli.json("doctor")
    assert report["ok"] is True and _warnings(report) == [], report.get("warnings")
    state = report["sentinel"]
    assert state["master"] == f"127.0.0.1:{sentinel.master_port()}"
    assert state["failover"].startswith("OK 3 usable Sentinels")
    del state["master"], state["failover"]
    assert state == {"service": SERVICE, "answering": 3, "in_url": 3, "sentinels": 3,
                     "quorum": 2, "replicas": 1, "replicas_up": 1,
                     "replica_links_down": [], "replica_default_logins": []}  # fmt: skip
    row = _rows(cli)["sentinel"]
    assert f"master 127.0.0.1:{sentinel.master_port()} (service {SERVICE})" in row
    assert "3 sentinels, quorum 2" in row and "1 replica, up;" in row


def test_sentinel_problems_are_flagged(sentinel: LocalSentinel) -> None:
    sentinel.wait_ready()
    # More sentinels needed to agree than there are: no failover could ever happen.
    _on_sentinels(sentinel, "SENTINEL", "SET", SERVICE, "quorum", 4)
    try:
        # (CKQUORUM answers NOQUORUM: no failover can be agreed, so doctor fails)
        report = Cli(sentinel.url, swarm=SWARM)("doctor", "--json", expect=1).json()
    finally:
        _on_sentinels(sentinel, "SENTINEL", "SET", SERVICE, "quorum", 2)
    assert report["sentinel"]["quorum"] == 4
    (warning,) = _warnings(report)
    assert f"'{SERVICE}' is watched by 3 sentinels and its quorum is 4" in warning
    assert f"SENTINEL SET {SERVICE} quorum 3" in warning
    # The replica stops answering: a failover would have nowhere to go.
    sentinel.replica.proc.send_signal(signal.SIGSTOP)
    try:
        cli = Cli(sentinel.url, swarm=SWARM)
        until(lambda: cli.json("doctor")["sentinel"]["replicas_up"] == 0, "replica seen down")
        report = cli.json("doctor")  # the swarm works: a warning, not a failure
        assert report["ok"] is True and report["sentinel"]["replicas"] == 1
        assert any(f"no replica of '{SERVICE}' is up" in w for w in report["warnings"])
        assert "1 replica, down;" in _rows(cli)["sentinel"]
    finally:
        sentinel.replica.proc.send_signal(signal.SIGCONT)
    sentinel.wait_ready()
    # A sentinel named in the URL that does not answer.
    dead = f"127.0.0.1:{free_port()}"
    url = sentinel.url.replace("redis+sentinel://", f"redis+sentinel://{dead},")
    report = Cli(url, swarm=SWARM).json("doctor")
    assert report["sentinel"]["answering"] == 3 and report["sentinel"]["in_url"] == 4
    (warning,) = _warnings(report)
    assert warning.startswith(f"sentinel {dead} of the URL does not answer")


def test_the_sentinels_view_from_python(sentinel: LocalSentinel) -> None:
    """redis_swarm.topology, what swarm doctor renders, called by a program."""
    sentinel.wait_ready()
    found = topology(Settings.from_url(sentinel.url))
    assert found.kind == "sentinel" and found.cluster is None and found.failing is False
    view = found.sentinel
    assert isinstance(view, SentinelView) and found.view is view and found.warnings == ()
    assert view.master == f"127.0.0.1:{sentinel.master_port()}" and view.failover_ok is True
    assert (view.sentinels, view.quorum, view.replicas, view.replicas_up) == (3, 2, 1, 1)
    assert view.to_dict() == Cli(sentinel.url, swarm=SWARM).json("doctor")["sentinel"]


# --- Cluster

# A program that asks the cluster for its topology: the CLI is never loaded.
_ASK = """
import json, sys
from redis_swarm import Settings, topology
found = topology(Settings.from_url(sys.argv[1]))
print(json.dumps({
    "cluster": found.cluster.to_dict(), "failing": found.failing,
    "warnings": list(found.warnings), "versions": len(found.cluster.versions),
    "cli": sorted(m for m in sys.modules if m.startswith(("redis_swarm.cli", "click"))),
}))
"""


def test_the_clusters_view_from_python(cluster_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    run = subprocess.run([sys.executable, "-c", _ASK, cluster_url], env=env,
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    found = json.loads(run.stdout)
    assert found["cli"] == [] and found["failing"] is False and found["warnings"] == []
    assert found["cluster"] == {"state": "ok", "slots_assigned": 16384, "slots_ok": 16384,
                                "masters": 3, "replicas": 3, "replicas_up": 3, "nodes": 6,
                                "answering": 6, "replica_links_down": [],
                                "replica_default_logins": []}  # fmt: skip
    assert found["versions"] == 6
    # Any other URL: nothing to ask, and nothing asked (no server listens on port 1).
    plain = topology(Settings.from_url("redis://127.0.0.1:1"))
    assert (plain.view, plain.warnings, plain.failing) == (None, (), False)


@pytest.fixture(scope="module")
def worker_url(redis_cluster: LocalCluster) -> str:
    redis_cluster.wait_ok()
    made = apply_role(Settings.from_url(redis_cluster.url), "worker", "doctor-worker", swarm=SWARM)
    spec = made.user
    return redis_cluster.url.replace("://", f"://doctor-worker:{spec.password}@")


def test_a_cluster_shows_its_state_slots_masters_and_replicas(cluster_url: str) -> None:
    cli = Cli(cluster_url, swarm=SWARM)
    report = cli.json("doctor")
    # (its one warning: the masters' min-replicas-to-write 0, tests/test_doctor_leftovers.py)
    [guard] = _warnings(report)
    assert report["ok"] is True and guard.startswith("min-replicas-to-write is 0"), guard
    assert report["cluster"] == {"state": "ok", "slots_assigned": 16384, "slots_ok": 16384,
                                 "masters": 3, "replicas": 3, "replicas_up": 3, "nodes": 6,
                                 "answering": 6, "replica_links_down": [],
                                 "replica_default_logins": []}  # fmt: skip
    row = _rows(cli)["cluster"]
    assert row == "ok; 16384 of 16384 slots assigned, 16384 ok; 3 masters, 3 replicas, " + (
        "3 of them up; 6 of 6 nodes answering"
    )


def test_a_worker_sees_the_real_version_on_a_cluster(cluster_url: str, worker_url: str) -> None:
    admin = Cli(cluster_url, swarm=SWARM).json("doctor")
    cli = Cli(worker_url, swarm=SWARM)
    report = cli.json("doctor")
    assert report["ok"] is True and report["user"] == "doctor-worker"
    assert report["version"] == admin["version"] and report["version"].startswith(("7.", "8."))
    assert _rows(cli)["version"] == admin["version"]
    # What it may not read is said so; what it may, shown.
    cluster = report["cluster"]
    assert cluster["state"] == "not visible to this user: it may not run CLUSTER INFO"
    assert cluster["slots_assigned"] == 16384 and cluster["masters"] == 3
    assert cluster["replicas"] == cluster["replicas_up"] == 3 and cluster["answering"] == 6


def test_a_shard_is_told_the_default_logins_were_not_checked(redis_cluster: LocalCluster) -> None:
    """A shard reads INFO but may not run CONFIG GET nor ACL GETUSER: the cluster's check of
    the replicas' logins says it was not checked (it skipped it, silently)."""
    from redis_swarm import _topology
    from redis_swarm.cli._server import _topology_line

    redis_cluster.wait_ok()
    admin = Settings.from_url(redis_cluster.url, swarm=SWARM)
    made = apply_role(admin, "shard", "doctor-shard", swarm=SWARM)
    shard = redis_cluster.url.replace("://", f"://doctor-shard:{made.user.password}@")
    found = topology(Settings.from_url(shard, swarm=SWARM))
    assert found.cluster is not None
    said = found.cluster.to_dict()
    assert said["replica_links_down"] == [], said  # (INFO: read)
    assert said["replica_default_logins"] == _topology.REPLICA_LOGINS_NOT_VISIBLE, said
    assert f"up; replica logins {_topology.REPLICA_LOGINS_NOT_VISIBLE}; 6 of 6" in (
        _topology_line(found.cluster)
    )


@pytest.fixture(scope="module")
def bare_cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    """A cluster of its own: 3 masters, no replica. The tests break it: the first mends what
    it broke; the last kills a node, for good."""
    cluster = start_cluster(servers, masters=3, replicas=0)
    yield cluster
    cluster.close()
    for node in cluster.nodes:
        node.stop()


def _state(port: int) -> str:
    with redis.Redis(port=port, decode_responses=True) as client:
        return str(client.execute_command("CLUSTER INFO")["cluster_state"])


def _timed(cli: Cli, expect: int) -> tuple[Any, float]:
    started = time.monotonic()
    report = cli.json("doctor", expect=expect)
    return report, time.monotonic() - started


def test_masters_without_replicas_are_warned_and_a_failing_cluster_fails(
    bare_cluster: LocalCluster,
) -> None:
    cli = Cli(bare_cluster.url, swarm=SWARM)
    report = cli.json("doctor")  # it works: warnings only
    assert report["ok"] is True and report["cluster"]["replicas"] == 0
    no_replica = [w for w in report["warnings"] if "has no replica" in w]
    assert len(no_replica) == 3
    # The swarm's master gives up slots that no node then serves: it says cluster_state:fail
    # (and refuses every command, the swarm's too).
    slot = key_slot(f"{{{SWARM}}}".encode())  # (the hash tag of every key of the swarm)
    with redis.Redis(port=bare_cluster.ports[0]) as client:
        (owner, last) = next((int(e[2][1]), int(e[1])) for e in client.execute_command(
            "CLUSTER", "SLOTS") if int(e[0]) <= slot <= int(e[1]))  # fmt: skip
    node = bare_cluster.node(owner)
    with redis.Redis(port=owner) as client:
        client.execute_command("CLUSTER", "DELSLOTSRANGE", last - 99, last)
    try:
        until(lambda: _state(node.port or 0) == "fail", "cluster_state fail")
        report, took = _timed(cli, expect=1)
        assert took < PROMPT_S, f"{took:.1f} s: the doctor waited on the cluster's retries"
        assert report["ok"] is False and report["cluster"]["state"] == "fail"
        assert any(f"cluster_state is fail on 127.0.0.1:{node.port}" in w
                   for w in report["warnings"])  # fmt: skip
        # The swarm's keys (on the failing master) could not be read: said, not raised.
        assert report["corrupt_records"]["checked"] is False
        # (its checks run with fewer retries, shown as the URL given: no '?retries=2')
        assert "retries=" not in json.dumps(report), report
        assert "warning: cluster_state is fail" in _rows(cli, expect=1)["warning"]
    finally:  # (mended for the next test)
        with redis.Redis(port=owner) as client:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", last - 99, last)
        bare_cluster.wait_ok()


def test_a_dead_master_is_named_at_once(bare_cluster: LocalCluster) -> None:
    bare_cluster.wait_ok()
    dead = bare_cluster.nodes[0]
    dead.kill()
    alive = [node.port or 0 for node in bare_cluster.nodes[1:]]
    until(lambda: all(_state(port) == "fail" for port in alive), "the others see it failed")
    cli = Cli(bare_cluster.url, swarm=SWARM)
    report, took = _timed(cli, expect=1)
    assert took < PROMPT_S, f"{took:.1f} s: the doctor waited on the cluster's retries"
    assert report["ok"] is False
    assert report["cluster"]["state"] == "fail" and report["cluster"]["answering"] == 2
    assert report["cluster"]["nodes"] == 3
    assert any(w.startswith(f"cluster node 127.0.0.1:{dead.port} does not answer")
               for w in report["warnings"])  # fmt: skip
    rows = _rows(cli, expect=1)
    assert rows["cluster"].startswith("fail;") and "2 of 3 nodes answering" in rows["cluster"]
