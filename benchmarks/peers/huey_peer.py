"""Huey with RedisHuey: ``huey_consumer -k process -w N`` (blocking BRPOP reads)."""

from __future__ import annotations

import sys
import time

from huey import RedisHuey

from benchmarks.peers._record import record, redis_url

NAME = "huey"
DISTS = ("huey",)
SETUP = "`huey_consumer -k process -w N`, RedisHuey (blocking reads), results off"

huey = RedisHuey("bench", url=redis_url(), results=False)


def _noop(i: int, t0: float) -> None:
    record(i, t0)


noop = huey.task(name="bench.noop")(_noop)


def worker_commands(n: int, url: str) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "benchmarks.peers.huey_peer.huey",
            "-k",
            "process",
            "-w",
            str(n),
            "-q",
        ]
    ]


class Producer:
    def __init__(self, url: str) -> None:
        # This module may have been imported before BENCH_REDIS_URL was set: bind to ``url``.
        self._huey = RedisHuey("bench", url=url, results=False)
        self._noop = self._huey.task(name="bench.noop")(_noop)

    def post_many(self, indices: range) -> None:
        enqueue, task = self._huey.enqueue, self._noop.s
        for i in indices:
            enqueue(task(i, time.time()))

    def close(self) -> None:
        pass
