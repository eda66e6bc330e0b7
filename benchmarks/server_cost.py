"""What each operation of the task lifecycle costs the server: the Redis commands it runs
(those its script runs included) and the server's CPU time, per operation, for one tree or
for several side by side.

For each tree a private redis-server is started (its own, so that two trees' libraries never
replace each other); each round runs one child process per tree, in turn (the order reversed
every other round), with that tree's ``src`` first on its path. The child drives one client
through the lifecycle, ``-n`` tasks per phase, and reads ``INFO commandstats`` and ``INFO
cpu`` (the main thread's user and system time) around each phase:

- ``post``: ``post_task`` one task at a time;
- ``claim``: ``claim`` (no wait) of each of them, then ``report``: a plain report of each;
- ``report_next``: a worker's ``report(..., claim_next=)`` loop over ``n`` freshly posted
  tasks (the lifecycle benchmark's worker), its first claim not counted.

Printed per phase and tree: the medians over the rounds of the commands per operation
(every command Redis counted, those run inside scripts included, not the FCALLs and the
INFOs themselves), the script calls per operation, and the server's user and system CPU
per operation in us, with the spread (min-max) of the CPU. Commands are exact; CPU moves
with the machine's load, so compare trees only within one run::

    python -m benchmarks.server_cost                      # this tree
    python -m benchmarks.server_cost /work/main /work/wt-x -n 5000 --rounds 5
    python -m benchmarks.server_cost --detail             # commands by name, per operation

``--instructions``: each server runs under Valgrind's callgrind (``_callgrind``), and the
instructions it executes per operation are counted too, in thousands, with their named parts
(the script, the commands it runs, the event appends, request parsing, cjson's number
formatting, strtod): exact from run to run, where the CPU time moves by a third, so that a
change worth a few percent shows. The server runs ~50 times slower: use a small ``-n`` and
one round::

    python -m benchmarks.server_cost --instructions /tmp/before /work/main -n 300 --rounds 1

A benchmark, not a test; not part of ``run_all``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUEUE = "bench"
WORKER = "bench-w"
PHASES = ("post", "claim", "report", "report_next")
_SCRIPT_CALLS = ("fcall", "fcall_ro", "evalsha", "eval")
_NOT_COUNTED = ("info", "config|resetstat")


# --------------------------------------------------------------------------- the child


def _snapshot(r: Any) -> tuple[dict[str, int], float, float]:
    stats = r.info("commandstats")
    cpu = r.info("cpu")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    user = float(cpu.get("used_cpu_user_main_thread", cpu["used_cpu_user"]))
    sys_ = float(cpu.get("used_cpu_sys_main_thread", cpu["used_cpu_sys"]))
    return calls, user, sys_


def _measured(r: Any, n: int, run: Callable[[], None], callgrind: str | None) -> dict[str, Any]:
    calls0, user0, sys0 = _snapshot(r)
    instructions = None
    if callgrind is None:
        run()
    else:
        from benchmarks._callgrind import measure_target

        instructions = measure_target(callgrind, run).per(n)
    calls1, user1, sys1 = _snapshot(r)
    delta = {
        name: (calls1.get(name, 0) - calls0.get(name, 0)) / n
        for name in calls1
        if name not in _NOT_COUNTED and calls1.get(name, 0) != calls0.get(name, 0)
    }
    return {
        "commands": sum(v for k, v in delta.items() if k not in _SCRIPT_CALLS),
        "scripts": sum(v for k, v in delta.items() if k in _SCRIPT_CALLS),
        "user_us": (user1 - user0) / n * 1e6,
        "sys_us": (sys1 - sys0) / n * 1e6,
        "by_command": delta,
        "instructions": instructions,  # thousands per operation, with its parts (callgrind)
    }


def child(url: str, n: int, callgrind: str | None = None) -> dict[str, Any]:
    """One round against ``url``: every phase measured, with the redis_swarm on the path;
    ``callgrind``: the server runs under callgrind (``_callgrind.CallgrindServer.target``),
    whose instructions are counted too."""
    import redis

    from redis_swarm import Swarm

    r = redis.Redis.from_url(url)
    r.flushall()
    swarm = Swarm(url, swarm="bench")
    swarm.load_functions()

    def post() -> None:
        for i in range(n):
            swarm.post_task(QUEUE, "noop", {"i": i})

    held: list[Any] = []

    def claim() -> None:
        for _ in range(n):
            held.append(swarm.claim(QUEUE, worker=WORKER))

    def report() -> None:
        for task in held:
            swarm.report(task.id, task.token, {"summary": "ok"}, worker=WORKER)

    def report_next() -> None:
        task = first[0]
        while task is not None:
            _, task = swarm.report(
                task.id, task.token, {"summary": "ok"}, worker=WORKER, claim_next=QUEUE
            )

    # Warm up (the library loaded, the code paths taken once), then start from empty.
    for _ in range(50):
        swarm.post_task(QUEUE, "noop", {"i": 0})
    first = [swarm.claim(QUEUE, worker=WORKER)]
    report_next()
    r.flushall()

    out = {"post": _measured(r, n, post, callgrind)}
    out["claim"] = _measured(r, n, claim, callgrind)
    out["report"] = _measured(r, n, report, callgrind)
    post()
    first[0] = swarm.claim(QUEUE, worker=WORKER)
    out["report_next"] = _measured(r, n, report_next, callgrind)
    swarm.close()
    return out


# --------------------------------------------------------------------------- the parent


def _run_child(tree: Path, url: str, n: int, callgrind: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    tool_root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(tool_root)])
    for name in ("SWARM_URL", "SWARM_NAME", "SWARM_HOME"):
        env.pop(name, None)
    command = [sys.executable, "-m", "benchmarks.server_cost", "--child", url, "-n", str(n)]
    if callgrind is not None:
        command += ["--callgrind-target", callgrind]
    done = subprocess.run(
        command,
        env=env,
        cwd=tool_root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the round of {tree} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _cell(values: list[float], spread: bool) -> str:
    mid = statistics.median(values)
    if not spread or len(values) == 1:
        return f"{mid:.1f}"
    return f"{mid:.1f} ({min(values):.0f}-{max(values):.0f})"


def report(trees: list[Path], rounds: list[dict[Path, dict[str, Any]]], detail: bool) -> str:
    names = [str(t) for t in trees]
    lines = [f"per operation, median of {len(rounds)} rounds (min-max); trees: {names}"]
    head = ["phase", "measure", *(t.name or str(t) for t in trees)]
    lines.append(" | ".join(head))
    metrics = (("commands", False), ("scripts", False), ("user_us", True), ("sys_us", True))
    for phase in PHASES:
        for metric, spread in metrics:
            cells = [_cell([r[t][phase][metric] for r in rounds], spread) for t in trees]
            lines.append(" | ".join([phase, metric, *cells]))
        # Exact: the first round's counts stand for all (they do not move from round to round).
        counted = [rounds[0][t][phase].get("instructions") for t in trees]
        if all(counted):
            for part in counted[0]:
                cells = [f"{c[part]:.1f}" for c in counted if c is not None]
                lines.append(" | ".join([phase, f"kIr {part}", *cells]))
        if detail:
            for tree in trees:
                by = rounds[-1][tree][phase]["by_command"]
                listed = ", ".join(f"{k} {v:g}" for k, v in sorted(by.items()))
                lines.append(f"  {tree.name}: {listed}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path, help="source trees (default: this one)")
    parser.add_argument("-n", type=int, default=2_000, help="tasks per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detail", action="store_true", help="commands by name (last round)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="run each server under callgrind and count the instructions it executes per "
        "operation, exactly, with their parts (needs valgrind; use a small -n: ~50x slower)",
    )
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n, args.callgrind_target)))
        return
    from benchmarks._callgrind import CallgrindServer
    from benchmarks._common import RedisProcess

    trees = [t.resolve() for t in args.trees] or [Path(__file__).resolve().parent.parent]
    servers = {tree: CallgrindServer() if args.instructions else RedisProcess() for tree in trees}

    def run(tree: Path) -> dict[str, Any]:
        server = servers[tree]
        target = server.target if isinstance(server, CallgrindServer) else None
        return _run_child(tree, server.url, args.n, target)

    try:
        rounds = []
        for k in range(args.rounds):
            order = trees if k % 2 == 0 else trees[::-1]
            rounds.append({tree: run(tree) for tree in order})
        print(report(trees, rounds, args.detail))
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
