"""``read_context``: a bounded slice of a context, by lines or by bytes.

The two paths are apart: each checks its range against the manifest, picks the chunks that
hold it (all of them when the version is cached, is one chunk, or is worth caching whole:
``_fetches_whole``), and cuts the slice with ``_textview``. A reader of the current version
whose chunks are pruned under it starts again on the new pointer (a version still kept that
misses a chunk again is damaged: ``_context_store.lost_chunk``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

from .._context_records import ContextSlice
from .._errors import ValidationError
from .._protocol import Compute, OpContext, Operation
from . import _context_store as store
from . import _textview as tv

__all__ = ["READ_MAX_BYTES", "read_context"]

# A slice is cut to this size unless the caller asks for another bound: about 64K tokens.
READ_MAX_BYTES = 256 * 1024
# A version up to this size (as stored: what crosses the network) that is not cached is
# fetched whole for a slice when the cache has a disk (``_fetches_whole``).
WHOLE_FOR_SLICE_BYTES = 8 * 1024 * 1024


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
    cached, only the chunks that hold the range are fetched, or the whole version when a
    disk cache will keep it for the next process (``_fetches_whole``).
    """
    owner, version = store.check_ref(owner, version)
    if not _is_int(max_bytes) or max_bytes < 1:
        raise ValidationError(f"max_bytes must be a positive number of bytes, not {max_bytes!r}")
    by_bytes = offset is not None or length is not None
    if lines is not None and by_bytes:
        raise ValidationError("pass either lines=(first, last) or offset/length, not both")
    if lines is not None:
        _check_lines_arg(lines)
    for name, value in (("offset", offset), ("length", length)):
        if value is not None and (not _is_int(value) or value < 0):
            raise ValidationError(f"{name} must be a non-negative number of bytes, not {value!r}")
    lost: str | None = None  # the version a chunk was missing of, on the last try
    for _ in range(store.READ_ATTEMPTS):
        m = yield from store.manifest(ctx, owner, version)
        try:
            if by_bytes:
                cut = yield from _byte_slice(ctx, m, offset, length, max_bytes)
            else:
                cut = yield from _line_slice(ctx, m, lines, max_bytes)
        except store.ChunkMissing as missing:
            # Read the manifest again: pruned meanwhile (NotFound for a kept version asked
            # for, the new current one else), or still kept and damaged (CorruptRecord).
            lost = store.lost_chunk(m, missing, lost)
            continue
        except tv.NotText as exc:
            raise store.not_text(owner, exc.at) from None
        info = m.info
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
    raise store.republished(owner)


def _byte_slice(
    ctx: OpContext, m: store.Manifest, offset: int | None, length: int | None, max_bytes: int
) -> Operation[tv.Cut]:
    info = m.info
    start = 0 if offset is None else offset
    if start > info.size_bytes:
        raise ValidationError(
            f"offset {start} is past the end: the context of {info.owner!r} has "
            f"{info.size_bytes} bytes"
        )
    size = (info.size_bytes - start) if length is None else length
    # Three bytes either side: a UTF-8 character cut by the range is then whole.
    lo = _chunk_of_byte(m, max(start - 3, 0))
    hi = _chunk_of_byte(m, start + min(size, max_bytes) + 3)
    win = yield from _window_of(ctx, m, lo, hi)
    return tv.slice_bytes(win, start, size, max_bytes)


def _line_slice(
    ctx: OpContext, m: store.Manifest, lines: tuple[int, int] | None, max_bytes: int
) -> Operation[tv.Cut]:
    info = m.info
    first, last = lines if lines is not None else (1, max(info.total_lines, 1))
    if first > max(info.total_lines, 1):
        raise ValidationError(
            f"line {first} is past the end: the context of {info.owner!r} has "
            f"{info.total_lines} line{'s' * (info.total_lines != 1)}"
        )
    if info.total_lines == 0:
        return tv.Cut("", 1, 0, 0, 0, False)
    lo = _chunk_of_newline(m, first - 1) if first > 1 else 0
    hi = _chunk_of_newline(m, last)
    # No further than max_bytes past the first chunk: the slice is cut there anyway.
    hi = min(hi, _chunk_of_byte(m, sum(p.raw_len for p in m.parts[: lo + 1]) + max_bytes))
    win = yield from _window_of(ctx, m, lo, hi)
    return tv.slice_lines(win, first, last, info.total_lines, max_bytes)


def _window_of(ctx: OpContext, m: store.Manifest, lo: int, hi: int) -> Operation[tv.Window]:
    """A Window that holds chunks ``lo..hi`` of a version. The version whole when this
    process holds it in memory or it is one chunk (its line index is kept for the next
    slice); chunks ``lo..hi`` cut from the whole when it is on the cache's disk or worth
    fetching whole (``_fetches_whole``: it is then cached), indexing only them (a process
    of the CLI slices once: indexing 3 MB took it 13 ms, 1 MiB 4); else the chunks alone."""
    held = ctx.cache is not None and m.version in ctx.cache
    raw = yield from store.cached(ctx, m.version)
    if raw is None:
        if len(m.parts) > 1 and not _fetches_whole(ctx, m):
            return (yield from _window(ctx, m, lo, hi))
        raw = yield from store.fetch_whole(ctx, m)  # checked against the version, and cached
    if held or len(m.parts) == 1:
        starts: Sequence[int] = yield Compute(_starts, (ctx, m.version, raw), len(raw))
        _check_newlines(m, 0, len(m.parts) - 1, starts)
        return tv.Window(raw, 0, 0, starts)
    window: tv.Window = yield Compute(_cut_window, (m, raw, lo, hi), len(raw))
    return window


def _fetches_whole(ctx: OpContext, m: store.Manifest) -> bool:
    """Whether a slice of a version not cached fetches all of it: when the cache keeps
    versions on a disk it can write (short-lived processes share it: the CLI's) and the
    version is at most ``WHOLE_FOR_SLICE_BYTES``, stored and as text (a compressed version
    may be many times its stored size: each later slice would read and hash all of it). A
    worker reads and searches one version again and again, a process each time: a 3 MB
    version costs a slice of it one 1 MiB chunk every time, or 3 MB once and a file read
    after. A bigger version, or a cache in memory alone, fetches only the chunks the slice
    needs."""
    cache = ctx.cache
    if cache is None or not cache.keeps_on_disk():
        return False
    size = max(sum(p.stored_len for p in m.parts), m.info.size_bytes)
    return size <= min(WHOLE_FOR_SLICE_BYTES, cache.max_disk_bytes)


def _window(ctx: OpContext, m: store.Manifest, first: int, last: int) -> Operation[tv.Window]:
    """The bytes of chunks ``first..last`` (inclusive) of a manifest, as a Window."""
    chunks = yield from store.fetch(ctx, m, range(first, last + 1), hash_each=True)
    raw = b"".join(chunks)
    starts: Sequence[int] = yield Compute(tv.line_starts, (raw,), len(raw))
    return _chunks_window(m, raw, first, last, starts)


def _cut_window(m: store.Manifest, whole: bytes, first: int, last: int) -> tv.Window:
    """Chunks ``first..last`` (inclusive) of a version's bytes ``whole``, as a Window."""
    start = sum(p.raw_len for p in m.parts[:first])
    raw = whole[start : start + sum(p.raw_len for p in m.parts[first : last + 1])]
    return _chunks_window(m, raw, first, last, tv.line_starts(raw))


def _chunks_window(
    m: store.Manifest, raw: bytes, first: int, last: int, starts: Sequence[int]
) -> tv.Window:
    _check_newlines(m, first, last, starts)
    start = sum(p.raw_len for p in m.parts[:first])
    before = sum(p.newlines for p in m.parts[:first])
    return tv.Window(raw, start, before, starts, last == len(m.parts) - 1)


def _check_newlines(m: store.Manifest, first: int, last: int, starts: Sequence[int]) -> None:
    """The newlines of chunks ``first..last`` (``starts``: their line index, one start per
    newline after the first) are the ones their parts say: else the manifest's line counts
    (which place a line in its chunk) are damaged, and a slice by them would be of other
    lines than those asked for. Free: the index is built for the slice anyway."""
    said = sum(p.newlines for p in m.parts[first : last + 1])
    if len(starts) - 1 != said:
        named = f"context {m.info.owner!r} version {m.version[:16]}"
        raise store.corrupt(
            m,
            f"the manifest of {named} says {said:,} newlines in chunks {first + 1}-{last + 1}, "
            f"which hold {len(starts) - 1:,}",
        )


def _chunk_of_newline(m: store.Manifest, n: int) -> int:
    """The index of the chunk that holds the n-th newline (1-based); the last if none does."""
    seen = 0
    for i, part in enumerate(m.parts):
        seen += part.newlines
        if seen >= n:
            return i
    return len(m.parts) - 1


def _chunk_of_byte(m: store.Manifest, offset: int) -> int:
    pos = 0
    for i, part in enumerate(m.parts):
        pos += part.raw_len
        if offset < pos:
            return i
    return max(len(m.parts) - 1, 0)


def _check_lines_arg(lines: object) -> None:
    if not (
        isinstance(lines, tuple | list)
        and len(lines) == 2
        and all(_is_int(n) for n in lines)
        and 1 <= lines[0] <= lines[1]
    ):
        raise ValidationError(
            f"lines must be (first, last), two integers (not floats or bools) with "
            f"1 <= first <= last, not {lines!r}"
        )


def _is_int(value: object) -> TypeGuard[int]:
    """An integer, not a bool (True is no line number or offset, though Python counts it 1),
    as every number check of the operations has it (``_work.check_number``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _starts(ctx: OpContext, version: str, raw: bytes) -> Sequence[int]:
    if ctx.cache is None:
        return tv.line_starts(raw)
    return ctx.cache.derived(version, "byte_starts", lambda: tv.line_starts(raw))
