"""A server still loading its data (LOADING; redis-py's BusyLoadingError, a ConnectionError)
is said as such: it runs and was reached, retry in a moment. It was said as a server that
cannot be reached ("cannot reach Redis at ...: Redis is loading the dataset in memory; check
that the server runs ...").

The server is made to load slowly and answer LOADING meanwhile: DEBUG RELOAD (saves its
dataset, then loads it again) with a delay per key, serving clients while it loads."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_swarm import ConnectionFailed
from redis_swarm._translate import translate

from ._servers import ServerFactory, system_redis

KEYS = 5000
KEY_LOAD_DELAY_US = 1000  # so loading takes about 5 s: the test is done long before
_DEBUG_RELOAD = b"*2\r\n$5\r\nDEBUG\r\n$6\r\nRELOAD\r\n"


def _loading_error(port: int) -> redis.BusyLoadingError:
    """What redis-py raises for a PING to the server on ``port``, which is loading."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # No retries: redis-py's default retries a LOADING answer (a ConnectionError) with
        # backoff for seconds, long enough to see the load end and never report it.
        client = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        try:
            client.ping()
        except redis.BusyLoadingError as exc:
            return exc
        finally:
            client.close()
        time.sleep(0.02)
    pytest.fail("the server never answered LOADING")


def test_a_server_loading_its_data_is_said_as_such(servers: ServerFactory) -> None:
    server = servers.start(binary=system_redis(), extra=["--enable-debug-command", "yes"])
    assert server.port is not None
    with redis.Redis(host="127.0.0.1", port=server.port) as admin:
        admin.execute_command("DEBUG", "POPULATE", KEYS)
        admin.config_set("key-load-delay", KEY_LOAD_DELAY_US)
        admin.config_set("loading-process-events-interval-bytes", 1024)
    # DEBUG RELOAD holds its own connection until the load ends: sent on a bare socket.
    reloading = socket.create_connection(("127.0.0.1", server.port))
    try:
        reloading.sendall(_DEBUG_RELOAD)
        exc = _loading_error(server.port)
    finally:
        with contextlib.suppress(OSError):
            reloading.close()
        server.kill()  # (rather than wait the load out)
    where = f"redis://127.0.0.1:{server.port}/0"
    error = translate(exc, where)
    assert isinstance(error, ConnectionFailed)
    message = str(error)
    assert message.startswith(f"Redis at {where} is loading its data into memory"), message
    assert "retry in a moment" in message
    assert "not a connection problem" in message
    assert "cannot reach" not in message and "check that the server runs" not in message
