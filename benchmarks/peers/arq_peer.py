"""arq: ``arq.worker.run_worker`` processes (asyncio, polls its queue every ``poll_delay``)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import run_worker

from benchmarks.peers._record import record, redis_url

NAME = "arq"
DISTS = ("arq",)
SETUP = (
    "`arq.worker.run_worker` x N (max_jobs 10 each, the default; poll_delay 10 ms instead "
    "of the default 500 ms, which would dominate its latency), `enqueue_job`"
)


async def noop(ctx: dict[str, Any], i: int, t0: float) -> None:
    record(i, t0)


def worker_settings() -> dict[str, Any]:
    return {
        "functions": [noop],
        "redis_settings": RedisSettings.from_dsn(redis_url()),
        "poll_delay": 0.01,
        "keep_result": 0,
        "log_results": False,
    }


def worker_commands(n: int, url: str) -> list[list[str]]:
    return [[sys.executable, "-m", "benchmarks.peers.arq_peer"] for _ in range(n)]


class Producer:
    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._pool = self._loop.run_until_complete(create_pool(RedisSettings.from_dsn(url)))

    def post_many(self, indices: range) -> None:
        async def post() -> None:
            for i in indices:
                await self._pool.enqueue_job("noop", i, time.time())

        self._loop.run_until_complete(post())

    def close(self) -> None:
        self._loop.run_until_complete(self._pool.aclose())
        self._loop.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run_worker(worker_settings())
