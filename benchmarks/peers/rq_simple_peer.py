"""RQ with its non-forking ``SimpleWorker`` (faster, no isolation between jobs)."""

from __future__ import annotations

from benchmarks.peers import rq_peer

NAME = "rq (SimpleWorker)"
DISTS = ("rq",)
SETUP = "`rq worker --worker-class rq.worker.SimpleWorker` x N (no fork per job)"
Producer = rq_peer.Producer


def worker_commands(n: int, url: str) -> list[list[str]]:
    return [
        [*cmd[:-1], "--worker-class", "rq.worker.SimpleWorker", cmd[-1]]
        for cmd in rq_peer.worker_commands(n, url)
    ]
