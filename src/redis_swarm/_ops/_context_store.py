"""How a context version is stored and fetched: its manifest, and its chunks checked
against it. Shared by publishing (``contexts``) and by the readers (``contexts`` for whole
versions and search, ``_context_slices`` for ranges). The layout is in ``contexts``' docstring.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import zstandard

from .. import _digest
from .._codec import UNREADABLE, first_few, loads
from .._context_records import ContextInfo
from .._errors import Conflict, CorruptRecord, NotFound, ValidationError
from .._hash_lane import lane_hasher
from .._hints import CONTEXT_VERSIONS, CURRENT_VERSION, LIST_CONTEXTS, said_of
from .._printable import short_version
from .._protocol import Cmd, Compute, Fetch, OpContext, Operation
from .._validate import check_name

__all__ = [
    "READ_ATTEMPTS",
    "ChunkMissing",
    "CopyRead",
    "Manifest",
    "Part",
    "cache_put",
    "cached",
    "check_ref",
    "check_version",
    "corrupt",
    "current",
    "decoded",
    "fetch",
    "fetch_whole",
    "keep",
    "load",
    "load_text",
    "lost_chunk",
    "manifest",
    "no_version",
    "not_text",
    "parse_manifest",
    "repair_command",
    "republished",
    "text_of",
]

# A reader of the current version retries this often when publishes prune it under its feet.
READ_ATTEMPTS = 5
# The first piece a reader asks for the copy of the current version in (GETRANGE); each next
# one is as long as all before it (1, 1, 2, 4 MiB...): hashing one (on the hash lane,
# ``_hash_lane``) overlaps the transfer of the next, as with chunks, and a copy of up to 8 MiB
# takes four commands. Equal pieces of 512 KiB were slower (more hand-overs to the lane). One
# reply would need no join but was no faster: hiredis copies its buffer as it grows for one
# big reply (benchmarks/targets.py, the cold note).
COPY_PIECE = 1024 * 1024

T = TypeVar("T")
E = TypeVar("E", bound=CorruptRecord)

# What a version's decoded text is kept under in the cache (``ContextCache.derived``).
_TEXT = "text"

# The fewest hex digits of a version a reader may give (a prefix of its hash): fewer would
# often begin several of an owner's kept versions.
_MIN_VERSION_PREFIX = 8
_HEX = re.compile(r"[0-9a-f]{1,64}")
# The most versions a message about an ambiguous prefix lists.
_AMBIGUOUS_LISTED = 5
# A source that names a file: a dot or a slash in it (a URL is a source too, but no file).
_FILE_NAME = re.compile(r".*[./].*", re.DOTALL)


@dataclass(frozen=True)
class Part:
    digest: str
    stored_len: int
    raw_len: int
    codec: str  # "zstd" or ""
    newlines: int


@dataclass(frozen=True)
class Manifest:
    info: ContextInfo
    parts: tuple[Part, ...]
    # What the version and the chunk digests are hashes by (``_digest``).
    algorithm: _digest.Algorithm = _digest.CURRENT

    @property
    def version(self) -> str:
        return self.info.version


class ChunkMissing(Exception):
    """A chunk of the manifest was deleted: its version was pruned while being read, or (when
    the version is still kept once read again: ``lost_chunk``) the chunk was damaged."""

    @property
    def digest(self) -> str:
        return str(self.args[0])


class _DamagedManifest(CorruptRecord, ValueError):
    """A manifest that cannot be read, or whose parts contradict it: a CorruptRecord for a
    reader, and one of the errors (``_codec.UNREADABLE``) that listings and ``swarm doctor``
    count a record stored unreadable by."""


def text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_manifest(raw: bytes | str, owner: str | None = None) -> Manifest:
    """A stored manifest, checked for what it says of itself: a damaged one (not JSON, a
    field missing or of another type, parts whose lengths and line counts do not add up to
    the version's) is a CorruptRecord (``_DamagedManifest``) naming the repair, never a
    slice cut at wrong offsets. Sums over the parts only: no round trip, no hashing."""
    try:
        data = loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        parts = tuple(_part(p) for p in data["parts"])
        info = ContextInfo.from_dict(data)
        algorithm = _digest.algorithm_of(data.get("hash"))
    except UNREADABLE as exc:
        raise _damaged_manifest(owner, "", None, f"it cannot be read ({exc})") from None
    wrong = _contradiction(info, parts)
    if wrong is not None:
        raise _damaged_manifest(info.owner, info.source, info.version, wrong)
    return Manifest(info, parts, algorithm)


def _part(p: Any) -> Part:
    digest, stored_len, raw_len, codec, newlines = p
    # (A digest that is not a chunk's finds no chunk: the read says so.)
    if (
        type(digest) is not str
        or codec not in ("", "zstd")
        or type(stored_len) is not int
        or type(raw_len) is not int
        or type(newlines) is not int
        or min(stored_len, raw_len, newlines) < 0
    ):
        raise ValueError(f"a part is {str(p)[:120]}")
    return Part(digest, stored_len, raw_len, codec, newlines)


def _contradiction(info: ContextInfo, parts: Sequence[Part]) -> str | None:
    """What in a manifest's parts contradicts the rest (None when nothing does). A publish
    cuts the bytes in pieces of one size (the last one shorter or as long), so every part
    but the last has the first one's length: a part moved (two swapped) or a length edited
    shows there or in the sums; a line count edited shows in the lines' sum."""
    if info.chunks != len(parts):
        return f"it says {info.chunks} chunks and lists {len(parts)}"
    if sum(p.raw_len for p in parts) != info.size_bytes:
        return f"its parts do not add up to its {info.size_bytes:,} bytes"
    size = parts[0].raw_len if parts else 0
    if any(p.raw_len != size for p in parts[:-1]) or (parts and not 0 < parts[-1].raw_len <= size):
        return "its parts are not of one length (the last one shorter): moved or edited"
    newlines = 0
    for p in parts:
        if p.newlines > p.raw_len or (not p.codec and p.stored_len != p.raw_len):
            return f"part {p.digest[:16]} says more newlines or bytes than it holds"
        newlines += p.newlines
    # Lines are the newlines, plus one when the text does not end with one (none if empty).
    extra = info.total_lines - newlines
    if extra not in (0, 1) or (info.size_bytes == 0) != (info.total_lines == 0):
        return f"its parts' {newlines:,} newlines do not make its {info.total_lines:,} lines"
    return None


def check_version(owner: str, version: object) -> str:
    """``version`` of the context of ``owner`` (a checked name), checked, in lowercase: a
    version is lowercase hex (its hash as ``b3sum`` prints it), and a hash or prefix copied
    in uppercase names the same one."""
    if isinstance(version, str) and version.isascii():
        version = version.lower()
    if not isinstance(version, str) or not _HEX.fullmatch(version):
        raise ValidationError(
            f"version {str(version)[:70]!r} is not a context version: pass the hex hash "
            f"{said_of(CONTEXT_VERSIONS, owner)} (at least {_MIN_VERSION_PREFIX} characters "
            "of it)"
        )
    if len(version) < _MIN_VERSION_PREFIX:
        raise ValidationError(
            f"version {version!r} is too short: give at least {_MIN_VERSION_PREFIX} characters "
            f"of the hex hash {said_of(CONTEXT_VERSIONS, owner)}"
        )
    return version


def check_ref(owner: object, version: object) -> tuple[str, str | None]:
    """A reader's owner and optional version, checked: the owner's name first."""
    owner = check_name("owner", owner)
    return owner, None if version is None else check_version(owner, version)


def manifest(ctx: OpContext, owner: str, version: str | None) -> Operation[Manifest]:
    """The manifest of the current version, or of a kept one (a unique hash prefix works)."""
    keys = ctx.keys
    if version is None:
        raw = yield Cmd("HGET", keys.contexts, owner)
        if raw is None:
            raise no_context(owner)
        return parse_manifest(raw, owner)
    if len(version) < 64:
        kept = [text_of(v) for v in (yield Cmd("ZRANGE", keys.context_history(owner), 0, -1))]
        matches = [v for v in kept if v.startswith(version)]
        if len(matches) > 1:
            raise _ambiguous(owner, version, matches)
        if not matches:
            raise (yield from no_version(ctx, owner, version))
        version = matches[0]
    raw = yield Cmd("HGET", keys.context_manifests, f"{owner}|{version}")
    if raw is None:
        raise (yield from no_version(ctx, owner, version))
    return parse_manifest(raw, owner)


def _ambiguous(owner: str, prefix: str, matches: Sequence[str]) -> ValidationError:
    """A prefix that begins several kept versions: the first few of them, each cut where it
    differs from the others (at ``SHORT_VERSION`` characters at least)."""
    shown = _distinct_prefixes(matches)
    listed = first_few(shown, _AMBIGUOUS_LISTED)
    return ValidationError(
        f"version prefix {prefix!r} of {owner!r} is ambiguous: it begins {len(matches)} kept "
        f"versions ({listed}): give more characters of the hash "
        f"{said_of(CONTEXT_VERSIONS, owner)}"
    )


def _distinct_prefixes(versions: Sequence[str]) -> list[str]:
    """``versions`` cut to one length (``short_version``'s, or longer) at which no two of
    them are the same."""
    size = len(short_version(versions[0])) if versions else 0
    while len({v[:size] for v in versions}) < len(set(versions)):
        size += 1
    return [v[:size] for v in versions]


def no_context(owner: str) -> NotFound:
    return NotFound(f"no context was published by {owner!r}: check the owner name {LIST_CONTEXTS}")


def no_version(ctx: OpContext, owner: str, version: str) -> Operation[NotFound]:
    kept = yield Cmd("ZREVRANGE", ctx.keys.context_history(owner), 0, -1)
    if not kept:
        return no_context(owner)
    listed = ", ".join(short_version(text_of(v)) for v in kept)
    return NotFound(
        f"version {version[:16]} of {owner!r} is not kept (it was pruned, or never existed); "
        f"kept versions, newest first: {listed}; {CURRENT_VERSION}"
    )


def republished(owner: str) -> Conflict:
    return Conflict(
        f"the context of {owner!r} was republished {READ_ATTEMPTS} times while being read: "
        "try again (or read a fixed version)"
    )


# --- chunks


def fetch(
    ctx: OpContext,
    m: Manifest,
    indices: Sequence[int],
    *,
    hash_each: bool,
    whole: bool = False,
) -> Operation[list[bytes]]:
    """The raw bytes of the given chunks, checked against the manifest: each chunk's hash
    too with ``hash_each``; with ``whole`` (every chunk, in order) the hash of them all
    against the version, taken as the replies arrive."""
    if not indices:
        return []
    keys = ctx.keys
    cmds = tuple(Cmd("HGET", keys.chunk(m.parts[i].digest), "data") for i in indices)
    size = sum(m.parts[i].raw_len for i in indices)  # what the checks and zstd go through
    out = yield Fetch(cmds, functools.partial(_Chunks, m, indices, hash_each, whole), size)
    if isinstance(out, str):
        raise ChunkMissing(out)
    return out  # type: ignore[no-any-return]


class _Chunks:
    """Takes the chunk replies of ``fetch`` one by one: checks, decompresses and hashes each
    (the whole version's hash is fed chunk by chunk, so it overlaps the transfer). Its result
    is the chunks, or the digest of the first one missing; damaged data raises."""

    def __init__(self, m: Manifest, indices: Sequence[int], hash_each: bool, whole: bool) -> None:
        self.m, self.indices, self.hash_each, self.whole = m, indices, hash_each, whole
        self._start()

    def _start(self) -> None:
        self.out: list[bytes] = []
        self.missing: str | None = None
        self.damaged: str | None = None
        self.hasher = lane_hasher(self.m.algorithm) if self.whole else None

    def take(self, index: int, stored: Any) -> None:
        if index == 0:
            self._start()
        if self.missing is not None or self.damaged is not None:
            return
        part = self.m.parts[self.indices[index]]
        if stored is None:
            self.missing = part.digest
            return
        raw = self._raw(part, stored)
        if raw is None:
            self.damaged = part.digest
            return
        if self.hasher is not None:
            self.hasher.update(raw)
        self.out.append(raw)

    def _raw(self, part: Part, stored: Any) -> bytes | None:
        """The chunk's raw bytes, or None when it does not match its manifest."""
        if not isinstance(stored, bytes) or len(stored) != part.stored_len:
            return None
        if self.hash_each and _digest.digest(stored, self.m.algorithm) != part.digest:
            return None
        if part.codec == "zstd":
            try:
                stored = zstandard.ZstdDecompressor().decompress(
                    stored, max_output_size=part.raw_len
                )
            except zstandard.ZstdError:
                return None
        return stored if len(stored) == part.raw_len else None

    def result(self) -> list[bytes] | str:
        if self.missing is not None:
            return self.missing
        m = self.m
        named = f"context {m.info.owner!r} version {m.version[:16]}"
        if self.damaged is not None:
            raise corrupt(m, f"chunk {self.damaged[:16]} of {named} does not match its manifest")
        if self.hasher is not None and self.hasher.hexdigest() != m.version:
            # Every chunk had its manifest's length (and decompressed): their bytes, joined,
            # are not the version's.
            raise corrupt(m, f"the bytes of {named} do not hash to the version (its check)")
        return self.out


def corrupt(m: Manifest, said: str) -> CorruptRecord:
    """Damaged stored data of a version (written around the operations: a record stored
    unreadable): a plain publish reuses the chunks the server holds (every owner's, by
    content), so only a publish with repair sends them again."""
    return _damaged(m.info.owner, m.info.source, m.version, said, CorruptRecord)


def _damaged_manifest(
    owner: str | None, source: str, version: str | None, wrong: str
) -> _DamagedManifest:
    whose = "a context" if owner is None else f"the context of {owner!r}"
    said = f"the stored manifest of {whose} is damaged: {wrong}"
    return _damaged(owner, source, version, said, _DamagedManifest)


def _damaged(owner: str | None, source: str, version: str | None, said: str, kind: type[E]) -> E:
    """The one wording of damaged context data: what is damaged, and the publish with repair
    that mends it, said each way, as the reader may be any face."""
    who = "OWNER" if owner is None else owner
    return kind(
        f"{said} (damaged data): publish it again with repair, which sends every chunk anew "
        f"and writes its manifest again: {_repair_command(who, source)} (in Python: "
        f"publish_context({who!r}, ..., repair=True); over MCP: publish_context with "
        "repair=true)",
        record_id=version,
    )


def repair_command(info: ContextInfo) -> str:
    """The command that publishes ``info``'s context again with every chunk sent."""
    return _repair_command(info.owner, info.source)


def _repair_command(owner: str, source: str) -> str:
    """Its file is the source it was published from when that looks like a file's name (a
    CLI publish records the file's name, stdin as ``stdin``: ``-``); a source is a free
    label (a URL, ``v1``, ``mcp:AGENT``), so any other is said as FILE. The file is quoted
    for the shell (spaces, parentheses, quotes), and one whose name begins with ``-`` is
    written ``./-...``, or the command would take it for an option."""
    if source == "stdin":
        file = "-"
    elif _FILE_NAME.fullmatch(source) and "://" not in source:
        file = shlex.quote(f"./{source}" if source.startswith("-") else source)
    else:
        file = "FILE"
    return f"swarm context publish {file} --owner {owner} --repair"


def lost_chunk(m: Manifest, missing: ChunkMissing, lost: str | None) -> str:
    """A reader's step after a chunk of version ``m`` was missing: that version (the reader
    reads the pointer, or the kept version, again and retries: a version pruned meanwhile is
    then gone, and one republished has its chunks again), unless it had lost a chunk of this
    same version on its last try (``lost``): the version is still kept and its chunk is
    gone, which no retry mends: damaged data (CorruptRecord), never "republished" nor "not
    kept"."""
    if m.version == lost:
        named = f"context {m.info.owner!r} version {m.version[:16]}"
        raise corrupt(
            m, f"chunk {missing.digest[:16]} of {named} is missing, though the version is kept"
        ) from None
    return m.version


def not_text(owner: str, at: int | None = None) -> ValidationError:
    """A context (or the part of it asked for) that is not UTF-8 text: its bytes are had
    exact only as bytes, never as text with replacement characters in it."""
    where = f" (byte {at:,} is not)" if at is not None else ""
    return ValidationError(
        f"the context of {owner!r} is not UTF-8 text{where}, so it cannot be read or searched "
        f"as text without changing it: write its exact bytes to a file with swarm context get "
        f"{owner} -o FILE (get_context_bytes in Python)"
    )


# --- the copy of the current version (kept whole beside its chunks: context_publish)


def current(ctx: OpContext, owner: str) -> Operation[tuple[Manifest, CopyRead | None]]:
    """The current version's manifest and, in the same round trip, its bytes from the copy
    (in pieces, hashed as they arrive): None when there is no copy or it is not the version's
    size; else their check is still to come (``CopyRead.joined``), and when they are not the
    bytes the pointer names (damaged, or a publish came between the reads) the caller reads
    the chunks, never these."""
    keys, limit = ctx.keys, ctx.limits.context_copy_bytes
    copy = keys.context_copy(owner)
    cmds = [Cmd("HGET", keys.contexts, owner)]
    start = 0
    while start < limit:
        end = min(limit, max(2 * start, COPY_PIECE))
        cmds.append(Cmd("GETRANGE", copy, start, end - 1))
        start = end
    # Its size is known once it is read: a small one is checked in place by the async shell.
    found = yield Fetch(tuple(cmds), functools.partial(_Copy, owner), None)
    if found is None:
        raise no_context(owner)
    return found  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CopyRead:
    """The pieces of the copy of a version, as many bytes as it holds, their hash begun."""

    pieces: list[bytes]
    hasher: _digest.Hasher
    version: str

    def joined(self) -> bytes | None:
        """The bytes, joined, when their hash is the version's; else None. Joined first: the
        hash lane hashes the last piece meanwhile (BLAKE3 lets go of the GIL), where checking
        first made the join wait for it."""
        raw = _join(self.pieces)
        return raw if self.hasher.hexdigest() == self.version else None


class _Copy:
    """Takes the replies of ``current``: the pointer's manifest, then the copy's pieces,
    each hashed as it arrives (big ones on the hash lane, while the next is read). Its result
    is the manifest and the pieces (a ``CopyRead``) when they are as many bytes as the
    version (None in their place otherwise), or None when there is no context."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._start()

    def _start(self) -> None:
        self.m: Manifest | None = None
        self.error: Exception | None = None
        self.hasher: _digest.Hasher | None = None
        self.pieces: list[bytes] = []
        self.size = 0

    def take(self, index: int, reply: Any) -> None:
        if index == 0:
            self._start()
            try:
                self.m = None if reply is None else parse_manifest(reply, self.owner)
            except Exception as exc:  # raised by result(): take never raises
                self.error = exc
                return
            if self.m is not None:
                self.hasher = lane_hasher(self.m.algorithm)
            return
        if self.hasher is None or not isinstance(reply, bytes) or not reply:
            return
        assert self.m is not None
        self.size += len(reply)
        if self.size > self.m.info.size_bytes:  # not this version's copy: stop hashing
            self.hasher = None
            return
        self.hasher.update(reply)
        self.pieces.append(reply)

    def result(self) -> tuple[Manifest, CopyRead | None] | None:
        if self.error is not None:
            raise self.error
        if self.m is None:
            return None
        if self.hasher is None or self.size != self.m.info.size_bytes:
            return self.m, None
        return self.m, CopyRead(self.pieces, self.hasher, self.m.version)


def fetch_whole(ctx: OpContext, m: Manifest) -> Operation[bytes]:
    """Every chunk of a version, checked against its hash as they arrive, joined (and
    cached)."""
    chunks = yield from fetch(ctx, m, range(len(m.parts)), hash_each=False, whole=True)
    return (yield from _whole_bytes(ctx, m, chunks))


def _join(chunks: list[bytes]) -> bytes:
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _joined(ctx: OpContext, m: Manifest, chunks: list[bytes]) -> bytes:
    raw = _join(chunks)
    cache_put(ctx, m.version, raw)
    return raw


# --- the process's cache (its disk layer reads and writes files: work for Compute)


def cached(ctx: OpContext, version: str) -> Operation[bytes | None]:
    if ctx.cache is None:
        return None
    disk = ctx.cache.directory is not None
    found: bytes | None = yield Compute(ctx.cache.get, (version,), None if disk else 0)
    return found


def cache_put(ctx: OpContext, version: str, raw: bytes) -> None:
    if ctx.cache is not None:
        ctx.cache.put(version, raw)


def keep(ctx: OpContext, version: str, raw: bytes) -> Compute:
    """``cache_put`` as the work of a step (a file written when the cache has a disk)."""
    disk = ctx.cache is not None and ctx.cache.directory is not None
    return Compute(cache_put, (ctx, version, raw), len(raw) if disk else 0)


def load(ctx: OpContext, owner: str, version: str | None) -> Operation[tuple[Manifest, bytes]]:
    """The manifest and the whole bytes of a version: from the cache when it holds them (one
    HGET of the pointer), else fetched and verified against the version's hash."""
    return (yield from _loaded(ctx, owner, version, cached, _whole_bytes))


def load_text(
    ctx: OpContext, owner: str, version: str | None
) -> Operation[tuple[Manifest, tuple[str, bool]]]:
    """``load`` as text (and whether it was valid UTF-8: ``decoded``). The cache keeps a
    version read this way as its text alone (``ContextCache.put_text``)."""
    return (yield from _loaded(ctx, owner, version, _cached_text, _whole_text))


def _loaded(
    ctx: OpContext,
    owner: str,
    version: str | None,
    from_cache: Callable[[OpContext, str], Operation[T | None]],
    from_chunks: Callable[[OpContext, Manifest, list[bytes]], Operation[T]],
) -> Operation[tuple[Manifest, T]]:
    # A reader that cannot hold the current version asks for its copy with the pointer.
    together = version is None and _lacks(ctx, owner)
    lost: str | None = None  # the version a chunk was missing of, on the last try
    for _ in range(READ_ATTEMPTS):
        copy: CopyRead | None = None
        if together:
            together = False  # once: a retry reads the pointer alone
            m, copy = yield from current(ctx, owner)
        else:
            m = yield from manifest(ctx, owner, version)
        found = yield from from_cache(ctx, m.version)
        if found is None:
            try:
                raw = None if copy is None else (yield Compute(copy.joined, (), m.info.size_bytes))
                chunks = [raw] if raw is not None else (yield from _fetch_all(ctx, m))
            except ChunkMissing as missing:
                # Read again: a version pruned meanwhile is NotFound (a kept one asked for)
                # or the new current one is read; a version still kept lost a chunk.
                lost = lost_chunk(m, missing, lost)
                continue
            found = yield from from_chunks(ctx, m, chunks)
        if version is None and ctx.cache is not None:
            ctx.cache.read(ctx.keys.context_copy(owner), m.version)
        return m, found
    raise republished(owner)


def _fetch_all(ctx: OpContext, m: Manifest) -> Operation[list[bytes]]:
    # ``fetch`` is looked up on the module at call time, so that a test can wrap it.
    return (yield from fetch(ctx, m, range(len(m.parts)), hash_each=False, whole=True))


def _lacks(ctx: OpContext, owner: str) -> bool:
    """Whether a reader cannot hold the owner's current version (``ContextCache.may_hold``),
    so that it looks for the copy with the pointer."""
    if ctx.limits.context_copy_bytes <= 0:
        return False
    return ctx.cache is None or not ctx.cache.may_hold(ctx.keys.context_copy(owner))


def _whole_bytes(ctx: OpContext, m: Manifest, chunks: list[bytes]) -> Operation[bytes]:
    raw: bytes = yield Compute(_joined, (ctx, m, chunks), m.info.size_bytes)
    return raw


def _whole_text(ctx: OpContext, m: Manifest, chunks: list[bytes]) -> Operation[tuple[str, bool]]:
    text: tuple[str, bool] = yield Compute(_kept_text, (ctx, m, chunks), m.info.size_bytes)
    return text


def _cached_text(ctx: OpContext, version: str) -> Operation[tuple[str, bool] | None]:
    if ctx.cache is None:
        return None
    text: tuple[str, bool] | None = ctx.cache.known(version, _TEXT)
    if text is not None:
        return text
    raw = yield from cached(ctx, version)
    if raw is None:
        return None
    found: tuple[str, bool] = yield Compute(decoded, (ctx, version, raw), len(raw))
    return found


def _kept_text(ctx: OpContext, m: Manifest, chunks: list[bytes]) -> tuple[str, bool]:
    raw = _join(chunks)
    text, valid = _decode(raw)
    if ctx.cache is None:
        return text, valid
    if valid:
        ctx.cache.put_text(m.version, text, raw)
    else:  # not UTF-8: the bytes are kept, not a lossy text
        ctx.cache.put(m.version, raw)
    return ctx.cache.derived(m.version, _TEXT, lambda: (text, valid))


def _decode(raw: bytes) -> tuple[str, bool]:
    """The text, and whether the bytes were valid UTF-8 (else undecodable bytes are
    replaced: good enough to search and slice, not to hand out as the context)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def decoded(ctx: OpContext, version: str, raw: bytes) -> tuple[str, bool]:
    """``_decode``, kept with the cached bytes so that a warm read does not decode again."""
    if ctx.cache is None:
        return _decode(raw)
    return ctx.cache.derived(version, _TEXT, lambda: _decode(raw))
