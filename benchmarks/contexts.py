"""Context sharing: fetching a shard's 10K / 100K / 800K-token context, every way there is.

- the floor: one raw redis-py GET of the same bytes (hiredis parser), nothing decoded; and
  the same GET decoded to str (what a cold ``get_context`` is held against: it returns str);
- redis-swarm cold (a reader that has never seen this version: a fresh cache) and warm
  (the same reader again, context unchanged: the content hash matches its cache);
- the seed's way (``seed.py``): a hash holding the first MB, then one GET per 1 MB chunk,
  replies decoded to str;
- a JSONL bus (``jsonl_bus.py``) holding 10, 1,000 or 10,000 messages, scanned to the latest
  context (file in the page cache).

Every reader is in this process, over loopback TCP to one private redis-server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from benchmarks._common import (
    Config,
    RedisProcess,
    Stats,
    context_text,
    fmt,
    interleaved,
    md_table,
    measure,
    tempdir,
)
from benchmarks.jsonl_bus import JsonlBus
from benchmarks.seed import SeedSwarm

if TYPE_CHECKING:
    from redis_swarm import Swarm

SIZES = {"10K tokens (40 KB)": 40_000, "100K tokens (400 KB)": 400_000}
SIZES["800K tokens (3.2 MB)"] = 3_200_000
BUS_MESSAGES = (10, 1_000, 10_000)
FLOOR = "raw GET (the floor)"
FLOOR_STR = "raw GET + UTF-8 decode"


@dataclass
class Row:
    size: str
    method: str
    stats: Stats
    ratio: float  # p50 / the floor's p50
    part: bool = False  # one ingredient of a cold fetch, timed alone (the breakdown)

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "method": self.method, **self.stats.to_dict()} | {
            "ratio_to_floor": self.ratio,
            "part": self.part,
        }


def _sizes(cfg: Config) -> dict[str, int]:
    if cfg.tiny:
        return {"tiny (4 KB)": 4_000, "tiny (1.2 MB)": 1_200_000}
    return SIZES


def run(server: RedisProcess, cfg: Config) -> list[Row]:
    from redis_swarm import Swarm

    server.flush()
    raw = server.client()
    seed = SeedSwarm(server.client(decode_responses=True))
    swarm = Swarm(server.url, swarm="bench")
    rows: list[Row] = []
    try:
        sizes = _sizes(cfg)
        for label, size in sizes.items():
            found = _fetch_one(size, raw, seed, swarm, cfg)
            floor = found[FLOOR].p50
            parts = _breakdown(size, swarm, cfg) if size == max(sizes.values()) else {}
            for method, stats in [*found.items(), *parts.items()]:
                row = Row(label, method, stats, stats.p50 / floor, part=method in parts)
                rows.append(row)
                print(
                    f"  context {label:22} {method:38} p50 {fmt(stats.p50):>7} ms  "
                    f"p99 {fmt(stats.p99):>7} ms  x{fmt(row.ratio)}",
                    flush=True,
                )
    finally:
        raw.close()
        seed.redis.close()
        swarm.close()
    return rows


def _fetch_one(
    size: int, raw: redis.Redis, seed: SeedSwarm, swarm: Swarm, cfg: Config
) -> dict[str, Stats]:
    from redis_swarm import ContextCache, Swarm

    text = context_text(size)
    owner = f"shard-{size}"
    raw.set(f"raw:{owner}", text.encode())
    seed.load_context(owner, text)
    swarm.publish_context(owner, text, source="bench.md")
    assert swarm.get_context(owner) == text
    assert seed.get_parent_context(owner) == text

    samples = cfg.samples(100 if size >= 1_000_000 else 300)
    budget = cfg.budget(4.0)

    def cold_reader() -> Swarm:
        # What a new worker process has: an empty cache (sharing the connection, so that
        # connecting is not what is measured).
        return Swarm(swarm.settings, cache=ContextCache(), client=swarm.redis)

    readers: list[Swarm] = [cold_reader()]

    def fresh() -> None:
        readers[0] = cold_reader()

    warm = cold_reader()
    warm.get_context(owner)
    found = interleaved(
        {
            FLOOR: (lambda: raw.get(f"raw:{owner}"), None),
            FLOOR_STR: (lambda: _get_text(raw, f"raw:{owner}"), None),
            "redis-swarm cold, bytes": (lambda: readers[0].get_context_bytes(owner), fresh),
            "redis-swarm cold, str": (lambda: readers[0].get_context(owner), fresh),
            "redis-swarm warm (unchanged), str": (lambda: warm.get_context(owner), None),
            "seed: hash + chunk GETs, str": (lambda: seed.get_parent_context(owner), None),
        },
        samples=samples,
        budget_s=budget,
    )
    with tempdir("rs-bench-jsonl-") as tmp:
        for messages in BUS_MESSAGES if not cfg.tiny else (10, 100):
            found[f"JSONL bus, {messages:,} messages"] = _jsonl(
                Path(tmp) / f"bus-{messages}.jsonl", messages, owner, text, cfg
            )
    return found


def _get_text(raw: redis.Redis, key: str) -> str:
    data = raw.get(key)
    assert isinstance(data, bytes)
    return data.decode()


def _breakdown(size: int, swarm: Swarm, cfg: Config) -> dict[str, Stats]:
    """The ingredients of a cold fetch, each timed alone (they add up to about its p50)."""
    from redis_swarm import ContextCache, Swarm
    from redis_swarm._digest import digest

    data = context_text(size).encode()
    chunk = swarm.limits.context_chunk_bytes
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    warm = Swarm(swarm.settings, cache=ContextCache(), client=swarm.redis)
    warm.get_context_bytes(f"shard-{size}")
    return interleaved(
        {
            "PING (one round trip)": (swarm.ping, None),
            "the pointer's round trip (a warm fetch, bytes)": (
                lambda: warm.get_context_bytes(f"shard-{size}"),
                None,
            ),
            f"BLAKE3 of the {len(data) / 1e6:g} MB (the check)": (
                lambda: digest(data, "blake3"),
                None,
            ),
            f"SHA-256 of the {len(data) / 1e6:g} MB (the check before BLAKE3)": (
                lambda: digest(data, "sha256"),
                None,
            ),
            f"joining {len(chunks)} chunks": (lambda: b"".join(chunks), None),
            "UTF-8 decode (str only)": (lambda: data.decode(), None),
        },
        samples=cfg.samples(100),
        budget_s=cfg.budget(2.0),
    )


def _jsonl(path: Path, messages: int, owner: str, text: str, cfg: Config) -> Stats:
    bus = JsonlBus(path)
    bus.fill(messages, owner, text)
    assert bus.latest_context(owner) == text
    return measure(
        lambda: bus.latest_context(owner),
        samples=cfg.samples(50 if messages >= 1000 else 100),
        budget_s=cfg.budget(3.0),
        warmup=1,
    )


def publish_rows(server: RedisProcess, cfg: Config) -> list[tuple[str, str, Stats]]:
    """Publishing cost: raw SET, redis-swarm publish (chunks + pointer), the seed's load."""
    from redis_swarm import Swarm

    server.flush()
    raw = server.client()
    seed = SeedSwarm(server.client(decode_responses=True))
    swarm = Swarm(server.url, swarm="bench")
    out: list[tuple[str, str, Stats]] = []
    try:
        for label, size in _sizes(cfg).items():
            out += _publish_one(label, size, raw, seed, swarm, cfg)
    finally:
        raw.close()
        seed.redis.close()
        swarm.close()
    return out


def _publish_one(
    label: str, size: int, raw: redis.Redis, seed: SeedSwarm, swarm: Swarm, cfg: Config
) -> list[tuple[str, str, Stats]]:
    text = context_text(size)
    counter = [0]

    def changed() -> str:
        counter[0] += 1  # a new version each time: nothing deduplicated
        return f"{counter[0]:08d}" + text[8:]

    samples, budget = cfg.samples(30), cfg.budget(2.0)
    owner = f"pub-{size}"
    return [
        (
            label,
            "raw SET",
            measure(lambda: raw.set(owner, changed()), samples=samples, budget_s=budget),
        ),
        (
            label,
            "redis-swarm publish_context",
            measure(
                lambda: swarm.publish_context(owner, changed(), source="b.md"),
                samples=samples,
                budget_s=budget,
            ),
        ),
        (
            label,
            "seed load_context",
            measure(lambda: seed.load_context(owner, changed()), samples=samples, budget_s=budget),
        ),
    ]


def report(rows: list[Row], publish: list[tuple[str, str, Stats]]) -> str:
    out: list[str] = []
    for size in dict.fromkeys(r.size for r in rows):
        out += [f"**{size}** (fetch; ratio = p50 / the raw GET's p50):", ""]
        table = [
            [r.method, r.stats.p50, r.stats.p99, f"{fmt(r.ratio)}x"]
            for r in rows
            if r.size == size and not r.part
        ]
        out += [md_table(["reader", "p50 ms", "p99 ms", "vs floor"], table), ""]
        parts = [[r.method, r.stats.p50, r.stats.p99] for r in rows if r.size == size and r.part]
        if parts:
            out += [
                f"Where a cold fetch of {size} goes beyond the floor's one round trip (each "
                "ingredient timed alone, in this process):",
                "",
                md_table(["ingredient", "p50 ms", "p99 ms"], parts),
                "",
            ]
    if publish:
        out += ["Publishing (a new version each time), p50 / p99 ms:", ""]
        sizes = list(dict.fromkeys(p[0] for p in publish))
        methods = list(dict.fromkeys(p[1] for p in publish))
        by = {(p[0], p[1]): p[2] for p in publish}
        table2 = [
            [m, *[f"{fmt(by[(s, m)].p50)} / {fmt(by[(s, m)].p99)}" for s in sizes]] for m in methods
        ]
        out += [md_table(["writer", *sizes], table2), ""]
    return "\n".join(out)


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r.part]
    sizes = list(dict.fromkeys(r.size for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    by = {(r.size, r.method): r.stats.p50 for r in rows}
    fig, ax = plt.subplots(figsize=(12, 5.5))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        xs = [i + k * width for i in range(len(sizes))]
        ax.bar(xs, [by.get((s, method), 0) for s in sizes], width, label=method)
    ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(sizes))])
    ax.set_xticklabels(sizes)
    ax.set_yscale("log")
    ax.set_ylabel("p50 fetch time, ms (log)")
    ax.set_title("Fetching a shared context (lower is better)")
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
