"""Sentinel and Cluster URLs none of whose servers answers fail within a plain URL's retry
window (``Settings.none_answered_window_s``, 5.1 s; 3.1 s here, see SHORT), not within the
53 s their retries keep for a failover (during which some of their servers answer), and a
sentinel or a node that restarts meanwhile is ridden out; the sync cluster client retries its
first look at the cluster as the asyncio one does; a refresh of the cluster's layout that
reaches no node is a ConnectionFailed; a TLS server's alert asking for a client certificate
fails at once, and an EOF in the handshake is retried (it may be a dropped connection).

Every process here is real: sentinels, cluster nodes and TLS servers are redis-server
processes, stopped, restarted or frozen (SIGSTOP: a process that takes connections and never
answers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm, ConnectionFailed, Settings, Swarm
from redis_swarm._config import BACKOFF_CAP_S, retry_window

from ._cluster import LocalCluster, start_lone_node
from ._ports import CountingPort
from ._sentinel import SERVICE
from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port, system_redis
from ._tls import Pki, TlsServer, make_pki, start_tls_server
from .test_wrong_urls import _AlertLost

SWARM = "fail-fast"
# The window of a request none of whose servers answers, for a Sentinel or Cluster URL with its
# default retries (30, a 53 s window for a failover): a plain URL's (its default retries, 6).
WINDOW_S = Settings.from_url("redis://127.0.0.1").retry_window_s
# The tests that wait for that window to end shorten it (Settings.none_answered_retries, SHORT
# retries: 3.1 s), the URL's retries (30) and its failover window (53 s) left as they are.
SHORT = 5
SHORT_WINDOW_S = retry_window(SHORT)
# A request stops once its next pause (at most BACKOFF_CAP_S) would end past the window: it
# fails after more than SHORT_WINDOW_S - BACKOFF_CAP_S of retrying, and within the window plus
# what its attempts take (a refused connection: milliseconds; a loaded 2-core machine: say a
# second). Loose on purpose: far below the ~53 s these took before, far above the window.
WITHIN_S = 15.0
# How long a restarting sentinel or node stays down: well inside the window.
DOWN_S = 1.5


def _short(url: str) -> Settings:
    """The settings of ``url`` (a Sentinel or Cluster URL, its 30 retries), with the window of
    none answering shortened (SHORT)."""
    settings = Settings.from_url(url, swarm=SWARM, none_answered_retries=SHORT)
    assert settings.retries == 30 and settings.none_answered_window_s == SHORT_WINDOW_S
    return settings


def _ping(url: str | Settings, kind: str) -> float:
    """Make a handle on ``url`` (sync or asyncio) and ping through it: what ``swarm status``
    does first. Returns the round trip's milliseconds; raises what it met."""
    if kind == "sync":
        with Swarm(url, swarm=SWARM) as swarm:
            return swarm.ping()

    async def ping() -> float:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            return await swarm.ping()

    return asyncio.run(ping())


def _failure(url: str | Settings, kind: str) -> tuple[str, float]:
    """The ConnectionFailed message a ping on ``url`` ends with, and how long it took."""
    start = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        _ping(url, kind)
    return str(info.value), time.monotonic() - start


@contextlib.contextmanager
def _down_for(server: RedisServer, seconds: float) -> Iterator[None]:
    """``server`` stopped now and started again (same port, same data) ``seconds`` later, by
    another thread, while the block runs; the block's end waits for it to be back."""
    server.stop()
    restarted: list[BaseException | None] = []

    def restart() -> None:
        time.sleep(seconds)
        try:
            server.restart()
            restarted.append(None)
        except BaseException as exc:  # said by the test, not lost in the thread
            restarted.append(exc)

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(30)
        assert restarted == [None], restarted


@contextlib.contextmanager
def _frozen(servers: list[RedisServer]) -> Iterator[None]:
    """Every one of ``servers`` stopped with SIGSTOP for the block: the kernel still takes
    connections for it, and nothing ever answers."""
    for server in servers:
        os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for server in servers:
            os.kill(server.proc.pid, signal.SIGCONT)


def test_the_window_when_none_answers_is_a_plain_urls() -> None:
    for url in ("redis+sentinel://127.0.0.1/mymaster", "redis+cluster://127.0.0.1:7000"):
        assert Settings.from_url(url).none_answered_window_s == WINDOW_S
        # Never longer than the URL's own window, nor than a plain URL's.
        shorter = Settings.from_url(f"{url}?retries=2")
        assert shorter.none_answered_window_s == shorter.retry_window_s < WINDOW_S
        assert Settings.from_url(f"{url}?retries=60").none_answered_window_s == WINDOW_S
        # Settings may shorten it (as the tests below do) and leave the URL's window alone.
        short = Settings.from_url(url, none_answered_retries=SHORT)
        assert short.none_answered_window_s == SHORT_WINDOW_S < WINDOW_S
        assert short.retry_window_s == Settings.from_url(url).retry_window_s > 50


# --- 1. sentinels


def _closed_ports(count: int) -> list[int]:
    """Loopback ports nobody listens on (connections to them are refused)."""
    return [free_port() for _ in range(count)]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sentinels_that_refuse_connections_fail_within_seconds(kind: str) -> None:
    """Every sentinel of the URL refuses the connection: a URL naming the wrong ports, or
    sentinels that are down. A failover never looks so (a failover is run by sentinels that
    answer), so the request is retried for a plain URL's window, not a failover's 53 s (the
    default retries of a Sentinel URL: 30, as here)."""
    first, second = _closed_ports(2)
    url = f"redis+sentinel://127.0.0.1:{first},127.0.0.1:{second}/{SERVICE}"
    assert Settings.from_url(url).retries == 30
    message, took = _failure(_short(url), kind)
    assert message.startswith("no Sentinel of redis+sentinel://"), message
    assert f"tried 127.0.0.1:{first} (Connection refused), 127.0.0.1:{second}" in message
    assert SHORT_WINDOW_S - BACKOFF_CAP_S < took < WITHIN_S, f"{took:.1f} s"


def _lone_sentinel(servers: ServerFactory) -> RedisServer:
    """A real sentinel process that monitors nothing."""
    workdir = servers.new_dir()
    port = free_port()
    config = workdir / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n")
    args = [system_redis(), str(config), "--sentinel"]
    server = RedisServer(_spawn(args, workdir), workdir, port=port, args=args)
    servers.servers.append(server)
    _wait_ready(server)
    return server


@pytest.fixture(scope="module")
def lone_sentinels(servers: ServerFactory) -> Iterator[list[RedisServer]]:
    sentinels = [_lone_sentinel(servers), _lone_sentinel(servers)]
    yield sentinels
    for sentinel in sentinels:
        sentinel.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sentinels_that_never_answer_fail_after_asking_each_once(
    lone_sentinels: list[RedisServer], kind: str
) -> None:
    """Sentinels that take connections and never answer (frozen processes): each is waited
    for as long as a connection (connect_timeout, 0.5 s here), not socket_timeout (10 s),
    and, the lookup having timed out, no second one is started past the window. It used to
    be retried as a failover would: 30 times, each lookup 2 x 10 s."""
    hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in lone_sentinels)
    url = f"redis+sentinel://{hosts}/{SERVICE}?connect_timeout=0.5"
    with _frozen(lone_sentinels):
        message, took = _failure(url, kind)
    assert message.startswith("no Sentinel of redis+sentinel://"), message
    for sentinel in lone_sentinels:
        assert f"127.0.0.1:{sentinel.port} (timed out)" in message, message
    # Two sentinels, 0.5 s each, asked once, on a loaded machine.
    assert took < 2 * 0.5 + 3.0, f"{took:.1f} s"


@pytest.fixture(scope="module")
def sentinel(servers: ServerFactory) -> Iterator[RedisServer]:
    """A real sentinel monitoring a real master as SERVICE (its config file, which a sentinel
    rewrites, keeps that across a restart)."""
    master = servers.start()
    watcher = _lone_sentinel(servers)
    with contextlib.closing(watcher.client()) as admin:
        admin.sentinel_monitor(SERVICE, "127.0.0.1", master.port or 0, 1)
    yield watcher
    watcher.stop()
    master.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_restarting_sentinel_is_ridden_out(sentinel: RedisServer, kind: str) -> None:
    """The only sentinel the URL names restarts (as during a failover, or an upgrade): no
    sentinel answers for 1.5 s, within the window: the request waits for it and succeeds."""
    restarting = sentinel
    url = f"redis+sentinel://127.0.0.1:{restarting.port}/{SERVICE}"
    with _down_for(restarting, DOWN_S):
        start = time.monotonic()
        assert _ping(url, kind) >= 0
        took = time.monotonic() - start
    assert took < WITHIN_S, f"{took:.1f} s"


# --- 2 and 3. a cluster


@pytest.fixture(scope="module")
def lone_nodes(servers: ServerFactory) -> Iterator[dict[str, RedisServer]]:
    """Two real Redis Clusters of one node each, which serves every slot (stopping it leaves
    the client no node to ask): one for the sync client's tests, one for the asyncio one's,
    so that neither waits for the other's to be restarted. Started together: a node starting
    serves after 2 s (a master's writable delay), and these 2 s overlap."""
    nodes = {kind: start_lone_node(servers) for kind in ("sync", "async")}
    for node in nodes.values():
        with contextlib.closing(node.client()) as admin:
            admin.execute_command("CLUSTER", "ADDSLOTS", *range(16384))  # type: ignore[no-untyped-call]
    yield nodes
    for node in nodes.values():
        node.stop()


def _node_url(node: RedisServer) -> str:
    return f"redis+cluster://127.0.0.1:{node.port}"


@pytest.fixture
def node(lone_nodes: dict[str, RedisServer], kind: str) -> RedisServer:
    """The test's ``kind``'s lone node, running and serving (a test before may have left it
    stopped)."""
    node = lone_nodes[kind]
    if node.proc.poll() is not None:
        node.restart()
    LocalCluster([node], replicas_per_master=0).wait_ok()
    return node


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cluster_none_of_whose_nodes_answers_fails_within_seconds(kind: str) -> None:
    """Both clients, the sync one (which asks for the layout when it is made) and the asyncio
    one (at its first command), retry for the window, and no longer: the asyncio one used to
    go on for a failover's 53 s, the sync one to give up at once."""
    first, second = _closed_ports(2)
    url = f"redis+cluster://127.0.0.1:{first},127.0.0.1:{second}"
    message, took = _failure(_short(url), kind)
    assert message.startswith(f"cannot reach Redis Cluster at {url}: no node of the URL"), message
    assert SHORT_WINDOW_S - BACKOFF_CAP_S < took < WITHIN_S, f"{took:.1f} s"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cluster_node_restarting_when_the_client_is_made_is_waited_for(
    node: RedisServer, kind: str
) -> None:
    with _down_for(node, DOWN_S):
        assert _ping(_node_url(node), kind) >= 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_refresh_that_reaches_no_node_is_connection_failed(node: RedisServer, kind: str) -> None:
    """The node stops under a handle that knows the cluster: the client asks for the layout
    again, reaches no node, and redis-py raises its own RedisClusterUnreachableError, which
    is no RedisError: it is told as at construction, within the window."""
    url = _node_url(node)
    if kind == "sync":
        swarm = Swarm(_short(url))
        assert swarm.ping() >= 0
        node.stop()
        start = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            swarm.post_task("q.refresh", "x")
        took = time.monotonic() - start
        swarm.close()
    else:

        async def post() -> None:
            async with AsyncSwarm(_short(url)) as handle:
                assert await handle.ping() >= 0
                node.stop()
                await handle.post_task("q.refresh", "x")

        start = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            asyncio.run(post())
        took = time.monotonic() - start
    message = str(info.value)
    assert message.startswith(f"cannot reach Redis Cluster at {url}: no node of the URL"), message
    assert "check that the nodes run" in message, message
    assert took < WITHIN_S, f"{took:.1f} s"


# --- 4. TLS without a client certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls12(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    """Client certificates required, TLS 1.2: a client without one gets a handshake failure
    alert (TLS 1.2 has no alert of its own for that)."""
    server = start_tls_server(servers, pki, auth_clients="yes", protocols="TLSv1.2")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls13(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    """Client certificates required, TLS 1.3: a client without one gets a "certificate
    required" alert."""
    server = start_tls_server(servers, pki, auth_clients="yes", protocols="TLSv1.3")
    yield server
    server.stop()


class _Counting:
    """A TCP proxy to the loopback ``port``, passing every byte both ways, that counts the
    connections made through it (a server counts none that failed its TLS handshake)."""

    def __init__(self, port: int) -> None:
        self.upstream = port
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
            threading.Thread(target=self._link, args=(client,), daemon=True).start()

    def _link(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream)) as upstream:
            back = threading.Thread(target=_forward, args=(upstream, client), daemon=True)
            back.start()
            _forward(client, upstream)
            back.join(30)

    def close(self) -> None:
        self.listener.close()


def _forward(source: socket.socket, target: socket.socket) -> None:
    """Bytes from ``source`` to ``target`` until ``source`` ends; then ``target`` is told."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_handshake_failure_alert_without_a_certificate_fails_at_once(
    mtls12: TlsServer, pki: Pki, kind: str
) -> None:
    """The alert is the server's answer, sent on purpose: one connection, no retry (it used
    to be retried for 5 s and told as a server that cannot be reached)."""
    proxy = _Counting(mtls12.port or 0)
    try:
        message, _ = _failure(f"rediss://127.0.0.1:{proxy.port}?ssl_ca_certs={pki.ca}", kind)
    finally:
        proxy.close()
    assert "the server requires a client certificate" in message, message
    assert "add ssl_certfile=...&ssl_keyfile=..." in message and "tls-protocols" in message
    assert proxy.connections == 1, proxy.connections


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_certificate_required_alert_says_to_give_one(mtls13: TlsServer, kind: str) -> None:
    message, took = _failure(mtls13.url, kind)
    assert "the server requires a client certificate" in message, message
    assert "add ssl_certfile=...&ssl_keyfile=..." in message
    assert took < WITHIN_S


class _CountingAlertLost(_AlertLost):
    """``_AlertLost`` (the server's answer to the client's certificate never passes: the
    client reads an EOF in the handshake), counting the connections made through it; each
    taking ``hold_s`` more before it is closed (a loaded machine, slow to make an attempt)."""

    def __init__(self, port: int, hold_s: float = 0.0) -> None:
        self.connections, self.hold_s = 0, hold_s
        super().__init__(port)

    def _link(self, client: socket.socket) -> None:
        self.connections += 1
        time.sleep(self.hold_s)
        super()._link(client)


@pytest.mark.parametrize("hold_s", [0.0, 0.4], ids=["quick", "slow"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_eof_in_the_handshake_without_a_certificate_is_retried(
    mtls12: TlsServer, pki: Pki, kind: str, hold_s: float
) -> None:
    """An EOF says nothing of why (a dropped connection ends so too): retried, and then told
    as what it most likely is. The short window of such failures is the pauses of its retries
    (0.3 s for 2): attempts a loaded machine makes slowly (0.4 s each, ``slow``) must not cut
    the retries short (a loaded CI made 2 connections of 3)."""
    proxy = _CountingAlertLost(mtls12.port or 0, hold_s=hold_s)
    try:
        message, _ = _failure(
            f"rediss://127.0.0.1:{proxy.port}?ssl_ca_certs={pki.ca}&retries=2", kind
        )
    finally:
        proxy.close()
    assert proxy.connections == 3, proxy.connections
    assert "closed the connection in the TLS handshake" in message, message
    assert "most likely the server requires a client certificate" in message
    assert "add ssl_certfile" in message


class _SlowClose(CountingPort):
    """A port that takes every connection and closes it ``after_s`` later, without a word: a
    failure that comes late without timing out."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        super().__init__()

    def answer(self, client: socket.socket) -> None:
        time.sleep(self.after_s)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("form", ["redis+sentinel", "redis+cluster"])
def test_a_failure_that_comes_late_is_not_owed_the_short_windows_count(
    form: str, kind: str
) -> None:
    """Only a failure that came at once (under half the connect timeout) is owed the short
    window's count of retries: a server closing each connection 0.8 s after taking it (a
    connect timeout of 1 s) is retried while the window (0.3 s, of 2 retries) lasts, so
    twice in all; counting such failures made every retry, and a Sentinel URL whose
    sentinel closed after 3 s took 24 s instead of 9."""
    server = _SlowClose(0.8)
    path = f"/{SERVICE}" if form == "redis+sentinel" else ""
    try:
        _failure(f"{form}://127.0.0.1:{server.port}{path}?retries=2&connect_timeout=1", kind)
    finally:
        server.close()
    assert server.connections == 2, server.connections
