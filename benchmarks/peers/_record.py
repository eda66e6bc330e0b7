"""The one thing a no-op task does: note when it started, for the latency figures.

One append of a short line to one shared file opened with O_APPEND (a write syscall, no
network), so that measuring costs every library the same few microseconds and no extra Redis
round trip.
"""

from __future__ import annotations

import os
import threading
import time

_fds: dict[int, int] = {}
_lock = threading.Lock()


def _fd() -> int:
    pid = os.getpid()
    fd = _fds.get(pid)
    if fd is None:
        with _lock:
            fd = _fds.get(pid)
            if fd is None:
                path = os.path.join(os.environ["BENCH_RESULTS_DIR"], "results.log")
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                _fds[pid] = fd
    return fd


def record(i: int, t0: float) -> None:
    """Task ``i`` posted at ``t0`` (epoch seconds) starts now (in this process, child of...)."""
    t1 = time.time()
    os.write(_fd(), f"{i} {t0!r} {t1!r} {os.getpid()} {os.getppid()}\n".encode())


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")
