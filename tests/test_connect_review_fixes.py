"""Two regressions of the connection layer, fixed.

1. redis-py before 8.2 (all that Python 3.10 installs) makes each node of a sync cluster client
   with ``Redis(host, port, **kwargs)``: a keyword Redis() does not take (connection_class)
   failed every redis+cluster:// handle; a node that cannot persist (MISCONF) still reads. The
   sentinels of a Sentinel URL are said, and given up on, in the same words and time on
   every version.
2. A TLS connection closed without a word in its handshake is retried even when the URL gives
   a client certificate: a server at its maxclients closes so too (it was taken for a refused
   certificate, and failed at once). A refusal alert still fails at once
   (test_connect_defects_tls.py).

Every server here is a real redis-server process."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.sentinel import MasterNotFoundError

from redis_swarm import AsyncSwarm, ConnectionFailed, Settings, Swarm
from redis_swarm._connect import sync_client
from redis_swarm._embedded import _version_of
from redis_swarm._translate import translate

from ._cluster import NODE_TIMEOUT_MS, LocalCluster
from ._servers import RedisServer, ServerFactory, free_port, system_redis
from ._tls import Pki, TlsServer, make_pki, start_tls_server
from .test_connect_defects_misconf import _bgsave

SWARM = "review-fixes"


def _ping(url: str, kind: str) -> float:
    if kind == "sync":
        with Swarm(url, swarm=SWARM) as swarm:
            return swarm.ping()

    async def ping() -> float:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            return await swarm.ping()

    return asyncio.run(ping())


# --- 1. a sync cluster client on every redis-py; sentinels said alike on every redis-py


def test_a_sync_cluster_hands_its_nodes_only_what_redis_takes(cluster_url: str) -> None:
    """What the sync cluster client hands each node it makes is what redis-py before 8.2
    gives ``Redis()``: every keyword must be one it takes (connection_class was not)."""
    client = sync_client(Settings.from_url(cluster_url))
    try:
        assert client.ping()
        takes = set(inspect.signature(redis.Redis.__init__).parameters)
        handed = set(client.nodes_manager.connection_kwargs)  # type: ignore[union-attr]
        assert handed <= takes, sorted(handed - takes)
    finally:
        client.close()


@pytest.fixture
def misconf_node(servers: ServerFactory) -> Iterator[RedisServer]:
    """A one-node Redis Cluster (every slot) that snapshots, with a task posted, then brought
    into MISCONF (its snapshot failed: its data directory is gone): it refuses writes and
    PING, and serves reads."""
    extra = [
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        "--cluster-port", str(free_port()),
        "--save", "3600 1",
    ]  # fmt: skip
    binary = system_redis()
    if (_version_of(binary) or (0,))[0] >= 7:
        extra += ["--enable-protected-configs", "yes"]  # (CONFIG SET dir)
    node = servers.start(binary=binary, extra=extra)
    with contextlib.closing(node.client()) as admin:
        admin.execute_command("CLUSTER", "ADDSLOTS", *range(16384))  # type: ignore[no-untyped-call]
    LocalCluster([node], replicas_per_master=0).wait_ok()
    try:
        yield node
    finally:
        with contextlib.closing(node.client()) as admin:
            admin.config_set("save", "")  # (else its shutdown would try to save, and fail)
        node.stop()


def _into_misconf(node: RedisServer) -> None:
    with contextlib.closing(node.client()) as admin:
        gone = node.dir / "gone"
        gone.mkdir()
        admin.config_set("dir", str(gone))
        gone.rmdir()
        _bgsave(admin, "err")
        with pytest.raises(redis.ResponseError, match=r"^MISCONF"):
            admin.ping()


def _refused_pings(node: RedisServer) -> int:
    """How many PINGs ``node`` refused (MISCONF refuses them before they run)."""
    with contextlib.closing(node.client()) as admin:
        stats = admin.info("commandstats").get("cmdstat_ping", {})
    return int(stats.get("rejected_calls", 0))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cluster_node_that_cannot_persist_still_reads(
    misconf_node: RedisServer, kind: str
) -> None:
    """The MISCONF answer to the health check's PING (on a connection idle past
    health_check_interval) is an answer: the nodes of both clients check so (the node counts
    the PINGs it refused; redis-py gave the sync client's nodes no health check), and their
    reads go on."""
    url = f"redis+cluster://127.0.0.1:{misconf_node.port}"
    with Swarm(url, swarm=SWARM) as swarm:
        task_id = swarm.post_task("q.misconf", "posted before").id
    _into_misconf(misconf_node)
    settings = Settings.from_url(url, swarm=SWARM, health_check_interval=1)
    if kind == "sync":
        with Swarm(settings) as swarm:
            assert swarm.get_task(task_id).description == "posted before"
            refused = _refused_pings(misconf_node)
            time.sleep(1.2)
            assert swarm.get_task(task_id).description == "posted before"
            assert _refused_pings(misconf_node) == refused + 1
            with pytest.raises(ConnectionFailed, match="cannot persist writes"):
                swarm.post_task("q.misconf", "refused")
        return

    async def read() -> list[str]:
        async with AsyncSwarm(settings) as swarm:
            first = (await swarm.get_task(task_id)).description
            refused = _refused_pings(misconf_node)
            await asyncio.sleep(1.2)
            second = (await swarm.get_task(task_id)).description
            assert _refused_pings(misconf_node) == refused + 1
            with pytest.raises(ConnectionFailed, match="cannot persist writes"):
                await swarm.post_task("q.misconf", "refused")
            return [first, second]

    assert asyncio.run(read()) == ["posted before"] * 2


class _Dropping:
    """A loopback port that takes each connection and closes it at once (a sentinel that
    drops its clients), counting them."""

    def __init__(self) -> None:
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            client.close()

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_each_sentinel_is_asked_once_per_try(kind: str) -> None:
    """The request's retry is the one that retries: a sentinel's own client makes a single
    attempt (redis-py before 8.2 gave it 10 retries with backoff by default)."""
    dropping = _Dropping()
    url = f"redis+sentinel://127.0.0.1:{dropping.port}/mymaster?retries=0"
    try:
        start = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            _ping(url, kind)
        took = time.monotonic() - start
    finally:
        dropping.close()
    assert dropping.connections == 1, dropping.connections
    assert str(info.value).startswith("no Sentinel of redis+sentinel://"), info.value
    assert f"tried 127.0.0.1:{dropping.port} (" in str(info.value)
    assert took < 3.0, f"{took:.1f} s"


def test_a_sentinel_error_whose_text_redis_py_dropped_is_said_in_words() -> None:
    """redis-py before 8.2 wrote each failed sentinel as its client's repr and its error's
    class alone: a client built elsewhere (given to Swarm) is translated from that text,
    without the class names."""
    pool = "<redis.connection.ConnectionPool(<redis.connection.Connection(db=0,{})>)>"
    sentinel = "<redis.client.Redis({})>".format(pool.format("host=127.0.0.1,port={}"))
    text = "No master found for 'mymaster' : " + ", ".join(
        [
            f"{sentinel.format(26379)} - network:ConnectionError",
            f"{sentinel.format(26380)} - network:TimeoutError",
        ]
    )
    url = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster"
    message = str(translate(MasterNotFoundError(text), url))
    assert "tried 127.0.0.1:26379 (could not connect), 127.0.0.1:26380 (timed out)" in message
    assert "Error" not in message and "<redis" not in message, message


# --- 2. a TLS close without a word is retried, a client certificate given or not


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["TLSv1.2", "TLSv1.3"])
def full_mtls(
    request: pytest.FixtureRequest, servers: ServerFactory, pki: Pki
) -> Iterator[TlsServer]:
    """Client certificates required, and one client at most (maxclients 1), held by an admin
    connection: a TLS server at its maxclients ends a new connection in its handshake
    without a word (its error reply cannot go out before the handshake)."""
    server = start_tls_server(servers, pki, auth_clients="yes", protocols=request.param)
    with contextlib.closing(server.client()) as admin:
        admin.config_set("maxclients", 1)
    try:
        yield server
    finally:
        server.stop()


def _free_once_refused(holder: redis.Redis, refused: list[int]) -> None:
    """Close ``holder`` (the one client the server takes) once the server refused another
    (it counts those in rejected_connections): the refused one's retry then gets in."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        count = int(holder.info("stats")["rejected_connections"])
        if count:
            refused.append(count)
            break
        time.sleep(0.02)
    holder.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_full_server_is_waited_for_with_a_client_certificate(
    full_mtls: TlsServer, kind: str
) -> None:
    holder = full_mtls.client()
    assert holder.ping()
    refused: list[int] = []
    freer = threading.Thread(target=_free_once_refused, args=(holder, refused), daemon=True)
    freer.start()
    try:
        assert _ping(full_mtls.url_with_client_cert(), kind) >= 0
    finally:
        freer.join(30)
    assert refused, "no connection was refused: the test did not test"
