"""Open files of a test process: its limit raised to what the machine allows, and, when a test
fails for want of one (EMFILE), what the process holds, said once per process.

A CI run once failed 78 tests of one pytest worker with "Too many open files", one file after
another, then went on green: something before them held the worker's descriptors for a while.
The run on the same commit here was green at the machine's limit and at 1,024 (no test holds
more than ~220 at its peak), so the suite takes the hard limit the machine gives, and a run that
meets the wall again says what was open and which threads ran, so the holder can be named."""

from __future__ import annotations

import errno
import os
import resource
import threading
from collections import Counter

# Enough for the busiest test many times over; a machine whose hard limit is lower keeps it.
WANTED = 65536
_FD_DIR = "/proc/self/fd"

_said = False
# One descriptor held in reserve, freed to read the process's open files when none is left.
_reserve: int | None = None


def raise_limit() -> None:
    """The soft limit of open files raised to the hard one (at most ``WANTED``); a process
    starts at the soft one, often 1,024, whatever the machine allows."""
    global _reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = WANTED if hard == resource.RLIM_INFINITY else min(hard, WANTED)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    if _reserve is None and os.path.isdir(_FD_DIR):
        _reserve = os.open(os.devnull, os.O_RDONLY)


def ran_out(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, is the process out of descriptors
    (redis-py says it as a ConnectionError raised from the OSError)."""
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, OSError) and error.errno == errno.EMFILE:
            return True
        if "Too many open files" in str(error):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def first_report() -> str | None:
    """What this process holds open, by kind, and its threads; None after the first time
    (every later failure of the same cause would repeat it)."""
    global _said, _reserve
    if _said:
        return None
    _said = True
    if _reserve is not None:
        os.close(_reserve)  # (listing a directory takes a descriptor)
        _reserve = None
    try:
        numbers = os.listdir(_FD_DIR)
    except OSError as exc:
        return f"(could not list {_FD_DIR}: {exc})"
    kinds: Counter[str] = Counter()
    for number in numbers:
        try:
            target = os.readlink(f"{_FD_DIR}/{number}")
        except OSError:
            continue
        kinds[_kind(target)] += 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lines = [f"{len(numbers)} open (limit {soft}, hard {hard}); the most held:"]
    lines += [f"  {count:6d}  {kind}" for kind, count in kinds.most_common(15)]
    threads = sorted(thread.name for thread in threading.enumerate())
    lines.append(f"{len(threads)} threads: " + ", ".join(threads[:40]))
    return "\n".join(lines)


def _kind(target: str) -> str:
    """A descriptor's target without what changes from one to the next (socket and pipe
    numbers; a file's name, kept to its folder)."""
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    if target.startswith("anon_inode:"):
        return target
    return os.path.dirname(target) + "/..."
