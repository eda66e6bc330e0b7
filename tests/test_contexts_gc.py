"""The gc of context chunks: dead publishes and lost releases are found through the journal
and freed; a publish in flight is never touched; every kept version stays whole (both shells,
standalone and cluster)."""

from __future__ import annotations

import contextlib
import math
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_swarm import Conflict, ConnectionFailed, GcReport, Limits, Swarm, ValidationError
from redis_swarm._keys import Keys
from redis_swarm._ops import contexts as context_ops

from ._cli import Cli
from ._handles import FakeClock, make_swarm
from ._invariants import check_swarm
from ._proxy import LatencyProxy
from ._raw import raw_client
from .conftest import SWARM_KINDS

KEYS = Keys("test")
LIMITS = Limits(context_chunk_bytes=1024)


@pytest.fixture(params=SWARM_KINDS)
def small(request: pytest.FixtureRequest, redis_url: str) -> Iterator[tuple[Any, FakeClock]]:
    """A swarm with 1 KB chunks and a clock that moves only when told to."""
    clock = FakeClock()
    handle = make_swarm(request.param, redis_url, limits=LIMITS, clock=clock)
    yield handle, clock
    handle.close()


def _text(n_lines: int, tag: str) -> str:
    return "".join(f"{tag} line {i}: {i * 7919 % 1000}\n" for i in range(n_lines))


def _check(url: str, **options: Any) -> None:
    with raw_client(url) as r:
        check_swarm(r, "test", **options)


def _chunks(url: str) -> set[str]:
    with raw_client(url) as r:
        return {k.decode() for k in r.scan_iter("rs:chunk:*")}


def _dies_before_its_flip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher's process dies once its chunks are stored, before the pointer flips."""

    def dies(*args: Any, **kwargs: Any) -> Any:
        yield from ()  # a generator, as the flip is
        raise ConnectionFailed("the publisher was killed")

    monkeypatch.setattr(context_ops, "_flip", dies)


def test_gc_frees_what_a_dead_publish_left(
    small: tuple[Any, FakeClock], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm, _ = small
    kept = swarm.publish_context("o", _text(100, "kept"), source="a")
    kept_chunks = _chunks(redis_url)
    with monkeypatch.context() as m:
        _dies_before_its_flip(m)
        with pytest.raises(ConnectionFailed):
            swarm.publish_context("o", _text(100, "lost"), source="a")
    leaked = _chunks(redis_url) - kept_chunks
    assert leaked
    with pytest.raises(AssertionError, match="no kept version's token"):
        _check(redis_url)
    _check(redis_url, chunk_leaks_ok=True)  # journaled: gc can find every one

    # The default grace period protects a publish in flight: nothing is touched.
    assert swarm.gc() == GcReport(False, 0, 0, 0, 0)
    dry = swarm.gc(grace_s=0, dry_run=True)
    assert dry.dry_run and dry.publishes_given_up == 1 and dry.chunks_deleted == len(leaked)
    assert _chunks(redis_url) - kept_chunks == leaked  # a dry run changes nothing
    done = swarm.gc(grace_s=0)
    assert done == GcReport(
        False, 1, 1, len(leaked), dry.bytes_freed
    ) and done.bytes_freed >= 1024 * (len(leaked) - 1)
    assert _chunks(redis_url) == kept_chunks
    _check(redis_url)
    assert swarm.get_context("o") == _text(100, "kept")
    assert swarm.context_info("o") == kept
    assert swarm.gc(grace_s=0) == GcReport(False, 0, 0, 0, 0)


def test_a_publish_gc_gave_up_on_fails_and_loses_nothing(
    small: tuple[Any, FakeClock], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc gives up on a publish in flight (older than a grace of 0) between its chunk writes
    and its flip: the flip refuses, the publisher gets a Conflict, nothing half-published."""
    swarm, clock = small
    swarm.publish_context("o", _text(200, "v1"), source="a")
    before = _chunks(redis_url)
    flip = context_ops._flip

    def gc_first(*args: Any, **kwargs: Any) -> Any:
        with Swarm(redis_url, swarm="test", clock=clock) as other:
            assert other.gc(grace_s=0).publishes_given_up == 1
        return (yield from flip(*args, **kwargs))

    monkeypatch.setattr(context_ops, "_flip", gc_first)
    with pytest.raises(Conflict, match="grace period"):
        swarm.publish_context("o", _text(200, "v2"), source="a")
    monkeypatch.undo()
    assert swarm.get_context("o") == _text(200, "v1")
    assert _chunks(redis_url) == before
    _check(redis_url)
    assert swarm.publish_context("o", _text(200, "v2"), source="a").chunks > 1  # again: fine


def test_publishes_collect_old_leaks_without_gc(
    small: tuple[Any, FakeClock], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each flip gives up on the publishes in flight past the grace period and hands its
    publisher the holds due (the pruned versions' too): nobody runs gc, the swarm stays flat."""
    swarm, clock = small
    with monkeypatch.context() as m:
        _dies_before_its_flip(m)
        with pytest.raises(ConnectionFailed):
            swarm.publish_context("o", _text(80, "dead"), source="a")
    clock.advance(5)
    texts = [_text(80, f"v{n}") for n in range(5)]
    swarm.publish_context("o", texts[0], source="a")
    _check(redis_url, chunk_leaks_ok=True)  # the dead publish is younger than the grace
    clock.advance(601)
    for text in texts[1:]:
        swarm.publish_context("o", text, source="a")
    _check(redis_url, versions_kept=3)  # no leak: the dead publish and the pruned are freed
    with raw_client(redis_url) as r:
        assert r.hlen(KEYS.chunk_holds) == 0
        assert r.zcard(KEYS.holds_publishing) == r.zcard(KEYS.holds_releasing) == 0
    infos = swarm.context_versions("o")
    assert [swarm.get_context("o", version=i.version) for i in infos] == texts[:1:-1]


@pytest.mark.parametrize("grace", [-1, math.nan, math.inf, "600", True])
def test_gc_refuses_a_bad_grace(swarm: Swarm, grace: Any) -> None:
    with pytest.raises(ValidationError, match="grace_s"):
        swarm.gc(grace_s=grace)


def test_swarm_gc_command(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Swarm(redis_url, swarm="test", limits=LIMITS) as swarm:
        swarm.publish_context("o", _text(40, "kept"), source="a")
        _dies_before_its_flip(monkeypatch)
        with pytest.raises(ConnectionFailed):
            swarm.publish_context("o", _text(40, "lost"), source="a")
    cli = Cli(redis_url)
    dry = cli.json("gc", "--dry-run", "--grace", "0")
    assert dry["dry_run"] and dry["chunks_deleted"] >= 1 and dry["publishes_given_up"] == 1
    assert cli("gc").stdout.startswith("freed 0 chunks")  # the grace protects it still
    out = cli("gc", "--grace", "0").stdout
    assert out.startswith(f"freed {dry['chunks_deleted']} chunks")
    assert "1 publishes in flight given up on" in out
    _check(redis_url)
    assert "--grace" in cli("gc", "--grace", "-1", expect=2).stderr


# Publishers forked from one process that imported the library once: each is a process of
# its own, SIGKILLed mid-publish, without paying Python's start and imports per publisher.
# A line "SEED DELAY" on stdin: a publisher of 1.5 MB (SEED's bytes) is forked, and once it
# is connected ("ready") it is SIGKILLed DELAY seconds later; "killed" answers (or "failed",
# with its traceback on stderr, when it never got ready).
_PUBLISHERS = """
import os, random, signal, sys, time, traceback
from redis_swarm import Limits, Swarm
url = sys.argv[1]
BYTES_TYPE = "application/octet-stream"  # random bytes: not text
for line in sys.stdin:
    seed, delay = int(line.split()[0]), float(line.split()[1])
    ready, said = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready)
        code = 0
        try:
            data = random.Random(seed).randbytes(1_500_000)
            with Swarm(url, swarm="test", limits=Limits(context_chunk_bytes=64 * 1024)) as swarm:
                swarm.ping()
                os.write(said, b"ready")
                swarm.publish_context(
                    "o", data, source=f"v{seed}", media_type=BYTES_TYPE, compression="none"
                )
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(said)
    got = os.read(ready, 5)
    os.close(ready)
    if got == b"ready":
        time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    print("killed" if got == b"ready" else "failed", flush=True)
"""


@contextlib.contextmanager
def _publishers(url: str) -> Iterator[Callable[[int, float], str]]:
    """``publish(seed, delay)``: a publisher of seed's bytes on ``url``, SIGKILLed ``delay``
    seconds after it connected (see _PUBLISHERS); returns "killed" (or "failed")."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _PUBLISHERS, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def publish(seed: int, delay: float) -> str:
        stdin.write(f"{seed} {delay!r}\n")
        stdin.flush()
        return stdout.readline().strip()

    try:
        yield publish
    finally:
        stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stdout.close()


def _used_memory(url: str) -> int:
    with raw_client(url) as r:
        return int(r.info("memory")["used_memory"])


@pytest.mark.slow
def test_publishers_killed_mid_publish_leave_nothing_after_gc(redis_url: str) -> None:
    """20 publishers SIGKILLed mid-publish (over a link slow enough to catch them between
    their chunk writes and their flip), then gc: Redis holds what a clean swarm holding the
    same versions holds (within 5%), and every kept version reads back intact."""
    port = int(redis_url.rsplit(":", 1)[1])
    rng = random.Random(7)
    caught = started = 0
    with (
        LatencyProxy(port, delay_s=0.01, bandwidth=20e6) as proxy,
        raw_client(redis_url) as r,
        _publishers(proxy.url) as publish,
    ):
        while caught < 20:  # killed between their first chunk write and their flip
            started += 1
            assert started <= 100, f"only {caught} of {started} publishers caught mid-publish"
            assert publish(started, rng.uniform(0.0, 0.25)) == "killed"
            time.sleep(0.05)  # what the proxy still held reaches the server
            caught = int(r.zcard(KEYS.holds_publishing))
        proxy.cut()
    time.sleep(0.2)  # the server closes the dead connections
    # One version published whole beside them: on a loaded machine every publisher may be
    # killed before its flip, and the check below compares what gc keeps of the versions.
    whole = started + 1
    with Swarm(redis_url, swarm="test", limits=Limits(context_chunk_bytes=64 * 1024)) as one:
        one.publish_context(
            "o", random.Random(whole).randbytes(1_500_000), source=f"v{whole}",
            media_type="application/octet-stream", compression="none",
        )  # fmt: skip
    with Swarm(redis_url, swarm="test") as swarm:
        report = swarm.gc(grace_s=0)
        assert report.chunks_deleted > 0 and report.bytes_freed > 0
        _check(redis_url)
        kept = [
            (info, swarm.get_context_bytes("o", version=info.version))  # checked by hash
            for info in reversed(swarm.context_versions("o"))
        ]
    assert kept, "no publisher finished: nothing kept"
    for info, data in kept:
        assert data == random.Random(int(info.source[1:])).randbytes(1_500_000)
    after_gc = _used_memory(redis_url)

    with raw_client(redis_url) as r:
        r.flushall()
    limits = Limits(context_chunk_bytes=64 * 1024)
    with Swarm(redis_url, swarm="test", limits=limits) as clean:
        for info, data in kept:
            clean.publish_context(
                "o",
                data,
                source=info.source,
                media_type="application/octet-stream",
                compression="none",
            )
        versions = [i.version for i in clean.context_versions("o")]
        assert versions[::-1] == [i.version for i, _ in kept]
    reference = _used_memory(redis_url)
    assert abs(after_gc - reference) <= 0.05 * reference, (after_gc, reference, report)
