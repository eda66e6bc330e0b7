"""The client's CPU per task of the lifecycle benchmark's loop: ``post_task``, and a worker's
``report(..., claim_next=)``; measured in process CPU time (the syscalls included) against a
private redis-server, and for the operations alone, fed replies recorded once (no I/O). For
scale, a round trip alone: a ``PING`` over a bare socket and through redis-py.

Not part of ``run_all``: a tool to compare two trees side by side, run in turn on a machine
as quiet as can be (the figures move by tens of percent with the load of a shared one)::

    PYTHONPATH=/path/to/tree-a/src python -m benchmarks.client_cpu
    PYTHONPATH=/path/to/tree-b/src python -m benchmarks.client_cpu
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import RedisProcess
from redis_swarm import Swarm
from redis_swarm._ops import findings, tasks
from redis_swarm._protocol import Operation

QUEUE = "bench"
WORKER = "bench-w"


def cpu_per_call(fn: Callable[[], object], n: int, runs: int = 3) -> float:
    """The least process CPU time of one call over ``runs`` runs of ``n`` calls, in us."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def posted(swarm: Swarm, n: int) -> None:
    for i in range(n):
        swarm.post_task(QUEUE, "noop", {"i": i, "t0": time.time()})


def lifecycle(swarm: Swarm, n: int) -> tuple[float, float]:
    """Client CPU per post and per report with claim_next (us), ``n`` tasks each."""
    swarm.redis.flushdb()
    start = time.process_time()
    posted(swarm, n)
    post_us = (time.process_time() - start) / n * 1e6
    task = swarm.claim(QUEUE, worker=WORKER, wait_s=1.0)
    start = time.process_time()
    while task is not None:
        _, task = swarm.report(
            task.id, task.token, {"summary": "ok"}, worker=WORKER, claim_next=QUEUE
        )
    return post_us, (time.process_time() - start) / n * 1e6


def replayed(make: Callable[[], Operation[Any]], reply: Any) -> Callable[[], object]:
    """An operation of one request, fed ``reply``: its own CPU, without the I/O."""

    def run() -> object:
        op = make()
        next(op)
        try:
            op.send(reply)
        except StopIteration as stop:
            return stop.value
        raise RuntimeError("the operation asked for a second request")

    return run


def operations_alone(swarm: Swarm, n: int) -> tuple[float, float]:
    """CPU per post_task and per report(claim_next=) operation, replies recorded once (us)."""
    swarm.redis.flushdb()
    posted(swarm, 2)
    ctx = swarm._ctx
    task = swarm.claim(QUEUE, worker=WORKER)
    assert task is not None

    def report() -> Operation[Any]:
        finding = {"summary": "ok"}
        return findings.report(ctx, task.id, task.token, finding, worker=WORKER, claim_next=QUEUE)

    def post() -> Operation[Any]:
        return tasks.post_task(ctx, QUEUE, "noop", {"i": 1, "t0": 0.0})

    report_reply = swarm._send(next(report()))
    post_reply = swarm._send(next(post()))
    # The report first: posting remembers the route of every task it makes, and would push
    # this task's out of the process's memory (a report would then read it: a request more).
    report_us = cpu_per_call(replayed(report, report_reply), n)
    return cpu_per_call(replayed(post, post_reply), n), report_us


def round_trips(server: RedisProcess, n: int) -> tuple[float, float]:
    """CPU per PING round trip (us): over a bare TCP socket, and through redis-py."""
    with socket.create_connection(("127.0.0.1", server.port)) as bare, server.client() as rpy:
        bare.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def raw() -> None:
            bare.sendall(b"*1\r\n$4\r\nPING\r\n")
            if not bare.recv(64).startswith(b"+PONG"):
                raise RuntimeError("the server did not answer PONG")

        return cpu_per_call(raw, n), cpu_per_call(lambda: rpy.execute_command("PING"), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3_000, help="tasks per run")
    args = parser.parse_args()
    with RedisProcess() as server:
        swarm = Swarm(server.url, swarm="bench")
        swarm.load_functions()
        lifecycle(swarm, 300)  # warm up
        runs = [lifecycle(swarm, args.n) for _ in range(3)]
        post_us, report_us = min(r[0] for r in runs), min(r[1] for r in runs)
        op_post, op_report = operations_alone(swarm, 10 * args.n)
        bare_us, redis_py_us = round_trips(server, args.n)
        swarm.close()
    both = "post {:.1f} us, report with claim_next {:.1f} us"
    print("client CPU per task, with I/O:", both.format(post_us, report_us))
    print("the operations alone (no I/O):", both.format(op_post, op_report))
    print(f"a PING round trip: {bare_us:.1f} us over a bare socket, {redis_py_us:.1f} us", end="")
    print(" through redis-py")


if __name__ == "__main__":
    main()
