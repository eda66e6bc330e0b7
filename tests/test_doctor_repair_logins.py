"""The repair commands ``swarm doctor`` prints can be run as they are printed.

A worker's doctor on a cluster named the worker itself in ``redis-cli --user WORKER --askpass
--cluster add-node ...``, which only an admin may run: now the command logs in as an admin
user (``--user ADMIN --askpass``), said so, wherever the doctor learnt its user may not run it
(no node let it run CLUSTER INFO; INFO refused: a worker, which may repair no stream). The DEL
of a damaged stream said ``redis-cli -u URL``, which redis-cli refuses for a unix socket
("Invalid URI scheme"): it now reaches the server as the URL does (``-s PATH -n DB``, a
cluster's node with ``-c``). And a Sentinel row whose replicas are all down no longer says
CKQUORUM's bare ``OK`` of a failover that has nothing to promote. Real servers, but the
words' own checks."""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_swarm import ConfigError, Settings, Swarm, _durability, apply_role
from redis_swarm._acl import ROLES, WITHHELD, role_commands
from redis_swarm._keys import Keys
from redis_swarm._topology import SentinelView

from ._cli import Cli
from ._cluster import LocalCluster, redis_cli, start_cluster
from ._role_users import role_urls
from ._sentinel import LocalSentinel, guarded_sentinel
from ._servers import RedisServer, ServerFactory
from ._waiting import until

SWARM = "logins"
K = Keys(SWARM)
ADMIN_PASSWORD = "admin-secret-123456"
CKQUORUM_OK = "OK 3 usable Sentinels. Quorum and failover authorization can be reached"


def test_the_doctors_assumptions_of_the_roles_hold() -> None:
    """What the doctor infers from a refusal: INFO is withheld from the worker alone, and no
    role but admin may run the cluster repairs (nor CLUSTER INFO)."""
    assert [role for role in ROLES if "info" in WITHHELD[role]] == ["worker"]
    for role in ROLES:
        if role != "admin":
            held = role_commands(role)
            assert not {"cluster|info", "cluster|forget", "cluster|meet", "config|set"} & held
    # ... and the words of a user that may not run the command name an admin, never it.
    worker = Settings.from_url("redis+cluster://legal-worker:pw-123@127.0.0.1:7000")
    assert _durability.redis_cli_login(worker, may_run=False) == "--user ADMIN --askpass "


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://127.0.0.1:7000/2", "redis-cli -u URL "),
        ("unix:///tmp/s%20x/r.sock?db=3", "redis-cli -s '/tmp/s x/r.sock' -n 3 "),
        ("unix:///tmp/r.sock", "redis-cli -s /tmp/r.sock "),
        ("embedded:///tmp/home", "redis-cli -s /tmp/home/redis.sock "),
        (
            "redis+cluster://ops:pw-123@10.0.0.5:7000,10.0.0.6:7000",
            "redis-cli -c -h 10.0.0.5 -p 7000 --user ops --askpass ",
        ),
        ("redis+sentinel://10.0.0.9:26379/mymaster/1", "redis-cli -h MASTER -p PORT -n 1 "),
        (
            "rediss://ops:pw-123@h:7000?ssl_ca_certs=/c/ca.pem",
            "redis-cli -u URL --tls --cacert /c/ca.pem --user ops --askpass ",
        ),
    ],
)
def test_the_cli_words_reach_every_kind_of_server(url: str, words: str) -> None:
    assert _durability.redis_cli(Settings.from_url(url)) == words


def test_a_sentinel_master_named_is_reached() -> None:
    settings = Settings.from_url("redis+sentinel://10.0.0.9:26379/mymaster")
    said = _durability.redis_cli(settings, may_run=False, master="10.0.0.1:6380")
    assert said == "redis-cli -h 10.0.0.1 -p 6380 --user ADMIN --askpass "


def test_a_workers_strict_cluster_error_names_an_admin() -> None:
    """A strict handle's plan on a cluster with a master alone: for a worker (its INFO
    refused: only the replica count, REPLICA_PROBE's), the add-node names an admin."""
    url = Settings.from_url("redis+cluster://legal-worker:pw-123@127.0.0.1:7000").url
    with pytest.raises(ConfigError) as caught:
        _durability.cluster_plan({"127.0.0.1:7000": {"connected_slaves": 0}}, url)
    said = str(caught.value)
    assert "add one as an admin user (redis-cli --user ADMIN --askpass --cluster add-node" in said
    assert "legal-worker" not in said.partition("add one")[2], said


def test_a_sentinel_row_with_no_replica_up_is_no_bare_ok() -> None:
    from redis_swarm.cli._server import _topology_line

    view = SentinelView(
        "mymaster", 3, 3, master="10.0.0.1:6380", sentinels=3, quorum=2, replicas=1,
        replicas_up=0, failover=CKQUORUM_OK, failover_ok=True,
    )  # fmt: skip
    said = f"the sentinels agree ({CKQUORUM_OK}), but no replica is up to take over"
    assert view.to_dict()["failover"] == said
    assert _topology_line(view).endswith(f"failover: {said}")
    up = SentinelView(
        "mymaster", 3, 3, master="10.0.0.1:6380", sentinels=3, quorum=2, replicas=1,
        replicas_up=1, failover=CKQUORUM_OK, failover_ok=True,
    )  # fmt: skip
    assert up.to_dict()["failover"] == CKQUORUM_OK


# --- on real servers


def _stream_repair(report: dict[str, Any], key: str) -> str:
    """The DEL command of the warning on ``key`` (a stream key of another type)."""
    (warning,) = [w for w in report["warnings"] if f"({key}) is not a stream" in w]
    match = re.search(r"as a shard, coordinator or admin user: (redis-cli .*?) \(it holds", warning)
    assert match, warning
    return match.group(1)


def _damage(url: str, key: str, raw: Any = None) -> None:
    """The swarm at ``url`` with ``key`` of another type (``raw``: a client of the server,
    one of the URL by default)."""
    with Swarm(url, swarm=SWARM) as swarm:
        swarm.post_task("q", "one")
    with contextlib.closing(raw or redis.Redis.from_url(url)) as client:
        client.delete(key)
        client.set(key, "not a stream")


@pytest.fixture
def unix_server(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start(unix=True)
    yield server
    server.stop()


def test_the_del_of_a_stream_on_a_unix_socket_runs_as_printed(unix_server: RedisServer) -> None:
    url = f"{unix_server.url}?db=3"
    _damage(url, K.broadcast)
    report = Cli(url, swarm=SWARM).json("doctor", "--quick")
    command = _stream_repair(report, K.broadcast)
    assert command.startswith(f"redis-cli -s {shlex.quote(str(unix_server.socket_path))} -n 3 ")
    done = subprocess.run(
        [redis_cli(), *shlex.split(command)[1:]],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "1", (command, done)
    assert Cli(url, swarm=SWARM).json("doctor", "--quick")["streams"].startswith("ok:")


def test_a_workers_stream_repair_logs_in_as_an_admin(acl_server: RedisServer) -> None:
    """A worker's doctor (INFO refused) names an admin in the DEL; pasted with an admin's
    password, it deletes the key."""
    with contextlib.closing(acl_server.client()) as admin:
        admin.flushall()
        admin.acl_setuser(
            "ADMIN", enabled=True, passwords=[f"+{ADMIN_PASSWORD}"], keys=["*"],
            channels=["*"], commands=["+@all"],
        )  # fmt: skip
    worker = role_urls(acl_server, SWARM, "rl", roles=("worker",))["worker"]
    _damage(acl_server.url, K.broadcast)
    report = Cli(worker, swarm=SWARM).json("doctor", "--quick")
    assert report["user"] == "rl-worker"
    command = _stream_repair(report, K.broadcast)
    assert command == f"redis-cli -u URL --user ADMIN --askpass DEL '{K.broadcast}'", command
    words = shlex.split(command.replace("URL", acl_server.url, 1))
    done = subprocess.run(
        [redis_cli(), *words[1:]],
        input=ADMIN_PASSWORD + "\n", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("1"), (command, done)


@pytest.fixture(scope="module")
def lone_cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    """3 masters, no replica: the doctor advises an add-node for each."""
    found = start_cluster(servers, masters=3, replicas=0)
    yield found
    found.close()
    for node in found.nodes:
        node.stop()


@pytest.mark.slow
def test_a_workers_cluster_doctor_names_an_admin_in_the_add_node(
    lone_cluster: LocalCluster,
) -> None:
    made = apply_role(Settings.from_url(lone_cluster.url, swarm=SWARM), "worker", "rl-worker")
    worker = lone_cluster.url.replace("://", f"://rl-worker:{made.user.password}@")
    report = Cli(worker, swarm=SWARM).json("doctor", "--quick", expect=None)
    adds = [w for w in report["warnings"] if "--cluster add-node" in w]
    assert len(adds) == 3, report["warnings"]
    for warning in adds:
        assert "add one as an admin user (redis-cli --user ADMIN --askpass --cluster add-node" in (
            warning
        ), warning
        assert "rl-worker" not in warning, warning
    # An admin's doctor (here the default user, all rights) logs in as its own user.
    report = Cli(lone_cluster.url, swarm=SWARM).json("doctor", "--quick", expect=None)
    adds = [w for w in report["warnings"] if "--cluster add-node" in w]
    assert adds and all("as an admin user (redis-cli --cluster add-node" in w for w in adds)


@pytest.mark.slow
def test_a_cluster_stream_repair_reaches_a_node_with_c(lone_cluster: LocalCluster) -> None:
    _damage(lone_cluster.url, K.broadcast, lone_cluster.client())
    report = Cli(lone_cluster.url, swarm=SWARM).json("doctor", "--quick", expect=None)
    command = _stream_repair(report, K.broadcast)
    first = lone_cluster.ports[0]
    assert command == f"redis-cli -c -h 127.0.0.1 -p {first} DEL '{K.broadcast}'", command
    done = subprocess.run(
        [redis_cli(), *shlex.split(command)[1:]],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "1", (command, done)


@pytest.fixture
def sentinel(servers: ServerFactory) -> Iterator[LocalSentinel]:
    with guarded_sentinel(servers) as setup:
        yield setup


@pytest.mark.slow
def test_a_sentinel_whose_replica_is_down_says_no_replica_takes_over(
    sentinel: LocalSentinel,
) -> None:
    sentinel.wait_ready()
    sentinel.replica.stop()
    cli = Cli(sentinel.url, swarm=SWARM)

    def replica_down() -> bool:
        return bool(cli.json("doctor", "--quick", expect=None)["sentinel"]["replicas_up"] == 0)

    until(replica_down, "the sentinels see the replica down")
    time.sleep(0.1)
    report = cli.json("doctor", "--quick", expect=None)
    failover = report["sentinel"]["failover"]
    assert failover.startswith("the sentinels agree (OK "), failover
    assert failover.endswith("but no replica is up to take over"), failover
    rows = cli("doctor", "--quick", env={"COLUMNS": "400"}, expect=None).stdout
    assert "failover: OK" not in rows and "no replica is up to take over" in rows, rows
