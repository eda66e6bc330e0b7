"""A URL that reaches a server but is the wrong one for it: each error says what the URL got
wrong and what to write instead (an operator's tour found three that did not).

1. ``redis://`` pointed at a Redis Cluster node: the node answers MOVED for the swarm's keys.
2. A client certificate from a CA the server does not trust, refused with an EOF (the alert
   lost) rather than the alert: the URL does give a certificate.
3. Authentication refused: what the URL named (no user; a password, with a '%' in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from redis_swarm import AsyncSwarm, ConfigError, ConnectionFailed, PermissionDenied, Swarm

from ._cluster import LocalCluster
from ._servers import RedisServer, ServerFactory
from ._tls import Pki, TlsServer, make_pki, make_stranger_client, start_tls_server

SWARM = "wrong-urls"

# --- 1. a cluster node through redis://


def _a_node_without_the_swarm(cluster: LocalCluster) -> int:
    """The port of a master that does not serve the slot of SWARM's keys."""
    owner = cluster.client().get_node_from_key(f"rs:{{{SWARM}}}:x")  # type: ignore[no-untyped-call]
    masters = [port for port, role in cluster.roles().items() if role == "master"]
    return next(port for port in masters if port != owner.port)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cluster_node_through_redis_url_says_use_a_cluster_url(
    cluster_url: str, redis_cluster: LocalCluster, kind: str
) -> None:
    port = _a_node_without_the_swarm(redis_cluster)
    url = f"redis://127.0.0.1:{port}/0?retries=1"

    def post() -> None:
        if kind == "sync":
            with Swarm(url, swarm=SWARM) as swarm:
                swarm.post_task("q.moved", "x")
            return

        async def apost() -> None:
            async with AsyncSwarm(url, swarm=SWARM) as swarm:
                await swarm.post_task("q.moved", "x")

        asyncio.run(apost())

    with pytest.raises(ConfigError) as info:
        post()
    message = str(info.value)
    assert "is a node of a Redis Cluster" in message and "MOVED" in message, message
    # The same node, user and options as a cluster URL (a cluster has no database number).
    assert message.endswith(f"redis+cluster://127.0.0.1:{port}?retries=1"), message


def test_a_redirect_met_in_a_pipeline_is_said_plainly(redis_cluster: LocalCluster) -> None:
    """A context read pipelines its commands: redis-py put "Command # 1 (...) of pipeline
    caused error:" inside the redirect's words (said "MOVED Command # 1 ...")."""
    port = _a_node_without_the_swarm(redis_cluster)
    with (
        Swarm(f"redis://127.0.0.1:{port}/0?retries=1", swarm=SWARM) as swarm,
        pytest.raises(ConfigError) as info,
    ):
        swarm.get_context_bytes("shard-moved")
    message = str(info.value)
    assert re.search(r"it answered MOVED \d+ 127\.0\.0\.1:\d+: the swarm", message), message
    assert "pipeline" not in message and "Command #" not in message, message


# --- 2. a client certificate refused with an EOF


class _AlertLost:
    """A TCP proxy to a TLS 1.2 server that passes the handshake up to the client's
    certificate, then closes the connection: what a client sees when the server's refusal
    of its certificate (an alert) is lost, as when it races the server's close. The client
    reads an EOF in the handshake ("EOF occurred in violation of protocol")."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._link, args=(client,), daemon=True).start()

    def _link(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        with client, upstream:
            hello = client.recv(65536)  # ClientHello: up
            upstream.sendall(hello)
            client.recv(65536)  # the client's certificate and Finished: never up
        # Both closed (a FIN to the client), the server's answer never passed.

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        return


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls12(servers: ServerFactory, pki: Pki) -> TlsServer:
    """Client certificates required, TLS 1.2 only (its refusal comes in the handshake)."""
    return start_tls_server(servers, pki, auth_clients="yes", protocols="TLSv1.2")


@pytest.fixture
def alert_lost(mtls12: TlsServer) -> Iterator[_AlertLost]:
    proxy = _AlertLost(mtls12.port or 0)
    yield proxy
    proxy.close()


def _ping_refused(url: str) -> str:
    with Swarm(url, swarm=SWARM) as swarm, pytest.raises(ConnectionFailed) as info:
        swarm.ping()
    return str(info.value)


def test_a_certificate_refused_with_an_eof_is_said_rejected(
    pki: Pki, mtls12: TlsServer, alert_lost: _AlertLost
) -> None:
    cert, key = make_stranger_client(pki.dir / "stranger")
    options = f"ssl_ca_certs={pki.ca}&ssl_certfile={cert}&ssl_keyfile={key}&retries=0"
    # Straight to the server: its alert arrives (unknown CA).
    direct = _ping_refused(f"rediss://127.0.0.1:{mtls12.port}?{options}")
    assert "the server rejected the client certificate" in direct, direct
    # The alert lost: an EOF, and the URL gives a certificate: the same words.
    message = _ping_refused(f"rediss://127.0.0.1:{alert_lost.port}?{options}")
    assert "violation of protocol" in message, message
    assert "the server rejected the client certificate" in message, message
    assert "requires a client certificate" not in message and "add ssl_certfile" not in message


def test_an_eof_without_a_certificate_still_asks_for_one(pki: Pki, alert_lost: _AlertLost) -> None:
    message = _ping_refused(f"rediss://127.0.0.1:{alert_lost.port}?ssl_ca_certs={pki.ca}&retries=0")
    assert "requires a client certificate" in message and "add ssl_certfile" in message


# --- 3. authentication


@pytest.fixture(scope="module")
def locked(servers: ServerFactory) -> RedisServer:
    """A server whose default user is off; user 'ana' has a password holding @ : and %."""
    server = servers.start()
    with contextlib.closing(server.client()) as admin:
        admin.acl_setuser(
            "ana",
            enabled=True,
            passwords=["+p@ss:w%41rd"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        admin.acl_setuser("default", enabled=False)
    return server


def _refused(url: str) -> str:
    with Swarm(url, swarm=SWARM) as swarm, pytest.raises(PermissionDenied) as info:
        swarm.ping()
    return str(info.value)


def test_no_user_and_the_default_user_off_says_name_the_user(locked: RedisServer) -> None:
    message = _refused(f"redis://:p%40ss%3Aw%2541rd@127.0.0.1:{locked.port}")
    assert "names no user" in message and "'default'" in message, message
    assert f"redis://USER:PASSWORD@127.0.0.1:{locked.port}/0" in message
    assert "check the user name" not in message and "w%41rd" not in message


def test_no_credentials_at_all_says_the_server_requires_a_user(locked: RedisServer) -> None:
    message = _refused(f"redis://127.0.0.1:{locked.port}")
    assert "requires a user and the URL names none" in message, message
    assert f"redis://USER:PASSWORD@127.0.0.1:{locked.port}/0" in message


def test_raw_at_and_colon_in_a_password_are_read_as_written(locked: RedisServer) -> None:
    """The parser ends the password at the last '@' and the user name at the first ':':
    a raw '@' or ':' in the password needs no escaping; a '%' does (next test)."""
    encoded = quote("p@ss:w%41rd", safe="")
    for password in (encoded, "p@ss:w%2541rd"):
        with Swarm(f"redis://ana:{password}@127.0.0.1:{locked.port}", swarm=SWARM) as swarm:
            assert swarm.ping() >= 0


def test_a_raw_percent_in_a_password_is_hinted_at(locked: RedisServer) -> None:
    # Written raw, '%41' is read as 'A': the password sent is p@ss:wArd.
    message = _refused(f"redis://ana:p@ss:w%41rd@127.0.0.1:{locked.port}")
    assert "check the user name and password" in message, message
    assert "written %25" in message and "w%41rd" not in message


def test_a_user_without_a_password_gets_no_percent_hint(locked: RedisServer) -> None:
    message = _refused(f"redis://ana@127.0.0.1:{locked.port}")
    assert "check the user name and password" in message and "%25" not in message
