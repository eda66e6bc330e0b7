"""Three checks of the connection layer, on real servers.

1. The sync cluster client health-checks its nodes' connections as every other client does:
   redis-py drops ``health_check_interval`` from what it hands a sync cluster's nodes, so a
   node's connection idle for any time was used without a PING (the asyncio cluster client
   checked).
2. A Sentinel service name that no sentinel that answers monitors fails at once, with a
   ConfigError naming the services they monitor, not after the 53 s kept for a failover; a
   known service whose master is down is still retried (a failover).
3. The TLS handshake waits ``connect_timeout`` at most, on every client: redis-py before 8.2
   (all that Python 3.10 installs) made the sync client's under ``socket_timeout``, so a
   rediss:// URL to a plain port waited 10 s, not ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from redis.cluster import RedisCluster

from redis_swarm import AsyncSwarm, ConfigError, ConnectionFailed, Settings, Swarm
from redis_swarm._connect import async_client, sync_client

from ._cluster import LocalCluster
from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port, system_redis
from ._tls import TlsServer, make_pki
from .test_connect_fail_fast import _lone_sentinel

SWARM = "connect-checks"


def _ping(target: str | Settings, kind: str) -> float:
    if kind == "sync":
        with Swarm(target, swarm=SWARM) as swarm:
            return swarm.ping()

    async def ping() -> float:
        async with AsyncSwarm(target, swarm=SWARM) as swarm:
            return await swarm.ping()

    return asyncio.run(ping())


def _failure(target: str | Settings, kind: str, error: type[Exception]) -> tuple[str, float]:
    """The message of the ``error`` a ping on ``target`` ends with, and how long it took."""
    start = time.monotonic()
    with pytest.raises(error) as info:
        _ping(target, kind)
    return str(info.value), time.monotonic() - start


# --- 1. the sync cluster client's health check

KEY = "health-checked"


def _calls(port: int, command: str) -> dict[str, int]:
    """The calls (and rejected calls) of ``command`` that the server on ``port`` counts."""
    with contextlib.closing(redis.Redis(port=port, decode_responses=True)) as admin:
        stats: dict[str, Any] = admin.info("commandstats").get(f"cmdstat_{command}", {})
    return {"calls": int(stats.get("calls", 0)), "rejected": int(stats.get("rejected_calls", 0))}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cluster_nodes_idle_connection_is_health_checked(cluster_url: str, kind: str) -> None:
    """A node's connection idle longer than ``health_check_interval`` is PINGed before its
    next command: the node counts the PING. The sync client's nodes sent none."""
    settings = Settings.from_url(cluster_url, swarm=SWARM, health_check_interval=1)
    if kind == "sync":
        client = sync_client(settings)
        try:
            assert client.get(KEY) is None
            port = int(client.get_node_from_key(KEY).port)  # type: ignore[union-attr]
            before = _calls(port, "ping")
            time.sleep(1.2)
            assert client.get(KEY) is None
            after = _calls(port, "ping")
        finally:
            client.close()
    else:

        async def run() -> tuple[dict[str, int], dict[str, int]]:
            client = async_client(settings)
            try:
                assert await client.get(KEY) is None
                port = int(client.get_node_from_key(KEY).port)  # type: ignore[union-attr]
                before = _calls(port, "ping")
                await asyncio.sleep(1.2)
                assert await client.get(KEY) is None
                return before, _calls(port, "ping")
            finally:
                await client.aclose()

        before, after = asyncio.run(run())
    assert after["calls"] == before["calls"] + 1, (before, after)


def test_a_sync_cluster_checks_a_connection_the_node_closed(cluster_url: str) -> None:
    """A node's connection closed by the node while idle (CLIENT KILL; a server's ``timeout``
    does so too) is replaced before the next command (redis-py's pool sees it closed); the
    new one has just answered its handshake, so it counts as checked (no PING, as on every
    other client), and the command is sent once."""
    settings = Settings.from_url(cluster_url, swarm=SWARM, health_check_interval=1)
    client = sync_client(settings)
    try:
        assert client.get(KEY) is None
        port = int(client.get_node_from_key(KEY).port)  # type: ignore[union-attr]
        time.sleep(1.2)
        with contextlib.closing(redis.Redis(port=port)) as admin:
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        before = {command: _calls(port, command) for command in ("ping", "get")}
        assert client.get(KEY) is None
        after = {command: _calls(port, command) for command in ("ping", "get")}
    finally:
        client.close()
    assert after["ping"]["calls"] == before["ping"]["calls"], (before, after)
    assert after["get"]["calls"] == before["get"]["calls"] + 1, (before, after)


# --- 2. a Sentinel service name no sentinel monitors


@pytest.fixture(scope="module")
def watching(servers: ServerFactory) -> Iterator[list[RedisServer]]:
    """Two real sentinels: the first monitors 'down-one' (a master on a port nobody listens
    on: known, and down), the second nothing."""
    sentinels = [_lone_sentinel(servers), _lone_sentinel(servers)]
    with contextlib.closing(sentinels[0].client()) as admin:
        admin.sentinel_monitor("down-one", "127.0.0.1", free_port(), 1)
        admin.sentinel_set("down-one", "down-after-milliseconds", 100)
        deadline = time.monotonic() + 10
        while "s_down" not in cast(dict[str, Any], admin.sentinel_master("down-one"))["flags"]:
            assert time.monotonic() < deadline, "the sentinel never saw its master down"
            time.sleep(0.05)
    yield sentinels
    for sentinel in sentinels:
        sentinel.stop()


def _sentinel_url(sentinels: list[RedisServer], service: str, *more_ports: int) -> str:
    ports = [*(s.port for s in sentinels), *more_ports]
    return f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in ports)}/{service}"


def _shown(url: str) -> str:
    """``url`` as an error shows it."""
    return Settings.from_url(url).url


def _commands(admin: redis.Redis) -> int:
    """The commands the server of ``admin`` processed so far (a sentinel counts no
    commandstats), this INFO included."""
    return int(admin.info("stats")["total_commands_processed"]) + 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_service_no_sentinel_monitors_fails_at_once(
    watching: list[RedisServer], kind: str
) -> None:
    """Both sentinels answer, neither monitors 'nobody', and a third sentinel of the URL does
    not answer: no retry makes one monitor it. It used to be retried for a failover's 53 s
    (the default retries of a Sentinel URL, as here)."""
    closed = free_port()
    url = _sentinel_url(watching, "nobody", closed)
    assert Settings.from_url(url).retries == 30
    message, took = _failure(url, kind, ConfigError)
    first, second = (f"127.0.0.1:{s.port}" for s in watching)
    assert message == (
        f"no Sentinel of {_shown(url)} monitors a master named 'nobody': {first}, {second} "
        f"monitor 'down-one' (SENTINEL MASTERS); no answer from 127.0.0.1:{closed} (Connection "
        "refused): put the name of the master in the URL, as in "
        f"{_shown(_sentinel_url(watching, 'down-one', closed))}, or have the sentinels monitor "
        "'nobody' (SENTINEL MONITOR nobody HOST PORT QUORUM on each sentinel)"
    )
    assert took < 2.0, f"{took:.1f} s"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sentinels_that_monitor_nothing_say_so(watching: list[RedisServer], kind: str) -> None:
    url = _sentinel_url(watching[1:], "mymaster")
    message, took = _failure(url, kind, ConfigError)
    assert message == (
        f"no Sentinel of {_shown(url)} monitors a master named 'mymaster': "
        f"127.0.0.1:{watching[1].port} monitors no master at all (SENTINEL MASTERS is empty): "
        "check that the URL names the sentinels of that master, or have them monitor it "
        "(SENTINEL MONITOR mymaster HOST PORT QUORUM on each sentinel)"
    )
    assert took < 2.0, f"{took:.1f} s"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_known_service_whose_master_is_down_is_retried(
    watching: list[RedisServer], kind: str
) -> None:
    """A failover: a sentinel knows the service, its master is down: retried, every retry
    asking the sentinels again (3 retries here, to keep it short), then told as before. The
    second sentinel, which monitors nothing, counts the lookups: 3 more than with none."""
    url = _sentinel_url(watching, "down-one")
    lookups: list[int] = []
    with contextlib.closing(watching[1].client()) as admin:
        for retries in (0, 3):
            before = _commands(admin)
            message, _ = _failure(f"{url}?retries={retries}", kind, ConnectionFailed)
            lookups.append(_commands(admin) - before - 1)
            # (the sentinel that knows the service says what it sees: no advice to check a
            # service name it knows)
            assert "the master of 'down-one' is down: " in message, message
            assert f"127.0.0.1:{watching[0].port} sees 127.0.0.1:" in message, message
            assert "SENTINEL REPLICAS down-one" in message, message
            assert "service name" not in message, message
    assert lookups[1] - lookups[0] == 3, lookups


# --- 3. the TLS handshake within connect_timeout


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("scheme", ["rediss", "rediss+cluster"])
def test_tls_to_a_plain_port_waits_connect_timeout(
    redis_cluster: LocalCluster, scheme: str, kind: str
) -> None:
    """A plain port (a cluster node's) waits for a newline that a TLS handshake never sends:
    the handshake times out after connect_timeout (0.5 s), not socket_timeout (10 s, the
    default). Over ``rediss+cluster://`` the sync client's nodes make their first
    connection before its class can bound it (redis-py before 8.2)."""
    url = f"{scheme}://127.0.0.1:{redis_cluster.ports[0]}?connect_timeout=0.5"
    assert Settings.from_url(url).socket_timeout == 10
    message, took = _failure(url, kind, ConnectionFailed)
    assert took < 3.0, f"{took:.1f} s: {message}"
    if not (scheme == "rediss+cluster" and kind == "async"):  # (says a node did not answer)
        assert "speaks no TLS" in message or "does not speak TLS" in message, message


@pytest.fixture(scope="module")
def tls_node(servers: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis Cluster of one TLS-only node, which serves every slot: its URL."""
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    workdir, port = servers.new_dir(), free_port()
    args = [
        system_redis(tls=True),
        "--dir", str(workdir),
        "--save", "",
        "--port", "0",
        "--bind", "127.0.0.1",
        "--tls-port", str(port),
        "--tls-cert-file", str(pki.server_cert),
        "--tls-key-file", str(pki.server_key),
        "--tls-ca-cert-file", str(pki.ca),
        "--tls-auth-clients", "no",
        "--tls-cluster", "yes",
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(free_port()),
    ]  # fmt: skip
    node = TlsServer(_spawn(args, workdir), workdir, port=port, args=args, pki=pki)
    servers.servers.append(node)
    _wait_ready(node)
    with contextlib.closing(node.client()) as admin:
        admin.execute_command("CLUSTER", "ADDSLOTS", *range(16384))  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 30
        while admin.cluster("INFO")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "the TLS cluster never came up"
            time.sleep(0.1)
    yield f"rediss+cluster://127.0.0.1:{port}?ssl_ca_certs={pki.ca}"
    node.stop()


def test_a_tls_clusters_connections_wait_socket_timeout_for_replies(tls_node: str) -> None:
    """The sync cluster client's TLS connections make their handshake within connect_timeout
    and then wait socket_timeout for a reply (a 1 s blocking pop, with connect_timeout 0.5)."""
    settings = Settings.from_url(f"{tls_node}&connect_timeout=0.5", swarm=SWARM)
    client = sync_client(settings)
    assert isinstance(client, RedisCluster)
    try:
        start = time.monotonic()
        assert client.blpop(["nothing-comes"], timeout=1) is None
        assert time.monotonic() - start >= 0.9
        node = client.get_node_from_key("nothing-comes")  # type: ignore[no-untyped-call]
        pool = node.redis_connection.connection_pool
        connections = [*pool._available_connections, *pool._in_use_connections]
        assert connections and {c.socket_timeout for c in connections} == {10}
        assert {c._sock.gettimeout() for c in connections} == {10}
    finally:
        client.close()
    with Swarm(settings) as swarm:
        assert swarm.ping() >= 0
