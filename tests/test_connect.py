"""The client factory: retries that neither multiply nor repeat the hopeless, URL options."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from redis_swarm import ConfigError, ConnectionFailed, Settings, Swarm
from redis_swarm._retries import is_permanent


@pytest.fixture
def slammer() -> Iterator[tuple[int, list[float]]]:
    """A port that accepts every connection and closes it at once; records each accept."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepts: list[float] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepts.append(time.monotonic())
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepts
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(5)


def test_retries_do_not_multiply(slammer: tuple[int, list[float]]) -> None:
    """redis-py retries a command and, inside it, the connect: only the outer loop may."""
    port, accepts = slammer
    settings = Settings.from_url(f"redis://127.0.0.1:{port}?retries=3", swarm="x")
    with Swarm(settings) as swarm, pytest.raises(ConnectionFailed):
        swarm.ping()
    assert 1 <= len(accepts) <= 4, f"{len(accepts)} connection attempts for 3 retries"


def test_zero_retries_is_one_attempt(slammer: tuple[int, list[float]]) -> None:
    port, accepts = slammer
    settings = Settings.from_url(f"redis://127.0.0.1:{port}?retries=0", swarm="x")
    with Swarm(settings) as swarm, pytest.raises(ConnectionFailed):
        swarm.ping()
    assert len(accepts) == 1


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (redis.AuthenticationError("invalid username-password pair"), True),
        (redis.ConnectionError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), True),
        (redis.ConnectionError("tlsv13 alert certificate required"), True),
        (redis.ConnectionError("[SSL: WRONG_VERSION_NUMBER] wrong version number"), True),
        (redis.ConnectionError("Error 111 connecting to h:1. Connection refused."), False),
        (redis.ConnectionError("Connection closed by server."), False),
        (redis.TimeoutError("Timeout reading from socket"), False),
    ],
)
def test_hopeless_errors_are_not_retried(error: Exception, permanent: bool) -> None:
    assert is_permanent(error) is permanent


def _caused(outer: Exception, cause: BaseException) -> Exception:
    outer.__context__ = cause
    return outer


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        # a TLS handshake that times out: a paused TLS server (a stalled failover) does that,
        # and so does a plain port given a rediss:// URL (the server waits for a newline):
        # retried as any timeout, the error then naming both (tests/test_connection_failed_
        # retryable.py); a plain port that answers the handshake in plain text fails at once
        (
            _caused(
                redis.TimeoutError("Timeout connecting to server"),
                TimeoutError("_ssl.c:989: The handshake operation timed out"),
            ),
            False,
        ),
        (
            _caused(redis.TimeoutError("Timeout connecting to server"), TimeoutError("timed out")),
            False,
        ),
        # certificate and key files that do not load: nothing a server could change
        (
            redis.ConnectionError("Error 524297 connecting to h:1. [SSL] PEM lib (_ssl.c:3926)."),
            True,
        ),
        (
            redis.ConnectionError("[X509: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:3926)"),
            True,
        ),
        (
            redis.ConnectionError(
                "[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found"
            ),
            True,
        ),
        (_caused(redis.ConnectionError("Error 21"), IsADirectoryError(21, "Is a directory")), True),
    ],
)
def test_tls_setup_errors_are_not_retried(error: Exception, permanent: bool) -> None:
    assert is_permanent(error) is permanent


def test_a_certificate_error_in_the_cause_chain_counts() -> None:
    outer = redis.ConnectionError("Error 1 connecting")
    outer.__cause__ = ssl.SSLCertVerificationError(1, "unable to get local issuer certificate")
    assert is_permanent(outer)


def test_url_connection_options() -> None:
    s = Settings.from_url("redis://h?retries=40&socket_timeout=2.5&connect_timeout=1")
    assert (s.retries, s.socket_timeout, s.connect_timeout) == (40, 2.5, 1.0)
    assert Settings.from_url("redis+sentinel://a:1,b:2/m?retries=9").retries == 9
    assert Settings.from_url("redis+cluster://a:1?retries=2").retries == 2
    t = Settings.from_url("rediss://h?retries=3&ssl_ca_certs=/ca.pem")
    assert t.retries == 3 and t.ssl_ca_certs == "/ca.pem"


def test_cluster_and_sentinel_urls_retry_through_a_failover_by_default() -> None:
    assert Settings.from_url("redis://h").retries == 6
    assert Settings.from_url("redis+cluster://a:1,b:2").retries == 30
    assert Settings.from_url("rediss+sentinel://a:1/m").retries == 30
    assert Settings.from_url("redis+cluster://a:1", retries=4).retries == 4


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://h?retries=many", "not a number"),
        ("redis://h?retries=-1", "negative"),
        ("redis://h?ssl_ca_certs=/x", "unknown option"),
    ],
)
def test_bad_url_connection_options(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_url(url)
    assert fragment in str(info.value)
