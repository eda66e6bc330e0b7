"""redis-swarm: N worker processes, each a loop of claim (blocking) -> no-op -> report, the
report leasing the next task in the same round trip (``claim_next``), or waiting for it in
that round trip when the worker was woken for its task (``wait_s``)."""

from __future__ import annotations

import os
import sys
import time

from benchmarks.peers._record import record, redis_url
from redis_swarm import Swarm

NAME = "redis-swarm"
DISTS = ("redis-swarm",)
SETUP = (
    "N processes, each `claim(wait_s=...)` -> no-op -> `report(finding, claim_next=queue)` "
    "(a lease with a fencing token, the finding stored and indexed, the next task leased in "
    "the same script; woken for its task, the report's wait for the next and its claim in "
    "the same round trip), `post_task`"
)
QUEUE = "bench"


def worker_commands(n: int, url: str) -> list[list[str]]:
    return [[sys.executable, "-m", "benchmarks.peers.swarm_peer"] for _ in range(n)]


class Producer:
    def __init__(self, url: str) -> None:
        self._swarm = Swarm(url, swarm="bench")

    def post_many(self, indices: range) -> None:
        post = self._swarm.post_task
        for i in indices:
            post(QUEUE, "noop", {"i": i, "t0": time.time()})

    def close(self) -> None:
        self._swarm.close()


def work() -> None:
    swarm = Swarm(redis_url(), swarm="bench")
    worker = f"bench-{os.getpid()}"
    task = None
    while True:
        if task is None:
            task = swarm.claim(QUEUE, worker=worker, wait_s=5.0)
            if task is None:
                continue
        data = task.data
        record(data["i"], data["t0"])
        _, task = swarm.report(
            task.id, task.token, {"summary": "ok"}, worker=worker, claim_next=QUEUE, wait_s=5.0
        )


if __name__ == "__main__":
    work()
