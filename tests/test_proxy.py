"""The latency proxy used to test behaviour on slow links (round trips, bandwidth)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import ConnectionFailed, Settings, Swarm
from redis_swarm._protocol import Batch, Cmd, Operation

from ._proxy import LatencyProxy
from ._servers import RedisServer

DELAY = 0.03  # one way: a 60 ms round trip, a far-away server


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[LatencyProxy]:
    with LatencyProxy(redis_server.port or 0, delay_s=DELAY) as link:
        yield link


def _one(request: Cmd | Batch) -> Operation[Any]:
    reply = yield request
    return reply


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_a_round_trip_costs_twice_the_delay(proxy: LatencyProxy) -> None:
    with Swarm(proxy.url, swarm="far") as swarm:
        swarm.ping()  # connect
        proxy.reset_stats()
        rtts = [swarm.ping() / 1000 for _ in range(3)]
        assert proxy.stats.exchanges == 3
    assert all(2 * DELAY <= rtt < 2 * DELAY + 0.05 for rtt in rtts), rtts


def test_a_batch_is_one_round_trip(proxy: LatencyProxy) -> None:
    with Swarm(proxy.url, swarm="far") as swarm:
        swarm.ping()
        proxy.reset_stats()
        batch = Batch(tuple(Cmd("SET", f"rs:{{far}}:k{i}", i) for i in range(50)))
        elapsed = timed(lambda: swarm._run(_one(batch)))
        assert proxy.stats.exchanges == 1
    assert elapsed < 3 * 2 * DELAY  # 50 sequential commands would take 50 round trips


def test_bandwidth_cap_slows_big_values(redis_server: RedisServer, redis_url: str) -> None:
    payload = b"x" * 300_000
    link = LatencyProxy(redis_server.port or 0, bandwidth=1_000_000)
    with link, Swarm(link.url, swarm="far") as swarm:
        swarm.ping()
        link.reset_stats()
        elapsed = timed(lambda: swarm._run(_one(Cmd("SET", "rs:{far}:big", payload))))
        assert link.stats.bytes_up >= len(payload)
        elapsed += timed(lambda: swarm._run(_one(Cmd("GET", "rs:{far}:big"))))
        assert link.stats.bytes_down >= len(payload)
    assert elapsed >= 0.55  # 600 KB at 1 MB/s


def test_cut_drops_connections_and_clients_reconnect(proxy: LatencyProxy) -> None:
    with Swarm(proxy.url, swarm="far") as swarm:
        swarm.ping()
        proxy.cut()
        assert swarm.ping() > 0  # the retry reconnects through the proxy
        assert proxy.stats.connections == 2


def test_a_closed_proxy_is_a_clear_error(proxy: LatencyProxy) -> None:
    settings = Settings.from_url(proxy.url, swarm="far", retries=1)
    with Swarm(settings) as swarm:
        swarm.ping()
        proxy.close()
        with pytest.raises(ConnectionFailed):
            swarm.ping()


def test_a_new_connection_costs_few_round_trips(proxy: LatencyProxy) -> None:
    """A fresh worker process on a far link pays for its handshake: no CLIENT SETINFO."""
    with Swarm(proxy.url, swarm="far") as swarm:
        swarm.ping()
        assert proxy.stats.exchanges <= 4, proxy.stats  # HELLO, notifications, PING, ...
