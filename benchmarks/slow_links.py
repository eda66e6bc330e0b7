"""Slow links: an agent on another continent, simulated by a latency-injecting TCP proxy.

Two measurements, through ``tests/_proxy.py``'s LatencyProxy (25 ms each way: a 50 ms round
trip) in front of the benchmark's redis-server:

- every core operation once (``tests/_op_costs.py``, the catalogue the round-trip tests
  assert), in a small and in a big swarm: round trips (proxy exchanges) and wall time;
- a cold fetch of a 3.2 MB context published raw (``compression="never"``) and with zstd
  (``"always"``), with the link's bandwidth capped at 1 and at 10 MB/s, and on loopback with
  no proxy: median seconds per fetch and bytes on the wire, raw and zstd side by side in
  one run (interleaved, repetition by repetition).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import zstandard

from benchmarks._common import Config, RedisProcess, md_table

DELAY_S = 0.025
CONTEXT_BYTES = 3_200_000
BANDWIDTHS = (1_000_000, 10_000_000)  # bytes per second, each way
# (label, publish_context's compression): the settings compression="never" and "always".
CODECS: tuple[tuple[str, Literal["none", "zstd"]], ...] = (
    ("never (raw)", "none"),
    ("always (zstd)", "zstd"),
)


@dataclass
class OpRow:
    op: str
    small_round_trips: int
    big_round_trips: int
    big_ms: float


@dataclass
class FetchRow:
    link: str
    compression: str
    seconds: float  # median per cold fetch
    bytes_down: int | None  # server -> client through the proxy (None: no proxy)
    repetitions: int


@dataclass
class SlowLinks:
    delay_s: float
    small: str
    big: str
    context_bytes: int
    ops: list[OpRow]
    fetch: list[FetchRow]
    zstd_share: float  # stored / raw bytes of the fetched text
    zstd_share_demo: float  # the same for the demo corpus (real prose), for comparison

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sizes(cfg: Config) -> tuple[float, int, int]:
    """One-way delay, context size and repetitions: the smoke test's are tiny."""
    if cfg.tiny:
        return 0.002, 40_000, 1
    return DELAY_S, CONTEXT_BYTES, 2 if cfg.quick else 5


def _load_scripts(server: RedisProcess) -> None:
    """As in a live swarm after 'swarm up': the function library (or, before Redis 7, every
    script) is on the server already."""
    from redis_swarm import Swarm

    with Swarm(server.url) as swarm:
        swarm.load_functions()


def op_costs(server: RedisProcess, cfg: Config, delay: float) -> tuple[list[OpRow], str, str]:
    from tests._op_costs import BIG, SMALL, Meter, every_operation, prepare
    from tests._proxy import LatencyProxy

    from redis_swarm import ContextCache, Swarm

    scales = (SMALL, SMALL) if cfg.tiny else (SMALL, BIG)
    measured: list[dict[str, tuple[int, float]]] = []
    _load_scripts(server)
    with LatencyProxy(server.port, delay_s=delay) as proxy:
        for scale in scales:
            server.flush()
            cache = ContextCache()
            with (
                Swarm(server.url, swarm="slow") as near,
                Swarm(proxy.url, swarm="slow", cache=cache) as far,
            ):
                prepare(near, scale)
                far.ping()  # connected before counting
                meter = Meter(proxy)
                every_operation(far, near, cache, meter, scale)
            measured.append({c.op: (c.round_trips, c.seconds) for c in meter.costs})
    small, big = measured
    rows = [OpRow(op, small[op][0], rt, seconds * 1000) for op, (rt, seconds) in big.items()]
    for row in rows:
        print(
            f"  {row.op:34} {row.small_round_trips:2} {row.big_round_trips:2} {row.big_ms:7.1f} ms"
        )
    return rows, scales[0].describe(), scales[1].describe()


def fetch_costs(server: RedisProcess, cfg: Config, delay: float) -> tuple[list[FetchRow], int]:
    from tests._proxy import LatencyProxy

    from redis_swarm import ContextCache, Swarm

    _, size, reps = _sizes(cfg)
    # Text compressible like real notes (zstd keeps ~20%; the demo corpus, real prose, 28%):
    # context_text's 32-word vocabulary would shrink to 4% and flatter zstd.
    text = corpus_of(size)
    size = len(text.encode())
    server.flush()
    with Swarm(server.url, swarm="slow") as near:
        for _, codec in CODECS:
            near.publish_context(codec, text, source="context.md", compression=codec)
    rows: list[FetchRow] = []
    links: list[tuple[str, float | None]] = [
        (f"{2 * delay * 1000:.0f} ms RTT, {bw / 1e6:g} MB/s", bw) for bw in BANDWIDTHS
    ]
    links.append(("loopback, no proxy", None))
    with LatencyProxy(server.port, delay_s=delay) as proxy:
        for link, bandwidth in links:
            proxy.bandwidth = bandwidth
            url = server.url if bandwidth is None else proxy.url
            cache = ContextCache()
            times: dict[str, list[float]] = {codec: [] for _, codec in CODECS}
            wire: dict[str, int] = {}
            with Swarm(url, swarm="slow", cache=cache) as reader:
                reader.ping()
                for _ in range(reps):
                    for _, codec in CODECS:  # interleaved: both see the same machine
                        cache.clear()
                        proxy.reset_stats()
                        start = time.perf_counter()
                        got = reader.get_context(codec)
                        times[codec].append(time.perf_counter() - start)
                        wire[codec] = proxy.stats.bytes_down
                        assert got == text
            for label, codec in CODECS:
                seconds = statistics.median(times[codec])
                down = wire[codec] if bandwidth is not None else None
                rows.append(FetchRow(link, label, seconds, down, reps))
                print(f"  fetch {link:26} {label:14} {seconds * 1000:9.1f} ms {down} bytes")
    return rows, size


def run(server: RedisProcess, cfg: Config) -> SlowLinks:
    delay, _, _ = _sizes(cfg)
    ops, small, big = op_costs(server, cfg, delay)
    fetch, size = fetch_costs(server, cfg, delay)
    share = _zstd_share(corpus_of(size))
    return SlowLinks(delay, small, big, size, ops, fetch, share, _zstd_share(demo_text()))


def corpus_of(size: int) -> str:
    from benchmarks.bench_contexts import corpus

    return corpus(size)


def demo_text() -> str:
    from redis_swarm._demo import corpus_text

    return corpus_text()


def _zstd_share(text: str) -> float:
    """Stored over raw bytes, at the level and chunk size publish_context uses."""
    from redis_swarm import Limits
    from redis_swarm._ops.contexts import ZSTD_LEVEL

    raw, step = text.encode(), Limits().context_chunk_bytes
    packer = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    stored = sum(len(packer.compress(raw[i : i + step])) for i in range(0, len(raw), step))
    return stored / len(raw)


def report(result: SlowLinks) -> str:
    rtt = f"{2 * result.delay_s * 1000:.0f} ms"
    ops = md_table(
        [
            "operation",
            "round trips, small swarm",
            "round trips, big swarm",
            f"ms at {rtt} RTT, big swarm",
        ],
        [[r.op, r.small_round_trips, r.big_round_trips, r.big_ms] for r in result.ops],
    )
    by_link: dict[str, dict[str, FetchRow]] = {}
    for row in result.fetch:
        by_link.setdefault(row.link, {})[row.compression] = row
    fetch_rows: list[list[object]] = []
    for link, pair in by_link.items():
        raw, packed = (pair[label] for label, _ in CODECS)
        wire: list[object] = ["-", "-", "-"]
        if raw.bytes_down is not None and packed.bytes_down is not None:
            wire = [
                f"{raw.bytes_down:,}",
                f"{packed.bytes_down:,}",
                packed.bytes_down / raw.bytes_down,
            ]
        times = [raw.seconds * 1000, packed.seconds * 1000, packed.seconds / raw.seconds]
        fetch_rows.append([link, *times, *wire])
    mb = result.context_bytes / 1e6
    reps = result.fetch[0].repetitions if result.fetch else 0
    fetch = md_table(
        [
            "link",
            "ms, raw",
            "ms, zstd",
            "time zstd / raw",
            "bytes on the wire, raw",
            "bytes, zstd",
            "bytes zstd / raw",
        ],
        fetch_rows,
    )
    return "\n".join(
        [
            f"Round trips are the proxy's exchanges (a request after a reply; a pipelined batch "
            f"is one), counted on a connected handle, the function library already on the server. "
            f"Small swarm: {result.small}; big swarm: {result.big}.",
            "",
            ops,
            "",
            f"A cold fetch of a {mb:.1f} MB context (`get_context` by a reader that lacks the "
            f"version: raw, the pointer and the copy of the current version in one batch; "
            f"zstd, which keeps no copy: the pointer, then every chunk in one batch), published "
            f"raw and with zstd, through the proxy at {rtt} RTT with the bandwidth capped each "
            f"way, and on loopback; median of {reps} fetches each, raw and zstd interleaved. "
            "Bytes on the wire: server to client, as the proxy counted them. zstd (level 3, "
            f"per 1 MB chunk) stores this text at {result.zstd_share:.0%} of its size (the demo "
            f"corpus, real prose: {result.zstd_share_demo:.0%}). "
            'Raw is `compression="never"` '
            '(`publish_context(..., compression="none")`), zstd `compression="always"` '
            '(`compression="zstd"`).',
            "",
            fetch,
        ]
    )
