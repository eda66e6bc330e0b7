"""``ConnectionFailed.sent``: whether the request may have reached the server (its reply lost:
it may have run) or surely did not (no connection could be made), said once by the core
(``_translate``, the retries) instead of each caller reading redis-py's words. The hooks tell
a server that took the request from one that could not be reached by it, and keep a loop
claim's lease secret only when the claim may have run."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_swarm import AsyncSwarm, ConnectionFailed, Settings, Swarm
from redis_swarm import _lease_tokens as tokens
from redis_swarm._hooks.events import _next_task
from redis_swarm._hooks.reach import hook_swarm, not_answered
from redis_swarm._outage import ride_out

from ._servers import RedisServer, ServerFactory, free_port
from .test_hooks_review_fixes import LOOP, busy


@pytest.fixture
def own_server(servers: ServerFactory) -> Iterator[RedisServer]:
    """A server of the test's own, which takes ``DEBUG SLEEP`` (made busy) and is killed."""
    server = servers.start(extra=["--enable-debug-command", "yes"])
    yield server
    server.kill()


def _settings(url: str, home: Path, **options: float) -> Settings:
    return Settings.from_url(url, swarm="test", home=home, **options)


def _failed(settings: Settings) -> ConnectionFailed:
    with Swarm(settings) as swarm, pytest.raises(ConnectionFailed) as caught:
        swarm.post_task("q", "a job")
    return caught.value


def _failed_async(settings: Settings) -> ConnectionFailed:
    async def post() -> ConnectionFailed:
        async with AsyncSwarm(settings) as swarm:
            with pytest.raises(ConnectionFailed) as caught:
                await swarm.post_task("q", "a job")
        return caught.value

    return asyncio.run(post())


# --- the core


@pytest.mark.parametrize("failed", [_failed, _failed_async], ids=["sync", "asyncio"])
def test_a_request_a_busy_server_took_and_did_not_answer_is_sent(
    own_server: RedisServer, tmp_path: Path, failed: object
) -> None:
    settings = _settings(own_server.url, tmp_path, socket_timeout=0.5, retries=0)
    with busy(own_server, 2.0):
        exc = failed(settings)  # type: ignore[operator]
    assert exc.sent is True, exc
    assert "Timeout reading from" in str(exc)  # (a read timeout, not a connect's)


@pytest.mark.parametrize("failed", [_failed, _failed_async], ids=["sync", "asyncio"])
def test_a_refused_connection_is_not_sent(tmp_path: Path, failed: object) -> None:
    settings = _settings(f"redis://127.0.0.1:{free_port()}", tmp_path, retries=1)
    exc = failed(settings)  # type: ignore[operator]
    assert exc.sent is False, exc
    assert "Error 111 connecting to" in str(exc), exc  # (ECONNREFUSED)


def test_a_tls_handshake_that_timed_out_is_not_sent(servers: ServerFactory, tmp_path: Path) -> None:
    # A plain port under rediss://: the TCP connect succeeds, the TLS handshake never ends
    # (the server waits for a newline): a connect timeout, though a socket was open.
    server = servers.start()
    url = f"rediss://127.0.0.1:{server.port}"
    exc = _failed(_settings(url, tmp_path, connect_timeout=0.5, retries=0))
    assert "does not speak TLS on this port" in str(exc), exc
    assert exc.sent is False


def _sleeping(server: RedisServer, seconds: float) -> socket.socket:
    """A connection that made ``server`` sleep (DEBUG SLEEP), once a PING goes unanswered."""
    address = ("127.0.0.1", server.port or 0)
    sleeper = socket.create_connection(address)
    sleeper.sendall(f"DEBUG SLEEP {seconds}\r\n".encode())
    with socket.create_connection(address) as probe:
        probe.settimeout(0.1)
        while True:
            probe.sendall(b"PING\r\n")
            try:
                probe.recv(64)
            except TimeoutError:
                return sleeper


def _killed_under(server: RedisServer, after_s: float) -> threading.Thread:
    """``server`` killed (SIGKILL) in ``after_s``, while a request waits on it."""

    def kill() -> None:
        time.sleep(after_s)
        server.kill()

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_a_request_sent_before_the_server_died_stays_sent_when_its_retries_are_refused(
    own_server: RedisServer, tmp_path: Path
) -> None:
    # The request reaches the sleeping server, which dies: the connection drops, and every
    # retry is refused. The last attempt's error alone would say that nothing was sent.
    settings = _settings(own_server.url, tmp_path, socket_timeout=5, retries=3)
    with Swarm(settings) as swarm:
        swarm.ping()  # (connected before the server sleeps)
        with _sleeping(own_server, 5.0):
            killer = _killed_under(own_server, 0.3)
            with pytest.raises(ConnectionFailed) as caught:
                swarm.post_task("q", "a job")
            killer.join()
    assert "Connection refused" in str(caught.value), caught.value  # (the last attempt's)
    assert caught.value.sent is True


def test_a_write_ridden_out_through_an_outage_is_sent_if_any_try_was() -> None:
    tries = iter([True, False, False])  # the first try's reply lost, then refused

    def call() -> None:
        sent = next(tries, False)
        raise ConnectionFailed("refused" if not sent else "no reply", sent=sent)

    with pytest.raises(ConnectionFailed) as caught:
        ride_out(
            call, what="take it", who="the test", stop=threading.Event(),
            on_outage=lambda exc: None, patience_s=0.5,
        )  # fmt: skip
    assert caught.value.sent is True and "refused" in str(caught.value)
    with pytest.raises(ConnectionFailed) as never:
        ride_out(
            lambda: (_ for _ in ()).throw(ConnectionFailed("refused")), what="take it",
            who="the test", stop=threading.Event(), on_outage=lambda exc: None, patience_s=0.2,
        )  # fmt: skip
    assert never.value.sent is False


def test_sent_defaults_to_false_and_keeps_the_lease_secrets() -> None:
    exc = ConnectionFailed("m", lease_secrets=("s",))
    assert exc.sent is False and exc.lease_secrets == ("s",)
    assert ConnectionFailed("m", sent=True).sent is True


# --- the hooks


def test_a_loop_claim_that_could_not_connect_keeps_no_lease_secret(tmp_path: Path) -> None:
    settings = _settings(f"redis://127.0.0.1:{free_port()}", tmp_path)
    with hook_swarm(settings) as hooks, pytest.raises(ConnectionFailed) as caught:
        _next_task(hooks, "agent1", LOOP, None, "s1")
    said = str(caught.value)
    assert "cannot reach Redis at" in said and "did not answer" not in said, said
    assert caught.value.sent is False
    assert tokens.unanswered(settings, "agent1") == []  # (the claim never reached a server)
    assert not_answered(caught.value, settings) is None


def test_a_loop_claim_whose_server_died_under_it_is_said_unanswered_and_its_secret_kept(
    own_server: RedisServer, tmp_path: Path
) -> None:
    # Not a timeout: the connection dropped after the claim was sent (a hook does not retry:
    # the next event is its next try). The claim may have run (a server that dies after
    # running it keeps it, with persistence or a replica): said as a request the server
    # took, its secret kept.
    settings = _settings(own_server.url, tmp_path)
    with Swarm(settings) as swarm:
        swarm.post_task("q", "the next job")
    with hook_swarm(settings) as hooks:
        hooks.ping()
        with _sleeping(own_server, 5.0):
            killer = _killed_under(own_server, 0.3)
            with pytest.raises(ConnectionFailed) as caught:
                _next_task(hooks, "agent1", LOOP, None, "s1")
            killer.join()
    said = str(caught.value)
    assert "did not answer within 1 s" in said and "closed the connection" in said, said
    assert "the claim may still run" in said and "cannot reach" not in said
    assert caught.value.sent is True
    assert len(tokens.unanswered(settings, "agent1")) == 1
