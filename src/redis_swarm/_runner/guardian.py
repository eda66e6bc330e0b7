"""The guardian: a small process that kills a runner's agents when the runner dies without
the chance to (SIGKILL, the OOM killer).

On SIGTERM, SIGINT and SIGHUP the runner kills its agents itself. SIGKILL gives it no
chance: its agents, each leading a process group of its own, would run on, spending, and
their tasks, their leases expired, would be run and paid for twice. ``PR_SET_PDEATHSIG``
does not do: it fires when the *thread* that forked exits (the pool spawns from worker
threads) and needs a ``preexec_fn``, unsafe in a threaded process.

The first time a process starts an agent, it starts its guardian, ``python -I -S`` of this
file: the standard library only, about 25 ms to start and 12 MB of memory (where
``-m redis_swarm._runner.guardian`` would import the whole package: 0.3 s, 43 MB). It
reads a pipe whose only write end the runner holds, one line per event:

    mark MARK        an agent whose environment carries MARK (``reaper.MARK``) is about to
                     start (if the runner dies now, the mark still finds it, on Linux)
    group MARK PGID  its process group
    ungroup MARK     its group was sent SIGKILL and its leader is not reaped yet: PGID may
                     be another process's once it is, so it is never signalled again
    forget MARK      its leftovers were swept: nothing of it is left
    bye              the runner exits in order, its agents ended

At the end of the pipe without ``bye`` (the runner died, the kernel closed its end), the
guardian sends SIGTERM to each group it still knows, gives them ``GRACE_S`` to exit, sends
SIGKILL to what is left, then (on Linux) kills each process still carrying a known mark, as
the runner's reaper would have: those that left their group too. An agent the runner was
starting (``mark`` without ``group``) may show its mark only once its exec is done, after
that look: such marks are looked for again until ``SPAWN_S`` after the runner's death. Then
it exits.

It sits in a session of its own, so that a Ctrl-C or a closed terminal, meant for the
runner's foreground group, does not reach it (it ignores SIGINT and SIGHUP all the same).
It holds nothing of the runner's but the pipe: its working directory is /, its stdout and
stderr are /dev/null (a shell reading the runner's output is not kept waiting for it). A
process forked from the runner closes its copy of the write end at once (else the runner's
death would not reach the guardian while the fork lives) and starts a guardian of its own
if it starts agents.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = ["GRACE_S", "GUARDIAN", "Guardian", "group_alive", "guard"]

GRACE_S = 2.0  # between the SIGTERM and the SIGKILL the guardian sends to orphaned agents
POLL_S = 0.02  # how often it looks whether the groups it sent SIGTERM to have ended
# How long after the runner's death it keeps looking for an agent the runner was starting
# (``mark`` said, ``group`` not yet): the mark shows once that process's exec is done.
SPAWN_S = 1.0
RESTARTS = 3  # a guardian that keeps dying (it cannot run here) is given up after this many
BYE_WAIT_S = 1.0  # the longest an exiting runner waits for its guardian to exit


# --- the guardian process


def guard(lines: Iterable[bytes], *, grace_s: float = GRACE_S, spawn_s: float = SPAWN_S) -> bool:
    """Follow the runner's lines; at their end without ``bye``, kill what they left.
    True when the runner said bye."""
    agents: dict[str, int | None] = {}  # mark -> its process group, while it may be signalled
    starting: set[str] = set()  # marked, never grouped: maybe still being started
    for raw in lines:
        words = raw.decode("ascii", "replace").split()
        try:
            if words == ["bye"]:
                return True
            verb, mark, *rest = words
            if verb == "mark":
                agents.setdefault(mark, None)
                starting.add(mark)
            elif verb == "group":
                agents[mark] = int(rest[0])
                starting.discard(mark)
            elif verb == "ungroup":
                agents[mark] = None
            elif verb == "forget":
                agents.pop(mark, None)
                starting.discard(mark)
        except (ValueError, IndexError):
            continue  # not a line of the runner's: nothing to act on
    ended = time.monotonic()
    groups = {pgid for pgid in agents.values() if pgid is not None}
    _kill_groups(groups, grace_s)
    if agents:
        sweep = _marked_sweep()
        for mark in agents:
            sweep(mark)
        _sweep_starting(starting, sweep, ended + spawn_s)
    return False


def _sweep_starting(marks: set[str], sweep: Callable[[str], object], until: float) -> None:
    """Sweep ``marks`` again until ``until``: agents the runner was starting when it died.
    Forked but not yet executed, such a process still shows the runner's environment, not
    its mark, and it goes on to run the agent, the runner dead or not."""
    while marks and time.monotonic() < until:
        time.sleep(POLL_S)
        for mark in marks:
            sweep(mark)


def _signal(pgid: int, sig: int) -> bool:
    """Send ``sig`` to group ``pgid``; False when it has no process left that is ours."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a process that is ours and runs: the one
    rule by which a group sent SIGTERM is waited for, here and by the runner
    (``child.run_child``). Its leader alone says nothing: ``/bin/sh -c CMD`` leads the group
    and dies at SIGTERM at once, while CMD, its child, may be catching it to end in order.
    A zombie runs nothing: the runner keeps its agent's leader unreaped until the group is
    killed, and an orphan of a subreaper waits to be reaped, yet the signal reaches their
    group. Without ``/proc`` (not Linux) a group that takes a signal is taken as alive."""
    if not _signal(pgid, 0):
        return False
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                # (after the name in parentheses: state, ppid, pgrp)
                state, _, pgrp = f.read().rsplit(b")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # (gone meanwhile)
        if int(pgrp) == pgid and state != b"Z":
            return True
    return False


def _kill_groups(groups: set[int], grace_s: float) -> None:
    """SIGTERM, a grace to exit, then SIGKILL.

    Process ids are reused, and a group's number is free for a new process once its last
    member is gone (its leader reaped). While the runner lives that never matters: it says
    ``ungroup`` before it reaps a leader. Once it is dead, init (or the nearest subreaper)
    reaps its agents' leaders as they exit, so a group is dropped as soon as it is seen
    empty, and never signalled again. What remains is the time between the runner's death,
    or one look (``POLL_S``), and the next signal: in it a group's last member would have to
    exit and the kernel hand out every other pid (``/proc/sys/kernel/pid_max``: 32768 to
    4194304) before its number, to a new group leader of the same user.
    """
    live = {pgid for pgid in groups if _signal(pgid, signal.SIGTERM)}
    deadline = time.monotonic() + grace_s
    while live and time.monotonic() < deadline:
        time.sleep(POLL_S)
        live = {pgid for pgid in live if group_alive(pgid)}
    for pgid in live:
        _signal(pgid, signal.SIGKILL)


def _marked_sweep() -> Callable[[str], object]:
    """The reaper's sweep of the processes carrying a mark (Linux), loaded from its file:
    this process runs without the package, whose import would cost it 0.3 s."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reaper.py")
    spec = importlib.util.spec_from_file_location("_swarm_reaper", path)
    if spec is None or spec.loader is None:
        return lambda mark: None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    sweep: Callable[[str], object] = module.kill_marked
    return sweep


def main() -> int:
    for name in ("SIGINT", "SIGHUP"):  # for the terminal's foreground group, not for this
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    guard(_lines(0))
    return 0


def _lines(fd: int) -> Iterator[bytes]:
    """The complete lines read from ``fd`` until its end."""
    pending = b""
    while chunk := os.read(fd, 4096):
        *complete, pending = (pending + chunk).split(b"\n")
        yield from complete


# --- the runner's end


class Guardian:
    """The runner's end of the pipe to its guardian, started on first use.

    One per process (``GUARDIAN``), shared by every pool in it; thread safe. A guardian
    found dead at a write (someone killed it) is started again and told what the last one
    knew.
    """

    def __init__(self, argv: Sequence[str] | None = None) -> None:
        script = os.path.abspath(__file__)
        self._argv = list(argv) if argv is not None else [sys.executable, "-I", "-S", script]
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None
        self._agents: dict[str, int | None] = {}  # as the guardian knows them
        self._restarts = 0
        self._inherited: list[subprocess.Popen[bytes]] = []  # a parent's, after a fork
        os.register_at_fork(after_in_child=self._forked)
        atexit.register(self.close)

    @property
    def pid(self) -> int | None:
        """The guardian's process id, once started."""
        return self._proc.pid if self._proc is not None and self._fd is not None else None

    def mark(self, mark: str) -> None:
        """An agent carrying ``mark`` is about to start (starts the guardian if needed)."""
        with self._lock:
            self._agents[mark] = None
            self._send(f"mark {mark}\n")

    def group(self, mark: str, pgid: int) -> None:
        with self._lock:
            self._agents[mark] = pgid
            self._send(f"group {mark} {pgid}\n")

    def ungroup(self, mark: str) -> None:
        """The agent's group was sent SIGKILL and its leader is not reaped yet: say so
        before reaping it, so that its number, free once reaped, is never signalled."""
        with self._lock:
            if mark in self._agents:
                self._agents[mark] = None
                self._send(f"ungroup {mark}\n")

    def forget(self, mark: str) -> None:
        with self._lock:
            if mark in self._agents:
                del self._agents[mark]
                self._send(f"forget {mark}\n")

    def close(self) -> None:
        """End the guardian: ``bye`` when no agent is left (at exit, as every pool has
        ended), else only the end of the pipe, so that it kills the agents left (those of a
        daemon thread, say: this process ends and nothing else would)."""
        with self._lock:
            fd, proc = self._fd, self._proc
            if fd is None or proc is None:
                return
            self._fd = None
            bye = not self._agents
            if bye:
                with contextlib.suppress(OSError):
                    os.write(fd, b"bye\n")
            os.close(fd)
        if bye:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(BYE_WAIT_S)

    def _send(self, line: str) -> None:
        """Write ``line`` (its fact already in ``_agents``); with the lock held. A write
        to a guardian found dead (BrokenPipeError: Python ignores SIGPIPE) starts a new one
        told everything instead."""
        data = line.encode("ascii")
        if self._fd is None:
            data = self._replay()  # a first start: everything known, this line included
            if not self._start():
                return
        while True:
            try:
                _write_all(self._fd, data)
                return
            except OSError:
                self._drop()
                if not self._start():
                    return
                data = self._replay()

    def _replay(self) -> bytes:
        lines = []
        for mark, pgid in self._agents.items():
            lines.append(f"mark {mark}\n" if pgid is None else f"group {mark} {pgid}\n")
        return "".join(lines).encode("ascii")

    def _start(self) -> bool:
        if self._restarts > RESTARTS:
            return False
        self._restarts += self._proc is not None  # the first start is not a restart
        read, write = os.pipe()  # both ends close on exec: only the guardian's stdin is kept
        try:
            self._proc = subprocess.Popen(
                self._argv,
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,
            )
        except OSError:
            os.close(write)
            self._restarts = RESTARTS + 1  # it cannot start here: unguarded, as before
            return False
        finally:
            os.close(read)
        self._fd = write
        return True

    def _drop(self) -> None:
        """Let go of a dead guardian (reaped, so that it is no zombie)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(BYE_WAIT_S)

    def _forked(self) -> None:
        """In a forked child: the guardian is the parent's, and so are its agents."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        if self._proc is not None:  # not this process's child: kept, never waited for
            self._inherited.append(self._proc)
        self._fd, self._proc = None, None
        self._agents = {}
        self._restarts = 0


def _write_all(fd: int | None, data: bytes) -> None:
    if fd is None:
        raise BrokenPipeError
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    sys.exit(main())
else:  # the runner's; the guardian process needs none
    GUARDIAN = Guardian()
