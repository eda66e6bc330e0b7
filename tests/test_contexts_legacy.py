"""Contexts published before versions were named by BLAKE3: SHA-256 version ids and chunk
digests, manifests without a ``hash`` field. After an upgrade they are read, sliced,
searched and checked with SHA-256, as they were written, and damaged data is still refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from blake3 import blake3

from redis_swarm import ContextCache, Limits, Swarm
from redis_swarm._keys import Keys

from ._raw import raw_client

OWNER = "shard-old"
CHUNK = 1024
TEXT = "".join(f"line {i}: clause {i % 7} of the old corpus\n" for i in range(1, 301))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_the_old_way(url: str, data: bytes) -> tuple[str, list[str]]:
    """Store ``data`` as the owner's current version exactly as the SHA-256 release left it
    in Redis (what its publish_context and context_publish script wrote); returns the
    version and the chunk keys."""
    keys = Keys("test")
    parts, chunk_keys = [], []
    with raw_client(url) as r:
        for start in range(0, len(data), CHUNK):
            piece = data[start : start + CHUNK]
            digest = _sha256(piece)
            chunk_keys.append(keys.chunk(digest))
            r.hset(chunk_keys[-1], mapping={"data": piece, "h:p-old": 1})
            parts.append([digest, len(piece), len(piece), "", piece.count(b"\n")])
        version = _sha256(data)
        manifest = {
            "owner": OWNER,
            "version": version,
            "size_bytes": len(data),
            "tokens_est": (len(data) + 3) // 4,
            "chunks": len(parts),
            "compression": None,
            "source": "old.md",
            "media_type": "text/markdown",
            "total_lines": data.count(b"\n"),
            "parts": parts,
        }
        stored = json.dumps(manifest, separators=(",", ":"))[:-1]
        stored += ',"holder":"p-old","created_at":1764000000000}'
        r.hset(keys.contexts, OWNER, stored)
        r.hset(keys.context_manifests, f"{OWNER}|{version}", stored)
        r.zadd(keys.context_history(OWNER), {version: 1764000000000})
    return version, chunk_keys


def _reader(url: str) -> Swarm:
    """A reader that caches nothing: every read fetches and checks."""
    limits = Limits(context_chunk_bytes=CHUNK)
    return Swarm(url, swarm="test", limits=limits, cache=ContextCache(max_bytes=0))


def test_a_sha256_version_is_read_and_checked_after_the_upgrade(server_url: str) -> None:
    data = TEXT.encode()
    version, chunk_keys = _write_the_old_way(server_url, data)
    with _reader(server_url) as s:
        assert s.context_info(OWNER).version == version
        assert s.get_context(OWNER) == TEXT
        assert s.get_context_bytes(OWNER, version=version[:12]) == data
        page = s.read_context(OWNER, lines=(150, 152))
        assert page.text == "".join(TEXT.splitlines(keepends=True)[149:152])
        assert [h.line for h in s.search_context(OWNER, "line 222:")] == [222]
        # Damage one chunk: the whole read and a slice through that chunk refuse it.
        with raw_client(server_url) as r:
            stored = r.hget(chunk_keys[2], "data")
            r.hset(chunk_keys[2], "data", stored[:-1] + b"X")
        with pytest.raises(Exception, match="damaged"):
            s.get_context(OWNER)
        first = data[: 2 * CHUNK].count(b"\n") + 2  # a line inside the third chunk
        with pytest.raises(Exception, match="damaged"):
            s.read_context(OWNER, lines=(first, first))


def test_republishing_an_old_version_names_it_by_blake3_and_keeps_the_old(
    server_url: str,
) -> None:
    data = TEXT.encode()
    old, _ = _write_the_old_way(server_url, data)
    limits = Limits(context_chunk_bytes=CHUNK)
    with Swarm(server_url, swarm="test", limits=limits) as s:
        info = s.publish_context(OWNER, TEXT, source="old.md")
        assert info.version == blake3(data).hexdigest() != old
        assert [v.version for v in s.context_versions(OWNER)] == [info.version, old]
    with _reader(server_url) as s:
        assert s.get_context(OWNER) == TEXT
        assert s.get_context(OWNER, version=old) == TEXT


def test_a_disk_cache_file_named_by_sha256_is_still_served(tmp_path: Path) -> None:
    data = TEXT.encode()
    for name in (_sha256(data), blake3(data).hexdigest()):
        ContextCache(directory=tmp_path).put(name, data)
        assert ContextCache(directory=tmp_path).get(name) == data
        (tmp_path / name).write_bytes(data[:-1] + b"X")  # tampered: ignored, not served
        assert ContextCache(directory=tmp_path).get(name) is None
