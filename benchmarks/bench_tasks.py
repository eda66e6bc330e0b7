"""Work-queue benchmark: post -> claim -> report throughput of no-op tasks, claim latency and
round trips per task cycle, with 1, 4 and 16 worker processes.

    python benchmarks/bench_tasks.py            # 20,000 tasks per run
    python benchmarks/bench_tasks.py --quick    # 2,000 tasks per run
    python benchmarks/bench_tasks.py --url redis://host:6380   # an existing server (flushed
                                                                # swarm "bench-tasks-*" only)

Without --url it starts a private redis-server (no persistence) on a free local port. Workers
are separate processes (spawned), each with its own Swarm; they start together, then claim and
report until the queue is empty. Round trips are counted in the client (each request the shell
sends; a pipeline holding scripts counts 2, since redis-py checks SCRIPT EXISTS first); the
server time is what Redis spent in the claim and report scripts (INFO commandstats).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

import redis_swarm
from redis_swarm import Swarm, TaskSpec
from redis_swarm._embedded import find_redis_server
from redis_swarm._protocol import Batch, Call, Request


class CountingSwarm(Swarm):
    """A Swarm that counts the round trips it makes."""

    round_trips = 0

    def _send(self, request: Request) -> Any:
        self.round_trips += 1
        if isinstance(request, Batch) and any(isinstance(i, Call) for i in request.items):
            self.round_trips += 1
        return super()._send(request)


def _worker(url: str, swarm: str, name: str, start: Any, out: Any) -> None:
    latencies: list[float] = []
    done = 0
    handle = CountingSwarm(url, swarm=swarm)
    try:
        handle.ping()
        handle.round_trips = 0
        start.wait()
        while True:
            t0 = time.perf_counter()
            task = handle.claim("bench", worker=name)
            latencies.append(time.perf_counter() - t0)
            if task is None:
                break
            handle.report(task.id, task.token, {"summary": "noop"})
            done += 1
        out.put((done, handle.round_trips, latencies, time.perf_counter()))
    finally:
        handle.close()


@dataclass
class Result:
    workers: int
    tasks: int
    post_s: float
    post_round_trips: int
    cycle_s: float
    worker_round_trips: int
    latencies: list[float]
    server_us: float

    @property
    def throughput(self) -> float:
        return self.tasks / self.cycle_s

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def round_trips_per_cycle(self) -> float:
        return (self.post_round_trips + self.worker_round_trips) / self.tasks


def run(url: str, tasks: int, workers: int) -> Result:
    swarm = f"bench-tasks-{workers}"
    handle = CountingSwarm(url, swarm=swarm)
    try:
        _flush_swarm(handle.redis, swarm)
        specs = [TaskSpec("bench", "noop") for _ in range(tasks)]
        handle.ping()
        handle.round_trips = 0
        t0 = time.perf_counter()
        handle.post_tasks(specs)
        post_s = time.perf_counter() - t0
        post_round_trips = handle.round_trips
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(url, swarm, f"w{i}", start, out))
            for i in range(workers)
        ]
        for proc in procs:
            proc.start()
        time.sleep(0.5 + 0.1 * workers)  # let every process import and connect
        before = _script_usec(handle.redis)
        began = time.perf_counter()
        start.set()
        reports = [out.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join()
        ended = max(r[3] for r in reports)
        server_us = (_script_usec(handle.redis) - before) / tasks
        stats = handle.queue_stats()["bench"]
        assert stats["completed"] == tasks, stats
        _flush_swarm(handle.redis, swarm)
    finally:
        handle.close()
    return Result(
        workers, tasks, post_s, post_round_trips, ended - began,
        sum(r[1] for r in reports), [lat for r in reports for lat in r[2]], server_us,
    )  # fmt: skip


def _script_usec(client: Any) -> float:
    """Microseconds the server has spent running scripts (INFO commandstats): FCALL of the
    library, or EVALSHA where Functions do not exist."""
    stats = client.info("commandstats")
    scripts = ("cmdstat_evalsha", "cmdstat_fcall")
    return float(sum(v["usec"] for k, v in stats.items() if k.startswith(scripts)))


def _flush_swarm(client: Any, swarm: str) -> None:
    for key in client.scan_iter(match=f"rs:{{{swarm}}}:*", count=1000):
        client.unlink(key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _machine(url: str) -> list[str]:
    client = redis.Redis.from_url(url)
    info = client.info("server")
    client.close()
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        f"- machine: {platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores "
        f"(load average {load:.1f} at start)",
        f"- Python {platform.python_version()}, redis-py {redis.__version__}, "
        f"redis-swarm {redis_swarm.__version__}, redis-server {info['redis_version']} "
        "(local TCP, no persistence)",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tasks per run")
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per worker count; the fastest is shown"
    )
    parser.add_argument("--url", default=None, help="use this server (default: a private one)")
    args = parser.parse_args(argv)
    tasks = args.tasks or (2_000 if args.quick else 20_000)
    server: subprocess.Popen[bytes] | None = None
    workdir = None
    url = args.url
    if url is None:
        workdir = tempfile.mkdtemp(prefix="bench-tasks-")
        port = _free_port()
        server = subprocess.Popen(
            [find_redis_server().path, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}"
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
    try:
        lines = _machine(url)
        command = "python benchmarks/bench_tasks.py " + " ".join(argv or sys.argv[1:])
        lines.append(f"- command: `{command.strip()}`, {tasks:,} no-op tasks per run")
        if args.repeat > 1:
            lines.append(f"- each row: the fastest of {args.repeat} runs")
        lines += [
            "",
            "| workers | post (tasks/s) | claim+report (tasks/s) | claim p50 (ms) "
            "| claim p99 (ms) | round trips / task | server time / task (µs) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for workers in (int(w) for w in args.workers.split(",")):
            r = max(
                (run(url, tasks, workers) for _ in range(args.repeat)), key=lambda r: r.throughput
            )
            lines.append(
                f"| {workers} | {tasks / r.post_s:,.0f} | {r.throughput:,.0f} | "
                f"{r.pct(0.50):.2f} | {r.pct(0.99):.2f} | {r.round_trips_per_cycle:.2f} | "
                f"{r.server_us:.0f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
        print("\n".join(lines))
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
