"""A connection the server resets as it is being set up (the asyncio TLS client's first
exchanges after the handshake: HELLO, SELECT, ... ``RESET_IN_TLS_SETUP``) had written none of
the request that opened it: the ConnectionFailed says ``sent=False`` (it said True, as if the
request might have run). A reset once the request was written still says ``sent=True``."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm, ConnectionFailed

from ._servers import ServerFactory
from ._tls import Pki, TlsServer, make_pki, start_tls_server
from .test_wrong_urls import _AlertLost

SWARM = "sent-in-setup"
_APPLICATION_DATA = 23  # a TLS record's content type (TLS 1.2: the handshake's are others)
_PASS = 0  # (reset_at: never reset)


class _ResetAtRecord(_AlertLost):
    """A TCP proxy to a TLS 1.2 server that resets the client's connection (RST: SO_LINGER 0)
    when the client sends its ``reset_at``-th record of application data, which it does not
    pass on: under TLS 1.2 those are the client's requests, one record each (the handshake's
    own records have other content types). ``sent``: how many each connection sent. (An
    ``_AlertLost``'s listener, linking each connection its own way.)"""

    def __init__(self, port: int, reset_at: int = _PASS) -> None:
        self.reset_at = reset_at
        self.sent: list[int] = []
        super().__init__(port)

    def _link(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        threading.Thread(target=_back, args=(upstream, client), daemon=True).start()
        self.sent.append(0)
        with client, upstream:
            for record in _records(client):
                if record[0] == _APPLICATION_DATA:
                    self.sent[-1] += 1
                    if self.sent[-1] == self.reset_at:
                        client.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        return
                upstream.sendall(record)


def _records(source: socket.socket) -> Iterator[bytes]:
    """The TLS records ``source`` sends (5-byte header: type, version, length), whole."""
    buffer = b""
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            return
        if not data:
            return
        buffer += data
        while len(buffer) >= 5 and len(buffer) >= 5 + struct.unpack(">H", buffer[3:5])[0]:
            size = 5 + struct.unpack(">H", buffer[3:5])[0]
            yield buffer[:size]
            buffer = buffer[size:]


def _back(source: socket.socket, target: socket.socket) -> None:
    """The server's bytes to the client, then its end (the client's close waits for it); not
    after a reset (``_forward``'s end would turn the reset into a clean close)."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        return


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls12(servers: ServerFactory, pki: Pki) -> Iterator[TlsServer]:
    server = start_tls_server(servers, pki, protocols="TLSv1.2")
    yield server
    server.stop()


def _ping(proxy: _ResetAtRecord, pki: Pki, retries: int) -> ConnectionFailed | None:
    """What a ping of the asyncio client through ``proxy`` failed with (None: it answered).
    Database 1: the setup has a SELECT of its own to send (and HELLO, for RESP3)."""
    url = f"rediss://127.0.0.1:{proxy.port}/1?ssl_ca_certs={pki.ca}&retries={retries}"

    async def ping() -> ConnectionFailed | None:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            try:
                await swarm.ping()
            except ConnectionFailed as exc:
                return exc
        return None

    return asyncio.run(ping())


def test_a_reset_in_the_setup_is_not_sent_one_after_the_request_is(
    tls12: TlsServer, pki: Pki
) -> None:
    # The requests one ping's connection sends, its own setup's first, the ping's last.
    passing = _ResetAtRecord(tls12.port or 0)
    try:
        assert _ping(passing, pki, retries=0) is None
    finally:
        passing.close()
    requests = passing.sent[0]
    assert requests >= 2, passing.sent  # (SELECT 1 at least, then the PING)

    # Reset at each exchange of the setup; and at the first one of every attempt, retried
    # (a connection made again may leave out the health check's PING: the one exchange
    # sure to be its setup's, whatever redis-py sends in it, is its first).
    for reset_at, retries in [*((at, 0) for at in range(1, requests)), (1, 2)]:
        proxy = _ResetAtRecord(tls12.port or 0, reset_at)
        try:
            failed = _ping(proxy, pki, retries)
        finally:
            proxy.close()
        assert failed is not None and len(proxy.sent) == retries + 1, proxy.sent
        assert "closed the connection in the TLS handshake" in str(failed), failed
        assert failed.sent is False, (reset_at, retries, str(failed))

    # The ping itself written: it may have reached the server.
    proxy = _ResetAtRecord(tls12.port or 0, requests)
    try:
        failed = _ping(proxy, pki, retries=0)
    finally:
        proxy.close()
    assert failed is not None and failed.sent is True, failed
