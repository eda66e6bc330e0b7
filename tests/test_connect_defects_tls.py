"""A client certificate the server rejects with an alert fails at once, with the message that
says so, on both shells and with the default retries. When the alert is lost and the client
only sees the connection end in the handshake (the sync client reads an EOF, asyncio a bare
ConnectionResetError), nothing says why (a server at its maxclients, or restarting, ends it
so too): it is retried, and then told as a possible rejection of the certificate (it used to
be told as a server that cannot be reached)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm, ConnectionFailed, Swarm

from ._servers import ServerFactory
from ._tls import Pki, TlsServer, make_pki, make_stranger_client, start_tls_server
from .test_connect_fail_fast import _CountingAlertLost
from .test_wrong_urls import _AlertLost

SWARM = "tls-defects"
# Far below what the default retries (6) take to give up: 2-5 s of backoff.
AT_ONCE_S = 1.5


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls12(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    """Client certificates required, TLS 1.2 (its refusal comes in the handshake)."""
    server = start_tls_server(servers, pki, auth_clients="yes", protocols="TLSv1.2")
    yield server
    server.stop()


@pytest.fixture
def alert_lost(mtls12: TlsServer) -> Iterator[_AlertLost]:
    proxy = _AlertLost(mtls12.port or 0)
    yield proxy
    proxy.close()


def _refused(url: str, kind: str) -> tuple[str, float]:
    """The message a ping on ``url`` fails with, and how long it took."""
    start = time.monotonic()
    if kind == "sync":
        with Swarm(url, swarm=SWARM) as swarm, pytest.raises(ConnectionFailed) as info:
            swarm.ping()
    else:

        async def ping() -> None:
            async with AsyncSwarm(url, swarm=SWARM) as swarm:
                await swarm.ping()

        with pytest.raises(ConnectionFailed) as info:
            asyncio.run(ping())
    return str(info.value), time.monotonic() - start


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_rejected_certificate_whose_alert_is_lost_is_retried_then_told(
    pki: Pki, mtls12: TlsServer, kind: str
) -> None:
    """The close alone is no refusal (it was taken for one, and failed at once, a server at
    its maxclients included): each try is made, and the message names the likely causes."""
    proxy = _CountingAlertLost(mtls12.port or 0)
    cert, key = make_stranger_client(pki.dir / "stranger")
    url = (
        f"rediss://127.0.0.1:{proxy.port}"
        f"?ssl_ca_certs={pki.ca}&ssl_certfile={cert}&ssl_keyfile={key}&retries=2"
    )
    try:
        message, _ = _refused(url, kind)
    finally:
        proxy.close()
    assert proxy.connections == 3, proxy.connections
    assert "closed the connection in the TLS handshake without a word" in message, message
    assert "most likely the server rejected the client certificate" in message
    assert "check ssl_certfile/ssl_keyfile" in message and "(maxclients)" in message


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_rejected_certificate_fails_at_once_when_the_alert_arrives(
    pki: Pki, mtls12: TlsServer, kind: str
) -> None:
    cert, key = make_stranger_client(pki.dir / "stranger")
    url = f"rediss://127.0.0.1:{mtls12.port}?ssl_ca_certs={pki.ca}&ssl_certfile={cert}&ssl_keyfile={key}"
    message, took = _refused(url, kind)
    assert "the server rejected the client certificate" in message, message
    assert took < AT_ONCE_S, f"{took:.1f} s: retried"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_no_certificate_where_one_is_required_is_said_from_asyncio_too(
    pki: Pki, alert_lost: _AlertLost, kind: str
) -> None:
    """Without a certificate in the URL, the same end of the handshake asks for one (retried
    as before: the URL does not say a certificate was refused)."""
    message, _ = _refused(
        f"rediss://127.0.0.1:{alert_lost.port}?ssl_ca_certs={pki.ca}&retries=0", kind
    )
    assert "requires a client certificate" in message and "add ssl_certfile" in message, message
