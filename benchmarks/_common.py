"""What every benchmark shares: a private redis-server, timing, percentiles, the machine.

Benchmarks are never timed unit tests: they run from ``benchmarks/run_all.py`` (``make bench``)
and write their figures to docs/benchmarks.md. The smoke test only checks that they run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def ensure_paths() -> None:
    """Import this worktree's redis_swarm and the benchmarks package, whatever the venv has."""
    for path in (str(SRC), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a worker process: the same code, this repository on its path."""
    env = dict(os.environ)
    parts = [str(SRC), str(ROOT)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    for name in ("SWARM_URL", "SWARM_NAME", "SWARM_HOME"):
        env.pop(name, None)
    env.update(extra)
    return env


@dataclass(frozen=True)
class Config:
    """How big and how long: ``quick`` for the smoke test and ``run_all.py --quick``."""

    quick: bool = False
    tiny: bool = False  # the smoke test: smallest sizes, a handful of samples
    scale_max_exp: int = 5  # status latency up to 10**this tasks (6 is opt-in: --scale-max 6)
    peers: tuple[str, ...] = ()  # empty: all
    workers: tuple[int, ...] = (1, 4, 16)
    img_dir: Path = ROOT / "docs" / "img"

    def samples(self, full: int) -> int:
        if self.tiny:
            return max(3, full // 100)
        return max(10, full // 4) if self.quick else full

    def budget(self, full: float) -> float:
        if self.tiny:
            return 0.2
        return full / 4 if self.quick else full


# --------------------------------------------------------------------------- redis-server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    if port == 6379:  # never the machine's shared server
        return free_port()
    return port


def redis_server_binary() -> str:
    ensure_paths()
    from redis_swarm._embedded import find_redis_server

    return find_redis_server().path


_Server = TypeVar("_Server", bound="RedisProcess")


class RedisProcess:
    """A private redis-server on a free TCP port (never 6379), no persistence."""

    # How long the server may take to answer (and to exit): a subclass's launcher is slower.
    START_S = 15.0

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rs-bench-"))
        args = [*self.launcher(), redis_server_binary(), "--port", str(self.port)]
        args += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self._log = open(self.dir / "redis.log", "wb")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen([*args, *extra], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.START_S
        while True:
            with contextlib.suppress(redis.RedisError, OSError), self.client() as client:
                if client.ping():
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"redis-server did not start ({' '.join(args)}):\n{log}")
            time.sleep(0.02)

    def launcher(self) -> list[str]:
        """The command the server runs under (none: redis-server itself)."""
        return []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def flush(self) -> None:
        with self.client() as client:
            client.flushall()
            client.config_resetstat()

    def version(self) -> str:
        with self.client() as client:
            return str(client.info("server")["redis_version"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.START_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self: _Server) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- timing


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Stats:
    """Latency of one measured thing, in milliseconds."""

    n: int
    p50: float
    p99: float
    mean: float
    min: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Stats:
        ms = [s * 1000 for s in seconds]
        return cls(
            n=len(ms),
            p50=percentile(ms, 50),
            p99=percentile(ms, 99),
            mean=sum(ms) / len(ms) if ms else float("nan"),
            min=min(ms) if ms else float("nan"),
        )

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "p50_ms": self.p50, "p99_ms": self.p99, "mean_ms": self.mean}


def measure(
    fn: Callable[[], object],
    *,
    samples: int,
    budget_s: float,
    warmup: int = 3,
    setup: Callable[[], object] | None = None,
) -> Stats:
    """Time ``fn`` up to ``samples`` times or until ``budget_s`` is spent (at least 3 runs).

    ``setup`` runs before each sample, untimed (to make the next call cold)."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < samples and (len(times) < 3 or time.perf_counter() < deadline):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Stats.of(times)


Case = tuple[Callable[[], object], Callable[[], object] | None]


def interleaved(
    cases: dict[str, Case], *, samples: int, budget_s: float, warmup: int = 3
) -> dict[str, Stats]:
    """Time several ways of doing one thing in turn, sample by sample, so that whatever the
    machine does meanwhile (a 2-core box is never quiet) weighs on each of them alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    deadline = time.perf_counter() + budget_s
    for k in range(warmup + samples):
        if k >= warmup + 3 and time.perf_counter() > deadline:
            break
        for name, (fn, setup) in cases.items():
            if setup is not None:
                setup()
            start = time.perf_counter()
            fn()
            if k >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: Stats.of(values) for name, values in times.items()}


# --------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    os: str
    python: str
    redis_server: str
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def describe(cls, redis_server: str, dists: Sequence[str] = ()) -> Machine:
        base = ["redis-swarm", "redis", "hiredis"]
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 1,
            memory_gib=round(_memory_gib(), 1),
            os=f"{platform.system()} {platform.release()}",
            python=platform.python_version(),
            redis_server=redis_server,
            versions={d: version_of(d) for d in [*base, *dists]},
        )

    def line(self) -> str:
        libs = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (
            f"{self.cpu}, {self.cores} cores, {self.memory_gib} GiB, {self.os}; "
            f"Python {self.python}; redis-server {self.redis_server} on loopback TCP; {libs}"
        )


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; columns of figures are right-aligned, text columns left."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return fmt(value)
        return str(value)

    def numeric(col: int) -> bool:
        cells = [str(row[col]).lstrip("*") for row in rows if col < len(row)]
        return bool(cells) and all(c[:1].isdigit() or c in ("n/a", "-", "error") for c in cells)

    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if numeric(i) else "---" for i in range(len(headers))) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float) -> str:
    """Three significant figures, no exponent for the sizes these tables hold."""
    if value != value:  # NaN
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.4f}"


@contextlib.contextmanager
def tempdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def context_text(size_bytes: int, seed: int = 7) -> str:
    """Deterministic markdown-like ASCII text of exactly ``size_bytes`` bytes (~4 bytes/token)."""
    words = [
        "the",
        "swarm",
        "shard",
        "worker",
        "context",
        "finding",
        "task",
        "queue",
        "pass",
        "signal",
        "capture",
        "lease",
        "redis",
        "memory",
        "agent",
        "synthesis",
        "report",
        "claim",
        "evidence",
        "source",
        "depot",
        "logistics",
        "route",
        "analysis",
        "pattern",
        "window",
        "token",
        "version",
        "chunk",
        "latency",
        "budget",
        "review",
    ]
    out: list[str] = []
    size = 0
    state = seed
    line_no = 0
    while size < size_bytes:
        line_no += 1
        if line_no % 40 == 1:
            line = f"## Section {line_no // 40 + 1}"
        else:
            n = 8 + state % 9
            parts = []
            for _ in range(n):
                state = (state * 1103515245 + 12345) & 0x7FFFFFFF
                parts.append(words[state % len(words)])
            line = " ".join(parts) + "."
        out.append(line)
        size += len(line) + 1
    text = "\n".join(out) + "\n"
    return text[:size_bytes]
