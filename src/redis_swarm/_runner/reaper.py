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
from typing import NamedTuple

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
_adopting = 0  # pools running with this process a subreaper: only then are strays reaped


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
    global _adopting
    before = _prctl(PR_GET_CHILD_SUBREAPER, 0)
    on = before is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    with _leaders_lock:
        _adopting += on
    try:
        yield on
    finally:
        with _leaders_lock:
            _adopting -= on
        if on and not before:
            _prctl(PR_SET_CHILD_SUBREAPER, 0)


class _Proc(NamedTuple):
    ppid: int
    state: str
    pgrp: int
    start: int  # clock ticks after boot: tells a process from a later one with its pid


def _stat(pid: int) -> _Proc | None:
    """What /proc says of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return _Proc(int(fields[1]), fields[0].decode(), int(fields[2]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


class _Scan(NamedTuple):
    marked: dict[int, _Proc]  # live processes whose environment holds the mark
    zombies: list[int]  # this process's zombie children (their environment is gone)
    # A process that may be one of the marked ones' (a child of this process or of a marked
    # one) in the middle of an exec: until the new program's arguments and environment are
    # set up, the kernel shows both empty (a process started with ``env -i`` has arguments).
    unsure: bool


def _scan(needle: bytes) -> _Scan:
    """What /proc shows of the processes carrying ``needle`` now."""
    marked: dict[int, _Proc] = {}
    zombies: list[int] = []
    unread: list[int] = []
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return _Scan(marked, zombies, False)
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        proc = _stat(pid)
        if proc is None:
            continue
        if proc.state == "Z":
            if proc.ppid == me:
                zombies.append(pid)
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except PermissionError:
            continue  # another user's process
        except OSError:
            environ = b""
        if needle in b"\0" + environ:
            marked[pid] = proc
        elif not environ and (proc.ppid == me or proc.ppid in marked):
            unread.append(pid)
    return _Scan(marked, zombies, any(_execing(pid) for pid in unread))


def _execing(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return not f.read()
    except PermissionError:
        return False
    except OSError:
        return _stat(pid) is not None


def _reap(zombies: list[int]) -> None:
    """Collect the exit status of zombie children that no Popen of ours waits for: orphans
    this subreaper adopted. Not a subreaper, this process adopts nothing, and a zombie child
    is some other code's to reap."""
    with _leaders_lock:
        if not _adopting:
            return
        for pid in zombies:
            if pid in _leaders:
                continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _dying(pid: int, proc: _Proc) -> bool:
    """True while a killed process has not finished exiting (its environment is gone before
    it becomes a zombie)."""
    now = _stat(pid)
    return now is not None and now.start == proc.start and now.state != "Z"


def kill_marked(mark: str, group: int | None = None, timeout_s: float = SWEEP_S) -> int:
    """Kill every process carrying ``mark`` (SIGKILL) until none is left, wait until they
    are dead, and reap the ones this process adopted; returns how many were killed outside
    process group ``group`` (the agent's own, whose members are being killed anyway)."""
    if not os.path.isdir("/proc"):
        return 0
    needle = f"\0{MARK}={mark}\0".encode()
    killed: dict[int, _Proc] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        marked, zombies, unsure = _scan(needle)
        _reap(zombies)
        done = not marked and not unsure
        done = done and not any(_dying(pid, proc) for pid, proc in killed.items())
        if done or time.monotonic() > deadline:
            return sum(proc.pgrp != group for proc in killed.values())
        for pid, proc in marked.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed.setdefault(pid, proc)
        time.sleep(0.01)
