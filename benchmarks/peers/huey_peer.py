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


@huey.task()  # type: ignore[untyped-decorator]
def noop(i: int, t0: float) -> None:
    record(i, t0)


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
        pass  # the module's huey already points at BENCH_REDIS_URL

    def post_many(self, indices: range) -> None:
        for i in indices:
            noop(i, time.time())

    def close(self) -> None:
        pass
