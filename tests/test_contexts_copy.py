"""The copy of an owner's current version, kept whole beside its chunks (``context_copy``):
a reader that lacks the version fetches the pointer and the copy in one round trip, checks the
copy against the version the pointer names, and reads the chunks whenever the copy is not
exactly those bytes (absent, damaged, of another version). Publishing replaces it in the step
that flips the pointer, or removes it (compressed, or larger than the limit)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from redis_swarm import ContextCache, Limits, Swarm
from redis_swarm._keys import Keys

from ._handles import make_swarm
from ._raw import command_calls, raw_client, reset_stats
from .conftest import SWARM_KINDS

K = Keys("test")
TEXT = "".join(f"{i:05d} a line of the current version\n" for i in range(3000))  # ~114 KB
OTHER = TEXT.replace("current", "next one")
LIMITS = Limits(context_chunk_bytes=16 * 1024)  # several chunks


@pytest.fixture(params=SWARM_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture
def publisher(kind: str, redis_url: str) -> Iterator[Swarm]:
    handle = make_swarm(kind, redis_url, limits=LIMITS)
    yield handle
    handle.close()


def _cold(kind: str, url: str, cache: ContextCache | None = None) -> Swarm:
    """A reader with an empty cache (a new worker process), connected."""
    cache = cache if cache is not None else ContextCache()
    reader = make_swarm(kind, url, limits=LIMITS, cache=cache)
    reader.ping()  # the connection's handshake is not a read's
    return reader


def _copy(url: str, owner: str = "shard") -> Any:
    with raw_client(url) as r:
        return r.get(K.context_copy(owner))


def _reads(url: str, read: Any) -> tuple[Any, dict[str, int]]:
    with raw_client(url) as r:
        reset_stats(r)
        value = read()
        return value, command_calls(r)


def test_a_cold_read_is_the_pointer_and_the_copy(
    kind: str, publisher: Swarm, redis_url: str
) -> None:
    """One pipeline (the pointer's HGET and the copy's pieces), no chunk read; text and bytes
    alike; the copy shares the pointer's hash slot (one node of a cluster answers both)."""
    publisher.publish_context("shard", TEXT, source="s")
    assert _copy(redis_url) == TEXT.encode()
    assert key_slot(K.context_copy("shard").encode()) == key_slot(K.contexts.encode())
    for read in ("get_context", "get_context_bytes"):
        reader = _cold(kind, redis_url)
        value, calls = _reads(redis_url, functools.partial(getattr(reader, read), "shard"))
        reader.close()
        assert value == (TEXT if read == "get_context" else TEXT.encode())
        assert calls == {"hget": 1, "getrange": 4}, read  # the 1, 1, 2, 4 MiB pieces


def test_a_reader_that_holds_the_version_asks_for_the_pointer_alone(
    kind: str, publisher: Swarm, redis_url: str
) -> None:
    publisher.publish_context("shard", TEXT, source="s")
    reader = _cold(kind, redis_url)
    assert reader.get_context("shard") == TEXT
    assert _reads(redis_url, lambda: reader.get_context("shard")) == (TEXT, {"hget": 1})
    publisher.publish_context("shard", OTHER, source="s")
    # Changed: the pointer, then the chunks (the reader expected to hold it).
    text, calls = _reads(redis_url, lambda: reader.get_context("shard"))
    assert text == OTHER and calls["hget"] > 1 and "getrange" not in calls
    reader.close()
    # A reader whose cache cannot keep it looks for the copy every time.
    small = _cold(kind, redis_url, cache=ContextCache(max_bytes=0))
    for _ in range(2):
        assert _reads(redis_url, lambda: small.get_context("shard")) == (
            OTHER,
            {"hget": 1, "getrange": 4},
        )
    small.close()


@pytest.mark.parametrize("damage", ["flipped", "truncated", "another version"])
def test_a_copy_that_is_not_the_version_is_never_served(
    damage: str, kind: str, publisher: Swarm, redis_url: str
) -> None:
    """A damaged copy, or one of another version (a publish between the reads, a copy left
    behind), is not served: the reader reads the chunks, checked as ever."""
    publisher.publish_context("shard", TEXT, source="s")
    data = TEXT.encode()
    bad = {
        "flipped": data[:1000] + b"X" + data[1001:],
        "truncated": data[:-1],
        "another version": OTHER.encode(),
    }[damage]
    with raw_client(redis_url) as r:
        r.set(K.context_copy("shard"), bad)
    reader = _cold(kind, redis_url)
    text, calls = _reads(redis_url, lambda: reader.get_context("shard"))
    reader.close()
    assert text == TEXT
    chunks = -(-len(data) // (16 * 1024))
    assert calls["getrange"] == 4 and calls["hget"] == 1 + chunks


def test_damaged_copy_and_chunks_are_refused(kind: str, publisher: Swarm, redis_url: str) -> None:
    publisher.publish_context("shard", TEXT, source="s")
    data = TEXT.encode()
    with raw_client(redis_url) as r:
        r.set(K.context_copy("shard"), b"Y" + data[1:])
        for key in r.scan_iter("rs:chunk:*"):
            stored = r.hget(key, "data")
            r.hset(key, "data", b"Y" + stored[1:])
    reader = _cold(kind, redis_url)
    with pytest.raises(Exception, match="damaged"):
        reader.get_context("shard")
    reader.close()


def test_publishing_replaces_or_removes_the_copy(
    kind: str, publisher: Swarm, redis_url: str
) -> None:
    """Each flip writes the new version's copy with the pointer; back to a kept version, its
    bytes again; a compressed version or one over the limit has none (the old one goes), and
    its readers read the chunks."""
    first = publisher.publish_context("shard", TEXT, source="s")
    publisher.publish_context("shard", OTHER, source="s")
    assert _copy(redis_url) == OTHER.encode()
    publisher.publish_context("shard", TEXT, source="s")  # kept: no chunk sent, a new copy
    assert _copy(redis_url) == TEXT.encode()
    publisher.publish_context("shard", OTHER + "z\n", source="s", compression="zstd")
    assert _copy(redis_url) is None
    small = make_swarm(kind, redis_url, limits=Limits(context_copy_bytes=len(TEXT) - 1))
    small.publish_context("shard", TEXT + "more\n", source="s")
    assert _copy(redis_url) is None
    small.close()
    reader = _cold(kind, redis_url)
    text, calls = _reads(redis_url, lambda: reader.get_context("shard"))
    assert text == TEXT + "more\n" and calls["getrange"] == 4 and calls["hget"] > 1
    # A version asked for by its hash is read from its chunks.
    text, calls = _reads(redis_url, lambda: reader.get_context("shard", version=first.version))
    assert text == TEXT and "getrange" not in calls
    reader.close()


def test_a_context_published_before_copies_is_read_from_its_chunks(
    kind: str, publisher: Swarm, redis_url: str
) -> None:
    publisher.publish_context("shard", TEXT, source="s")
    with raw_client(redis_url) as r:
        r.delete(K.context_copy("shard"))
    reader = _cold(kind, redis_url)
    assert reader.get_context("shard") == TEXT
    assert reader.search_context("shard", "00042 a line")[0].line == 43
    reader.close()


def test_readers_that_do_not_look_for_the_copy(kind: str, publisher: Swarm, redis_url: str) -> None:
    """``Limits(context_copy_bytes=0)``: a publisher keeps no copy, a reader asks for the
    pointer first."""
    off = Limits(context_chunk_bytes=16 * 1024, context_copy_bytes=0)
    publisher.publish_context("shard", TEXT, source="s")
    reader = make_swarm(kind, redis_url, limits=off, cache=ContextCache())
    text, calls = _reads(redis_url, lambda: reader.get_context("shard"))
    assert text == TEXT and "getrange" not in calls
    reader.close()
    no_copy = make_swarm(kind, redis_url, limits=off)
    no_copy.publish_context("shard", OTHER, source="s")
    no_copy.close()
    assert _copy(redis_url) is None


def test_gc_keeps_the_current_copy(publisher: Swarm, redis_url: str) -> None:
    for i in range(5):
        publisher.publish_context("shard", f"{i}\n{TEXT}", source="s")
    publisher.gc()
    assert _copy(redis_url) == f"4\n{TEXT}".encode()
    with raw_client(redis_url) as r:
        copies = list(r.scan_iter(K.context_copy("*")))
    assert copies == [K.context_copy("shard").encode()]


BIG = "".join(f"{i:07d} a line of a big version, hashed while read\n" for i in range(60000))
BIG_LIMITS = Limits(context_chunk_bytes=512 * 1024)  # chunks big enough for the hash lane


@pytest.mark.parametrize("where", ["copy flipped", "copy longer", "copy shorter", "chunks"])
def test_a_big_version_is_hashed_while_read_and_damage_is_still_refused(
    where: str, kind: str, redis_url: str
) -> None:
    """Pieces of 1 MiB (the copy) and chunks of 512 KiB are hashed on the hash lane while the
    next is read: the reader gets the version whole, and a copy that is not the version (a
    byte flipped in the last piece, the one hashed when the transfer has ended; more bytes
    than the version holds; fewer) is never served: the chunks are; a chunk damaged the same
    way is refused."""
    data = BIG.encode()
    assert len(data) > 2 * 1024 * 1024
    publisher = make_swarm(kind, redis_url, limits=BIG_LIMITS)
    publisher.publish_context("big", BIG, source="s")
    publisher.close()
    if where == "chunks":
        with raw_client(redis_url) as r:
            r.delete(K.context_copy("big"))

    def cold() -> Swarm:
        reader = make_swarm(kind, redis_url, limits=BIG_LIMITS, cache=ContextCache())
        reader.ping()
        return reader

    reader = cold()
    assert reader.get_context("big") == BIG
    reader.close()
    with raw_client(redis_url) as r:
        copy = K.context_copy("big")
        if where == "copy flipped":
            r.setrange(copy, len(data) - 1, b"X")
        elif where == "copy longer":
            r.append(copy, b"more than the version holds\n" * 40_000)
        elif where == "copy shorter":
            r.set(copy, data[:-300_000])
        else:  # the last chunk's last byte: nothing can serve the version
            size = BIG_LIMITS.context_chunk_bytes
            tail = data[(len(data) - 1) // size * size :]
            (last,) = [key for key in r.scan_iter("rs:chunk:*") if r.hget(key, "data") == tail]
            r.hset(last, "data", tail[:-1] + b"X")
    reader = cold()
    if where.startswith("copy"):
        text, calls = _reads(redis_url, lambda: reader.get_context_bytes("big"))
        assert text == data and calls["getrange"] == 4 and calls["hget"] > 1
    else:
        with pytest.raises(Exception, match="damaged"):
            reader.get_context_bytes("big")
    reader.close()
