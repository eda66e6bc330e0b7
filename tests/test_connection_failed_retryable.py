"""``ConnectionFailed.retryable``: False when no retry can fix the failure (a certificate
refused, either side's; a certificate or key file of the URL that does not load), True for an
outage that may pass (a server stopped or paused, a connection closed in the TLS handshake
without a word); and a database the server does not have (the URL's /N at or above its
``databases``), said with what to do. Real servers throughout: TLS ones from ``_tls``."""

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

from redis_swarm import AsyncSwarm, ConfigError, ConnectionFailed, Swarm, SwarmError

from ._cli import Cli
from ._ports import CountingPort
from ._servers import RedisServer, ServerFactory, free_port
from ._tls import Pki, TlsServer, make_pki, make_stranger_client, start_tls_server
from .test_connect_fail_fast import _CountingAlertLost

SWARM = "retryable"
KINDS = ["sync", "async"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    """Client certificates optional."""
    server = start_tls_server(servers, pki, auth_clients="optional")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wrong_host(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    """A certificate of the right CA, for redis.example.com."""
    server = start_tls_server(servers, pki, cert=pki.wrong_host_cert, key=pki.wrong_host_key)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls12(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    """Client certificates required, TLS 1.2: its refusal comes in the handshake, as an alert."""
    server = start_tls_server(servers, pki, auth_clients="yes", protocols="TLSv1.2")
    yield server
    server.stop()


def _error(url: str, kind: str) -> SwarmError:
    """The error a ping on ``url`` fails with, from the ``kind`` shell."""
    if kind == "sync":
        with Swarm(url, swarm=SWARM) as swarm, pytest.raises(SwarmError) as info:
            swarm.ping()
    else:

        async def ping() -> None:
            async with AsyncSwarm(url, swarm=SWARM) as swarm:
                await swarm.ping()

        with pytest.raises(SwarmError) as info:
            asyncio.run(ping())
    return info.value


def _failed(url: str, kind: str) -> ConnectionFailed:
    error = _error(url, kind)
    assert isinstance(error, ConnectionFailed), repr(error)
    return error


# --- no retry fixes it


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_certificate_that_does_not_verify_is_not_retryable(
    pki: Pki, tls: TlsServer, wrong_host: TlsServer, kind: str
) -> None:
    other_ca = _failed(f"rediss://127.0.0.1:{tls.port}?ssl_ca_certs={pki.wrong_ca}", kind)
    assert "refused: certificate verify failed" in str(other_ca), other_ca
    host = _failed(wrong_host.url, kind)
    assert "does not name this host" in str(host), host
    for error in (other_ca, host):
        assert error.retryable is False and error.sent is False, error


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_certificate_refused_or_missing_is_not_retryable(
    pki: Pki, mtls12: TlsServer, kind: str
) -> None:
    cert, key = make_stranger_client(pki.dir / "stranger")
    base = f"rediss://127.0.0.1:{mtls12.port}?ssl_ca_certs={pki.ca}"
    stranger = _failed(f"{base}&ssl_certfile={cert}&ssl_keyfile={key}", kind)
    assert "the server rejected the client certificate" in str(stranger), stranger
    none = _failed(base, kind)
    assert "requires a client certificate" in str(none), none
    for error in (stranger, none):
        assert error.retryable is False and error.sent is False, error


@pytest.mark.parametrize("kind", KINDS)
def test_a_certificate_or_key_file_that_does_not_load_is_not_retryable(
    pki: Pki, tls: TlsServer, kind: str
) -> None:
    base = f"rediss://127.0.0.1:{tls.port}?ssl_ca_certs="
    missing = _failed(f"{base}{pki.dir}/nonexistent.pem", kind)
    assert "does not exist: fix the path in the URL" in str(missing), missing
    mismatch = _failed(
        f"{base}{pki.ca}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.server_key}", kind
    )
    assert "ssl_keyfile is not the private key" in str(mismatch), mismatch
    for error in (missing, mismatch):
        assert error.retryable is False, error


# --- an outage that may pass


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_that_is_not_running_stays_retryable(kind: str) -> None:
    error = _failed(f"redis://127.0.0.1:{free_port()}?retries=0", kind)
    assert "cannot reach Redis" in str(error), error
    assert error.retryable is True


@pytest.mark.parametrize("kind", KINDS)
def test_a_close_in_the_tls_handshake_without_a_word_stays_retryable(
    pki: Pki, mtls12: TlsServer, kind: str
) -> None:
    """The server's refusal of the client certificate lost (the proxy drops its alert): a
    server at its maxclients, or restarting, closes so too."""
    proxy = _CountingAlertLost(mtls12.port or 0)
    cert, key = make_stranger_client(pki.dir / "stranger")
    url = (
        f"rediss://127.0.0.1:{proxy.port}"
        f"?ssl_ca_certs={pki.ca}&ssl_certfile={cert}&ssl_keyfile={key}&retries=0"
    )
    try:
        error = _failed(url, kind)
    finally:
        proxy.close()
    assert "closed the connection in the TLS handshake without a word" in str(error), error
    assert error.retryable is True


@pytest.mark.parametrize("kind", KINDS)
def test_a_paused_tls_server_stays_retryable(servers: ServerFactory, pki: Pki, kind: str) -> None:
    """A stopped process takes connections and never answers the handshake: the sync client
    reads that as a port that speaks no TLS, the asyncio one as a connect that timed out.
    Either passes once the server runs again."""
    server = start_tls_server(servers, pki)
    url = f"{server.url}&connect_timeout=0.3&socket_timeout=0.3&retries=0"
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        error = _failed(url, kind)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()
    assert error.retryable is True and error.sent is False, error
    if kind == "sync":  # said as the timeout it is, not as a port that surely speaks no TLS
        assert "the TLS handshake timed out" in str(error), error
        assert "a paused or overloaded server does that" in str(error), error


class _PlainAnswer(CountingPort):
    """A plain TCP port that answers whatever it is sent with a line of plain text (as an
    HTTP server answers a TLS ClientHello): the client's TLS reads a record that is none."""

    def answer(self, client: socket.socket) -> None:
        client.recv(4096)
        client.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")


def test_a_paused_tls_server_is_waited_for_as_a_paused_plain_one(
    servers: ServerFactory, pki: Pki
) -> None:
    """A TLS handshake that timed out is retried as any timeout (while another attempt fits
    the retry window): a request to a paused TLS server succeeds once it runs again, as one
    to a paused plain server does, instead of failing at once. A port that answers the
    handshake with plain text still fails at once, not retried."""
    server = start_tls_server(servers, pki)
    url = f"{server.url}&connect_timeout=0.3&socket_timeout=0.3"
    pid = server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    wake = threading.Timer(1.0, os.kill, (pid, signal.SIGCONT))
    wake.start()
    try:
        with Swarm(url, swarm=SWARM) as swarm:
            began = time.monotonic()
            assert swarm.ping() >= 0
            took = time.monotonic() - began
    finally:
        wake.cancel()
        os.kill(pid, signal.SIGCONT)
        server.stop()
    assert took >= 0.9, took  # (it waited for the server to run again)
    plain = _PlainAnswer()
    try:
        began = time.monotonic()
        error = _failed(f"rediss://127.0.0.1:{plain.port}?ssl_ca_certs={pki.ca}", "sync")
        took = time.monotonic() - began
    finally:
        plain.close()
    assert "does not speak TLS on this port" in str(error), error
    assert error.retryable is False and plain.connections == 1 and took < 1.0, (error, took)


# --- a database the server does not have


def _databases(server: RedisServer) -> int:
    with contextlib.closing(server.client()) as admin:
        return int(str(admin.config_get("databases")["databases"]))


@pytest.mark.parametrize("kind", KINDS)
def test_a_database_beyond_the_servers_count_says_what_to_do(
    redis_server: RedisServer, kind: str
) -> None:
    count = _databases(redis_server)
    url = f"redis://127.0.0.1:{redis_server.port}/{count}"
    error = _error(url, kind)
    assert isinstance(error, ConfigError), repr(error)
    message = str(error)
    assert message.startswith(f"Redis at {url} has no database {count}: "), message
    assert "'CONFIG GET databases'" in message and "name one below that count" in message
    assert "(its /N; ?db=N for a unix socket)" in message and "\n" not in message
    # The last database there is, by the same URL's form, works.
    with Swarm(f"redis://127.0.0.1:{redis_server.port}/{count - 1}", swarm=SWARM) as swarm:
        assert swarm.ping() >= 0


def test_a_database_beyond_the_count_of_a_unix_socket_server(servers: ServerFactory) -> None:
    """Said by the CLI as any error (one line, exit 1), for a server with 4 databases."""
    server = servers.start(unix=True, extra=["--databases", "4"])
    try:
        out = Cli(f"{server.url}?db=4", swarm=SWARM)("status", expect=None)
    finally:
        server.stop()
    assert out.code == 1, out
    assert out.stderr.startswith(f"error: Redis at {server.url}?db=4 has no database 4: "), out
    assert "?db=N for a unix socket" in out.stderr, out
