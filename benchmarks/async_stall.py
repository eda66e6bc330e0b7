"""How long AsyncSwarm holds its event loop while it publishes and cold-reads a big context.

A ticking coroutine sleeps 0.5 ms in a loop beside the operation; each tick that wakes late
says the loop was busy: the lateness of the latest tick is the longest stall (hashing,
compressing, decompressing and decoding are run in a worker thread; what is left on the loop
is the client's own reading of the replies). Figures, not a timed test.

Run::

    python benchmarks/async_stall.py            # 3.2 MB, raw and zstd, 7 rounds each
    python benchmarks/async_stall.py --quick    # 3 rounds
    python benchmarks/async_stall.py --url redis://host:port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from benchmarks._common import RedisProcess, context_text, ensure_paths, md_table

ensure_paths()

from redis_swarm import AsyncSwarm, ContextCache  # noqa: E402

SIZE = 3_200_000
TICK_S = 0.0005


async def _stall_during(action: Callable[[], Awaitable[Any]]) -> float:
    """The longest lateness (ms) of a 0.5 ms ticker while ``action`` runs."""
    worst = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal worst
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(TICK_S)
            worst = max(worst, time.perf_counter() - start - TICK_S)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)  # the ticker runs before the action starts
    try:
        await action()
    finally:
        done.set()
        await ticker
    return worst * 1000


async def _rounds(
    url: str, compression: Literal["none", "zstd"], rounds: int, size: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """The stall of each round's publish (a new version), cold read, and cold slice and
    search (each by a reader with no cache: the version fetched, its lines indexed)."""
    publish: list[float] = []
    read: list[float] = []
    sliced: list[float] = []
    searched: list[float] = []
    for n in range(rounds):
        text = context_text(size, seed=n + (100 if compression == "zstd" else 0))
        async with AsyncSwarm(url, swarm="stall") as writer:
            await writer.ping()
            publish_once = functools.partial(
                writer.publish_context, "big", text, source="big.md", compression=compression
            )
            publish.append(await _stall_during(publish_once))
        async with AsyncSwarm(url, swarm="stall", cache=ContextCache(max_bytes=0)) as reader:
            await reader.ping()
            read.append(await _stall_during(lambda: reader.get_context("big")))
            assert await reader.get_context("big") == text
        last = text.count("\n")
        async with AsyncSwarm(url, swarm="stall", cache=ContextCache(max_bytes=0)) as reader:
            await reader.ping()
            # The last lines (every line before them indexed), then a word that is nowhere
            # (the whole text searched).
            tail = functools.partial(reader.read_context, "big", lines=(last - 50, last))
            sliced.append(await _stall_during(tail))
            nowhere = functools.partial(reader.search_context, "big", "no-such-word")
            searched.append(await _stall_during(nowhere))
    return publish, read, sliced, searched


async def measure(url: str, rounds: int, size: int = SIZE) -> list[list[str]]:
    rows: list[list[str]] = []
    modes: tuple[Literal["none", "zstd"], ...] = ("none", "zstd")
    for compression in modes:
        publish, read, sliced, searched = await _rounds(url, compression, rounds, size)
        measured = (
            ("publish", publish),
            ("cold get_context", read),
            ("cold read_context (its last lines)", sliced),
            ("cold search_context", searched),
        )
        for what, stalls in measured:
            worst = f"{max(stalls):.2f}"
            rows.append([f"{what}, {compression}", f"{statistics.median(stalls):.2f}", worst])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing server (default: a private one)")
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--size", type=int, default=SIZE, help="bytes of the context")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 7
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(RedisProcess()).url
        rows = asyncio.run(measure(url, rounds, args.size))
    size = f"{args.size / 1e6:.1f} MB"
    print(f"Longest event-loop stall of AsyncSwarm, {size}, ms ({rounds} rounds):")
    print(md_table(["operation", "median of rounds", "worst round"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
