"""The lifecycle benchmark's redis-swarm run, for several trees side by side, with what each
task cost the workers, the producer and the server in CPU (which the machine's other jobs
move less than the throughput).

Each round runs one child process per tree, in turn (the order reversed every other round),
with that tree's ``src`` and benchmarks first on its path, per worker count. The child starts
a private redis-server and ``benchmarks.peers.swarm_peer``'s N worker processes and producer
(what ``lifecycle.py`` runs), warms up, then measures two phases:

- ``burst``: ``-n`` tasks posted one by one as fast as the producer can (throughput, posting
  included, as in ``lifecycle.py``);
- ``one``: 300 tasks, each posted once the previous has started (every task wakes an idle
  worker): the enqueue-to-start latency, and how long the producer's post call takes.

Per phase and task: the CPU of the worker processes (``/proc/PID/task/*/schedstat``, exact)
and of the producer, the server's CPU (``INFO cpu``), its commands (those run inside scripts
included), script calls and BLPOPs (``INFO commandstats``). Printed: each run, then the
medians per tree and worker count. Compare trees only within one run; give each tree as a
fixed snapshot (``git archive REV | tar -x -C DIR``), not a worktree that may move::

    python benchmarks/lifecycle_ab.py /tmp/before /tmp/after --rounds 6 -w 4 16

A benchmark, not a test; not part of ``run_all``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

ONE_BY_ONE = 300

# --------------------------------------------------------------------------- the child


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds of these processes, every thread (schedstat's first field, in ns)."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    return total / 1e9


def _server(server: Any) -> tuple[dict[str, int], float]:
    with server.client() as client:
        stats: dict[str, Any] = client.info("commandstats")
        cpu: dict[str, Any] = client.info("cpu")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def child(n_workers: int, tasks: int) -> dict[str, Any]:
    import resource
    import time

    from benchmarks._common import RedisProcess, child_env, tempdir
    from benchmarks.lifecycle import Collector, Workers, wait_idle
    from benchmarks.peers import swarm_peer

    def own_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    out: dict[str, Any] = {}

    def measure(phase: str, pids: list[int], count: int, run: Any) -> None:
        calls0, server0 = _server(server)
        workers0, own0 = _cpu_s(pids), own_cpu()
        run()
        time.sleep(0.2)  # the last report
        calls1, server1 = _server(server)
        delta = {k: calls1.get(k, 0) - calls0.get(k, 0) for k in calls1}
        out[phase] = {
            "workers_us": (_cpu_s(pids) - workers0) * 1e6 / count,
            "producer_us": (own_cpu() - own0) * 1e6 / count,
            "server_us": (server1 - server0) * 1e6 / count,
            "commands": sum(v for k, v in delta.items() if k not in ("info", "config")) / count,
            "scripts": (delta.get("fcall", 0) + delta.get("evalsha", 0)) / count,
            "blpop": delta.get("blpop", 0) / count,
        }

    with RedisProcess() as server, tempdir("rs-lifecycle-ab-") as tmp:
        env = child_env(BENCH_REDIS_URL=server.url, BENCH_RESULTS_DIR=str(tmp))
        os.environ.update(BENCH_REDIS_URL=server.url, BENCH_RESULTS_DIR=str(tmp))
        log = tmp / "workers.log"
        workers = Workers()
        workers.start(swarm_peer.worker_commands(n_workers, server.url), env, log)
        try:
            wait_idle(timeout_s=2 + 0.4 * n_workers)
            producer = swarm_peer.Producer(server.url)
            started = Collector(tmp / "results.log")
            warm = range(4 * n_workers + 20)
            producer.post_many(warm)
            if not started.wait_for(warm, 60):
                raise RuntimeError("warm-up tasks not run within 60 s")
            wait_idle(timeout_s=2)
            pids = [p.pid for p in workers.procs]
            burst = range(warm.stop, warm.stop + tasks)
            begin: list[float] = []

            def run_burst() -> None:
                begin.append(time.time())
                producer.post_many(burst)
                if not started.wait_for(burst, 300):
                    raise RuntimeError(f"{tasks} tasks not run within 300 s")

            measure("burst", pids, tasks, run_burst)
            last = max(started.started[i][1] for i in burst)
            out["burst"]["tasks_per_s"] = tasks / (last - begin[0])
            ones = range(burst.stop, burst.stop + ONE_BY_ONE)

            posts: list[float] = []

            def run_ones() -> None:
                for i in ones:
                    begun = time.perf_counter()
                    producer.post_many(range(i, i + 1))
                    posts.append(time.perf_counter() - begun)
                    if not started.wait_for(range(i, i + 1), 30, interval_s=0.0002):
                        raise RuntimeError(f"task {i} not run within 30 s")
                    time.sleep(0.002)

            measure("one", pids, ONE_BY_ONE, run_ones)
            waits = sorted(started.started[i][1] - started.started[i][0] for i in ones)
            out["one"]["p50_ms"] = waits[len(waits) // 2] * 1000
            out["one"]["post_us"] = statistics.median(posts) * 1e6
            producer.close()
        finally:
            workers.stop()
    return out


# --------------------------------------------------------------------------- the parent


def run(tree: str, n_workers: int, tasks: int) -> dict[str, Any]:
    """One run of ``tree``: this file as the child, that tree's benchmarks and src imported
    (it need not have this file)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([f"{tree}/src", tree]))
    command = [sys.executable, __file__, "--child", str(n_workers), str(tasks)]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    raise RuntimeError(f"{tree} x{n_workers}: {done.stdout[-1000:]}{done.stderr[-2000:]}")


def line(result: dict[str, Any]) -> str:
    burst, one = result["burst"], result["one"]

    def cpu(phase: dict[str, Any]) -> str:
        return (
            f"workers {phase['workers_us']:4.0f}, producer {phase['producer_us']:3.0f}, "
            f"server {phase['server_us']:3.0f} us; {phase['commands']:.1f} commands, "
            f"{phase['scripts']:.2f} scripts, {phase['blpop']:.2f} BLPOP"
        )

    return (
        f"burst {burst['tasks_per_s']:5.0f} tasks/s ({cpu(burst)}) | "
        f"one by one p50 {one['p50_ms']:.2f} ms, post {one['post_us']:.0f} us ({cpu(one)})"
    )


def median(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        phase: {k: statistics.median(r[phase][k] for r in results) for k in results[0][phase]}
        for phase in results[0]
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print("RESULT", json.dumps(child(int(sys.argv[2]), int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="source trees (fixed snapshots)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("-n", "--tasks", type=int, default=1000, help="tasks of the burst")
    parser.add_argument("-w", "--workers", type=int, nargs="+", default=[4, 16])
    args = parser.parse_args()
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for n in args.workers:
            for tree in args.trees if round_ % 2 == 0 else args.trees[::-1]:
                result = run(tree, n, args.tasks)
                results.setdefault((tree, n), []).append(result)
                print(f"round {round_} x{n:<2} {tree}: {line(result)}", flush=True)
    print("\nmedians per task:")
    for n in args.workers:
        for tree in args.trees:
            runs = results[(tree, n)]
            spread = ", ".join(f"{r['burst']['tasks_per_s']:.0f}" for r in runs)
            print(f"x{n:<2} {tree}: {line(median(runs))}\n    burst tasks/s: {spread}")


if __name__ == "__main__":
    main()
