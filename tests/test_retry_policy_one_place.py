"""Whether a retry may fix a connection error is judged once (``_translate.no_retry_fixes``):
the client's own retries give up at once on what it says no retry fixes
(``_retries.is_permanent``), and ``ConnectionFailed.retryable`` says the same to the loops
that ride out outages; only a pool with every connection in use is told apart (the client
does not wait for a connection, a later call may get one). And the asyncio client tells a
TLS handshake that timed out from a server it cannot reach, as the sync client does. Real
servers where a server is met."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from redis_swarm import AsyncSwarm, ConnectionFailed, Swarm
from redis_swarm._config import FAILOVER_RETRIES, Settings
from redis_swarm._retries import is_permanent
from redis_swarm._sentinel import _NoMasterFound, _NoSentinelAnswered
from redis_swarm._translate import translate

from ._servers import RedisServer, ServerFactory, _spawn, _wait_ready, free_port

SWARM = "one-place"
TLS_URL = "rediss://127.0.0.1:6390/0?ssl_ca_certs=/nonexistent/ca.pem"
SENTINELS = "rediss+sentinel://127.0.0.1:26390,127.0.0.1:26391/m/0?ssl_ca_certs=/x/ca.pem"


def _caused(outer: Exception, cause: BaseException) -> Exception:
    outer.__context__ = cause
    return outer


def _no_master(kind: type[Exception], failures: tuple[tuple[str, str], ...]) -> Exception:
    """The lookup error ``_sentinel`` raises: ``failures``, the sentinels that failed."""
    said = ", ".join(f"{node} - {error}" for node, error in failures)
    error = kind(f"No master found for 'm' : {said}")
    error.failed_sentinels = failures  # type: ignore[attr-defined]
    return error


_NOT_VERIFIED = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
_VERIFY = f"SSLCertVerificationError: {_NOT_VERIFIED}"  # (a sentinel's, as _sentinel says it)

# (the URL the error was met at, the error, whether no retry fixes it)
CASES = [
    pytest.param(
        TLS_URL,
        redis.ConnectionError(f"Error 1 connecting to 127.0.0.1:6390. {_NOT_VERIFIED}."),
        True,
        id="certificate-verify-failed",
    ),
    pytest.param(
        TLS_URL,
        redis.ConnectionError(
            "Error 1 connecting to 127.0.0.1:6390. [SSL: UNSUPPORTED_PROTOCOL] unsupported "
            "protocol (_ssl.c:1006)."
        ),
        True,
        id="no-tls-version-in-common",  # (the retries gave it up; the loops tried forever)
    ),
    pytest.param(
        "unix:///tmp/swarm-one-place/redis.sock",
        _caused(
            redis.ConnectionError(
                "Error 2 connecting to /tmp/swarm-one-place/redis.sock. No such file or directory."
            ),
            FileNotFoundError(2, "No such file or directory"),
        ),
        False,
        id="unix-socket-gone",  # (its server is down or restarting: the retries gave it up)
    ),
    pytest.param(
        TLS_URL,
        _caused(
            redis.ConnectionError(
                "Error 2 connecting to 127.0.0.1:6390. No such file or directory."
            ),
            FileNotFoundError(2, "No such file or directory"),
        ),
        True,
        id="ca-file-gone",
    ),
    pytest.param(
        SENTINELS,
        _no_master(_NoMasterFound, (("127.0.0.1:26391", _VERIFY),)),
        False,
        id="a-sentinel-answered-another-refused",  # (a failover: the retries gave it up)
    ),
    pytest.param(
        SENTINELS,
        _no_master(
            _NoSentinelAnswered, (("127.0.0.1:26390", _VERIFY), ("127.0.0.1:26391", _VERIFY))
        ),
        True,
        id="every-sentinel-refused",
    ),
    pytest.param(
        "redis://127.0.0.1:6390/0",
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused."),
        False,
        id="refused",
    ),
    pytest.param(
        TLS_URL,
        _caused(
            redis.TimeoutError("Timeout connecting to server"),
            TimeoutError("_ssl.c:989: The handshake operation timed out"),
        ),
        False,
        id="handshake-timed-out",
    ),
]


@pytest.mark.parametrize(("where", "error", "no_retry_fixes"), CASES)
def test_the_clients_retries_and_retryable_say_one_thing(
    where: str, error: Exception, no_retry_fixes: bool
) -> None:
    said = translate(error, where)
    assert isinstance(said, ConnectionFailed), repr(said)
    assert is_permanent(error) is no_retry_fixes, said
    assert said.retryable is not no_retry_fixes, said


def test_a_full_pool_is_given_up_by_the_client_and_retryable_for_a_loop() -> None:
    """The one case the two are told apart, on purpose."""
    full = redis.exceptions.MaxConnectionsError("Too many connections")
    said = translate(full, "redis://127.0.0.1:6390/0")
    assert isinstance(said, ConnectionFailed) and said.retryable is True, said
    assert is_permanent(full) is True


@pytest.mark.timeout(60)
def test_a_unix_socket_server_that_restarts_is_waited_for(servers: ServerFactory) -> None:
    """A server stopped removes its unix socket until it listens again: a request made
    meanwhile failed at once (a missing file was read as a certificate file of the URL that
    does not load); it rides out the restart as a refused TCP connection does."""
    server = servers.start(unix=True)
    assert server.socket_path is not None
    with Swarm(server.url, swarm=SWARM) as swarm:
        assert swarm.ping() >= 0
        server.stop()
        assert not server.socket_path.exists()

        def start_again() -> None:
            server.proc = _spawn(server.args, server.dir)
            _wait_ready(server)

        again = threading.Timer(1.0, start_again)
        again.start()
        try:
            began = time.monotonic()
            assert swarm.ping() >= 0
            took = time.monotonic() - began
        finally:
            again.join()
    assert took >= 0.9, took  # (it waited for the server)


def _async_ping(url: str) -> ConnectionFailed:
    async def ping() -> None:
        async with AsyncSwarm(url, swarm=SWARM) as swarm:
            await swarm.ping()

    with pytest.raises(ConnectionFailed) as caught:
        asyncio.run(ping())
    return caught.value


@pytest.mark.timeout(120)
def test_the_asyncio_client_says_a_tls_handshake_timed_out_within_the_short_window(
    redis_server: RedisServer,
) -> None:
    """A rediss:// URL at a plain port (it never answers the handshake) with a Sentinel or
    Cluster URL's retries: the asyncio client said only "Timeout connecting to server", so
    its retries rode it out for the long window (~44 s) where the sync client's stop within
    a plain URL's; now it is the handshake that timed out, said and retried as the sync
    client's. A TCP connect still says what it met."""
    url = f"rediss://127.0.0.1:{redis_server.port}?ssl_cert_reqs=none&retries={FAILOVER_RETRIES}"
    settings = Settings.from_url(url)
    assert settings.retry_window_s > 50 and settings.none_answered_window_s < 6, settings
    began = time.monotonic()
    error = _async_ping(url)
    took = time.monotonic() - began
    assert "the TLS handshake timed out" in str(error), error
    assert error.retryable is True and error.sent is False, error
    limit = settings.connect_timeout + settings.none_answered_window_s + 1
    assert took < limit, (took, limit)
    refused = _async_ping(f"rediss://127.0.0.1:{free_port()}?ssl_cert_reqs=none&retries=0")
    assert "cannot reach Redis" in str(refused) and "Connect call failed" in str(refused)
    assert refused.retryable is True and refused.sent is False, refused
