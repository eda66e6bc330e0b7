"""Dramatiq with the Redis broker: ``dramatiq`` with N processes (8 threads each, the default)."""

from __future__ import annotations

import sys
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.peers._record import record, redis_url

NAME = "dramatiq"
DISTS = ("dramatiq",)
SETUP = "`dramatiq --processes N` (8 threads each, the default), RedisBroker, `send`"

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0, queue_name="bench")  # type: ignore[untyped-decorator]
def noop(i: int, t0: float) -> None:
    record(i, t0)


def worker_commands(n: int, url: str) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "dramatiq",
            "benchmarks.peers.dramatiq_peer",
            "--processes",
            str(n),
            "--queues",
            "bench",
        ]
    ]


class Producer:
    def __init__(self, url: str) -> None:
        # This module may have been imported before BENCH_REDIS_URL was set: bind to ``url``.
        self._broker = RedisBroker(url=url)
        dramatiq.set_broker(self._broker)
        self._broker.declare_actor(noop)
        noop.broker = self._broker

    def post_many(self, indices: range) -> None:
        send = noop.send
        for i in indices:
            send(i, time.time())

    def close(self) -> None:
        self._broker.close()
