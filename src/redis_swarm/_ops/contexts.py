"""Contexts: an owner's big text (or bytes), versioned by content hash, chunked, published
atomically, cached by hash, readable by line or byte range, searchable.

Layout (keys from ``_keys.py``)::

    contexts            HASH owner -> manifest JSON of the current version (the pointer)
    context_manifests   HASH owner|version -> manifest JSON of every kept version
    ctx:OWNER:history   ZSET version -> publish order (the newest N are kept)
    chunk:{tag}:DIGEST  HASH data = stored bytes (zstd or raw), h:TOKEN = 1 per holder
    chunk_holds, holds_publishing, holds_releasing: the gc journal (lua/_holds.lua)

A manifest is ContextInfo plus ``parts``: ``[digest, stored_len, raw_len, codec, newlines]``
per chunk, in order, and ``holder``: the token of the publish whose hold keeps its chunks.
``version`` is the content hash of the raw bytes, ``digest`` that of the stored bytes, both by
the manifest's ``hash`` (``_digest``: BLAKE3; SHA-256 when the field is absent, as in
manifests written before it).

A chunk lists its holders in its own hash slot, so that adding a holder and deleting the
chunk when none is left are atomic together on a Redis Cluster too. A publish adds its token
to its chunks (sending only the missing ones), then flips the pointer; the flip hands back
the holder tokens and chunks of the versions it pruned, which are then released. Holders are
a set, not a count, so a request that redis-py retries after a lost reply cannot count twice,
and the flip recognises its own retry by the token. A chunk that a kept version uses is never
deleted, and chunks never carry a TTL. A publisher that dies between its steps leaves its
holders behind: a leak of chunks, never a loss, and journaled so that gc frees them
(``_context_gc``: every token that is not a kept version's is journaled in the swarm's slot,
and each flip hands its publisher a bounded share of the journal to release).

Here: publishing, whole-version reads, listings and search. ``_context_store`` holds the
manifest and the checked chunk fetch that every reader shares; ``_context_slices`` holds
``read_context`` (line and byte ranges).
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any, Literal

import zstandard

from .. import _digest
from .._codec import UNREADABLE, dumps, foreign_bom
from .._context_records import Compression, ContextInfo, SearchHit, says_text
from .._errors import (
    Conflict,
    ConnectionFailed,
    CorruptRecord,
    PayloadTooLarge,
    SwarmError,
    ValidationError,
)
from .._protocol import (
    Batch,
    Call,
    Cmd,
    Compute,
    OpContext,
    Operation,
    check_limits,
)
from .._validate import (
    DEFAULT_AROUND,
    begins_like_option,
    check_flag,
    check_name,
    check_printable,
    check_unicode,
    option_like,
)
from . import _context_gc as gcops
from . import _context_store as store
from . import _textview as tv
from ._bus import new_id
from ._context_gc import gc
from ._context_slices import READ_MAX_BYTES, read_context

__all__ = [
    "READ_MAX_BYTES",
    "context_info",
    "context_versions",
    "contexts",
    "gc",
    "get_context",
    "get_context_bytes",
    "publish_context",
    "read_context",
    "search_context",
]

MAX_SOURCE_CHARS = 1024
# What a source refused for a character it holds adds: a file's name is its source unless
# one is given, and a name may hold what a source may not.
_SOURCE_APART = (
    " (a file whose name holds one: give the source apart, swarm context publish FILE "
    "--source NAME)"
)
ZSTD_LEVEL = 3
# zstd is kept for a chunk only when it saves at least this share of the bytes.
ZSTD_MIN_SAVING = 0.05
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\"-]+)*")

# The bytes a publish checks as UTF-8 at a time (``_check_text``): its memory beyond the
# payload is a piece, its copy and its text (at most ~6x 256 KiB, every character 4 bytes), not
# the whole payload's text (up to 4x a 64 MiB one).
_TEXT_CHECK_PIECE = 1 << 18


# --- publishing


def publish_context(
    ctx: OpContext,
    owner: str,
    content: str | bytes | os.PathLike[str],
    *,
    source: str,
    media_type: str = "text/markdown",
    compression: Compression = None,
    repair: bool = False,
    allow_empty: bool = False,
) -> Operation[ContextInfo]:
    """Publish ``content`` as the owner's current context; returns the version's info.

    Bytes (or a file) that are not UTF-8 are refused (ValidationError) under a media type
    that says text (``text/*``, the default, or another text format): publish them with
    their own media type (``application/octet-stream``); they are then read as bytes.

    Identical content with the same metadata is a no-op (one round trip): the info of the
    current version, ``changed=False``. Only a user who may publish is told so (a worker is
    refused: PermissionDenied). Chunks are written before the pointer flips, so readers see
    the old version or the new, never a mix.

    ``repair``: send every chunk's bytes again and overwrite the stored ones, even when the
    content is unchanged. A publish otherwise reuses the chunks the server holds (those of
    every owner's versions: chunks are shared by content), so damaged stored bytes, which a
    reader refuses, would stay damaged under every publish of the same text. Without it, the
    chunks a publish reuses are checked for what is cheap: that each is stored, at its
    length (never their bytes: readers hash them); one that is not is sent again.

    ``allow_empty``: let empty content (0 bytes) replace a context that is not empty. Without
    it that is refused (ValidationError), by every face alike: an empty file or a producer
    that printed nothing would otherwise leave the owner's readers with nothing. An owner
    with no context (or an empty one) may always publish an empty one.
    """
    owner = check_name("owner", owner)
    source = _check_source(source)
    media_type = _check_media_type(media_type)
    check_limits(ctx.limits)
    check_flag("repair", repair)
    check_flag("allow_empty", allow_empty)
    use_zstd = _use_zstd(ctx, compression)
    limit = ctx.limits.max_context_bytes
    size = len(content) if isinstance(content, str | bytes | bytearray | memoryview) else None
    raw, version = yield Compute(_read_content, (limit, content), size)
    if not isinstance(content, str):  # (a str is Unicode, encoded as UTF-8: text already)
        yield Compute(_check_text, (raw, media_type, source), len(raw))
    keys = ctx.keys
    # Read by a publisher's own function, not by HGETs a worker may send too: a publish that
    # would change nothing writes nothing, so the ACL must refuse it here or never.
    current, kept = yield Call(
        "context_lookup", (keys.contexts, keys.context_manifests), (owner, version)
    )
    if current is None and begins_like_option(owner):
        # A new owner, not one published before the rule: ``swarm context get -x`` would read
        # it as an option. (New only here: whether it has a context is known now.)
        raise option_like("owner", owner)
    if not raw and not allow_empty and current is not None:
        _refuse_emptying(owner, _readable(current, owner))
    # A damaged pointer or kept manifest is not reused: this publish writes it again. The
    # pointer is its version's kept manifest, byte for byte (the flip writes both): one that
    # differs was edited, though it reads.
    intact = current is not None and current == kept and not repair
    pointer = _readable(current, owner) if intact else None
    asked = (version, source, media_type)
    # Unchanged: nothing is written, nor its chunks looked at (one round trip: a chunk deleted
    # or cut short by hand is found by the readers, whose error names --repair).
    if pointer is not None and (pointer.version, *_labels(pointer.info)) == asked:
        yield store.keep(ctx, version, raw)
        return dataclasses.replace(pointer.info, changed=False)
    old = None if kept is None or repair else _readable(kept, owner)
    if old is not None and (yield from _chunks_stored(ctx, old)):
        # The version is kept already: reuse its chunks, send nothing but the manifest.
        flip = yield from _flip(ctx, owner, old, raw, source, media_type, "existing", new_id("p-"))
        if flip is not None:
            yield store.keep(ctx, version, raw)
            return flip
    split = Compute(_split, (raw, ctx.limits.context_chunk_bytes, use_zstd), len(raw))
    parts, stored, total_lines = yield split
    shape = ContextInfo(
        owner, version, len(raw), (len(raw) + 3) // 4, len(parts), total_lines=total_lines
    )
    published = yield from _publish_chunks(
        ctx, shape, parts, stored, raw, source, media_type, repair
    )
    yield store.keep(ctx, version, raw)
    return published


def _labels(info: ContextInfo) -> tuple[str, str]:
    return info.source, info.media_type


def _chunks_stored(ctx: OpContext, m: store.Manifest) -> Operation[bool]:
    """Whether every chunk of the kept version ``m`` is stored at its length: what a
    publish that reuses them (sending none) checks, one round trip (none for an empty
    version). Their bytes are not read: a chunk damaged in place, of its length, is found by
    its readers (and mended by a publish with repair)."""
    lengths = {p.digest: p.stored_len for p in m.parts}
    if not lengths:
        return True
    found = yield Batch(
        tuple(Call("chunk_acquire", (ctx.keys.chunk(d),), ("", n)) for d, n in lengths.items())
    )
    return all(int(ok) for ok in found)


def _refuse_emptying(owner: str, current: store.Manifest | None) -> None:
    """The one refusal of empty content that would replace a context that is not empty
    (``current`` None: its manifest is damaged, so its size is not known)."""
    if current is not None and current.info.size_bytes == 0:
        return
    what = "" if current is None else f"{current.info.size_bytes:,}-byte "
    raise ValidationError(
        f"the content is empty (0 bytes): publishing it would replace the {what}context of "
        f"{owner!r}, which its readers need, with nothing. Publish the text it should hold "
        "(an empty file, or a step that printed nothing?), or, to empty it on purpose, allow "
        "it: allow_empty=True in Python, swarm context publish FILE --allow-empty"
    )


def _publish_chunks(
    ctx: OpContext,
    shape: ContextInfo,
    parts: Sequence[store.Part],
    stored: dict[str, bytes],
    raw: bytes,
    source: str,
    media_type: str,
    repair: bool,
) -> Operation[ContextInfo]:
    """Journal a new holder token, add it to the chunks the server has (of the length
    sent: a chunk cut short is sent again), send the others (every one with ``repair``,
    overwriting what is stored), then flip: a new version of ``shape`` made of ``parts``
    (whose bytes are ``raw``); with ``repair`` its manifest is written anew even when the
    version is current already."""
    keys = ctx.keys
    token = new_id("p-")  # this publish's holder token on its chunks
    digests = list(dict.fromkeys(p.digest for p in parts))
    # Journaled before any chunk gets the token, so gc can release them if this process dies.
    hold = Call(
        "context_hold",
        (keys.chunk_holds, keys.holds_publishing),
        (token, dumps(digests), ctx.now_arg()),
    )
    lengths = {p.digest: p.stored_len for p in parts}
    acquire = (
        ()
        if repair
        else tuple(Call("chunk_acquire", (keys.chunk(d),), (token, lengths[d])) for d in digests)
    )
    try:
        if ctx.settings.kind == "cluster":
            # A pipeline runs on several nodes there, in no set order: the journal first.
            yield hold
            found = (yield Batch(acquire)) if acquire else []
        else:
            found = (yield Batch((hold, *acquire)))[1:]
        missing = (
            digests if repair else [d for d, ok in zip(digests, found, strict=True) if not int(ok)]
        )
        if missing:
            yield Batch(
                tuple(Call("chunk_put", (keys.chunk(d),), (stored[d], token)) for d in missing)
            )
        new = store.Manifest(shape, tuple(parts), _digest.CURRENT)
        mode: Literal["new", "repair"] = "repair" if repair else "new"
        published = yield from _flip(ctx, shape.owner, new, raw, source, media_type, mode, token)
    except ConnectionFailed:
        # The flip may have happened (its reply lost): keeping the holders can only leak
        # chunks (journaled: gc releases them), dropping them could delete a kept version's.
        raise
    except SwarmError:
        yield from gcops.release(keys, {token: digests})
        raise
    except _Expired:
        # gc released this token's chunks and forgot it, yet a chunk write of this publish
        # may have landed after that release (it was on its way), holding the token again
        # where nothing would release it: every write of this publish has landed by now (the
        # flip came after their replies), so this publisher releases its token itself.
        yield from gcops.release_and_forget(ctx, {token: digests})
        # The grace is the gc's (swarm gc --grace), not known here: the default one is named
        # as one case, a gc run with a shorter grace (even 0) is the other.
        raise Conflict(
            f"a gc with a grace shorter than this publish (the default grace period is "
            f"{gcops.GC_GRACE_S:.0f} s) gave up the publish of the context of {shape.owner!r} "
            "while it was in flight, and released its chunks: nothing was published. Publish "
            "again once no such gc runs (a publish that takes longer than the default grace: "
            "from closer to the server, or in smaller contexts)"
        ) from None
    assert published is not None  # mode "new" always publishes
    return published


def _readable(raw: bytes, owner: str) -> store.Manifest | None:
    """A stored manifest, or None when it is damaged (``parse_manifest``)."""
    try:
        return store.parse_manifest(raw, owner)
    except CorruptRecord:
        return None


class _Expired(Exception):
    """The flip found that gc gave up on this publish (it ran longer than the grace)."""


def _flip(
    ctx: OpContext,
    owner: str,
    m: store.Manifest,
    raw: bytes,
    source: str,
    media_type: str,
    mode: Literal["new", "existing", "repair"],
    token: str,
) -> Operation[ContextInfo | None]:
    """Run context_publish for the version ``m`` (its hash, sizes, lines and parts; its
    bytes ``raw``); release the holds it hands out (a bounded gc step, the pruned versions'
    among them). None: the kept version vanished. ``changed`` False: the pointer named
    the version already, with this source and media type (a publish of the same text that
    raced this one moved it), so this one wrote nothing."""
    keys = ctx.keys
    shape, parts = m.info, m.parts
    version = shape.version
    compressed = any(p.codec for p in parts)
    # Kept whole when small enough; not when compressed: zstd is used where the link is
    # slow, and there a copy of the raw bytes would cost a reader more than the chunks.
    copy = len(raw) <= ctx.limits.context_copy_bytes and not compressed
    manifest: dict[str, Any] = {
        "owner": owner,
        "version": version,
        "size_bytes": shape.size_bytes,
        "tokens_est": shape.tokens_est,
        "chunks": len(parts),
        "compression": "zstd" if compressed else None,
        "source": source,
        "media_type": media_type,
        "total_lines": shape.total_lines,
        "parts": [[p.digest, p.stored_len, p.raw_len, p.codec, p.newlines] for p in parts],
        "hash": m.algorithm,
    }
    prefix = dumps(manifest)[:-1]
    reply = yield Call(
        "context_publish",
        (
            keys.contexts,
            keys.context_manifests,
            keys.context_history(owner),
            keys.events,
            *gcops.holds_keys(keys),
            keys.context_copy(owner),
        ),
        (
            owner,
            version,
            prefix,
            ctx.now_arg(),
            ctx.limits.context_versions_kept,
            ctx.limits.events_maxlen,
            mode,
            shape.size_bytes,
            token,
            int(gcops.GC_GRACE_S * 1000),
            gcops.GC_BUDGET,
            gcops.TAKER_MS,
            "copy" if copy else "",
            raw if copy else b"",
        ),
    )
    status = store.text_of(reply[0])
    if status == "missing":
        return None
    holds = gcops.took(reply[2:])
    if holds:
        yield from gcops.release_and_forget(ctx, holds)
    if status == "expired":
        raise _Expired
    info = store.parse_manifest(reply[1], owner).info
    return dataclasses.replace(info, changed=False) if status == "current" else info


def _split(raw: bytes, size: int, use_zstd: bool) -> tuple[list[store.Part], dict[str, bytes], int]:
    """The chunks of ``raw`` (compressed where zstd pays), their stored bytes by digest, and
    the number of lines: the CPU work of a publish, done off an async shell's event loop."""
    parts: list[store.Part] = []
    stored: dict[str, bytes] = {}
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL) if use_zstd else None
    for start in range(0, len(raw), size):
        piece = raw[start : start + size]
        data, codec = piece, ""
        if compressor is not None:
            packed = compressor.compress(piece)
            if len(packed) <= len(piece) * (1 - ZSTD_MIN_SAVING):
                data, codec = packed, "zstd"
        digest = _digest.digest(data)
        stored[digest] = data
        parts.append(store.Part(digest, len(data), len(piece), codec, piece.count(b"\n")))
    return parts, stored, tv.count_lines(raw)


def _use_zstd(ctx: OpContext, compression: Compression) -> bool:
    if compression not in (None, "zstd", "none"):
        raise ValidationError(
            f"compression must be 'zstd', 'none' or None (the swarm's setting), not {compression!r}"
        )
    if compression is not None:
        return compression == "zstd"
    setting = ctx.settings.compression
    return setting == "always" or (setting == "auto" and not ctx.settings.is_local)


def _read_content(limit: int, content: str | bytes | os.PathLike[str]) -> tuple[bytes, str]:
    """The bytes to publish, and their content hash (the version)."""
    if isinstance(content, str):
        if len(content) > limit:  # at least one byte per character
            raise _too_large(len(content.encode(errors="surrogatepass")), limit)
        try:
            raw = content.encode()
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"the context text holds {content[exc.start]!r} at character {exc.start:,}, "
                "which is not valid Unicode (a lone surrogate): fix the text, or publish it as "
                "bytes with a media type that is not text "
                "(media_type='application/octet-stream')"
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
    return raw, _digest.digest(raw)


def _check_text(raw: bytes, media_type: str, source: str = "") -> None:
    """Bytes published under a media type that says text must be UTF-8: else every reader
    of text refuses them later, far from the publish that could have named them. The
    refusal names the source (the file, for the CLI) and a UTF-16 or UTF-32 byte order mark
    the bytes begin with."""
    if not says_text(media_type):
        return
    bad = _first_non_utf8(raw)
    if bad is not None:
        named = f"the context from {source!r}" if source else "the context"
        bom = foreign_bom(raw)
        why = f"byte {bad:,} is not" if bom is None else f"it begins with {bom}"
        raise ValidationError(
            f"{named} is not UTF-8 text ({why}), yet its media type "
            f"{media_type!r} says text: reading or searching it as text (get_context, "
            "read_context, search_context, a worker's get_parent_context) would refuse it. "
            "Only UTF-8 is read as text: convert it (e.g. iconv -t UTF-8), or publish it with a "
            "media type that is not text, e.g. 'application/octet-stream' or 'application/pdf' "
            "(media_type=, swarm context publish --media-type)"
        )


def _first_non_utf8(raw: bytes) -> int | None:
    """The offset of the first byte of ``raw`` that is not UTF-8 (as ``raw.decode`` would
    report it: a lone surrogate's, a truncated sequence's at the end), or None when it all
    is. Decoded ``_TEXT_CHECK_PIECE`` bytes at a time, so that a character split between two
    pieces is read whole, and what is decoded is dropped piece by piece."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with memoryview(raw) as view:
        for start in range(0, max(len(view), 1), _TEXT_CHECK_PIECE):
            # What the decoder reads starts with the bytes it held from the last piece (a
            # character begun there), then this piece.
            held = len(decoder.getstate()[0])
            with view[start : start + _TEXT_CHECK_PIECE] as piece:
                try:
                    decoder.decode(piece, final=start + len(piece) >= len(view))
                except UnicodeDecodeError as exc:
                    return start - held + exc.start
    return None


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
    # (what an agent's model may not hold either: every table shows the source on one line)
    check_printable("source", source, max_chars=MAX_SOURCE_CHARS, fix=_SOURCE_APART)
    # (refused here, not by the encoder far below, whose error names JSON's insides)
    check_unicode("source", source, fix=_SOURCE_APART)
    if source and not source.strip():  # ("" is none; spaces alone would list as a blank)
        raise ValidationError(
            f"source {source!r} is blank (only whitespace): name the file or URL the context "
            "came from, or give none"
        )
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


# --- reading whole versions


def get_context_bytes(ctx: OpContext, owner: str, version: str | None = None) -> Operation[bytes]:
    """The bytes of the owner's current context (or of a kept version)."""
    owner, version = store.check_ref(owner, version)
    _, raw = yield from store.load(ctx, owner, version)
    return raw


def get_context(ctx: OpContext, owner: str, version: str | None = None) -> Operation[str]:
    """The text of the owner's current context (or of a kept version), as UTF-8."""
    owner, version = store.check_ref(owner, version)
    _, (text, valid) = yield from store.load_text(ctx, owner, version)
    if not valid:
        raise store.not_text(owner)
    return text


def context_info(ctx: OpContext, owner: str, version: str | None = None) -> Operation[ContextInfo]:
    """What is known of the owner's current context (or of a kept version) without reading
    it: its version (hash), size, estimated tokens, source, media type, compression (a
    ``ContextInfo``). NotFound when the owner has no such context."""
    owner, version = store.check_ref(owner, version)
    m = yield from store.manifest(ctx, owner, version)
    return m.info


def context_versions(ctx: OpContext, owner: str) -> Operation[list[ContextInfo]]:
    """The kept versions of an owner's context, newest first."""
    owner = check_name("owner", owner)
    keys = ctx.keys
    kept = yield Cmd("ZREVRANGE", keys.context_history(owner), 0, -1)
    if not kept:
        raise store.no_context(owner)
    fields = [f"{owner}|{store.text_of(v)}" for v in kept]
    manifests = yield Cmd("HMGET", keys.context_manifests, *fields)
    kept_infos = (_readable(m, owner) for m in manifests if m is not None)
    # A damaged one is left out, as contexts() leaves out a damaged pointer; reading that
    # version names the damage and its repair.
    return [m.info for m in kept_infos if m is not None]


def contexts(ctx: OpContext) -> Operation[list[ContextInfo]]:
    """The current version of every owner's context, by owner."""
    reply = yield Cmd("HGETALL", ctx.keys.contexts)
    items = reply.values() if isinstance(reply, dict) else reply[1::2]
    infos: list[ContextInfo] = []
    for manifest in items:
        try:
            infos.append(store.parse_manifest(manifest).info)
        except UNREADABLE:  # written around the operations: left out, swarm doctor names it
            continue
    return sorted(infos, key=lambda i: i.owner)


# --- search


def search_context(
    ctx: OpContext,
    owner: str,
    pattern: str,
    *,
    regex: bool = False,
    max_hits: int = 50,
    around: int = DEFAULT_AROUND,
    version: str | None = None,
    ignore_case: bool = False,
) -> Operation[list[SearchHit]]:
    """Lines matching ``pattern`` (plain text, or with ``regex=True`` an RE2 regex: linear
    time, no lookaround or backreferences), at most ``max_hits``, each with ``around`` lines
    of context; long lines are cut. ``ignore_case``: letters match in either case (Unicode
    simple case folding: ``retry`` finds ``Retry``, ``ÉTÉ`` finds ``été``)."""
    owner, version = store.check_ref(owner, version)
    tv.check_search(pattern, max_hits=max_hits, around=around, ignore_case=ignore_case)
    m, raw = yield from store.load(ctx, owner, version)
    search = (ctx, owner, m.version, raw, pattern, regex, max_hits, around, ignore_case)
    hits: list[SearchHit] = yield Compute(_search, search, len(raw))
    return hits


def _search(
    ctx: OpContext,
    owner: str,
    version: str,
    raw: bytes,
    pattern: str,
    regex: bool,
    max_hits: int,
    around: int,
    ignore_case: bool,
) -> list[SearchHit]:
    text, valid = store.decoded(ctx, version, raw)
    if not valid:  # a search of text with replacement characters would not be of its bytes
        raise store.not_text(owner)
    if ctx.cache is None:
        starts = tv.line_starts(text)
    else:
        starts = ctx.cache.derived(version, "text_starts", lambda: tv.line_starts(text))
    return tv.search_text(
        text,
        starts,
        pattern,
        regex=regex,
        max_hits=max_hits,
        around=around,
        ignore_case=ignore_case,
    )
