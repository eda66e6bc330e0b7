"""The processes an agent left behind outside its process group.

Killing an agent's process group misses whatever left the group: ``setsid cmd &``, a daemon's
double fork. Two things catch those:

- every agent process gets a mark in its environment (``SWARM_RUN_ID``), which its
  descendants inherit wherever they move; when the agent ends, every live process carrying
  its mark is killed (SIGKILL), until none is left;
- the pool makes its process a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``) while it
  runs, so an orphan of an agent's tree becomes a child of the pool rather than of init:
  it stays in reach, and its exit status is collected here instead of lingering as a zombie.

A process that drops its environment on purpose (``env -i``) escapes the mark: an agent runs
with the runner's rights anyway; this is about agents that leave helpers behind by accident.
Without ``/proc`` (not Linux) there is nothing to scan and only the group kill applies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator

__all__ = ["MARK", "kill_marked", "new_mark", "reaped", "spawning", "subreaper"]

MARK = "SWARM_RUN_ID"  # the environment variable carrying an agent run's mark
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
SWEEP_S = 2.0  # the longest kill_marked keeps killing and reaping

# The agent processes started and not yet reaped by their own Popen: never reaped here, or
# their Popen would lose the exit status. Held while spawning, so that a process that
# exits at once is registered before a sweep can see its zombie.
_leaders: set[int] = set()
_leaders_lock = threading.Lock()


def new_mark() -> str:
    return secrets.token_hex(8)


@contextlib.contextmanager
def spawning() -> Iterator[set[int]]:
    """Hold the registry while starting an agent; add its pid to the set yielded."""
    with _leaders_lock:
        yield _leaders


def reaped(pid: int) -> None:
    """An agent leader was reaped by its Popen: forget it."""
    with _leaders_lock:
        _leaders.discard(pid)


def _prctl(option: int, value: int) -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if option == PR_GET_CHILD_SUBREAPER:
            out = ctypes.c_int(0)
            if libc.prctl(option, ctypes.byref(out), 0, 0, 0) != 0:
                return None
            return out.value
        return 0 if libc.prctl(option, value, 0, 0, 0) == 0 else None
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def subreaper() -> Iterator[bool]:
    """Make this process a child subreaper for the duration (as it was afterwards); yields
    whether it is one."""
    before = _prctl(PR_GET_CHILD_SUBREAPER, 0)
    on = before is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    try:
        yield on
    finally:
        if on and not before:
            _prctl(PR_SET_CHILD_SUBREAPER, 0)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _scan(needle: bytes) -> tuple[dict[int, int], list[int]]:
    """The live processes whose environment holds ``needle`` (with their start times), and
    this process's zombie children (a zombie's environment cannot be read any more)."""
    marked: dict[int, int] = {}
    zombies: list[int] = []
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return marked, zombies
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        stat = _stat(pid)
        if stat is None:
            continue
        ppid, state, start = stat
        if state == "Z":
            if ppid == me:
                zombies.append(pid)
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue  # another user's process, or gone
        if needle in b"\0" + environ:
            marked[pid] = start
    return marked, zombies


def _reap(zombies: list[int]) -> None:
    """Collect the exit status of zombie children that no Popen of ours waits for: orphans
    this subreaper adopted."""
    with _leaders_lock:
        for pid in zombies:
            if pid in _leaders:
                continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _dying(pid: int, start: int) -> bool:
    """True while a killed process has not finished exiting (its environment is gone before
    it becomes a zombie)."""
    stat = _stat(pid)
    return stat is not None and stat[2] == start and stat[1] != "Z"


def kill_marked(mark: str, timeout_s: float = SWEEP_S) -> int:
    """Kill every process carrying ``mark`` (SIGKILL) until none is left, wait until they
    are dead, and reap the ones this process adopted; returns how many were killed."""
    if not os.path.isdir("/proc"):
        return 0
    needle = f"\0{MARK}={mark}\0".encode()
    killed: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        marked, zombies = _scan(needle)
        _reap(zombies)
        done = not marked and not any(_dying(pid, start) for pid, start in killed.items())
        if done or time.monotonic() > deadline:
            return len(killed)
        for pid, start in marked.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed[pid] = start
        time.sleep(0.01)
