"""Task lifecycle: post -> claim -> complete of no-op tasks, redis-swarm against the peers.

Every library runs its own worker program (its real worker machinery) as N worker processes
against one private redis-server, flushed between runs. A no-op task records its start time
(see ``peers/_record.py``) and nothing else. Per library and worker count:

1. start the workers and wait until the machine is idle again (imports done);
2. warm-up: a batch of tasks, waited for, excluded from the figures;
3. throughput: N tasks posted one by one by one producer as fast as it can; the figure is
   N / (time the last task started - time the first post began), so it includes posting;
   repeated in rounds (3, fewer when a library is slow: see ``ROUNDS``), the median kept,
   because one round of a thousand tasks on 2 shared cores swings by a third;
4. latency: tasks posted one at a time, the next once the previous has started (an idle
   swarm, as when an agent posts a task now and then): enqueue-to-claim is the time from
   just before the post call to the moment the task's code starts in a worker.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks._common import Config, RedisProcess, Stats, child_env, fmt, md_table, tempdir

# Display order: ours first. Module names under benchmarks.peers.
PEERS: dict[str, str] = {
    "redis-swarm": "swarm_peer",
    "rq": "rq_peer",
    "rq-simple": "rq_simple_peer",
    "arq": "arq_peer",
    "celery": "celery_peer",
    "dramatiq": "dramatiq_peer",
    "taskiq": "taskiq_peer",
    "huey": "huey_peer",
}


@dataclass
class Result:
    peer: str
    workers: int
    tasks: int = 0
    throughput: float = float("nan")  # tasks per second, posting included
    post_rate: float = float("nan")  # posts per second of the one producer
    latency: Stats | None = None
    error: str | None = None
    # Redis's view of the throughput phase, per task: commands run (those run inside Lua
    # scripts included) and the server's CPU time in microseconds.
    commands_per_task: float = float("nan")
    server_cpu_us_per_task: float = float("nan")
    scripts_per_task: float = float("nan")
    # Every throughput round (tasks/s), in the order run; the figure above is their median.
    rounds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "workers": self.workers,
            "tasks": self.tasks,
            "throughput_per_s": self.throughput,
            "post_per_s": self.post_rate,
            "commands_per_task": self.commands_per_task,
            "server_cpu_us_per_task": self.server_cpu_us_per_task,
            "scripts_per_task": self.scripts_per_task,
            "throughput_rounds": self.rounds,
            "latency": self.latency.to_dict() if self.latency else None,
            "error": self.error,
        }


class Collector:
    """Reads the start records the workers append to one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started: dict[int, tuple[float, float]] = {}
        self.pids: set[str] = set()
        self.ppids: set[str] = set()
        self._offset = 0
        self._partial = b""

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return len(self.started)
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            i, t0, t1, pid, ppid = line.decode().split()
            self.started[int(i)] = (float(t0), float(t1))
            self.pids.add(pid)
            self.ppids.add(ppid)
        return len(self.started)

    def processes(self) -> int:
        """How many worker processes ran a task (RQ forks a child per job: count parents)."""
        return max(len(self.pids), len(self.ppids))

    def wait_for(self, indices: range, timeout_s: float, interval_s: float = 0.002) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            if all(i in self.started for i in indices):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(interval_s)


def _cpu_times() -> tuple[int, int]:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    return sum(values), values[3] + values[4]  # total, idle + iowait


def wait_idle(timeout_s: float = 30.0, window_s: float = 0.25, idle_frac: float = 0.85) -> None:
    """Wait until the machine has been mostly idle for two windows in a row (workers booted)."""
    deadline = time.monotonic() + timeout_s
    calm = 0
    while calm < 2 and time.monotonic() < deadline:
        total0, idle0 = _cpu_times()
        time.sleep(window_s)
        total1, idle1 = _cpu_times()
        busy = total1 - total0
        calm = calm + 1 if busy == 0 or (idle1 - idle0) / busy >= idle_frac else 0


@dataclass
class Workers:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, commands: list[list[str]], env: dict[str, str], log: Path) -> None:
        with open(log, "ab") as out:
            for cmd in commands:
                self.procs.append(
                    subprocess.Popen(
                        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )

    def check(self, log: Path) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"a worker exited with {proc.returncode}: {tail}")

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3  # disposable: no need to wait for a graceful exit
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for proc in self.procs:  # children of a killed leader (celery, taskiq) too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def server_usage(server: RedisProcess) -> tuple[int, float, int]:
    """Commands run so far (INFO and CONFIG left out), CPU seconds used, scripts run."""
    with server.client() as client:
        stats: dict[str, Any] = client.info("commandstats")
        cpu: dict[str, Any] = client.info("cpu")
    # the probes, then the scripts (EVALSHA, or FCALL of the library on Redis >= 7.0)
    skip: tuple[str, ...] = ("cmdstat_info", "cmdstat_config", "cmdstat_evalsha", "cmdstat_eval")
    skip += ("cmdstat_fcall", "cmdstat_fcall_ro")
    commands = sum(int(v["calls"]) for k, v in stats.items() if k not in skip)
    scripts = sum(int(stats.get(k, {}).get("calls", 0)) for k in skip[2:])
    return commands, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), scripts


def load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.peers.{PEERS[name]}")


# Throughput rounds per library and worker count (the median is the figure): at most
# ROUNDS, and no new round once the phase has run ROUNDS_BUDGET_S (a library doing 50 tasks/s
# takes 20 s a round; one round is then all the time allows).
ROUNDS = 3
ROUNDS_BUDGET_S = 15.0


@dataclass
class _Round:
    throughput: float  # tasks/s, posting included
    post_rate: float  # posts/s of the one producer
    commands: int  # Redis's counts and CPU over the round
    server_cpu_s: float
    scripts: int


def _throughput_round(
    producer: Any, collector: Collector, server: RedisProcess, batch: range, log: Path
) -> _Round:
    """Post ``batch`` one by one as fast as the producer can; wait until every task started."""
    before = server_usage(server)
    start = time.time()
    producer.post_many(batch)
    posted = time.time()
    if not collector.wait_for(batch, 300):
        raise RuntimeError(f"{len(batch)} tasks not run within 300 s: {_tail(log)}")
    last = max(collector.started[i][1] for i in batch)
    after = server_usage(server)
    return _Round(
        throughput=len(batch) / (last - start),
        post_rate=len(batch) / (posted - start),
        commands=after[0] - before[0],
        server_cpu_s=after[1] - before[1],
        scripts=after[2] - before[2],
    )


def run_one(name: str, n_workers: int, server: RedisProcess, cfg: Config) -> Result:
    """One library with ``n_workers`` worker processes: warm-up, throughput, latency."""
    result = Result(name, n_workers)
    tasks = cfg.samples(1000) if not cfg.tiny else 20
    latency_samples = cfg.samples(200)
    server.flush()
    with tempdir("rs-bench-run-") as tmp:
        os.environ["BENCH_REDIS_URL"] = server.url
        os.environ["BENCH_RESULTS_DIR"] = str(tmp)
        module = load(name)
        log = tmp / "workers.log"
        workers = Workers()
        producer: Any = None
        try:
            workers.start(
                module.worker_commands(n_workers, server.url),
                child_env(BENCH_REDIS_URL=server.url, BENCH_RESULTS_DIR=str(tmp)),
                log,
            )
            _debug(f"{name} x{n_workers}: starting")
            wait_idle(timeout_s=(1 + 0.2 * n_workers) if cfg.quick else (2 + 0.4 * n_workers))
            workers.check(log)
            _debug(f"{name} x{n_workers}: idle")
            producer = module.Producer(server.url)
            collector = Collector(tmp / "results.log")
            # Warm-up, excluded: rounds of tasks until every worker process has run one (or
            # 20 s: a library may leave some idle), so none is still booting when timed.
            warm = range(0)
            deadline = time.monotonic() + (3 if cfg.tiny or cfg.quick else 8)
            while True:
                warm = range(warm.stop, warm.stop + (2 * n_workers + 4 if not cfg.tiny else 5))
                producer.post_many(warm)
                if not collector.wait_for(warm, 60):
                    workers.check(log)
                    raise RuntimeError(f"warm-up tasks not run within 60 s: {_tail(log)}")
                if (
                    collector.processes() >= n_workers
                    or time.monotonic() > deadline
                    or warm.stop >= 40 * n_workers
                ):
                    break
            _debug(f"{name} x{n_workers}: warm-up {warm.stop} tasks, {collector.processes()} procs")
            wait_idle(timeout_s=1 if cfg.quick else 2)
            # Throughput: rounds, the median kept (see ROUNDS).
            batch = range(warm.stop, warm.stop)
            measured: list[_Round] = []
            phase_started = time.monotonic()
            while len(measured) < (ROUNDS if not (cfg.quick or cfg.tiny) else 1):
                if measured and time.monotonic() - phase_started > ROUNDS_BUDGET_S:
                    break
                batch = range(batch.stop, batch.stop + tasks)
                measured.append(_throughput_round(producer, collector, server, batch, log))
                wait_idle(timeout_s=1 if cfg.quick else 2)
            middle = sorted(measured, key=lambda r: r.throughput)[(len(measured) - 1) // 2]
            result.commands_per_task = middle.commands / tasks
            result.server_cpu_us_per_task = middle.server_cpu_s * 1e6 / tasks
            result.scripts_per_task = middle.scripts / tasks
            result.tasks = tasks
            result.throughput = middle.throughput
            result.post_rate = middle.post_rate
            result.rounds = [r.throughput for r in measured]
            # Latency: one task in flight at a time.
            time.sleep(0.05)
            samples: list[float] = []
            deadline = time.monotonic() + cfg.budget(3.0)
            i = batch.stop
            while len(samples) < latency_samples and (
                len(samples) < 5 or time.monotonic() < deadline
            ):
                producer.post_many(range(i, i + 1))
                if not collector.wait_for(range(i, i + 1), 30, interval_s=0.0002):
                    raise RuntimeError(f"task {i} not run within 30 s: {_tail(log)}")
                t0, t1 = collector.started[i]
                samples.append(t1 - t0)
                i += 1
                time.sleep(0.002)
            result.latency = Stats.of(samples)
            _debug(f"{name} x{n_workers}: done")
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            if producer is not None:
                with contextlib.suppress(Exception):
                    producer.close()
            workers.stop()
    return result


def _debug(message: str) -> None:
    if os.environ.get("BENCH_DEBUG"):
        print(f"    [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-800:]
    except OSError:
        return ""


def run(server: RedisProcess, cfg: Config) -> list[Result]:
    names = [n for n in PEERS if not cfg.peers or n in cfg.peers]
    results: list[Result] = []
    for n_workers in cfg.workers:
        for name in names:
            result = run_one(name, n_workers, server, cfg)
            print(f"  lifecycle {name:12} x{n_workers:<2} {_line(result)}", flush=True)
            results.append(result)
    return results


def _line(r: Result) -> str:
    if r.error:
        return f"ERROR {r.error}"
    lat = r.latency
    assert lat is not None
    return f"{r.throughput:8.0f} tasks/s  p50 {fmt(lat.p50)} ms  p99 {fmt(lat.p99)} ms"


def dists() -> list[str]:
    out: list[str] = []
    for name in PEERS:
        with contextlib.suppress(ImportError):
            out += [d for d in load(name).DISTS if d not in out]
    return out


def _median_and_range(r: Result) -> str:
    """The throughput, and the range of its rounds when there were several (a host shared
    with other guests moves a round by tens of percent: overlapping ranges are a tie)."""
    if len(r.rounds) < 2:
        return f"{r.throughput:,.0f}"
    return f"{r.throughput:,.0f} ({min(r.rounds):,.0f}-{max(r.rounds):,.0f})"


def report(results: list[Result]) -> str:
    """The markdown tables of this comparison."""
    workers = sorted({r.workers for r in results})
    names = list(dict.fromkeys(r.peer for r in results))
    by = {(r.peer, r.workers): r for r in results}
    rows = []
    for name in names:
        row: list[object] = [f"**{name}**" if name == "redis-swarm" else name]
        for n in workers:
            r = by.get((name, n))
            row.append("error" if r is None or r.error else _median_and_range(r))
        rows.append(row)
    out = [
        "Throughput (tasks per second, posting included; higher is better), the median round "
        "and in brackets the slowest and fastest:",
        "",
    ]
    out.append(md_table(["library", *[f"{n} worker{'s' * (n > 1)}" for n in workers]], rows))
    rows = []
    for name in names:
        row = [f"**{name}**" if name == "redis-swarm" else name]
        for n in workers:
            r = by.get((name, n))
            if r is None or r.error or r.latency is None:
                row.append("error")
            else:
                row.append(f"{fmt(r.latency.p50)} / {fmt(r.latency.p99)}")
        rows.append(row)
    out += ["", "Enqueue-to-claim latency on an idle swarm, p50 / p99 in ms (lower is better):", ""]
    out.append(md_table(["library", *[f"{n} worker{'s' * (n > 1)}" for n in workers]], rows))
    rows = []
    for name in names:
        row = [f"**{name}**" if name == "redis-swarm" else name]
        for n in workers:
            r = by.get((name, n))
            if r is None or r.error:
                row.append("error")
            else:
                scripts = f" ({fmt(r.scripts_per_task)} scripts)" if r.scripts_per_task else ""
                row.append(
                    f"{fmt(r.commands_per_task)}{scripts} / {fmt(r.server_cpu_us_per_task)} us"
                )
        rows.append(row)
    out += [
        "",
        "What each task cost Redis during the throughput run: commands per task (those run "
        "inside Lua scripts included; scripts counted apart) / server CPU per task:",
        "",
    ]
    out.append(md_table(["library", *[f"{n} worker{'s' * (n > 1)}" for n in workers]], rows))
    errors = [r for r in results if r.error]
    if errors:
        out += ["", "Errors:", ""]
        out += [f"- {r.peer} x{r.workers}: `{r.error}`" for r in errors]
    out += ["", "How each library was run:", ""]
    for name in names:
        with contextlib.suppress(ImportError):
            out.append(f"- {name}: {load(name).SETUP}")
    return "\n".join(out)


def plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = sorted({r.workers for r in results})
    names = list(dict.fromkeys(r.peer for r in results))
    by = {(r.peer, r.workers): r for r in results}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(workers))
    for k, n in enumerate(workers):
        xs = [i + k * width for i in range(len(names))]
        tput = [by[(p, n)].throughput if (p, n) in by else 0 for p in names]
        lat = [
            by[(p, n)].latency.p50 if (p, n) in by and by[(p, n)].latency else 0  # type: ignore[union-attr]
            for p in names
        ]
        label = f"{n} worker{'s' * (n > 1)}"
        axes[0].bar(xs, [0 if v != v else v for v in tput], width, label=label)
        axes[1].bar(xs, lat, width, label=label)
    for ax, title in zip(
        axes,
        ["throughput (tasks/s, higher is better)", "enqueue-to-claim p50 (ms, log)"],
        strict=False,
    ):
        ax.set_xticks([i + width * (len(workers) - 1) / 2 for i in range(len(names))])
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_title(title)
        ax.legend()
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
