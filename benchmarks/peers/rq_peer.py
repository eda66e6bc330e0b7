"""RQ: ``rq worker`` processes (the default Worker forks a work horse per job)."""

from __future__ import annotations

import sys
import time

import redis
from rq import Queue

from benchmarks.peers._record import record

NAME = "rq"
DISTS = ("rq",)
SETUP = "`rq worker` x N (default Worker: a forked work horse per job), `Queue.enqueue`"


def noop(i: int, t0: float) -> None:
    record(i, t0)


def worker_commands(n: int, url: str) -> list[list[str]]:
    cmd = [sys.executable, "-m", "rq.cli", "worker", "-u", url, "--quiet"]
    cmd += ["--logging_level", "WARNING", "--disable-job-desc-logging", "bench"]
    return [cmd for _ in range(n)]


class Producer:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url)
        self._queue = Queue("bench", connection=self._redis)

    def post_many(self, indices: range) -> None:
        enqueue = self._queue.enqueue
        for i in indices:
            enqueue(noop, i, time.time())

    def close(self) -> None:
        self._redis.close()
