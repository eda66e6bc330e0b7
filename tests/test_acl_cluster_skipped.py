"""``apply_role`` on a Cluster says which nodes it left without the user, and does not wait
out a minute for one that does not answer. It left the nodes CLUSTER NODES flags ``fail``,
``noaddr`` or ``handshake`` out without a word (the user, told nothing, lacked the role on
them: a failover to one locked the agents out), and a node down but not flagged yet (PFAIL,
or its cluster-node-timeout not passed) held the apply for the URL's retries (~53 s), then
failed it, after the nodes before it had the user. Now a replica flagged down is named in
``skipped`` without being tried, one that does not answer is tried once for the connect
timeout and named (``did not answer (...)``), and a master holding hash slots that does not
answer fails the apply at once, naming it, before any node got the user.

A cluster of its own with a cluster-node-timeout of 60 s, so that a paused node stays
unflagged for the tests that need it; the tests that need a flag shorten it at run time."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import ConnectionFailed, Settings, apply_role
from redis_swarm._connect import sync_client

from ._cli import Cli
from ._cluster import LocalCluster, start_cluster
from ._servers import RedisServer, ServerFactory, free_port
from ._waiting import until

SWARM = "acl-cluster-skipped"
NODE_TIMEOUT_MS = 60_000
# A node that stops answering leaves the apply within this (the URL's connect_timeout=1,
# tried once; plus a loaded machine's slack). The old code took the URL's retries: ~53 s.
QUICK_S = 8.0


@pytest.fixture(scope="module")
def cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    made = start_cluster(servers, node_timeout_ms=NODE_TIMEOUT_MS)
    yield made
    made.close()
    for node in made.nodes:
        node.stop()


def _direct(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


def _asked(url: str) -> int:
    """The port of the node the apply asks for CLUSTER NODES (its client's default node)."""
    client: Any = sync_client(Settings.from_url(url))
    try:
        return int(client.get_default_node().port)
    finally:
        client.close()


def _flags(asked: int, port: int) -> list[str]:
    """The flags the node on ``asked`` gives the node on ``port`` in CLUSTER NODES."""
    with _direct(asked) as client:
        nodes = client.execute_command("CLUSTER NODES")
    address = f"127.0.0.1:{port}"
    return next((str(n["flags"]).split(",") for a, n in nodes.items() if a == address), [])


def _node_timeout(ports: list[int], ms: int) -> None:
    for port in ports:
        with _direct(port) as client:
            client.config_set("cluster-node-timeout", ms)


def _has_user(port: int, user: str) -> bool:
    with _direct(port) as client:
        return client.acl_getuser(user) is not None


def _live(cluster: LocalCluster) -> list[RedisServer]:
    return [node for node in cluster.nodes if node.proc.poll() is None]


def _replica(cluster: LocalCluster) -> RedisServer:
    return cluster.replica_of(cluster.masters()[0])


def test_a_replica_that_does_not_answer_is_skipped_within_seconds(cluster: LocalCluster) -> None:
    cluster.wait_ok()
    url = f"{cluster.url}?connect_timeout=1"
    replica = _replica(cluster)
    where = f"127.0.0.1:{replica.port}"
    others = {f"127.0.0.1:{node.port}" for node in cluster.nodes if node is not replica}
    cli = Cli(url, swarm=SWARM)
    replica.proc.send_signal(signal.SIGSTOP)  # it takes connections and never answers
    try:
        started = time.monotonic()
        made = apply_role(Settings.from_url(url, swarm=SWARM), "worker", "silent-replica")
        assert time.monotonic() - started < QUICK_S
        assert made.skipped == {where: "did not answer (timed out)"}
        assert set(made.persisted) == others
        assert "fail" not in " ".join(_flags(_asked(url), replica.port or 0))  # (not flagged)

        started = time.monotonic()
        out = cli("acl", "--role", "worker", "--user", "silent-replica-cli", "--apply")
        assert time.monotonic() - started < QUICK_S
        (warning,) = [line for line in out.stderr.splitlines() if where in line]
        assert warning.startswith(f"warning: not applied on node {where}: did not answer")
        assert "user 'silent-replica-cli' is there as it was" in warning
        assert warning.endswith("run this command again once the node is up in the cluster")
        assert where not in out.stdout
    finally:
        replica.proc.send_signal(signal.SIGCONT)
    assert not _has_user(replica.port or 0, "silent-replica")  # what the warning was for
    again = apply_role(Settings.from_url(url, swarm=SWARM), "worker", "silent-replica")
    assert again.skipped == {} and where in again.persisted
    assert _has_user(replica.port or 0, "silent-replica")


def test_a_master_that_does_not_answer_fails_at_once_naming_it(cluster: LocalCluster) -> None:
    """The cluster still counts it healthy: its slots' clients are sent to it, and the swarm's
    library is loaded on every master. Skipping it would leave them refused, and the library's
    load would wait out the retries for it: the apply fails at once, nothing applied."""
    cluster.wait_ok()
    masters = cluster.masters()
    asked = _asked(cluster.url)
    master = next(port for port in masters if port != asked)
    # The URL names the other masters: the cluster client's own start does not wait for it.
    hosts = ",".join(f"127.0.0.1:{port}" for port in masters if port != master)
    url = f"redis+cluster://{hosts}?connect_timeout=1"
    where = f"127.0.0.1:{master}"
    cluster.node(master).proc.send_signal(signal.SIGSTOP)
    try:
        for version in (None, (7, 0)):  # (given, the servers are not asked their version first)
            started = time.monotonic()
            with pytest.raises(ConnectionFailed) as caught:
                apply_role(Settings.from_url(url, swarm=SWARM), "worker", "dead-master",
                           version=version)  # fmt: skip
            assert time.monotonic() - started < QUICK_S
            message = str(caught.value)
            assert message.startswith(
                f"cannot apply the user on {where}, a master holding hash slots: did not answer"
            )
            assert "nothing was applied" in message and message.endswith("run this command again")
        out = Cli(url, swarm=SWARM)("acl", "--role", "worker", "--user", "dead-master", "--apply",
                                    expect=None)  # fmt: skip
        assert out.code != 0 and f"cannot apply the user on {where}" in out.stderr
    finally:
        cluster.node(master).proc.send_signal(signal.SIGCONT)
    assert not any(_has_user(node.port or 0, "dead-master") for node in cluster.nodes)


def test_a_replica_flagged_pfail_that_does_not_answer_is_skipped(cluster: LocalCluster) -> None:
    """PFAIL: the node asked has not heard from it within its cluster-node-timeout, and most
    masters do not agree yet (here the others' timeout is a minute). It is tried (the node
    asked alone says so), and skipped when it does not answer this machine either."""
    cluster.wait_ok()
    url = f"{cluster.url}?connect_timeout=1"
    asked = _asked(url)
    replica = _replica(cluster)
    where = f"127.0.0.1:{replica.port}"
    replica.proc.send_signal(signal.SIGSTOP)
    _node_timeout([asked], 1000)
    try:
        until(lambda: "fail?" in _flags(asked, replica.port or 0), "the asked node's PFAIL")
        started = time.monotonic()
        made = apply_role(Settings.from_url(url, swarm=SWARM), "worker", "pfail")
        assert time.monotonic() - started < QUICK_S
        assert made.skipped == {
            where: "did not answer (timed out), and the cluster reports it not answering, "
            "not failed yet (fail?)"
        }
        assert where not in made.persisted and len(made.persisted) == len(cluster.nodes) - 1
    finally:
        _node_timeout([asked], NODE_TIMEOUT_MS)
        replica.proc.send_signal(signal.SIGCONT)
    until(lambda: not _flags(asked, replica.port or 0)[-1].startswith("fail"), "PFAIL cleared")


def test_a_master_only_the_asked_node_flags_pfail_is_applied(cluster: LocalCluster) -> None:
    """The node asked cannot reach a healthy master's cluster bus (a network problem between
    the two), which this machine reaches: it flags the master 'fail?' (its timeout shortened;
    the others' is a minute, and they hear from it). That failed every apply, the master
    untried. Now it is tried, and answers. The master announces a bus port that takes
    connections and never answers: the node asked sends its PINGs there, and no PONG comes."""
    cluster.wait_ok()
    asked = _asked(cluster.url)
    master = next(port for port in cluster.masters() if port != asked)
    silent_bus = socket.create_server(("127.0.0.1", 0))  # (listens; accepts, in its backlog)
    with _direct(master) as client:
        client.config_set("cluster-announce-bus-port", silent_bus.getsockname()[1])
    _node_timeout([asked], 1000)
    try:
        # (Redis 7.0 clears the flag now and then, its PONGs on the master's own link, and sets
        # it again within seconds: an apply counts when the flag held before and after it.)
        for _ in range(5):
            until(lambda: "fail?" in _flags(asked, master), "the asked node's PFAIL of it")
            settings = Settings.from_url(cluster.url, swarm=SWARM)
            made = apply_role(settings, "worker", "pfail-master")
            if "fail?" in _flags(asked, master):
                break
        else:
            pytest.fail("the asked node's PFAIL never held through an apply")
        assert made.skipped == {}
        assert set(made.persisted) == {f"127.0.0.1:{node.port}" for node in cluster.nodes}
        assert _has_user(master, "pfail-master")
    finally:
        _node_timeout([asked], NODE_TIMEOUT_MS)
        with _direct(master) as client:
            client.config_set("cluster-announce-bus-port", 0)  # (its own again)
        silent_bus.close()
    until(lambda: "fail?" not in _flags(asked, master), "PFAIL cleared")


def test_nodes_flagged_fail_or_handshake_are_named(cluster: LocalCluster) -> None:
    cluster.wait_ok()
    asked = _asked(cluster.url)
    replica = _replica(cluster)
    where = f"127.0.0.1:{replica.port}"
    # A MEET to a port nobody listens on: a node in handshake for the asked node's
    # cluster-node-timeout (a minute; the others', shortened, flag the replica killed failed
    # within seconds, and tell the asked node).
    joining = free_port()
    with _direct(asked) as client:
        # (its bus port given: the default, port + 10000, may be above 65535)
        client.execute_command("CLUSTER", "MEET", "127.0.0.1", joining, free_port())
    newcomer = f"127.0.0.1:{joining}"
    live = [node.port or 0 for node in cluster.nodes if node is not replica]
    _node_timeout([port for port in live if port != asked], 1000)
    replica.kill()
    try:
        until(lambda: "fail" in _flags(asked, replica.port or 0), "the replica flagged fail")
        assert "handshake" in _flags(asked, joining)
        made = apply_role(Settings.from_url(cluster.url, swarm=SWARM), "worker", "flagged")
        assert made.skipped == {
            where: "the cluster reports it failed (fail)",
            newcomer: "it is still joining the cluster (handshake)",
        }
        assert set(made.persisted) == {f"127.0.0.1:{port}" for port in live}

        data = Cli(cluster.url, swarm=SWARM).json("acl", "--role", "worker", "--user", "flagged",
                                                  "--apply")  # fmt: skip
        assert {(n["node"], n["reason"]) for n in data["skipped"]} == set(made.skipped.items())
    finally:
        replica.restart()
        _node_timeout([node.port or 0 for node in _live(cluster)], NODE_TIMEOUT_MS)
    until(lambda: "fail" not in _flags(asked, replica.port or 0), "the replica back")
    again = apply_role(Settings.from_url(cluster.url, swarm=SWARM), "worker", "flagged")
    assert where in again.persisted and where not in again.skipped
