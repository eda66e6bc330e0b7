"""The size of a handle's connection pool: ``?max_connections=N`` / Settings.max_connections,
given to every client a handle builds, and the error of a handle with every connection in use
(more calls waiting at once than its pool), said as such, at once, never as an unreachable
server and never after the retries' pauses."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from redis_swarm import AsyncSwarm, ConfigError, ConnectionFailed, Settings, Swarm, TaskSpec
from redis_swarm._connect import async_client, sync_client
from redis_swarm._retries import is_permanent

from ._servers import ServerFactory

QUEUE = "cq"


def _full(message: str, size: int) -> None:
    """``message`` is the pool-exhausted one for a pool of ``size``, not an outage's."""
    assert f"max_connections={size}" in message, message
    assert f"all its {size} connections" in message, message
    assert "cannot reach" not in message, message
    assert "check that the server runs" not in message, message
    assert "?max_connections=N in the URL" in message, message


def _url(base: str, size: int) -> str:
    return f"{base}{'&' if '?' in base else '?'}max_connections={size}"


# --- the setting


@pytest.mark.parametrize(
    "url",
    [
        "embedded",
        "unix:///tmp/redis.sock",
        "redis://10.0.0.5:6379/0",
        "rediss://10.0.0.5:6380/0?ssl_ca_certs=/ca.pem",
        "redis+cluster://10.0.0.5:7000,10.0.0.6:7000",
        "redis+sentinel://10.0.0.5:26379/mymaster",
    ],
)
def test_every_url_takes_max_connections(url: str) -> None:
    settings = Settings.from_url(_url(url, 300))
    assert settings.max_connections == 300
    rendered = settings.render_url(mask=False)
    assert "max_connections=300" in rendered
    assert Settings.from_url(rendered).max_connections == 300
    # Left out where it is the default, as every option is.
    assert "max_connections" not in Settings.from_url(url).render_url(mask=False)


def test_default_is_stated_and_explicit() -> None:
    # redis-py's own default since 8.0, given explicitly (no limit before 8.0).
    assert Settings.from_url("redis://h:6379").max_connections == 100
    assert Settings(kind="standalone", max_connections=7).max_connections == 7
    assert Settings.from_url("redis://h", max_connections=9).max_connections == 9


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0", "at least 1"),
        ("-3", "at least 1"),
        ("x", "not a number, or not a whole one"),
        ("1.5", "not a number, or not a whole one"),
        ("", "not a number, or not a whole one"),
    ],
)
def test_bad_url_values_are_refused(value: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said) as caught:
        Settings.from_url(f"redis://h:6379?max_connections={value}")
    assert "max_connections" in str(caught.value)


@pytest.mark.parametrize("value", [0, -1, "50", 2.5, True, None])
def test_bad_settings_values_are_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match="max_connections must be a whole number of at least 1"):
        Settings.from_url("redis://h:6379", max_connections=value)
    with pytest.raises(ConfigError, match="max_connections"):
        Settings.from_url("redis://h:6379").replace(max_connections=value)


# --- every client a handle builds gets it


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6390/0", "rediss://127.0.0.1:6390/0?ssl_cert_reqs=none"],
)
def test_standalone_and_tls_clients_get_it(url: str) -> None:
    settings = Settings.from_url(_url(url, 7))
    sync = sync_client(settings)
    assert sync.connection_pool.max_connections == 7  # type: ignore[union-attr]
    sync.close()
    client = async_client(settings)
    assert client.connection_pool.max_connections == 7  # type: ignore[union-attr]


def test_unix_clients_get_it(servers: ServerFactory) -> None:
    server = servers.start(unix=True)
    settings = Settings.from_url(_url(f"unix://{server.socket_path}", 7))
    sync = sync_client(settings)
    assert sync.connection_pool.max_connections == 7  # type: ignore[union-attr]
    assert sync.ping()
    sync.close()
    assert async_client(settings).connection_pool.max_connections == 7  # type: ignore[union-attr]


def test_sentinel_clients_get_it() -> None:
    """The master's pool, and each sentinel's (every new connection to the master asks one);
    nothing is connected while a client is built."""
    settings = Settings.from_url(_url("redis+sentinel://127.0.0.1:26390/mymaster", 7))
    clients: list[Any] = [sync_client(settings), async_client(settings)]
    for client in clients:
        pool: Any = client.connection_pool
        assert pool.max_connections == 7
        for sentinel in pool.sentinel_manager.sentinels:
            assert sentinel.connection_pool.max_connections == 7


def test_cluster_clients_get_it(cluster_url: str) -> None:
    settings = Settings.from_url(_url(cluster_url, 7))
    sync: Any = sync_client(settings)
    try:
        sync.ping()
        nodes = sync.get_nodes()
        assert nodes
        assert {node.redis_connection.connection_pool.max_connections for node in nodes} == {7}
    finally:
        sync.close()

    async def built() -> set[int]:
        client: Any = async_client(settings)
        try:
            await client.ping()
            return {node.max_connections for node in client.get_nodes()}
        finally:
            await client.aclose()

    assert asyncio.run(built()) == {7}


# --- many calls waiting at once on one handle


async def _waiting_claims(url: str, count: int, posted: int) -> list[Any]:
    """``count`` claims that wait on one handle at once, ``posted`` tasks posted once the
    server holds them all waiting (a loaded machine is slow to start 200: posted after a
    fixed pause, the tasks once met claims whose waits had ended); what each returned or
    raised."""
    async with AsyncSwarm(url, swarm="pool") as swarm:
        waiters = [
            asyncio.create_task(swarm.claim(QUEUE, worker=f"w{i}", wait_s=5)) for i in range(count)
        ]
        await _until_blocked(url, count)
        if posted:
            await swarm.post_tasks([TaskSpec(QUEUE, f"t{i}") for i in range(posted)])
        return await asyncio.gather(*waiters, return_exceptions=True)


async def _until_blocked(url: str, count: int) -> None:
    """Until the server at ``url`` holds ``count`` clients blocked (or 4 s have passed)."""
    raw = redis.asyncio.Redis.from_url(url.split("?", 1)[0])
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            if int((await raw.info("clients"))["blocked_clients"]) >= count:
                return
            await asyncio.sleep(0.05)
    finally:
        await raw.aclose()


def test_async_200_waiting_claims_with_a_pool_of_300(redis_url: str) -> None:
    """What the tour ran: 200 claims waiting at once, which a pool of 100 (the default)
    refuses half of; with ?max_connections=300 every one waits, and each posted task is
    claimed once."""
    results = asyncio.run(_waiting_claims(_url(redis_url, 300), 200, 50))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    claimed = [r.id for r in results if r is not None]
    assert len(claimed) == len(set(claimed)) == 50


def test_async_waits_past_the_pool_say_so_at_once(redis_url: str) -> None:
    """10 waits on a pool of 5: the 5 that got no connection fail at once (not after the
    retries' pauses, nor after the others' waits) with the pool's message; the 5 others
    wait and end as usual."""
    results = asyncio.run(_timed_waits(_url(redis_url, 5), 10))
    errors = [(took, r) for took, r in results if isinstance(r, BaseException)]
    assert len(errors) == 5, results
    assert all(type(error) is ConnectionFailed for _, error in errors), errors
    _full(str(errors[0][1]), 5)
    assert max(took for took, _ in errors) < 1.0
    assert [r for _, r in results if not isinstance(r, BaseException)] == [None] * 5


async def _timed_waits(url: str, count: int) -> list[tuple[float, Any]]:
    """``count`` claims that wait 3 s on one handle at once: how long each took, and what it
    returned or raised."""

    async def timed(swarm: AsyncSwarm, i: int) -> tuple[float, Any]:
        started = time.monotonic()
        try:
            result: Any = await swarm.claim(QUEUE, worker=f"w{i}", wait_s=3)
        except ConnectionFailed as exc:
            result = exc
        return time.monotonic() - started, result

    async with AsyncSwarm(url, swarm="pool") as swarm:
        await swarm.ping()
        return list(await asyncio.gather(*(timed(swarm, i) for i in range(count))))


def test_sync_swarm_shared_by_threads(redis_url: str) -> None:
    """A sync Swarm shared by 10 threads that each wait: with a pool of 5 the extra ones fail
    at once with the pool's message; with a pool of 20 every one waits."""

    def run(size: int) -> tuple[list[Any], list[float]]:
        results: list[Any] = []
        took: list[float] = []
        barrier = threading.Barrier(10)
        with Swarm(_url(redis_url, size), swarm="pool") as swarm:
            swarm.ping()

            def wait(i: int) -> None:
                barrier.wait()
                started = time.monotonic()
                try:
                    results.append(swarm.claim(QUEUE, worker=f"w{i}", wait_s=1.5))
                except ConnectionFailed as exc:
                    results.append(exc)
                took.append(time.monotonic() - started)

            threads = [threading.Thread(target=wait, args=(i,)) for i in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        return results, took

    results, took = run(5)
    errors = [r for r in results if isinstance(r, ConnectionFailed)]
    assert len(results) == 10
    assert errors, "a pool of 5 took 10 waits at once"
    _full(str(errors[0]), 5)
    assert min(took) < 0.5  # the refused ones: at once

    results, _ = run(20)
    assert results == [None] * 10


def test_cluster_waits_past_the_pool_say_so_at_once(cluster_url: str) -> None:
    """On a cluster (a pool per node; a queue's claims all go to one node) the shell's own
    retry, which rides out a failover for up to 53 s, does not retry a full pool either."""
    results = asyncio.run(_timed_waits(_url(cluster_url, 3), 8))
    errors = [(took, r) for took, r in results if isinstance(r, BaseException)]
    assert errors, results
    assert all(type(error) is ConnectionFailed for _, error in errors), errors
    message = str(errors[0][1])
    _full(message, 3)
    assert "to one node" in message
    assert max(took for took, _ in errors) < 2.0


# --- the error, as translated and retried


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.MaxConnectionsError("Too many connections"),
        redis.exceptions.MaxConnectionsError(),  # the asyncio cluster's, without a text
        redis.ConnectionError("Too many connections"),  # redis-py before MaxConnectionsError
    ],
)
def test_a_full_pool_is_never_retried(error: Exception) -> None:
    assert is_permanent(error)
    # The server's own limit (maxclients) is not the pool's: it stays the outage it was.
    assert not is_permanent(redis.ConnectionError("max number of clients reached"))
    assert not is_permanent(redis.ConnectionError("Connection refused"))
