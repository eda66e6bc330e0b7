"""Scale: status latency against the number of tasks, 1,000 agents heartbeating, memory.

- tasks are bulk-posted (``post_tasks``, 1,000 per round trip) over 10 queues, 10^3 up to
  10^5 by default (10^6 with ``run_all.py --scale-max 6``: about a minute and ~1 GB more);
  at each size ``queue_stats`` and ``status`` are timed, and the seed's status (one round
  trip per task) up to 10^4;
- Redis memory per task and per completed task with its finding, from ``INFO memory``;
- 1,000 agents registered, each heartbeating: latency of one heartbeat, of a full round of
  1,000, and of listing the agents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks._common import Config, RedisProcess, Stats, fmt, md_table, measure
from benchmarks.seed import SeedSwarm

QUEUES = 10
BATCH = 1_000


@dataclass
class Level:
    tasks: int
    post_rate: float  # tasks per second, bulk
    queue_stats: Stats
    status: Stats | None
    seed_status: Stats | None
    bytes_per_task: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "bulk_post_per_s": self.post_rate,
            "queue_stats": self.queue_stats.to_dict(),
            "status": self.status.to_dict() if self.status else None,
            "seed_status": self.seed_status.to_dict() if self.seed_status else None,
            "bytes_per_task": self.bytes_per_task,
        }


@dataclass
class ScaleResult:
    levels: list[Level] = field(default_factory=list)
    bytes_per_finding: float = float("nan")
    agents: int = 0
    heartbeat: Stats | None = None
    heartbeat_round: Stats | None = None
    list_agents: Stats | None = None
    bytes_per_agent: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "levels": [lv.to_dict() for lv in self.levels],
            "bytes_per_finding": self.bytes_per_finding,
            "agents": self.agents,
            "heartbeat": self.heartbeat.to_dict() if self.heartbeat else None,
            "heartbeat_round": self.heartbeat_round.to_dict() if self.heartbeat_round else None,
            "list_agents": self.list_agents.to_dict() if self.list_agents else None,
            "bytes_per_agent": self.bytes_per_agent,
        }


def _used(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def status_of(swarm: Any) -> Any:
    """A coordinator's overview (the seed's get_swarm_status), what ``swarm status`` reads:
    every queue's and pass's counts, every agent, every context in one round trip, then the
    newest leases and their tasks (the task a worker that only claims holds): three."""
    return swarm.status()


def run(server: RedisProcess, cfg: Config) -> ScaleResult:
    from redis_swarm import Swarm

    server.flush()
    admin = server.client()
    swarm = Swarm(server.url, swarm="bench")
    result = ScaleResult()
    top = 3 if cfg.tiny else cfg.scale_max_exp
    sizes = [10**e for e in range(2 if cfg.tiny else 3, top + 1)]
    base = _used(admin)
    posted = 0
    seed = SeedSwarm(server.client(decode_responses=True))
    try:
        for target in sizes:
            start, before = time.perf_counter(), posted
            while posted < target:
                n = min(BATCH, target - posted)
                swarm.post_tasks(
                    [
                        {
                            "queue": f"q{(posted + k) % QUEUES}",
                            "description": "scale test",
                            "data": {"n": posted + k},
                        }
                        for k in range(n)
                    ]
                )
                posted += n
            rate = (target - before) / (time.perf_counter() - start)
            used = _used(admin) - base
            samples, budget = cfg.samples(200), cfg.budget(2.0)
            qs = measure(swarm.queue_stats, samples=samples, budget_s=budget)
            st = measure(lambda: status_of(swarm), samples=samples, budget_s=budget)
            seed_st = None
            if target <= (10**3 if cfg.tiny or cfg.quick else 10**4):
                # The seed's status walks every task: post the same count its way (not timed).
                pipe = seed.redis.pipeline(transaction=False)
                have = seed.redis.llen("shard:s:tasks")
                for k in range(target - have):
                    pipe.hset(f"task:seed{target}-{k}", mapping={"status": "pending"})
                    pipe.rpush("shard:s:tasks", f"seed{target}-{k}")
                pipe.execute()
                seed_st = measure(
                    lambda: seed.swarm_status(["s"]),
                    samples=cfg.samples(5),
                    budget_s=budget,
                    warmup=1,
                )
            level = Level(target, rate, qs, st, seed_st, used / target)
            result.levels.append(level)
            print(
                f"  scale {target:>9,} tasks: queue_stats p50 {fmt(qs.p50)} ms"
                + (f", status p50 {fmt(st.p50)} ms" if st else "")
                + (f", seed status p50 {fmt(seed_st.p50)} ms" if seed_st else "")
                + f", {used / target:.0f} B/task, bulk post {rate:,.0f}/s",
                flush=True,
            )
        # --- findings
        server.flush()
        n = 100 if cfg.tiny else 2_000
        swarm.post_tasks([{"queue": "f", "description": "d", "data": {"n": k}} for k in range(n)])
        before = _used(admin)
        for _ in range(n):
            task = swarm.claim("f", worker="w1")
            assert task is not None
            swarm.report(
                task.id,
                task.token,
                {"summary": "a typical one-line finding about the task", "confidence": 0.8},
            )
        result.bytes_per_finding = (_used(admin) - before) / n
        print(f"  scale findings: {result.bytes_per_finding:.0f} B per completed task + finding")
        # --- agents
        server.flush()
        agents = 50 if cfg.tiny else 1_000
        before = _used(admin)
        ids = [swarm.register("worker", name=f"agent-{k}", model="haiku").id for k in range(agents)]
        result.agents = agents
        result.bytes_per_agent = (_used(admin) - before) / agents
        it = iter(range(10**9))
        result.heartbeat = measure(
            lambda: swarm.heartbeat(ids[next(it) % agents]),
            samples=cfg.samples(2000),
            budget_s=cfg.budget(2.0),
        )

        def one_round() -> None:
            for agent in ids:
                swarm.heartbeat(agent)

        result.heartbeat_round = measure(one_round, samples=cfg.samples(10), budget_s=cfg.budget(3))
        result.list_agents = measure(
            swarm.agents, samples=cfg.samples(100), budget_s=cfg.budget(2.0)
        )
        print(
            f"  scale agents: heartbeat p50 {fmt(result.heartbeat.p50)} ms, round of {agents} "
            f"{fmt(result.heartbeat_round.p50)} ms, agents() {fmt(result.list_agents.p50)} ms"
        )
    finally:
        swarm.close()
        seed.redis.close()
        admin.close()
    return result


def report(result: ScaleResult) -> str:
    rows = []
    for lv in result.levels:
        rows.append(
            [
                f"{lv.tasks:,}",
                f"{fmt(lv.queue_stats.p50)} / {fmt(lv.queue_stats.p99)}",
                f"{fmt(lv.status.p50)} / {fmt(lv.status.p99)}" if lv.status else "n/a",
                f"{fmt(lv.seed_status.p50)} / {fmt(lv.seed_status.p99)}" if lv.seed_status else "-",
                f"{lv.bytes_per_task:,.0f}",
                f"{lv.post_rate:,.0f}",
            ]
        )
    out = [
        md_table(
            [
                "tasks",
                "queue_stats p50 / p99 ms",
                "status() p50 / p99 ms",
                "seed status p50 / p99 ms",
                "Redis bytes per task",
                "bulk post, tasks/s",
            ],
            rows,
        ),
        "",
        f"Memory per completed task with its finding (state change + finding + indexes): "
        f"**{result.bytes_per_finding:,.0f} bytes** more than the pending task.",
        "",
    ]
    if result.heartbeat and result.heartbeat_round and result.list_agents:
        out += [
            md_table(
                [f"with {result.agents:,} agents registered", "p50 ms", "p99 ms"],
                [
                    ["one heartbeat", result.heartbeat.p50, result.heartbeat.p99],
                    [
                        f"a round: all {result.agents:,} heartbeat once (one client)",
                        result.heartbeat_round.p50,
                        result.heartbeat_round.p99,
                    ],
                    ["agents() (list them all)", result.list_agents.p50, result.list_agents.p99],
                ],
            ),
            "",
            f"Memory per registered agent: {result.bytes_per_agent:,.0f} bytes.",
        ]
    return "\n".join(out)


def plot(result: ScaleResult, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [lv.tasks for lv in result.levels]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, [lv.queue_stats.p50 for lv in result.levels], "o-", label="queue_stats p50")
    if all(lv.status for lv in result.levels):
        ax.plot(xs, [lv.status.p50 for lv in result.levels], "s-", label="status p50")  # type: ignore[union-attr]
    seed = [(lv.tasks, lv.seed_status.p50) for lv in result.levels if lv.seed_status]
    if seed:
        ax.plot([s[0] for s in seed], [s[1] for s in seed], "x--", label="seed status p50")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks in the swarm")
    ax.set_ylabel("ms (log)")
    ax.set_title("Status latency against the number of tasks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
