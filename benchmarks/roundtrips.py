"""Round trips per full worker cycle (claim, read the shard's context, report), counted.

A round trip is one write of a request to the socket followed by reading its replies (a
pipeline is one); they are counted on the client by wrapping redis-py's
``send_packed_command``. Server commands are counted from ``INFO commandstats`` (a Lua
script's inner ``redis.call``s included), the measuring INFO itself left out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import AbstractConnection

from benchmarks._common import Config, RedisProcess, context_text, md_table

CONTEXT_BYTES = 3_200_000


class Counter:
    def __init__(self) -> None:
        self.sends = 0


@contextlib.contextmanager
def counting() -> Iterator[Counter]:
    """Count every request written by any redis-py connection of this process."""
    counter = Counter()
    original = AbstractConnection.send_packed_command

    def send(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        counter.sends += 1
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def _commands(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(
        int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config")
    )


@dataclass
class Step:
    system: str
    step: str
    round_trips: int
    commands: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "step": self.step,
            "round_trips": self.round_trips,
            "commands": self.commands,
        }


def _count(
    system: str, step: str, fn: Callable[[], object], admin: redis.Redis, out: list[Step]
) -> Any:
    before = _commands(admin)
    with counting() as counter:
        result = fn()
    sends = counter.sends
    out.append(Step(system, step, sends, _commands(admin) - before))
    return result


def _swarm_cycle(worker: Any, label: str, admin: redis.Redis, steps: list[Step]) -> None:
    name, first = "redis-swarm", len(steps)
    task = _count(name, "claim", lambda: worker.claim("q", worker="w1"), admin, steps)
    _count(name, "read context", lambda: worker.get_context("shard-1"), admin, steps)
    _count(
        name, "report", lambda: worker.report(task.id, task.token, {"summary": "ok"}), admin, steps
    )
    steps.append(
        Step(
            name,
            f"= {label}",
            sum(s.round_trips for s in steps[first:]),
            sum(s.commands for s in steps[first:]),
        )
    )


def run(server: RedisProcess, cfg: Config) -> list[Step]:
    from benchmarks.seed import SeedSwarm
    from redis_swarm import ContextCache, Swarm

    server.flush()
    size = 40_000 if cfg.tiny else CONTEXT_BYTES
    text = context_text(size)
    admin = server.client()
    steps: list[Step] = []
    # --- redis-swarm: a shard publishes and posts; a fresh worker process does one cycle.
    shard = Swarm(server.url, swarm="bench")
    shard.publish_context("shard-1", text, source="context.md")
    for n in range(3):
        shard.post_task("q", "read and report", {"n": n}, parent="shard-1")
    # Another worker has run before (as in any live swarm): the server has the function
    # library loaded, so a new worker's first calls do not meet "Function not found".
    other = Swarm(server.url, swarm="bench", cache=ContextCache())
    _swarm_cycle(other, "warm-up", admin, [])
    other.close()
    worker = Swarm(server.url, swarm="bench", cache=ContextCache())
    worker.ping()  # connect, and load nothing else, before counting
    for label in ("first cycle (cold cache)", "next cycle (context unchanged)"):
        _swarm_cycle(worker, label, admin, steps)
    # --- the seed
    seed = SeedSwarm(server.client(decode_responses=True))
    seed.load_context("shard-1", text)
    seed.spawn_worker_task("shard-1", "q", "read and report", {"n": 1})
    seed.redis.ping()
    first = len(steps)
    name = "seed"
    claimed = _count(name, "claim", lambda: seed.claim_task("q", "w1"), admin, steps)
    _count(name, "read context", lambda: seed.get_parent_context("shard-1"), admin, steps)
    _count(
        name,
        "report",
        lambda: seed.report_finding(claimed, "w1", {"summary": "ok"}),
        admin,
        steps,
    )
    steps.append(
        Step(
            name,
            "= every cycle (no cache)",
            sum(s.round_trips for s in steps[first:]),
            sum(s.commands for s in steps[first:]),
        )
    )
    for s in steps:
        print(f"  round trips {s.system:12} {s.step:34} {s.round_trips:3} ({s.commands} cmds)")
    worker.close()
    shard.close()
    seed.redis.close()
    admin.close()
    return steps


def report(steps: list[Step]) -> str:
    rows = [
        [
            s.system,
            f"**{s.step}**" if s.step.startswith("=") else s.step,
            s.round_trips,
            s.commands,
        ]
        for s in steps
    ]
    return md_table(["system", "step", "round trips", "server commands"], rows)
