"""The push dispatcher does not retry what no retry fixes: an update to a webhook whose TLS
connection is refused (its certificate names another host; it shares no TLS version with
the client) is dropped at its first try, not tried again after 0.2, 1 and 3 s (told by the
ssl module's exception types, ``_errors.tls_refused``, not by a Redis connection's words);
and a connection to Redis that no retry makes
(``ConnectionFailed.retryable`` False: its certificate refused) is said once, as an error
with what to fix, then tried again seldom, as the MCP channel and the dashboard do. Real
servers: Redis (TLS ones from ``_tls``) and a TLS webhook receiver."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import uuid
from collections.abc import Iterator

import pytest

from redis_swarm import AsyncSwarm
from redis_swarm.a2a_server import _push
from redis_swarm.a2a_server._push import PushDispatcher, push_client

from ._a2a import QUEUE, push_one_task
from ._ports import CountingPort
from ._servers import RedisServer, ServerFactory
from ._tls import Pki, make_pki, start_tls_server

LOGGER = "redis_swarm.a2a_server._push"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


class _WrongHostReceiver(CountingPort):
    """An HTTPS port whose certificate (of the test CA) is for another host name: each
    connection is counted, its handshake refused by the client. ``tls13_only``: its
    certificate the right one, but it speaks TLS 1.3 only (refused by a client that
    speaks at most 1.2, with the server's alert)."""

    def __init__(self, pki: Pki, *, tls13_only: bool = False) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if tls13_only:
            self.context.load_cert_chain(pki.server_cert, pki.server_key)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_3
        else:
            self.context.load_cert_chain(pki.wrong_host_cert, pki.wrong_host_key)
        super().__init__()
        self.url = f"https://127.0.0.1:{self.port}/hook"

    def answer(self, client: socket.socket) -> None:
        client.settimeout(5)
        self.context.wrap_socket(client, server_side=True).close()


@pytest.fixture
def receiver(pki: Pki) -> Iterator[_WrongHostReceiver]:
    hook = _WrongHostReceiver(pki)
    yield hook
    hook.close()


def _post_to(
    redis_server: RedisServer,
    receiver: _WrongHostReceiver,
    client: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> list[str]:
    """Post a task's updates to ``receiver`` (with the TLS context ``client``) until its final
    one is handled: what the dispatcher logged."""

    async def body() -> None:
        async with (
            AsyncSwarm(redis_server.url, swarm=f"push-tls-{uuid.uuid4().hex[:8]}") as swarm,
            push_client(client, timeout_s=5) as http,
        ):
            dispatcher = PushDispatcher(swarm, [QUEUE], http, retry_delays_s=(0.05, 0.05))
            await push_one_task(swarm, dispatcher, receiver.url)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        asyncio.run(body())
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_an_update_to_a_webhook_whose_certificate_is_refused_is_not_retried(
    redis_server: RedisServer,
    pki: Pki,
    receiver: _WrongHostReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each update was posted 3 times more (a network error's retries), each refused alike."""
    client = ssl.create_default_context(cafile=str(pki.ca))
    said = _post_to(redis_server, receiver, client, caplog)
    dropped = [line for line in said if "no retry fixes that" in line]
    assert dropped and all("certificate verify failed" in line for line in dropped), said
    assert not [line for line in said if "giving up" in line], said
    assert receiver.connections == len(dropped), (receiver.connections, said)


def test_an_update_to_a_webhook_sharing_no_tls_version_is_not_retried(
    redis_server: RedisServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook that speaks TLS 1.3 only, a client at most 1.2: the server's alert refuses
    the handshake, an ``ssl.SSLError`` whose words ("alert protocol version") were none of a
    Redis connection's, so each update was tried 3 times more, refused alike."""
    receiver = _WrongHostReceiver(pki, tls13_only=True)
    client = ssl.create_default_context(cafile=str(pki.ca))
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        said = _post_to(redis_server, receiver, client, caplog)
    finally:
        receiver.close()
    dropped = [line for line in said if "no retry fixes that" in line]
    assert dropped and all("protocol version" in line for line in dropped), said
    assert not [line for line in said if "giving up" in line], said
    assert receiver.connections == len(dropped), (receiver.connections, said)


def test_a_redis_connection_no_retry_makes_is_said_once_and_tried_again_seldom(
    servers: ServerFactory,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its Redis's certificate refused (the URL's CA is another): the dispatcher said it as a
    pause, 'trying again in 1 s', then 2 s, ..., as if it would pass. Now one error line
    saying that no retry fixes it, and tries that wait the longest wait
    (``RECONNECT_MAX_S``, short here: tried again several times, said once)."""
    monkeypatch.setattr(_push, "RECONNECT_MAX_S", 0.3)
    server = start_tls_server(servers, pki)
    url = f"rediss://127.0.0.1:{server.port}?ssl_ca_certs={pki.wrong_ca}"

    async def follow() -> None:
        async with AsyncSwarm(url, swarm="push-stuck") as swarm, push_client() as http:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(PushDispatcher(swarm, [QUEUE], http).run(), 2.0)

    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            asyncio.run(follow())
    finally:
        server.stop()
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1, [r.getMessage() for r in records]
    line = records[0].getMessage()
    assert records[0].levelno == logging.ERROR, line
    assert "refused: certificate verify failed" in line and "no retry fixes that" in line, line
    assert "fix it where this server runs" in line and "trying again in" not in line, line


def test_a_password_redis_refuses_is_said_once_and_tried_again_seldom(
    servers: ServerFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server left running with a wrong password said 'paused ... trying again in 1 s',
    then 2 s, ..., a warning at each try, as if it would pass (the MCP channel said it once):
    one judgement of what needs a fix (``_errors.needs_a_fix``), one error line here."""
    monkeypatch.setattr(_push, "RECONNECT_MAX_S", 0.3)
    server = servers.start()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "a2a", "on", ">right-password-1234", "+@all", "~*")
    url = f"redis://a2a:wrong-password-1234@127.0.0.1:{server.port}"

    async def follow() -> None:
        async with AsyncSwarm(url, swarm="push-refused") as swarm, push_client() as http:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(PushDispatcher(swarm, [QUEUE], http).run(), 2.5)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        asyncio.run(follow())
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1, [r.getMessage() for r in records]
    line = records[0].getMessage()
    assert records[0].levelno == logging.ERROR, line
    assert "no retry fixes that" in line and "trying again in" not in line, line
    assert "password" in line.lower(), line
