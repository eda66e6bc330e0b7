"""Contexts: publish, versions, chunks, cache, slices, search, limits (both shells)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from blake3 import blake3

from redis_swarm import (
    AsyncSwarm,
    ConfigError,
    Conflict,
    ContextCache,
    Limits,
    NotFound,
    PayloadTooLarge,
    Settings,
    Swarm,
    ValidationError,
)
from redis_swarm._keys import Keys
from redis_swarm._ops import _context_store as context_store
from redis_swarm._ops import contexts as context_ops
from redis_swarm._ops.contexts import _use_zstd
from redis_swarm._protocol import Cmd, OpContext

from ._handles import make_swarm, untyped
from ._raw import command_calls, net_output_bytes, raw_client, reset_stats, run_script
from .conftest import SWARM_KINDS

BAD_NAMES = ["a:b", "a{b", "a}b", "a*b", "a b", "a\x00b", "a\nb", "é", "", "x" * 10_000]


@pytest.fixture(params=SWARM_KINDS)
def small(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Swarm]:
    """A swarm with 1 KB chunks, so that small texts span several chunks."""
    handle = make_swarm(request.param, redis_url, limits=Limits(context_chunk_bytes=1024))
    yield handle
    handle.close()


def _client(url: str) -> Any:
    return raw_client(url)


def _chunk_keys(url: str) -> list[bytes]:
    with _client(url) as r:
        return list(r.scan_iter("rs:chunk:*"))


def _text(n_lines: int, tag: str = "") -> str:
    return "".join(f"{tag}line {i} — ünïcode {i * 7919 % 1000}\n" for i in range(1, n_lines + 1))


def test_publish_and_get_round_trip(swarm: Swarm, tmp_path: Path) -> None:
    text = _text(50)
    info = swarm.publish_context("shard-1", text, source="notes.md")
    assert info.owner == "shard-1"
    assert info.version == blake3(text.encode()).hexdigest()
    assert info.size_bytes == len(text.encode())
    assert info.tokens_est == (info.size_bytes + 3) // 4
    assert info.chunks == 1
    assert info.total_lines == 50
    assert (info.source, info.media_type, info.compression) == ("notes.md", "text/markdown", None)
    assert info.created_at > 1_700_000_000_000
    assert swarm.get_context("shard-1") == text
    assert swarm.get_context_bytes("shard-1") == text.encode()
    assert swarm.context_info("shard-1") == info

    blob = bytes(range(256)) * 10
    info2 = swarm.publish_context(
        "blob", blob, source="x.bin", media_type="application/octet-stream"
    )
    assert swarm.get_context_bytes("blob") == blob
    with pytest.raises(ValidationError, match="get_context_bytes"):
        swarm.get_context("blob")
    assert info2.media_type == "application/octet-stream"

    path = tmp_path / "ctx.md"
    path.write_text("from a file\n")
    info3 = swarm.publish_context("filer", path, source=str(path))
    assert swarm.get_context("filer") == "from a file\n"
    assert info3.version == blake3(b"from a file\n").hexdigest()
    assert [c.owner for c in swarm.contexts()] == ["blob", "filer", "shard-1"]


def test_multi_chunk_publish_and_versions(small: Swarm, redis_url: str) -> None:
    texts = [_text(100, tag=f"v{n} ") for n in range(5)]
    infos = [small.publish_context("shard", t, source="s") for t in texts]
    assert infos[0].chunks == -(-len(texts[0].encode()) // 1024)
    assert small.get_context("shard") == texts[-1]
    kept = small.context_versions("shard")
    assert [k.version for k in kept] == [i.version for i in reversed(infos[-3:])]
    # Old versions are readable, also by a unique prefix; pruned ones are NotFound.
    assert small.get_context("shard", version=infos[2].version) == texts[2]
    assert small.get_context("shard", version=infos[3].version[:10]) == texts[3]
    with pytest.raises(NotFound, match="not kept"):
        small.get_context("shard", version=infos[0].version)
    # Only the chunks of kept versions remain, and none of them can expire.
    with _client(redis_url) as r:
        keys = _chunk_keys(redis_url)
        assert len(keys) == sum(i.chunks for i in infos[-3:])
        assert all(r.ttl(k) == -1 for k in keys)


def test_republish_identical_is_cheap_and_idempotent(small: Swarm, redis_url: str) -> None:
    text = _text(100)
    first = small.publish_context("shard", text, source="s")
    with _client(redis_url) as r:
        events = r.xlen("rs:{test}:events")
        reset_stats(r)
        again = small.publish_context("shard", text, source="s")
        calls = command_calls(r)
    assert again == dataclasses.replace(first, changed=False)
    # One read-only function reads the pointer (a shard's: a worker's no-op is refused); no
    # chunk written, no event.
    assert calls == {"fcall_ro": 1, "hget": 2}
    with _client(redis_url) as r:
        assert r.xlen("rs:{test}:events") == events
    # Back to an older kept version: no chunk is sent again, it becomes current.
    other = small.publish_context("shard", text + "more\n", source="s")
    with _client(redis_url) as r:
        reset_stats(r)
        back = small.publish_context("shard", text, source="s")
        calls = command_calls(r)
    assert back.version == first.version
    assert small.context_info("shard").version == first.version
    assert "hsetnx" not in calls  # chunk_put never ran
    assert small.context_versions("shard")[1].version == other.version


def test_second_get_of_unchanged_context_is_one_small_command(swarm: Swarm, redis_url: str) -> None:
    text = _text(20_000)  # ~0.7 MB
    swarm.publish_context("shard", text, source="s")
    assert swarm.get_context("shard") == text
    with _client(redis_url) as r:
        reset_stats(r)
        assert swarm.get_context("shard") == text
        calls = command_calls(r)
        sent = net_output_bytes(r)
    assert calls == {"hget": 1}
    # The reply is the pointer (a manifest of a few hundred bytes), not the text.
    assert sent < 20_000


def test_cold_reader_fetches_and_verifies(swarm: Swarm, redis_url: str) -> None:
    text = _text(3000)
    swarm.publish_context("shard", text, source="s")
    # A reader that does not look for the copy of the current version: the chunks' path.
    chunks_only = Limits(context_copy_bytes=0)
    with Swarm(
        redis_url, swarm="test", limits=chunks_only, cache=ContextCache(max_bytes=0)
    ) as cold:
        assert cold.get_context("shard") == text
        # A damaged chunk is detected, never returned.
        with _client(redis_url) as r:
            (key,) = _chunk_keys(redis_url)
            data = r.hget(key, "data")
            assert data is not None
            r.hset(key, "data", data[:-1] + b"X")
        with pytest.raises(Exception, match="damaged"):
            cold.get_context("shard")


def test_a_cold_text_read_keeps_the_text_alone(swarm: Swarm, redis_url: str) -> None:
    """A version read as text is cached as that text (not its bytes too): a later read of
    its bytes makes them from it, without a fetch. A version that is not UTF-8 is refused
    as text and its bytes are kept."""
    text, blob = _text(3000), bytes(range(256)) * 40
    version = swarm.publish_context("shard", text, source="s").version
    blob_version = swarm.publish_context(
        "blob", blob, source="b", media_type="application/octet-stream"
    ).version
    cache = ContextCache()
    with Swarm(redis_url, swarm="test", cache=cache) as cold:
        assert cold.get_context("shard") == text
        assert [type(v).__name__ for v in cache._items.values()] == ["_Text"]
        assert cache._size == len(text.encode())
        with pytest.raises(ValidationError, match="get_context_bytes"):
            cold.get_context("blob")
        assert cache._items[blob_version] == blob
        with _client(redis_url) as r:
            reset_stats(r)
            assert cold.get_context_bytes("shard") == text.encode()
            assert cold.get_context_bytes("blob") == blob
            assert cold.get_context("shard") == text
            assert command_calls(r) == {"hget": 3}
        assert cache._items[version] == text.encode()
        assert (cache.hits, cache.misses) == (3, 2)


def test_disk_cache_is_shared_between_processes(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    text = _text(3000)
    swarm.publish_context("shard", text, source="s")
    with Swarm(redis_url, swarm="test", cache=ContextCache(directory=tmp_path)) as one:
        assert one.get_context("shard") == text
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [blake3(text.encode()).hexdigest()]
    with Swarm(redis_url, swarm="test", cache=ContextCache(directory=tmp_path)) as two:
        two.ping()  # connect first: only the read is counted
        with _client(redis_url) as r:
            reset_stats(r)
            assert two.get_context("shard") == text
            calls = command_calls(r)
        assert calls == {"hget": 1}
    # A damaged file is ignored (and removed), not served.
    files[0].write_bytes(b"tampered")
    with Swarm(redis_url, swarm="test", cache=ContextCache(directory=tmp_path)) as three:
        assert three.get_context("shard") == text


def test_compression(server_url: str) -> None:
    text = _text(5000)
    for setting, asked, expected in [
        ("auto", None, None),  # a local server: not worth it
        ("always", None, "zstd"),
        ("auto", "zstd", "zstd"),
        ("always", "none", None),
    ]:
        settings = Settings.from_url(server_url, swarm="test", compression=setting)
        with Swarm(settings, cache=ContextCache(max_bytes=0)) as s:
            info = s.publish_context(
                f"o-{setting}-{asked}",
                text,
                source="s",
                compression=asked,  # type: ignore[arg-type]
            )
            assert info.compression == expected
            assert s.get_context(info.owner) == text
    # auto compresses when the server is remote.
    remote = Settings.from_url("redis://10.1.2.3:6379", swarm="x")
    assert _use_zstd(OpContext(remote), None) is True
    assert _use_zstd(OpContext(Settings.from_url("redis://localhost:1", swarm="x")), None) is False
    # Data that zstd cannot shrink is stored raw.
    with Swarm(Settings.from_url(server_url, swarm="test", compression="always")) as s:
        noise = random.Random(1).randbytes(5000)
        binary = "application/octet-stream"
        assert s.publish_context("noise", noise, source="s", media_type=binary).compression is None
        with pytest.raises(ValidationError, match="compression"):
            s.publish_context("noise", noise, source="s", compression="gzip")  # type: ignore[arg-type]


class _SlowReader(Swarm):
    """A reader that dawdles after each single command (the pointer read), so that
    publishes prune the version it is reading between its two round trips."""

    def _send(self, request: Any) -> Any:
        reply = super()._send(request)
        if isinstance(request, Cmd):
            time.sleep(random.random() * 0.002)
        return reply


@pytest.mark.parametrize("copy", [False, True], ids=["chunks", "copy"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_readers_never_see_a_mixed_version(
    kind: str, copy: bool, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer republishes 200 different multi-chunk contexts, keeping only the newest,
    while cold readers fetch in a loop: each text read is one whole version. Readers whose
    version is pruned under them retry on the new pointer (counted), or give up with a
    clear Conflict when the writer keeps outrunning them; never a mixed or truncated text.
    With the copy of the current version kept (``copy``), readers take the pointer and the
    copy together, and fall back to the chunks when a publish came between them."""
    limits = Limits(
        context_chunk_bytes=512,
        context_versions_kept=1,
        context_copy_bytes=8 * 1024 if copy else 0,
    )
    pruned_under_reader = copied = 0
    fetch = context_store.fetch
    current = context_store.current

    def counting_current(*args: Any, **kwargs: Any) -> Any:
        nonlocal copied
        m, pieces = yield from current(*args, **kwargs)
        copied += pieces is not None
        return m, pieces

    monkeypatch.setattr(context_store, "current", counting_current)

    def counting_fetch(*args: Any, **kwargs: Any) -> Any:
        nonlocal pruned_under_reader
        try:
            return (yield from fetch(*args, **kwargs))
        except context_store.ChunkMissing:
            pruned_under_reader += 1
            raise

    monkeypatch.setattr(context_store, "fetch", counting_fetch)

    def body(n: int) -> str:
        return "".join(f"{n:04d} line {i} of version {n}\n" for i in range(120))  # ~3.5 KB

    stop = threading.Event()
    seen: list[int] = []
    gave_up: list[Conflict] = []
    errors: list[BaseException] = []

    def read() -> None:
        cache = ContextCache(max_bytes=0)
        with _SlowReader(redis_url, swarm="test", limits=limits, cache=cache) as r:
            while not stop.is_set():
                try:
                    text = r.get_context("shard")
                except NotFound:
                    continue  # before the first publish
                except Conflict as exc:
                    gave_up.append(exc)
                    continue
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return
                n = int(text[:4])
                if text != body(n):
                    errors.append(AssertionError(f"mixed or truncated text for version {n}"))
                    return
                seen.append(n)

    writer = make_swarm(kind, redis_url, limits=limits)
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for n in range(200):
            writer.publish_context("shard", body(n), source="s")
            if n % 20 == 0:
                time.sleep(0.005)  # let readers complete some reads too
    finally:
        stop.set()
        for t in readers:
            t.join(30)
        writer.close()
    assert not errors, errors[0]
    assert len(seen) > 10
    if copy:
        assert copied > 10
    else:
        assert pruned_under_reader > 0 and copied == 0
    assert all("republished" in str(e) for e in gave_up)
    assert len(_chunk_keys(redis_url)) <= 8  # only the kept version's chunks remain
    with Swarm(redis_url, swarm="test", limits=limits) as check:
        assert check.get_context("shard") == body(199)


# --- an 800K-token context


@pytest.fixture(scope="module")
def big_text() -> str:
    """~3.2 MB (~800K tokens): numbered lines, some non-ASCII, one very long line."""
    rng = random.Random(7)
    words = ["signal", "noise", "Ärger", "Zürich", "naïve", "数据", "alpha", "beta", "gamma"]
    lines = [
        f"{i:06d} " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        for i in range(1, 48_001)
    ]
    lines[40_000] = "LONGLINE " + "x" * 100_000 + " needle-in-long-line " + "y" * 100_000
    text = "\n".join(lines) + "\n"
    assert 3_000_000 < len(text.encode()) < 3_600_000
    return text


def test_big_context_slices_and_search(swarm: Swarm, redis_url: str, big_text: str) -> None:
    info = swarm.publish_context("big", big_text, source="corpus.md")
    assert info.chunks == 4 and info.tokens_est > 750_000
    lines = big_text.splitlines(keepends=True)
    assert info.total_lines == len(lines)
    raw = big_text.encode()

    def check_lines(s: Any, a: int, b: int) -> None:
        got = s.read_context("big", lines=(a, b))
        want = "".join(lines[a - 1 : b])
        assert (got.text, got.start_line, got.end_line) == (want, a, min(b, len(lines)))
        assert got.offset == len("".join(lines[: a - 1]).encode())
        assert got.length == len(want.encode())
        assert not got.truncated

    # Cold (only the chunks that hold the range are fetched) and warm (from the cache).
    with Swarm(redis_url, swarm="test", cache=ContextCache(max_bytes=0)) as cold:
        chunk = 1024 * 1024
        boundary_line = raw[:chunk].count(b"\n") + 1
        for a, b in [
            (1, 3),
            (30_000, 30_010),
            (boundary_line - 2, boundary_line + 2),
            (len(lines) - 1, len(lines) + 50),
        ]:
            check_lines(cold, a, b)
            check_lines(swarm, a, b)
        # Byte ranges across a chunk boundary, cut inside multi-byte characters.
        for offset in (chunk - 5, chunk - 1, 2 * chunk + 1, 12345):
            for s in (cold, swarm):
                got = s.read_context("big", offset=offset, length=100)
                assert raw[got.offset : got.offset + got.length].decode() == got.text
                assert got.offset <= offset and got.offset + got.length >= offset + 100
                assert got.start_line == raw[: got.offset].count(b"\n") + 1
        # A range longer than the bound is cut at a line end, and says so.
        for s in (cold, swarm):
            got = s.read_context("big", lines=(100, 60_000), max_bytes=50_000)
            assert got.truncated and got.start_line == 100 and 50_000 - 200 < got.length <= 50_000
            assert got.text == "".join(lines[99 : got.end_line])
            # The very long line alone exceeds the bound: cut inside it.
            got = s.read_context("big", lines=(40_001, 40_001), max_bytes=1000)
            assert got.truncated and got.end_line == 40_001 and got.length <= 1000
            assert got.text.startswith("LONGLINE xxx")
        # Default: the first lines, bounded.
        got = cold.read_context("big")
        assert got.start_line == 1 and got.truncated and got.length <= 256 * 1024

    hits = swarm.search_context("big", "Zürich", max_hits=5, around=1)
    assert len(hits) == 5
    for hit in hits:
        assert "Zürich" in hit.text and lines[hit.line - 1].rstrip("\n") == hit.text
        assert hit.before == tuple(
            x.rstrip("\n") for x in lines[max(hit.line - 2, 0) : hit.line - 1]
        )
        assert hit.after == tuple(x.rstrip("\n") for x in lines[hit.line : hit.line + 1])
    regex_hits = swarm.search_context("big", r"^0300[0-9]{2} ", regex=True, max_hits=200)
    assert [h.line for h in regex_hits] == list(range(30_000, 30_100))
    # A hit in a 200 KB line is a bounded snippet around the match; neighbours are cut too.
    (long_hit,) = swarm.search_context("big", "needle-in-long-line", around=1)
    assert long_hit.line == 40_001 and "needle-in-long-line" in long_hit.text
    assert len(long_hit.text) <= 242
    near = swarm.search_context("big", f"{40_002:06d} ", around=1)
    assert len(near[0].before[0]) <= 241
    assert swarm.search_context("big", "no such text anywhere") == []


def test_random_slices_match_a_reference(server_url: str) -> None:
    """Many random ranges over a text with tiny chunks (cold: partial fetches)."""
    rng = random.Random(3)
    text = (
        "".join(
            rng.choice(["", "a", "ab", "ü", "日本", "x" * 30]) * rng.randint(0, 3) + "\n"
            for _ in range(300)
        )
        + "tail without newline ü"
    )
    raw = text.encode()
    lines = text.splitlines(keepends=True)
    limits = Limits(context_chunk_bytes=37)
    with Swarm(server_url, swarm="test", limits=limits, cache=ContextCache(max_bytes=0)) as s:
        info = s.publish_context("r", text, source="s")
        assert info.total_lines == len(lines)
        for _ in range(150):
            a = rng.randint(1, len(lines))
            b = rng.randint(a, len(lines) + 3)
            limit = rng.choice([10, 100, 10_000])
            got = s.read_context("r", lines=(a, b), max_bytes=limit)
            want = "".join(lines[a - 1 : b])
            if got.truncated:
                assert want.startswith(got.text) and got.length <= limit
            else:
                assert got.text == want and got.end_line == min(b, len(lines))
            offset = rng.randint(0, len(raw))
            length = rng.randint(0, 60)
            piece = s.read_context("r", offset=offset, length=length, max_bytes=limit)
            assert raw[piece.offset : piece.offset + piece.length].decode() == piece.text
            assert piece.offset <= offset
            assert piece.offset + piece.length >= min(offset + min(length, limit), len(raw))
            assert piece.start_line == raw[: piece.offset].count(b"\n") + 1


def test_slice_errors(swarm: Swarm) -> None:
    swarm.publish_context("o", "one\ntwo\n", source="s")
    for bad in [(0, 1), (2, 1), (1,), "1-2", (1.0, 2)]:
        with pytest.raises(ValidationError, match="lines"):
            untyped(swarm).read_context("o", lines=bad)
    with pytest.raises(ValidationError, match="past the end"):
        swarm.read_context("o", lines=(3, 4))
    with pytest.raises(ValidationError, match="past the end"):
        swarm.read_context("o", offset=9)
    with pytest.raises(ValidationError, match="either"):
        swarm.read_context("o", lines=(1, 1), offset=0)
    with pytest.raises(ValidationError, match="offset"):
        swarm.read_context("o", offset=-1)
    got = swarm.read_context("o", offset=8)
    assert (got.text, got.length) == ("", 0)
    with pytest.raises(ValidationError, match="regular expression"):
        swarm.search_context("o", "(", regex=True)
    for kwargs in [{"max_hits": 0}, {"max_hits": 10_000}, {"around": -1}]:
        with pytest.raises(ValidationError):
            untyped(swarm).search_context("o", "one", **kwargs)
    with pytest.raises(ValidationError, match="empty"):
        swarm.search_context("o", "")
    swarm.publish_context("empty", "", source="s")
    got = swarm.read_context("empty")
    assert (got.text, got.total_lines, got.size_bytes) == ("", 0, 0)
    assert swarm.get_context("empty") == ""


def test_slice_edges_end_empty_and_tiny_bounds(small: Swarm) -> None:
    """The end of a context is at its last line; a byte range cut short says so and one
    that ran to the context's end does not; a bound smaller than a character still moves
    on; an empty context's line 1 is empty (lines 1-0) whichever way it is read."""
    text = "".join(f"{i:04d} ✓\n" for i in range(1, 401))  # 400 lines of 9 bytes: 4 chunks
    raw = text.encode()
    small.publish_context("o", text, source="s")
    end = small.read_context("o", offset=len(raw))
    assert (end.text, end.length, end.start_line, end.end_line) == ("", 0, 400, 400)
    assert not end.truncated
    # Longer than the bound, but all that is left: not truncated (nothing to read on).
    tail = small.read_context("o", offset=len(raw) - 27, length=1000, max_bytes=100)
    assert tail.text == raw[-27:].decode() and not tail.truncated
    cut = small.read_context("o", offset=0, length=1000, max_bytes=100)
    assert cut.truncated and cut.offset + cut.length >= 100
    assert raw[: cut.length].decode() == cut.text
    # A bound of one byte and a line starting with a 3-byte character: that character.
    small.publish_context("wide", "✓✓✓\nx\n", source="s")
    first = small.read_context("wide", lines=(1, 1), max_bytes=1)
    assert (first.text, first.length, first.truncated) == ("✓", 3, True)
    small.publish_context("empty", "", source="s")
    for part in (small.read_context("empty", lines=(1, 1)), small.read_context("empty", offset=0)):
        assert (part.text, part.start_line, part.end_line, part.total_lines) == ("", 1, 0, 0)
    with pytest.raises(ValidationError, match="line 2 is past the end"):
        small.read_context("empty", lines=(2, 2))


def test_bad_input_is_refused_before_anything_is_stored(swarm: Swarm, redis_url: str) -> None:
    for name in BAD_NAMES:
        with pytest.raises(ValidationError):
            swarm.publish_context(name, "x", source="s")
        with pytest.raises(ValidationError):
            swarm.get_context(name)
        with pytest.raises(ValidationError):
            swarm.read_context(name, lines=(1, 1))
    for media_type in ["", "text", "text/plain\n", "x" * 300]:
        with pytest.raises(ValidationError, match="media_type"):
            swarm.publish_context("o", "x", source="s", media_type=media_type)
    with pytest.raises(ValidationError, match="source"):
        swarm.publish_context("o", "x", source="s" * 2000)
    with pytest.raises(ValidationError, match="content"):
        untyped(swarm).publish_context("o", 42, source="s")
    with pytest.raises(ValidationError, match="version"):
        swarm.get_context("o", version="not-hex")
    with _client(redis_url) as r:
        assert r.dbsize() == 0


def test_oversized_context_is_refused_and_nothing_stored(server_url: str, tmp_path: Path) -> None:
    limits = Limits(max_context_bytes=10_000, context_chunk_bytes=1000)
    with Swarm(server_url, swarm="test", limits=limits) as s:
        with pytest.raises(PayloadTooLarge, match="10,000"):
            s.publish_context("o", "x" * 10_001, source="s")
        with pytest.raises(PayloadTooLarge):
            s.publish_context("o", b"x" * 10_001, source="s")
        path = tmp_path / "big.txt"
        path.write_bytes(b"y" * 20_000)
        with pytest.raises(PayloadTooLarge, match="20,000"):
            s.publish_context("o", path, source="s")
        with pytest.raises(ValidationError, match="cannot read"):
            s.publish_context("o", tmp_path / "missing.txt", source="s")
        with _client(server_url) as r:
            assert r.dbsize() == 0
        assert s.publish_context("o", "x" * 10_000, source="s").chunks == 10


def test_unknown_owner_or_version_is_not_found(swarm: Swarm) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: swarm.get_context("nobody"),
        lambda: swarm.get_context_bytes("nobody"),
        lambda: swarm.context_info("nobody"),
        lambda: swarm.context_versions("nobody"),
        lambda: swarm.read_context("nobody"),
        lambda: swarm.search_context("nobody", "x"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="no context"):
            call()
    swarm.publish_context("o", "x", source="s")
    with pytest.raises(NotFound, match="not kept"):
        swarm.get_context("o", version="0" * 64)
    with pytest.raises(NotFound, match="not kept"):
        swarm.context_info("o", version="deadbeef")
    assert swarm.contexts()[0].owner == "o"


def test_chunks_are_keyed_by_content_in_their_own_slot(small: Swarm, redis_url: str) -> None:
    # Two owners publishing the same text share its chunks; dropping one keeps the other's.
    text = _text(100)
    small.publish_context("a", text, source="s")
    small.publish_context("b", text, source="s")
    n = len(_chunk_keys(redis_url))
    for i in range(3):
        small.publish_context("a", f"other {i}", source="s")
    assert small.get_context("b") == text
    assert len(_chunk_keys(redis_url)) == n + 3
    key = Keys("test").chunk("ab" * 32)
    assert key.startswith("rs:chunk:{test.") and "{test}" not in key


def _holders(url: str) -> dict[bytes, set[bytes]]:
    with _client(url) as r:
        return {k: {f for f in r.hkeys(k) if f.startswith(b"h:")} for k in _chunk_keys(url)}


def test_chunk_holders_follow_the_kept_versions(small: Swarm, redis_url: str) -> None:
    base = _text(60)  # 3+ chunks of 1 KB; versions below share all but the last chunk
    infos = [small.publish_context("o", base + f"tail {i}\n", source="s") for i in range(4)]
    holders = _holders(redis_url)
    counts = sorted(len(h) for h in holders.values())
    assert counts == [1, 1, 1] + [3] * (infos[0].chunks - 1)  # shared prefix: 3 kept versions
    # Republishing a kept version with new metadata adds no holder.
    again = small.publish_context("o", base + "tail 2\n", source="elsewhere")
    assert again.version == infos[2].version and again.source == "elsewhere"
    assert _holders(redis_url) == holders
    assert [e.fields["version"] for e in small.events(types="context.published")][-1] == (
        again.version
    )


def test_retried_requests_cannot_drop_a_kept_chunk(server_url: str) -> None:
    """redis-py resends a script whose reply was lost: the flip recognises its own token,
    and releasing a holder twice is harmless."""
    limits = Limits(context_chunk_bytes=1024)
    with Swarm(server_url, swarm="test", limits=limits) as s:
        keys = Keys("test")
        info = s.publish_context("o", _text(60), source="s")
        with _client(server_url) as r:
            manifest = json.loads(r.hget(keys.contexts, "o") or b"")
        token = manifest["holder"]
        prefix = json.dumps(
            {k: v for k, v in manifest.items() if k not in ("holder", "created_at")}
        )
        publish_keys = (
            keys.contexts,
            keys.context_manifests,
            keys.context_history("o"),
            keys.events,
            keys.chunk_holds,
            keys.holds_publishing,
            keys.holds_releasing,
            keys.context_copy("o"),
        )

        def flip(tok: str) -> Any:
            args = ("o", info.version, prefix[:-1], 0, 3, 100, "new", info.size_bytes, tok)
            gc_args = (600_000, 256, 60_000)
            return run_script(s, "context_publish", publish_keys, (*args, *gc_args, "", b""))

        before = _holders(server_url)
        assert flip(token)[0] == b"new"  # a replay of the call that published it
        digests = json.dumps([p[0] for p in manifest["parts"]])
        run_script(
            s, "context_hold", (keys.chunk_holds, keys.holds_publishing), ("p-else", digests, 0)
        )
        # The version is current already: that caller is handed its own token to release.
        assert flip("p-else")[:3] == [b"current", ANY, b"p-else"]
        assert _holders(server_url) == before
        assert flip("p-else")[0] == b"current"  # sent again: nothing to do
        chunk = keys.chunk(manifest["parts"][0][0])
        for _ in range(2):
            assert run_script(s, "chunk_release", (chunk,), ("p-else",)) == 0
        assert s.get_context("o") == _text(60)


def test_publish_script_refuses_a_vanished_kept_version(server_url: str) -> None:
    """A publish that planned to reuse a kept version finds it pruned: nothing changes."""
    with Swarm(server_url, swarm="test") as s:
        keys = Keys("test")
        reply = run_script(
            s,
            "context_publish",
            (keys.contexts, keys.context_manifests, keys.context_history("o"), keys.events),
            ("o", "ab" * 32, '{"parts":[]', 0, 3, 100, "existing", 0),
        )
        assert reply[0] == b"missing"
        with _client(server_url) as r:
            assert r.dbsize() == 0


def test_limits_must_keep_a_version() -> None:
    with pytest.raises(ConfigError, match="context_versions_kept"):  # (refused when made)
        Limits(context_versions_kept=0)


def test_the_async_shell_hashes_and_compresses_off_its_event_loop(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big context's CPU work (read and hash, split and compress, check and decode) runs
    in a worker thread of AsyncSwarm, so its event loop keeps serving other coroutines; a
    small one's stays on the loop (a thread hop would cost more). docs/benchmarks.md has the
    longest stall measured."""
    ran_in: dict[tuple[str, int], threading.Thread] = {}
    split = context_ops._split

    def recording_split(raw: bytes, *args: Any) -> Any:
        ran_in["split", len(raw)] = threading.current_thread()
        return split(raw, *args)

    class RecordingChunks(context_store._Chunks):  # checks and decompresses each chunk
        def take(self, index: int, stored: Any) -> None:
            ran_in["unpack", self.m.info.size_bytes] = threading.current_thread()
            super().take(index, stored)

    monkeypatch.setattr(context_ops, "_split", recording_split)
    monkeypatch.setattr(context_store, "_Chunks", RecordingChunks)
    big, small = "x" * 400_000 + "\n", "y" * 1000 + "\n"

    async def main() -> threading.Thread:
        async with AsyncSwarm(redis_url, swarm="test", cache=ContextCache(max_bytes=0)) as s:
            for owner, text in (("big", big), ("small", small)):
                await s.publish_context(owner, text, source="a", compression="zstd")
                assert await s.get_context(owner) == text
        return threading.current_thread()

    loop_thread = asyncio.run(main())
    assert ran_in["split", len(big)] is not loop_thread
    assert ran_in["unpack", len(big)] is not loop_thread
    assert ran_in["split", len(small)] is loop_thread
    assert ran_in["unpack", len(small)] is loop_thread
    with Swarm(redis_url, swarm="test") as s:  # the sync shell does it all in place
        s.publish_context("big2", big + "z", source="a")
    assert ran_in["split", len(big) + 1] is threading.current_thread()
