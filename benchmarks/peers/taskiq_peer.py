"""taskiq with taskiq-redis's RedisStreamBroker (consumer groups, acknowledged messages)."""

from __future__ import annotations

import asyncio
import sys
import time

from taskiq_redis import RedisStreamBroker

from benchmarks.peers._record import record, redis_url

NAME = "taskiq"
DISTS = ("taskiq", "taskiq-redis")
SETUP = (
    "`taskiq worker --workers N` (max 100 async tasks each, the default), RedisStreamBroker "
    "(acknowledged; ListQueueBroker has no ack), `kiq`"
)

broker = RedisStreamBroker(url=redis_url(), queue_name="bench")


@broker.task
async def noop(i: int, t0: float) -> None:
    record(i, t0)


def worker_commands(n: int, url: str) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "taskiq",
            "worker",
            "benchmarks.peers.taskiq_peer:broker",
            "--workers",
            str(n),
            "--log-level",
            "WARNING",
            "--no-configure-logging",
        ]
    ]


class Producer:
    def __init__(self, url: str) -> None:
        # This module may have been imported before BENCH_REDIS_URL was set: bind to ``url``.
        self._broker = RedisStreamBroker(url=url, queue_name="bench")
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._broker.startup())
        self._kicker = noop.kicker().with_broker(self._broker)

    def post_many(self, indices: range) -> None:
        async def post() -> None:
            for i in indices:
                await self._kicker.kiq(i, time.time())

        self._loop.run_until_complete(post())

    def close(self) -> None:
        self._loop.run_until_complete(self._broker.shutdown())
        self._loop.close()
