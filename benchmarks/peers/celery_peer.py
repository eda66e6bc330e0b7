"""Celery with the Redis broker: one ``celery worker`` with a prefork pool of N children."""

from __future__ import annotations

import sys
import time

from celery import Celery

from benchmarks.peers._record import record, redis_url

NAME = "celery"
DISTS = ("celery", "kombu")
SETUP = (
    "`celery worker -P prefork -c N` (one process, N children; without gossip, mingle, "
    "heartbeat), Redis broker, results ignored, `delay`"
)

app = Celery("bench", broker=redis_url())
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_default_queue="bench",
)


@app.task(ignore_result=True)  # type: ignore[untyped-decorator]
def noop(i: int, t0: float) -> None:
    record(i, t0)


def worker_commands(n: int, url: str) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.peers.celery_peer",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(n),
            "-l",
            "WARNING",
            "-Q",
            "bench",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    ]


class Producer:
    def __init__(self, url: str) -> None:
        app.conf.broker_url = url

    def post_many(self, indices: range) -> None:
        delay = noop.delay
        for i in indices:
            delay(i, time.time())

    def close(self) -> None:
        app.close()
