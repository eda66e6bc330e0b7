"""A private redis-server run under Valgrind's callgrind: the instructions it executes for a
set of requests, counted exactly, and where they go.

The server's CPU time per operation moves by a third from run to run on a shared 2-core
machine (and by more from one day's host to the next), so a change worth 5% to a script cannot
be seen in it. The instructions the server executes for the same requests do not move: two
trees compared this way differ only by what their code does. Callgrind counts user space only
(the kernel's share of a round trip is not in the figures) and runs the server some 50 times
slower, so it measures work, never time.

``CallgrindServer.measure`` zeroes the counters, runs the requests, dumps the counters and
reads them back with ``callgrind_annotate``: the total, less the server's timer
(``serverCron``, which runs ten times a second whatever the clients do), and the inclusive
cost of a few named functions of redis-server, the parts a task's scripts spend on (``PARTS``).
Lua's interpreter and cjson are static in redis-server and have no names: what is not in a
named part is theirs, or the event loop's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import RedisProcess

TOOLS = ("valgrind", "callgrind_control", "callgrind_annotate")

# What a part is, by the redis-server (or libc) functions whose inclusive cost it is.
PARTS: dict[str, tuple[str, ...]] = {
    "scripts": ("fcallCommand", "evalShaCommand"),
    "commands run by scripts": ("scriptCall",),
    "event appends (XADD)": ("xaddCommand",),
    "request parsing": ("processMultibulkBuffer",),
    "numbers formatted (cjson)": ("fpconv_g_fmt",),
    "numbers parsed (strtod)": ("____strtod_l_internal",),
}
TIMER = "serverCron"

# A line of callgrind_annotate --inclusive=yes: "1,234 (5.6%)  file:function [object]".
_LINE = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+(\S*?):(\S+) \[")
_TOTAL = re.compile(r"^\s*([\d,]+) \([^)]*\)\s+PROGRAM TOTALS")


def missing() -> str | None:
    """Why callgrind cannot run here (None: it can)."""
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not found: install valgrind (apt-get install -y valgrind)"
    return None


@dataclass(frozen=True)
class Count:
    """The instructions one measured stretch executed: in all (the timer left out) and per
    named part (inclusive, so parts may overlap: commands run by scripts are in scripts)."""

    total: int
    parts: dict[str, int]

    def per(self, n: int) -> dict[str, float]:
        """Per operation, in thousands of instructions: ``total`` then each part."""
        out = {"total": self.total / n / 1000}
        out.update({name: ir / n / 1000 for name, ir in self.parts.items()})
        return out


def read_profile(path: Path) -> Count:
    """The total and the named parts of one callgrind dump."""
    shown = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    total, by_function = 0, dict[str, int]()
    for line in shown.splitlines():
        if found := _TOTAL.match(line):
            total = int(found[1].replace(",", ""))
        elif found := _LINE.match(line):
            # "fn'2" is a recursive call of fn, already inside fn's inclusive cost.
            by_function.setdefault(found[3], int(found[1].replace(",", "")))
    parts = {name: sum(by_function.get(f, 0) for f in fns) for name, fns in PARTS.items()}
    return Count(total - by_function.get(TIMER, 0), parts)


class CallgrindServer(RedisProcess):
    """A private redis-server (``RedisProcess``) run under callgrind."""

    START_S = 60.0  # valgrind takes seconds to start the server, and to write its counts

    def __init__(self) -> None:
        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        super().__init__()

    def launcher(self) -> list[str]:
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.dir}/cg.%p"]

    @property
    def target(self) -> str:
        """What a child process that drives the server passes to ``measure_target``."""
        return f"{self.proc.pid}:{self.dir}"

    def measure(self, run: Callable[[], object]) -> Count:
        """The instructions the server executes while ``run`` runs."""
        return measure_target(self.target, run)


def measure_target(target: str, run: Callable[[], object]) -> Count:
    """The instructions the server of ``target`` (``CallgrindServer.target``) executes while
    ``run`` runs: from any process of this machine, so that a child driving the server can
    measure it too."""
    pid, _, where = target.partition(":")
    folder = Path(where)
    _control("-z", pid)
    run()
    _control("-d", pid)
    deadline = time.monotonic() + 30
    while not (dumps := sorted(folder.glob(f"cg.{pid}.*"), key=lambda p: int(p.suffix[1:]))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"callgrind wrote no dump for process {pid} in {folder}")
        time.sleep(0.05)
    try:
        return read_profile(dumps[-1])
    finally:
        for old in dumps:
            old.unlink(missing_ok=True)


def _control(flag: str, pid: str) -> None:
    # (-d returns once the dump is written)
    subprocess.run(["callgrind_control", flag, pid], capture_output=True, check=True)
