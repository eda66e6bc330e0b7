"""``swarm doctor`` on a Redis Cluster whose replica does not follow its master: with the
default user off on the master and no masteruser/masterauth, the replica's PSYNC is refused
(NOAUTH), its ``master_link_status`` is down, and it cannot take the slots over; the doctor
counted it "up" all the same (CLUSTER NODES does not flag it) and said nothing. Now it warns,
naming the replica and what to do, counts it out of the replicas up, and does not promise
that a replica takes over a master of it that does not answer. And the redis-cli commands it
gives log in as the URL's user (``--user USER --askpass``), as docs/deployment.md's do: the
default user is off on the documented setup, and a bare one stops at NOAUTH."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import ConfigError, Settings, _durability, _topology, topology

from ._cli import Cli
from ._cluster import LocalCluster, redis_cli, start_cluster
from ._servers import ServerFactory
from ._waiting import until

pytestmark = pytest.mark.slow

SWARM = "links"
ADMIN, PASSWORD = "ops", "ops-secret-1"
ADMIN_ACL = ("on", f">{PASSWORD}", "~*", "&*", "+@all")


def _node(port: int, user: str | None = ADMIN) -> redis.Redis:
    password = PASSWORD if user else None
    return redis.Redis(port=port, username=user, password=password, decode_responses=True)


def _replication(port: int) -> dict[str, Any]:
    with _node(port) as client:
        return dict(client.info("replication"))


@pytest.fixture(scope="module")
def cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    """3 masters, 3 replicas, an admin user on every node. A replica that lost its master
    for long (or never had it since it started) does not take over (the default validity
    factor, not the suite's 0): as on a real deployment. The tests break it, in order."""
    found = start_cluster(servers, extra=["--cluster-replica-validity-factor", "10"])
    for port in found.ports:
        with _node(port, user=None) as client:
            client.execute_command("ACL", "SETUSER", ADMIN, *ADMIN_ACL)
    yield found
    found.close()
    for node in found.nodes:
        node.stop()


def _url(cluster: LocalCluster) -> str:
    return cluster.url.replace("://", f"://{ADMIN}:{PASSWORD}@")


def _link_warnings(warnings: Any) -> list[str]:
    return [w for w in warnings if "does not follow its master" in w]


def test_a_healthy_cluster_has_no_replica_link_warning(cluster: LocalCluster) -> None:
    found = topology(Settings.from_url(_url(cluster)))
    assert found.cluster is not None
    assert _link_warnings(found.warnings) == [] and found.cluster.unlinked == ()
    assert not [w for w in found.warnings if "default user" in w]
    assert found.cluster.replicas_up == 3
    assert found.cluster.to_dict()["replica_links_down"] == []
    # A user that may not run INFO: not checked, said so (and counted as before).
    for port in cluster.ports:
        with _node(port) as client:
            client.execute_command(
                "ACL", "SETUSER", "peek", "on", ">peek-1", "~*", "+@all", "-info"
            )
    peek = topology(Settings.from_url(cluster.url.replace("://", "://peek:peek-1@")))
    assert peek.cluster is not None and peek.cluster.unlinked is None
    assert peek.cluster.to_dict()["replica_links_down"] == _topology.REPLICA_LINKS_NOT_VISIBLE
    assert peek.cluster.replicas_up == 3 and not peek.failing


def test_a_replica_that_cannot_log_in_to_its_master_is_warned_of(cluster: LocalCluster) -> None:
    master = cluster.masters()[0]
    replica = cluster.replica_of(master).port or 0
    # The documented ACL setup on the master, without masteruser/masterauth on its replica:
    # the replica's next login (here: its link closed) is refused.
    with _node(master) as client:
        client.execute_command("ACL", "SETUSER", "default", "off", "resetpass")
    # Its link still up (logged in before): said now, before it breaks.
    found = topology(Settings.from_url(_url(cluster)))
    [timed] = [w for w in found.warnings if "logged in as the default user" in w]
    assert timed.startswith(
        f"cluster replica 127.0.0.1:{replica} follows its master 127.0.0.1:{master} logged in "
        "as the default user (it has no masteruser), which is off"
    ), timed
    assert "masterauth" in timed and _link_warnings(found.warnings) == []

    def refused() -> bool:  # (a link opened before the change logged in: closed again)
        with _node(master) as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")
        time.sleep(1.5)  # (the replica tries again every second)
        said = _replication(replica)
        return bool(said["master_link_status"] == "down" and said["master_sync_in_progress"] == 0)

    until(refused, "the link down, its logins refused")
    cli = Cli(_url(cluster), swarm=SWARM)
    # (a replica refused tries again every second, and may be caught mid-attempt: syncing)
    reports: list[dict[str, Any]] = []

    def warned() -> bool:
        reports.append(cli.json("doctor"))
        return bool(_link_warnings(reports[-1]["warnings"]))

    until(warned, "the doctor's warning on the link")
    report = reports[-1]
    [warning] = _link_warnings(report["warnings"])
    assert warning.startswith(
        f"cluster replica 127.0.0.1:{replica} does not follow its master 127.0.0.1:{master} "
    ), warning
    assert "cannot take them over" in warning and "masteruser" in warning
    assert "masterauth" in warning and "docs/security.md" in warning
    said = report["cluster"]
    assert said["replicas"] == 3 and said["replicas_up"] == 2
    assert said["replica_links_down"] == [f"127.0.0.1:{replica}"]
    # Not "add a replica" for its master: the warning on the link says what to do.
    assert not [w for w in report["warnings"] if w.startswith(f"master 127.0.0.1:{master} ")]
    row = cli("doctor", env={"COLUMNS": "400"}).stdout
    assert "3 masters, 3 replicas, 2 of them up; 6 of 6 nodes answering" in row
    # The walk's case: the replica restarted (its link never up since), then its master
    # dies: the doctor said "a replica of it takes its slots over"; none can.
    restarted = cluster.node(replica)
    restarted.restart()  # (its users were in memory only: the admin made again)
    with _node(replica, user=None) as client:
        client.execute_command("ACL", "SETUSER", ADMIN, *ADMIN_ACL)
    until(lambda: _replication(replica).get("master_link_down_since_seconds") == -1,
          "the restarted replica's link never up")  # fmt: skip
    cluster.node(master).kill()
    report = cli.json("doctor", expect=1)
    [down] = [w for w in report["warnings"] if w.startswith(f"cluster node 127.0.0.1:{master} ")]
    assert "takes its slots over" not in down, down
    assert f"no replica of it can take its slots over (127.0.0.1:{replica}" in down, down
    assert report["ok"] is False and report["cluster"]["replicas_up"] == 2
    assert report["cluster"]["replica_links_down"] == [f"127.0.0.1:{replica}"]


def test_the_redis_cli_commands_log_in_as_the_urls_user() -> None:
    admin = Settings.from_url(f"redis+cluster://{ADMIN}:{PASSWORD}@127.0.0.1:7000")
    assert _durability.redis_cli_login(admin) == "--user ops --askpass "
    assert _durability.redis_cli_login(Settings.from_url("redis+cluster://127.0.0.1:7000")) == ""
    forget = _topology._forget("127.0.0.1:7001", "abc", "127.0.0.1:7000", admin)
    assert forget.endswith(
        "redis-cli --user ops --askpass --cluster call 127.0.0.1:7000 CLUSTER FORGET abc"
    )
    with pytest.raises(ConfigError) as caught:
        _durability.cluster_plan(
            {"127.0.0.1:7000": {"role": "master", "connected_slaves": 0}}, admin.url
        )
    assert "redis-cli --user ops --askpass --cluster add-node NEW EXISTING" in str(caught.value)
    for said in (forget, str(caught.value)):
        assert PASSWORD not in said


def test_the_login_works_pasted_on_a_node_whose_default_user_is_off(
    cluster: LocalCluster,
) -> None:
    """The words doctor gives, run as written on a node whose default user is off, the
    password typed at --askpass (here: on stdin)."""
    alive = next(p for p in cluster.ports if cluster.node(p).proc.poll() is None)
    with _node(alive) as client:
        client.execute_command("ACL", "SETUSER", "default", "off", "resetpass")
    login = _durability.redis_cli_login(Settings.from_url(_url(cluster))).split()
    run = subprocess.run(
        [redis_cli(), *login, "--cluster", "call", f"127.0.0.1:{alive}", "PING"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode == 0 and "PONG" in run.stdout, run
    bare = subprocess.run(
        [redis_cli(), "--cluster", "call", f"127.0.0.1:{alive}", "PING"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "PONG" not in bare.stdout, bare
