"""A walkthrough of the context store, its catches (real redis-server):

1. A chunk deleted from a kept version (nobody publishing) was taken for a version pruned
   mid-read: "republished 5 times ... try again" for the current one, "not kept ... kept
   versions: X" for X itself. It is damaged data (CorruptRecord naming the repair), and the
   repair makes the version whole again (its chunks then held by the repair's publish).
2. A damaged manifest was trusted: a line count edited or two parts swapped gave other text
   than asked, and one that is not JSON raised a bare JSONDecodeError.
3. A search pattern of bytes, a number or None was "empty", found after the whole fetch.
5. Identical publishes racing to a new owner all said changed=True, one event each.
7. ``True`` was taken for line 1 or offset 1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from redis_swarm import CorruptRecord, Limits, NotFound, Swarm, ValidationError
from redis_swarm._keys import Keys
from redis_swarm._ops import contexts as context_ops

from ._raw import raw_client

CHUNK = 1024
OWNER = "shard-w"
# 40 chunks of 1 KiB (the last one shorter), ~1,900 lines of differing lengths.
TEXT = "".join(f"line {i}: {'x' * (i % 13)}\n" for i in range(1, 2801))
KEYS = Keys("test")


def _swarm(url: str, **limits: Any) -> Swarm:
    return Swarm(url, swarm="test", limits=Limits(context_chunk_bytes=CHUNK, **limits))


def _cold(url: str) -> Swarm:
    """A reader with nothing cached that reads the chunks (no copy of the version whole)."""
    return _swarm(url, context_copy_bytes=0)


@pytest.fixture
def shard(server_url: str) -> Iterator[Swarm]:
    with _swarm(server_url) as handle:
        yield handle


def _pointer(url: str) -> dict[str, Any]:
    with raw_client(url) as r:
        loaded: dict[str, Any] = json.loads(r.hget(KEYS.contexts, OWNER))
        return loaded


def _set_pointer(url: str, manifest: dict[str, Any] | str) -> None:
    raw = manifest if isinstance(manifest, str) else json.dumps(manifest, separators=(",", ":"))
    with raw_client(url) as r:
        r.hset(KEYS.contexts, OWNER, raw)


def _delete_chunk(url: str, index: int) -> None:
    digest = _pointer(url)["parts"][index][0]
    with raw_client(url) as r:
        assert r.delete(KEYS.chunk(digest)) == 1


# --- 1. a chunk deleted from a kept version


def test_a_deleted_chunk_of_the_current_version_is_damage_not_a_republish(
    shard: Swarm, server_url: str
) -> None:
    info = shard.publish_context(OWNER, TEXT, source="notes.md", compression="none")
    _delete_chunk(server_url, 0)
    with _cold(server_url) as cold:
        for read in (
            lambda: cold.read_context(OWNER, lines=(1, 2)),
            lambda: cold.get_context(OWNER),
            # a worker's parent context: the version its task was posted under
            lambda: cold.get_context(OWNER, version=info.version),
            lambda: cold.read_context(OWNER, lines=(1, 2), version=info.version[:12]),
        ):
            with pytest.raises(CorruptRecord) as refused:
                read()
            said = str(refused.value)
            assert "is missing, though the version is kept" in said
            assert "(damaged data)" in said and "swarm context publish notes.md" in said
            assert f"publish_context({OWNER!r}, ..., repair=True)" in said
            assert refused.value.record_id == info.version
    # The repair it names makes the version whole, and its chunks stay held: a gc after it
    # deletes none of them.
    again = shard.publish_context(OWNER, TEXT, source="notes.md", compression="none", repair=True)
    assert again.version == info.version
    shard.gc(grace_s=0)
    with _cold(server_url) as cold:
        assert cold.read_context(OWNER, lines=(1, 2)).text == "line 1: x\nline 2: xx\n"
        assert cold.get_context(OWNER) == TEXT
        assert cold.get_context(OWNER, version=info.version) == TEXT
        # A version gone when read again is still NotFound: damage only while it is kept.
        for i in range(3):
            shard.publish_context(OWNER, TEXT + f"tail {i}\n", source="notes.md")
        with pytest.raises(NotFound, match="is not kept"):
            cold.get_context(OWNER, version=info.version)


def test_a_repair_in_another_compression_keeps_the_chunks_it_writes(
    shard: Swarm, server_url: str
) -> None:
    """A repair's manifest lists the chunks it sent, so they must be its own: the flip once
    wrote them under the version's old holder and released the repair's hold, and a gc
    then deleted every chunk the repair had written (those of the other compression)."""
    info = shard.publish_context(OWNER, TEXT, source="notes.md", compression="zstd")
    assert info.compression == "zstd"
    again = shard.publish_context(OWNER, TEXT, source="notes.md", compression="none", repair=True)
    assert again.version == info.version and again.compression is None
    shard.gc(grace_s=0)
    with _cold(server_url) as cold:
        assert cold.get_context(OWNER) == TEXT
        assert cold.read_context(OWNER, lines=(30, 31)).text == "line 30: xxxx\nline 31: xxxxx\n"


# --- 2. damaged manifests


def _edited(url: str, change: Any) -> None:
    manifest = _pointer(url)
    change(manifest)
    _set_pointer(url, manifest)


def _one_more_newline(m: dict[str, Any]) -> None:
    m["parts"][0][4] += 1


def _one_more_newline_and_line(m: dict[str, Any]) -> None:
    m["parts"][0][4] += 1
    m["total_lines"] += 1


def _first_and_last_swapped(m: dict[str, Any]) -> None:
    m["parts"][0], m["parts"][-1] = m["parts"][-1], m["parts"][0]


def _length_moved(m: dict[str, Any]) -> None:
    m["parts"][0][1] += 1
    m["parts"][0][2] += 1
    m["parts"][1][1] -= 1
    m["parts"][1][2] -= 1


@pytest.mark.parametrize(
    "change",
    [_one_more_newline, _one_more_newline_and_line, _first_and_last_swapped, _length_moved],
)
def test_a_manifest_whose_parts_do_not_add_up_is_refused(
    shard: Swarm, server_url: str, change: Any
) -> None:
    shard.publish_context(OWNER, TEXT, source="notes.md", compression="none")
    _edited(server_url, change)
    with _cold(server_url) as cold:
        for lines in ((1, 2), (30, 31)):
            with pytest.raises(CorruptRecord, match=r"manifest .*\(damaged data\)"):
                cold.read_context(OWNER, lines=lines)
    # A plain publish of the same text writes the pointer again from the kept manifest.
    again = shard.publish_context(OWNER, TEXT, source="notes.md", compression="none")
    assert again.changed
    with _cold(server_url) as cold:
        assert cold.read_context(OWNER, lines=(30, 31)).text == "line 30: xxxx\nline 31: xxxxx\n"


def test_a_manifest_that_is_not_json_is_a_corrupt_record(shard: Swarm, server_url: str) -> None:
    shard.publish_context(OWNER, TEXT, source="notes.md", compression="none")
    shard.publish_context("other", "fine\n", source="other.md")
    _set_pointer(server_url, '{"owner": "shard-w", "parts": [')
    with _cold(server_url) as cold:
        for read in (
            lambda: cold.read_context(OWNER, lines=(1, 2)),
            lambda: cold.get_context(OWNER),
            lambda: cold.context_info(OWNER),
        ):
            with pytest.raises(CorruptRecord, match="manifest of the context of 'shard-w'"):
                read()
        # Listings leave it out, as any record stored unreadable.
        assert [i.owner for i in cold.contexts()] == ["other"]
    # The repair it names writes the pointer again.
    shard.publish_context(OWNER, TEXT, source="notes.md", compression="none", repair=True)
    with _cold(server_url) as cold:
        assert cold.get_context(OWNER) == TEXT


# --- 3. search patterns


@pytest.mark.parametrize(("pattern", "named"), [(b"abc", "bytes"), (5, "int"), (None, "NoneType")])
def test_a_search_pattern_that_is_not_text_is_named_before_any_fetch(
    shard: Swarm, pattern: Any, named: str
) -> None:
    # No context is published: the pattern is refused before the owner is even read.
    with pytest.raises(ValidationError, match=f"must be text \\(a str\\), not {named}"):
        shard.search_context(OWNER, pattern)
    with pytest.raises(ValidationError, match="max_hits must be between 1 and"):
        shard.search_context(OWNER, "line", max_hits=True)


# --- 5. identical publishes racing


def test_of_identical_publishes_racing_only_the_one_that_moved_the_pointer_changed_it(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    racers = 4
    # Every publisher has looked the owner up (none found) before any of them goes on.
    barrier = threading.Barrier(racers, timeout=30)
    split = context_ops._split

    def split_after_every_lookup(*args: Any) -> Any:
        barrier.wait()
        return split(*args)

    monkeypatch.setattr(context_ops, "_split", split_after_every_lookup)
    results: list[Any] = []

    def publish() -> None:
        with _swarm(server_url) as s:
            results.append(s.publish_context(OWNER, TEXT, source="notes.md"))

    threads = [threading.Thread(target=publish) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == racers
    assert len({r.version for r in results}) == 1
    assert sorted(r.changed for r in results) == [False] * (racers - 1) + [True]
    with _cold(server_url) as cold:
        assert len(cold.events(types="context.published")) == 1
        cold.gc(grace_s=0)  # the losers' holds are released, the winner's kept
        assert cold.get_context(OWNER) == TEXT


# --- 7. a bool is no number


@pytest.mark.parametrize(
    "asked",
    [
        {"offset": True},
        {"offset": 0, "length": False},
        {"lines": (True, 2)},
        {"lines": [1, True]},
        {"max_bytes": True},
    ],
)
def test_a_bool_is_no_line_number_or_offset(shard: Swarm, asked: dict[str, Any]) -> None:
    shard.publish_context(OWNER, TEXT, source="notes.md")
    with pytest.raises(ValidationError, match=r"True|False"):
        shard.read_context(OWNER, **asked)
