"""Contexts: an owner's big text (or bytes), versioned by content hash, chunked, published
atomically, cached by hash, readable by line or byte range, searchable.

Layout (keys from ``_keys.py``)::

    contexts            HASH owner -> manifest JSON of the current version (the pointer)
    context_manifests   HASH owner|version -> manifest JSON of every kept version
    ctx:OWNER:history   ZSET version -> publish order (the newest N are kept)
    chunk:{tag}:DIGEST  HASH data = stored bytes (zstd or raw), h:TOKEN = 1 per holder

A manifest is ContextInfo plus ``parts``: ``[digest, stored_len, raw_len, codec, newlines]``
per chunk, in order, and ``holder``: the token of the publish whose hold keeps its chunks.
``version`` is the SHA-256 of the raw bytes, ``digest`` the SHA-256 of the stored bytes.

A chunk lists its holders in its own hash slot, so that adding a holder and deleting the
chunk when none is left are atomic together on a Redis Cluster too. A publish adds its token
to its chunks (sending only the missing ones), then flips the pointer; the flip hands back
the holder tokens and chunks of the versions it pruned, which are then released. Holders are
a set, not a count, so a request that redis-py retries after a lost reply cannot count twice,
and the flip recognises its own retry by the token. A chunk that a kept version uses is never
deleted, and chunks never carry a TTL. A publisher that dies between its steps leaves its
holders behind: a leak of chunks, never a loss.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import zstandard

from .._errors import (
    ConfigError,
    Conflict,
    ConnectionFailed,
    NotFound,
    PayloadTooLarge,
    SwarmError,
    ValidationError,
)
from .._keys import Keys
from .._models import ContextInfo, ContextSlice, SearchHit, dumps, loads
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from .._validate import check_name
from . import _textview as tv
from ._bus import new_id

__all__ = [
    "READ_MAX_BYTES",
    "context_info",
    "context_versions",
    "contexts",
    "get_context",
    "get_context_bytes",
    "publish_context",
    "read_context",
    "search_context",
]

# A slice is cut to this size unless the caller asks for another bound: about 64K tokens.
READ_MAX_BYTES = 256 * 1024
MAX_SOURCE_CHARS = 1024
ZSTD_LEVEL = 3
# zstd is kept for a chunk only when it saves at least this share of the bytes.
ZSTD_MIN_SAVING = 0.05
# A reader of the current version retries this often when publishes prune it under its feet.
READ_ATTEMPTS = 5

_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\"-]+)*")
_HEX = re.compile(r"[0-9a-f]{8,64}")

Compression = Literal["zstd", "none"] | None


@dataclass(frozen=True)
class _Part:
    digest: str
    stored_len: int
    raw_len: int
    codec: str  # "zstd" or ""
    newlines: int


@dataclass(frozen=True)
class _Manifest:
    info: ContextInfo
    parts: tuple[_Part, ...]

    @property
    def version(self) -> str:
        return self.info.version


class _ChunkMissing(Exception):
    """A chunk of the manifest was deleted: its version was pruned while being read."""


# --- publishing


def publish_context(
    ctx: OpContext,
    owner: str,
    content: str | bytes | os.PathLike[str],
    *,
    source: str,
    media_type: str = "text/markdown",
    compression: Compression = None,
) -> Operation[ContextInfo]:
    """Publish ``content`` as the owner's current context; returns the version's info.

    Identical content with the same metadata is a no-op (one round trip). Chunks are written
    before the pointer flips, so readers see the old version or the new, never a mix.
    """
    owner = check_name("owner", owner)
    source = _check_source(source)
    media_type = _check_media_type(media_type)
    if ctx.limits.context_versions_kept < 1 or ctx.limits.context_chunk_bytes < 1:
        raise ConfigError(
            "Limits.context_versions_kept and Limits.context_chunk_bytes must be at least 1"
        )
    use_zstd = _use_zstd(ctx, compression)
    raw = _read_content(ctx, content)
    version = hashlib.sha256(raw).hexdigest()
    keys = ctx.keys
    current, kept = yield Batch(
        (
            Cmd("HGET", keys.contexts, owner),
            Cmd("HGET", keys.context_manifests, f"{owner}|{version}"),
        )
    )
    if current is not None:
        info = _parse_manifest(current).info
        if (info.version, info.source, info.media_type) == (version, source, media_type):
            _cache_put(ctx, version, raw)
            return info
    if kept is not None:
        # The version is kept already: reuse its chunks, send nothing but the manifest.
        kept_parts = _parse_manifest(kept).parts
        flip = yield from _flip(
            ctx, owner, version, raw, kept_parts, source, media_type, "existing", new_id("p")
        )
        if flip is not None:
            _cache_put(ctx, version, raw)
            return flip
    parts, stored = _split(raw, ctx.limits.context_chunk_bytes, use_zstd)
    token = new_id("p")  # this publish's holder token on its chunks
    digests = list(dict.fromkeys(p.digest for p in parts))
    try:
        found = (
            (yield Batch(tuple(Call("chunk_acquire", (keys.chunk(d),), (token,)) for d in digests)))
            if digests
            else []
        )
        missing = [d for d, ok in zip(digests, found, strict=True) if not int(ok)]
        if missing:
            yield Batch(
                tuple(Call("chunk_put", (keys.chunk(d),), (stored[d], token)) for d in missing)
            )
        published = yield from _flip(
            ctx, owner, version, raw, parts, source, media_type, "new", token
        )
    except ConnectionFailed:
        # The flip may have happened (its reply lost): keeping the holders can only leak
        # chunks, dropping them could delete a kept version's chunks.
        raise
    except SwarmError:
        yield from _release(keys, {token: digests})
        raise
    assert published is not None  # mode "new" always publishes
    _cache_put(ctx, version, raw)
    return published


def _flip(
    ctx: OpContext,
    owner: str,
    version: str,
    raw: bytes,
    parts: Sequence[_Part],
    source: str,
    media_type: str,
    mode: Literal["new", "existing"],
    token: str,
) -> Operation[ContextInfo | None]:
    """Run context_publish; release what it hands back. None: the kept version vanished."""
    keys = ctx.keys
    manifest: dict[str, Any] = {
        "owner": owner,
        "version": version,
        "size_bytes": len(raw),
        "tokens_est": (len(raw) + 3) // 4,
        "chunks": len(parts),
        "compression": "zstd" if any(p.codec for p in parts) else None,
        "source": source,
        "media_type": media_type,
        "total_lines": tv.count_lines(raw),
        "parts": [[p.digest, p.stored_len, p.raw_len, p.codec, p.newlines] for p in parts],
    }
    prefix = dumps(manifest)[:-1]
    reply = yield Call(
        "context_publish",
        (keys.contexts, keys.context_manifests, keys.context_history(owner), keys.events),
        (
            owner,
            version,
            prefix,
            ctx.now_arg(),
            ctx.limits.context_versions_kept,
            ctx.limits.events_maxlen,
            mode,
            len(raw),
            token,
        ),
    )
    status = _text(reply[0])
    if status == "missing":
        return None
    release: dict[str, list[str]] = {}
    rest = reply[2:]
    while rest:  # per pruned version: holder, n, n digests
        holder, n = _text(rest[0]), int(rest[1])
        release.setdefault(holder, []).extend(_text(d) for d in rest[2 : 2 + n])
        rest = rest[2 + n :]
    if status == "kept" and mode == "new":
        release.setdefault(token, []).extend(dict.fromkeys(p.digest for p in parts))
    yield from _release(keys, release)
    return _parse_manifest(reply[1]).info


def _release(keys: Keys, holders: dict[str, list[str]]) -> Operation[None]:
    """Remove holder tokens from chunks (idempotent: safe to retry)."""
    calls = tuple(
        Call("chunk_release", (keys.chunk(d),), (holder,))
        for holder, digests in holders.items()
        for d in digests
    )
    if calls:
        yield Batch(calls)


def _split(raw: bytes, size: int, use_zstd: bool) -> tuple[list[_Part], dict[str, bytes]]:
    parts: list[_Part] = []
    stored: dict[str, bytes] = {}
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL) if use_zstd else None
    for start in range(0, len(raw), size):
        piece = raw[start : start + size]
        data, codec = piece, ""
        if compressor is not None:
            packed = compressor.compress(piece)
            if len(packed) <= len(piece) * (1 - ZSTD_MIN_SAVING):
                data, codec = packed, "zstd"
        digest = hashlib.sha256(data).hexdigest()
        stored[digest] = data
        parts.append(_Part(digest, len(data), len(piece), codec, piece.count(b"\n")))
    return parts, stored


def _use_zstd(ctx: OpContext, compression: Compression) -> bool:
    if compression not in (None, "zstd", "none"):
        raise ValidationError(
            f"compression must be 'zstd', 'none' or None (the swarm's setting), not {compression!r}"
        )
    if compression is not None:
        return compression == "zstd"
    setting = ctx.settings.compression
    return setting == "always" or (setting == "auto" and not ctx.settings.is_local)


def _read_content(ctx: OpContext, content: str | bytes | os.PathLike[str]) -> bytes:
    limit = ctx.limits.max_context_bytes
    if isinstance(content, str):
        if len(content) > limit:  # at least one byte per character
            raise _too_large(len(content.encode(errors="surrogatepass")), limit)
        try:
            raw = content.encode()
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"the context text holds {content[exc.start]!r} at character {exc.start:,}, "
                "which is not valid Unicode (a lone surrogate): publish bytes, or fix the text"
            ) from None
    elif isinstance(content, bytes | bytearray | memoryview):
        raw = bytes(content)
    elif isinstance(content, os.PathLike):
        path = os.fspath(content)
        try:
            size = os.stat(path).st_size
            if size > limit:
                raise _too_large(size, limit)
            with open(path, "rb") as src:
                raw = src.read(limit + 1)
        except OSError as exc:
            raise ValidationError(
                f"cannot read the context file {path!r}: {exc.strerror}"
            ) from None
    else:
        raise ValidationError(
            f"content must be str, bytes or a path (os.PathLike), not {type(content).__name__}"
        )
    if len(raw) > limit:
        raise _too_large(len(raw), limit)
    return raw


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the context is {size:,} bytes; the limit is {limit:,} (Limits.max_context_bytes): "
        "publish a smaller context, split it between owners, or raise the limit"
    )


def _check_source(source: object) -> str:
    if not isinstance(source, str):
        raise ValidationError(f"source must be a string, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        raise ValidationError(
            f"source is {len(source)} characters; the limit is {MAX_SOURCE_CHARS}: "
            "name the file or URL the context came from"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in source):
        raise ValidationError("source contains control characters: name a file or URL")
    return source


def _check_media_type(media_type: object) -> str:
    if not isinstance(media_type, str) or len(media_type) > 255:
        raise ValidationError("media_type must be a short string such as 'text/markdown'")
    if not _MEDIA_TYPE.fullmatch(media_type):
        raise ValidationError(
            f"media_type {media_type[:60]!r} is not a media type: use e.g. 'text/markdown', "
            "'text/plain' or 'application/json'"
        )
    return media_type


def _cache_put(ctx: OpContext, version: str, raw: bytes) -> None:
    if ctx.cache is not None:
        ctx.cache.put(version, raw)


# --- manifests


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_manifest(raw: bytes | str) -> _Manifest:
    data = loads(raw)
    parts = tuple(
        _Part(str(p[0]), int(p[1]), int(p[2]), str(p[3]), int(p[4])) for p in data["parts"]
    )
    return _Manifest(ContextInfo.from_dict(data), parts)


def _check_version(version: object) -> str:
    if not isinstance(version, str) or not _HEX.fullmatch(version):
        raise ValidationError(
            f"version {str(version)[:70]!r} is not a context version: pass the hex hash shown "
            "by context_versions (at least 8 characters of it)"
        )
    return version


def _manifest(ctx: OpContext, owner: str, version: str | None) -> Operation[_Manifest]:
    """The manifest of the current version, or of a kept one (a unique hash prefix works)."""
    keys = ctx.keys
    if version is None:
        raw = yield Cmd("HGET", keys.contexts, owner)
        if raw is None:
            raise _no_context(owner)
        return _parse_manifest(raw)
    if len(version) < 64:
        kept = [_text(v) for v in (yield Cmd("ZRANGE", keys.context_history(owner), 0, -1))]
        matches = [v for v in kept if v.startswith(version)]
        if len(matches) > 1:
            raise ValidationError(
                f"version prefix {version!r} of {owner!r} is ambiguous: give more characters"
            )
        if not matches:
            raise (yield from _no_version(ctx, owner, version))
        version = matches[0]
    raw = yield Cmd("HGET", keys.context_manifests, f"{owner}|{version}")
    if raw is None:
        raise (yield from _no_version(ctx, owner, version))
    return _parse_manifest(raw)


def _no_context(owner: str) -> NotFound:
    return NotFound(
        f"no context was published by {owner!r}: check the owner name (contexts() lists them)"
    )


def _no_version(ctx: OpContext, owner: str, version: str) -> Operation[NotFound]:
    kept = yield Cmd("ZREVRANGE", ctx.keys.context_history(owner), 0, -1)
    if not kept:
        return _no_context(owner)
    listed = ", ".join(_text(v)[:12] for v in kept)
    return NotFound(
        f"version {version[:16]} of {owner!r} is not kept (it was pruned, or never existed); "
        f"kept versions, newest first: {listed}"
    )


# --- reading


def _fetch(
    ctx: OpContext, m: _Manifest, indices: Sequence[int], *, hash_each: bool
) -> Operation[list[bytes]]:
    """The raw bytes of the given chunks, checked against the manifest (each chunk's hash
    too with ``hash_each``; else the caller checks the hash of the whole)."""
    if not indices:
        return []
    keys = ctx.keys
    replies = yield Batch(
        tuple(Cmd("HGET", keys.chunk(m.parts[i].digest), "data") for i in indices)
    )
    out: list[bytes] = []
    for i, stored in zip(indices, replies, strict=True):
        part = m.parts[i]
        if stored is None:
            raise _ChunkMissing(part.digest)
        if len(stored) != part.stored_len or (
            hash_each and hashlib.sha256(stored).hexdigest() != part.digest
        ):
            raise _corrupt(m, part.digest)
        if part.codec == "zstd":
            try:
                stored = zstandard.ZstdDecompressor().decompress(
                    stored, max_output_size=part.raw_len
                )
            except zstandard.ZstdError:
                raise _corrupt(m, part.digest) from None
        if len(stored) != part.raw_len:
            raise _corrupt(m, part.digest)
        out.append(stored)
    return out


def _corrupt(m: _Manifest, digest: str) -> SwarmError:
    return SwarmError(
        f"chunk {digest[:16]} of context {m.info.owner!r} version {m.version[:16]} does not "
        "match its manifest (damaged data): publish the context again"
    )


def _fetch_whole(ctx: OpContext, m: _Manifest) -> Operation[bytes]:
    raw = b"".join((yield from _fetch(ctx, m, range(len(m.parts)), hash_each=False)))
    if hashlib.sha256(raw).hexdigest() != m.version:
        raise _corrupt(m, m.version)
    _cache_put(ctx, m.version, raw)
    return raw


def _cached(ctx: OpContext, version: str) -> bytes | None:
    return ctx.cache.get(version) if ctx.cache is not None else None


def _load(ctx: OpContext, owner: str, version: str | None) -> Operation[tuple[_Manifest, bytes]]:
    """The manifest and the whole bytes of a version: from the cache when it holds them (one
    HGET of the pointer), else fetched and verified against the version's hash."""
    for _ in range(READ_ATTEMPTS):
        m = yield from _manifest(ctx, owner, version)
        raw = _cached(ctx, m.version)
        if raw is not None:
            return m, raw
        try:
            return m, (yield from _fetch_whole(ctx, m))
        except _ChunkMissing:
            if version is not None:
                raise (yield from _no_version(ctx, owner, m.version)) from None
    raise Conflict(
        f"the context of {owner!r} was republished {READ_ATTEMPTS} times while being read: "
        "try again (or read a fixed version)"
    )


def get_context_bytes(ctx: OpContext, owner: str, version: str | None = None) -> Operation[bytes]:
    """The bytes of the owner's current context (or of a kept version)."""
    owner = check_name("owner", owner)
    if version is not None:
        version = _check_version(version)
    _, raw = yield from _load(ctx, owner, version)
    return raw


def get_context(ctx: OpContext, owner: str, version: str | None = None) -> Operation[str]:
    """The text of the owner's current context (or of a kept version), as UTF-8."""
    owner = check_name("owner", owner)
    if version is not None:
        version = _check_version(version)
    m, raw = yield from _load(ctx, owner, version)
    text, valid = _decoded(ctx, m.version, raw)
    if not valid:
        raise ValidationError(f"the context of {owner!r} is not UTF-8 text: use get_context_bytes")
    return text


def _decode(raw: bytes) -> tuple[str, bool]:
    """The text, and whether the bytes were valid UTF-8 (else undecodable bytes are
    replaced: good enough to search and slice, not to hand out as the context)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def _decoded(ctx: OpContext, version: str, raw: bytes) -> tuple[str, bool]:
    """``_decode``, kept with the cached bytes so that a warm read does not decode again."""
    if ctx.cache is None:
        return _decode(raw)
    return ctx.cache.derived(version, "text", lambda: _decode(raw))


def context_info(ctx: OpContext, owner: str, version: str | None = None) -> Operation[ContextInfo]:
    owner = check_name("owner", owner)
    if version is not None:
        version = _check_version(version)
    m = yield from _manifest(ctx, owner, version)
    return m.info


def context_versions(ctx: OpContext, owner: str) -> Operation[list[ContextInfo]]:
    """The kept versions of an owner's context, newest first."""
    owner = check_name("owner", owner)
    keys = ctx.keys
    kept = yield Cmd("ZREVRANGE", keys.context_history(owner), 0, -1)
    if not kept:
        raise _no_context(owner)
    fields = [f"{owner}|{_text(v)}" for v in kept]
    manifests = yield Cmd("HMGET", keys.context_manifests, *fields)
    return [_parse_manifest(m).info for m in manifests if m is not None]


def contexts(ctx: OpContext) -> Operation[list[ContextInfo]]:
    """The current version of every owner's context, by owner."""
    reply = yield Cmd("HGETALL", ctx.keys.contexts)
    items = reply.values() if isinstance(reply, dict) else reply[1::2]
    return sorted((_parse_manifest(m).info for m in items), key=lambda i: i.owner)


# --- slices and search


def _window(ctx: OpContext, m: _Manifest, first: int, last: int) -> Operation[tv.Window]:
    """The bytes of chunks ``first..last`` (inclusive) of a manifest, as a Window."""
    raw = b"".join((yield from _fetch(ctx, m, range(first, last + 1), hash_each=True)))
    start = sum(p.raw_len for p in m.parts[:first])
    before = sum(p.newlines for p in m.parts[:first])
    return tv.Window(raw, start, before, tv.line_starts(raw), last == len(m.parts) - 1)


def _chunk_of_newline(m: _Manifest, n: int) -> int:
    """The index of the chunk that holds the n-th newline (1-based); the last if none does."""
    seen = 0
    for i, part in enumerate(m.parts):
        seen += part.newlines
        if seen >= n:
            return i
    return len(m.parts) - 1


def _chunk_of_byte(m: _Manifest, offset: int) -> int:
    pos = 0
    for i, part in enumerate(m.parts):
        pos += part.raw_len
        if offset < pos:
            return i
    return max(len(m.parts) - 1, 0)


def read_context(
    ctx: OpContext,
    owner: str,
    *,
    lines: tuple[int, int] | None = None,
    offset: int | None = None,
    length: int | None = None,
    version: str | None = None,
    max_bytes: int = READ_MAX_BYTES,
) -> Operation[ContextSlice]:
    """A bounded slice: ``lines=(a, b)`` (1-based, inclusive) or ``offset``/``length`` (bytes).

    Without a range, the first lines up to ``max_bytes``. A slice longer than ``max_bytes``
    is cut (at a line end in line mode) and marked ``truncated``. When the context is not
    cached, only the chunks that hold the range are fetched.
    """
    owner = check_name("owner", owner)
    if version is not None:
        version = _check_version(version)
    if not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValidationError(f"max_bytes must be a positive number of bytes, not {max_bytes!r}")
    by_bytes = offset is not None or length is not None
    if lines is not None and by_bytes:
        raise ValidationError("pass either lines=(first, last) or offset/length, not both")
    if lines is not None:
        _check_lines_arg(lines)
    for name, value in (("offset", offset), ("length", length)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValidationError(f"{name} must be a non-negative number of bytes, not {value!r}")
    for _ in range(READ_ATTEMPTS):
        m = yield from _manifest(ctx, owner, version)
        info = m.info
        if by_bytes:
            start = 0 if offset is None else offset
            if start > info.size_bytes:
                raise ValidationError(
                    f"offset {start} is past the end: the context of {owner!r} has "
                    f"{info.size_bytes} bytes"
                )
            size = (info.size_bytes - start) if length is None else length
        else:
            first, last = lines if lines is not None else (1, max(info.total_lines, 1))
            if first > max(info.total_lines, 1):
                raise ValidationError(
                    f"line {first} is past the end: the context of {owner!r} has "
                    f"{info.total_lines} lines"
                )
        raw = _cached(ctx, m.version)
        try:
            if raw is not None or len(m.parts) <= 1:
                if raw is None:
                    raw = yield from _fetch_whole(ctx, m)
                win = tv.Window(raw, 0, 0, _starts(ctx, m.version, raw))
            elif by_bytes:
                lo = _chunk_of_byte(m, max(start - 3, 0))
                hi = _chunk_of_byte(m, start + min(size, max_bytes) + 3)
                win = yield from _window(ctx, m, lo, hi)
            else:
                lo = _chunk_of_newline(m, first - 1) if first > 1 else 0
                hi = _chunk_of_newline(m, last)
                hi = min(
                    hi, _chunk_of_byte(m, sum(p.raw_len for p in m.parts[: lo + 1]) + max_bytes)
                )
                win = yield from _window(ctx, m, lo, hi)
        except _ChunkMissing:
            if version is not None:
                raise (yield from _no_version(ctx, owner, m.version)) from None
            continue
        if by_bytes:
            cut = tv.slice_bytes(win, start, size, max_bytes)
        elif info.total_lines == 0:
            cut = tv.Cut("", 1, 0, 0, 0, False)
        else:
            cut = tv.slice_lines(win, first, last, info.total_lines, max_bytes)
        return ContextSlice(
            owner=owner,
            version=m.version,
            text=cut.text,
            start_line=cut.start_line,
            end_line=cut.end_line,
            total_lines=info.total_lines,
            offset=cut.offset,
            length=cut.length,
            size_bytes=info.size_bytes,
            truncated=cut.truncated,
        )
    raise Conflict(
        f"the context of {owner!r} was republished {READ_ATTEMPTS} times while being read: "
        "try again (or read a fixed version)"
    )


def _check_lines_arg(lines: object) -> None:
    if not (
        isinstance(lines, tuple | list)
        and len(lines) == 2
        and all(isinstance(n, int) for n in lines)
        and 1 <= lines[0] <= lines[1]
    ):
        raise ValidationError(f"lines must be (first, last) with 1 <= first <= last, not {lines!r}")


def _starts(ctx: OpContext, version: str, raw: bytes) -> Sequence[int]:
    if ctx.cache is None:
        return tv.line_starts(raw)
    return ctx.cache.derived(version, "byte_starts", lambda: tv.line_starts(raw))


def search_context(
    ctx: OpContext,
    owner: str,
    pattern: str,
    *,
    regex: bool = False,
    max_hits: int = 50,
    around: int = 2,
    version: str | None = None,
) -> Operation[list[SearchHit]]:
    """Lines matching ``pattern`` (plain text, or a Python regex with ``regex=True``), at
    most ``max_hits``, each with ``around`` lines of context; long lines are cut."""
    owner = check_name("owner", owner)
    if version is not None:
        version = _check_version(version)
    m, raw = yield from _load(ctx, owner, version)
    text, _ = _decoded(ctx, m.version, raw)
    if ctx.cache is None:
        starts = tv.line_starts(text)
    else:
        starts = ctx.cache.derived(m.version, "text_starts", lambda: tv.line_starts(text))
    return tv.search_text(text, starts, pattern, regex=regex, max_hits=max_hits, around=around)
