"""``swarm bench``: what the configured server costs, measured through the real client.

Everything runs in a scratch swarm (``bench-<random>``) on the configured server, removed at
the end, so a live swarm is never touched. Figures are wall-clock per call from this process:
PING; a raw GET of the same bytes as a context (the floor), and the same GET decoded to str
(what a cold fetch, which returns str, is held against); publishing and fetching contexts
of 10K, 100K and 800K tokens (~40 KB, 400 KB, 3.2 MB) cold (an empty cache, as a new worker
process has) and warm (unchanged since the last read); a task's post, and its claim + report.

It needs an admin user: no per-swarm user (worker, shard, coordinator) may touch the scratch
swarm's keys, nor SCAN for them to remove them. Any other is refused before anything is
measured, in one line (``_refuse_non_admin``).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from ._acl import key_patterns
from ._cache import ContextCache
from ._client import Swarm
from ._config import Settings
from ._errors import PermissionDenied
from ._translate import translate

__all__ = ["SIZES", "BenchResult", "percentile", "run_bench"]

SIZES: dict[str, int] = {"10K tokens": 40_000, "100K tokens": 400_000, "800K tokens": 3_200_000}


@dataclass(frozen=True)
class BenchResult:
    """One measured operation: latency percentiles in milliseconds."""

    name: str
    size_bytes: int | None
    samples: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    vs_floor: float | None = None  # p50 / the raw GET's p50 of the same size

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (no interpolation)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def _timed(
    fn: Callable[[], object], samples: int, setup: Callable[[], object] | None = None
) -> list[float]:
    for _ in range(2):  # warm-up: connections made, scripts loaded
        if setup is not None:
            setup()
        fn()
    out: list[float] = []
    for _ in range(samples):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _result(
    name: str, size: int | None, ms: list[float], floor: float | None = None
) -> BenchResult:
    p50 = percentile(ms, 50)
    return BenchResult(
        name=name,
        size_bytes=size,
        samples=len(ms),
        p50_ms=round(p50, 4),
        p99_ms=round(percentile(ms, 99), 4),
        mean_ms=round(sum(ms) / len(ms), 4),
        vs_floor=round(p50 / floor, 2) if floor else None,
    )


def sample_text(size: int) -> str:
    """``size`` bytes of ASCII prose-like text (about 4 bytes per token)."""
    line = "the shard holds the context; a worker claims a task, reads it and reports.\n"
    return (line * (size // len(line) + 1))[:size]


def run_bench(
    settings: Settings, *, quick: bool = False, progress: Callable[[str], None] | None = None
) -> list[BenchResult]:
    """Measure the server behind ``settings`` in a scratch swarm; returns one record per row."""
    scratch = settings.with_swarm(f"bench-{secrets.token_hex(4)}")
    swarm = Swarm(scratch)
    n = 20 if quick else 200
    results: list[BenchResult] = []

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    measured = False
    try:
        _refuse_non_admin(swarm)
        say("ping")
        results.append(_result("ping", None, _timed(swarm.ping, n * 2)))
        raw_key = swarm.keys.scratch("raw")
        for label, size in SIZES.items():
            say(f"contexts of {label}")
            results += _contexts(swarm, raw_key, label, size, 3 if quick else 20)
        say("tasks")
        results += _tasks(swarm, n)
        measured = True
    finally:
        try:
            _cleanup(swarm)
        except Exception:
            if measured:  # (else the error that stopped the measures is the one to tell)
                raise
        finally:
            swarm.close()
    return results


def _refuse_non_admin(swarm: Swarm) -> None:
    """Refuse, before anything is measured, a user that may not write, find and delete the
    scratch swarm's keys (any but an admin): its first write, and the SCAN and UNLINK of the
    cleanup, tried on one scratch key; a NOPERM becomes one ``PermissionDenied`` line."""
    swarm.ping()  # (a server out of reach, a login refused: said as any command says them)
    probe = swarm.keys.scratch("probe")
    try:
        swarm.redis.set(probe, b"", ex=60)
        next(_scan(swarm, probe), None)
        swarm.redis.unlink(probe)
    except Exception as exc:  # (redis-py's own errors: this module talks to swarm.redis)
        if not isinstance(translate(exc, swarm.settings.url), PermissionDenied):
            raise
        user = swarm.settings.shown_user
        raise PermissionDenied(
            f"swarm bench needs an admin user: it measures in a scratch swarm of its own "
            f"({swarm.name}) and removes it after (SCAN, UNLINK), and no per-swarm user "
            f"(worker, shard or coordinator) may touch its keys; the Redis user {user!r} may "
            f"not ({exc}). Nothing was measured: run it again with an admin user's "
            "URL in SWARM_URL ('swarm acl --role admin --user NAME --apply' makes "
            "one, as an admin; docs/security.md says what each role may do)"
        ) from None


def _contexts(swarm: Swarm, raw_key: str, label: str, size: int, n: int) -> list[BenchResult]:
    text = sample_text(size)
    data = text.encode()
    owner = f"bench-{size}"
    counter = iter(range(10**9))

    def publish() -> None:  # a new version each time: nothing deduplicated
        swarm.publish_context(owner, f"{next(counter):09d}" + text[9:], source="swarm-bench")

    out = [_result(f"publish {label}", size, _timed(publish, n))]
    swarm.publish_context(owner, text, source="swarm-bench")
    swarm.redis.set(raw_key, data)
    readers = [Swarm(swarm.settings, cache=ContextCache(), client=swarm.redis)]
    warm = Swarm(swarm.settings, cache=ContextCache(), client=swarm.redis)
    warm.get_context(owner)

    def cold() -> None:  # what a new worker process has: an empty cache
        readers[0] = Swarm(swarm.settings, cache=ContextCache(), client=swarm.redis)

    # In turn, sample by sample, so that background noise weighs on each alike.
    cases: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {
        f"raw GET {label} (floor)": (lambda: swarm.redis.get(raw_key), None),
        f"raw GET {label} + decode": (lambda: _text(swarm.redis.get(raw_key)), None),
        f"fetch {label} cold": (lambda: readers[0].get_context(owner), cold),
        f"fetch {label} warm": (lambda: warm.get_context(owner), None),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for k in range(2 + n * 3):
        for name, (fn, setup) in cases.items():
            if setup is not None:
                setup()
            start = time.perf_counter()
            fn()
            if k >= 2:
                times[name].append((time.perf_counter() - start) * 1000)
    floor = percentile(times[f"raw GET {label} (floor)"], 50)
    out += [_result(name, size, ms, floor) for name, ms in times.items()]
    return out


def _text(data: object) -> str:
    assert isinstance(data, bytes)
    return data.decode()


def _tasks(swarm: Swarm, n: int) -> list[BenchResult]:
    post_ms = _timed(lambda: swarm.post_task("bench", "no-op", {"n": 1}), n + 2)
    claim_report: list[float] = []
    for _ in range(n + 2):
        start = time.perf_counter()
        task = swarm.claim("bench", worker="swarm-bench")
        if task is None:
            raise RuntimeError("swarm bench: a task posted just now could not be claimed")
        swarm.report(task.id, task.token, {"summary": "no-op"})
        claim_report.append((time.perf_counter() - start) * 1000)
    return [
        _result("post task", None, post_ms),
        _result("claim + report", None, claim_report[2:]),
    ]


def _scan(swarm: Swarm, pattern: str) -> Iterator[bytes | str]:
    yield from swarm.redis.scan_iter(match=pattern, count=1000)


def _cleanup(swarm: Swarm) -> None:
    """Delete every key of the scratch swarm (its chunks included)."""
    patterns = (swarm.keys.prefix + "*", key_patterns(swarm.name, "chunk"))
    for pattern in patterns:
        batch: list[bytes | str] = []
        for key in _scan(swarm, pattern):
            batch.append(key)
            if len(batch) >= 500:
                for k in batch:  # one by one: chunk keys live in other cluster slots
                    swarm.redis.unlink(k)
                batch.clear()
        for k in batch:
            swarm.redis.unlink(k)
