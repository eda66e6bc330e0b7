"""The records of contexts: a published version (``ContextInfo``), a slice, a search hit
and how hits are grouped as ``grep -n -C`` shows them, what a gc of chunks did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from ._codec import Record

__all__ = [
    "Compression",
    "ContextInfo",
    "ContextSlice",
    "GcReport",
    "GrepLine",
    "SearchHit",
    "grep_groups",
]

# How a publish stores a context's chunks (``publish_context``'s ``compression``; None: as
# the handle's setting says).
Compression = Literal["zstd", "none"] | None


# The subtypes (or ``+suffix``es) of media types outside ``text/*`` that are text too
# (``application/json``, ``image/svg+xml``): a context published as one must be UTF-8.
TEXT_FORMATS = frozenset({"json", "xml", "yaml", "x-yaml", "toml", "javascript", "csv"})


def says_text(media_type: str) -> bool:
    """Whether ``media_type`` declares UTF-8 text, which ``get_context``, ``read_context``,
    ``search_context`` and a worker's parent context read: ``text/*``, a ``charset``, or a
    text format (``TEXT_FORMATS``); not ``charset=binary`` (what ``file -bi`` says of a
    binary file)."""
    kind, _, params = media_type.lower().partition(";")
    main, _, sub = kind.strip().partition("/")
    given = params.replace(" ", "").split(";")
    charsets = [p.removeprefix("charset=").strip('"') for p in given if p.startswith("charset=")]
    return (
        main == "text"
        or any(charset != "binary" for charset in charsets)
        or sub.rsplit("+", 1)[-1] in TEXT_FORMATS
    )


@dataclass(frozen=True)
class ContextInfo(Record):
    """One published version of an owner's context (its manifest, without the chunk list).

    ``version`` is the BLAKE3 hash of the raw bytes (what ``b3sum`` prints for the file;
    SHA-256, as ``sha256sum`` prints, for versions published before BLAKE3);
    ``compression`` is ``"zstd"`` when at least one chunk is stored compressed.
    ``changed`` is False only in what a publish returns when the version was current already
    (the same content, source and media type): it wrote nothing. Stored manifests do not
    carry it, so every version read back says True.
    """

    owner: str
    version: str
    size_bytes: int
    tokens_est: int
    chunks: int
    compression: str | None = None
    source: str = ""
    media_type: str = "text/markdown"
    created_at: int = 0
    total_lines: int = 0
    changed: bool = True

    @property
    def is_text(self) -> bool:
        """Whether its media type declares UTF-8 text (``says_text``): read and searched as
        text; else its bytes are fetched whole (``get``)."""
        return says_text(self.media_type)


@dataclass(frozen=True)
class GcReport(Record):
    """What a gc of context chunks did (or, with ``dry_run``, would do).

    ``publishes_given_up``: publishes in flight for longer than the grace period, whose
    chunks were released (their flip fails); ``holds_released``: holder tokens removed from
    their chunks (pruned versions', dead publishes'); ``chunks_deleted`` / ``bytes_freed``:
    the chunks whose last holder went, and their stored bytes.
    """

    dry_run: bool
    publishes_given_up: int
    holds_released: int
    chunks_deleted: int
    bytes_freed: int


@dataclass(frozen=True)
class ContextSlice(Record):
    """A bounded piece of a context: a line range or a byte range.

    Lines are 1-based and inclusive; ``offset``/``length`` are in bytes of the UTF-8 text.
    ``truncated`` is True when the slice ends before the range asked for (the slice limit):
    ask again from ``offset + length`` for the rest, or from ``end_line + 1`` when the text
    ends a line (a cut inside a long line would skip that line's rest).
    """

    owner: str
    version: str
    text: str
    start_line: int
    end_line: int
    total_lines: int
    offset: int
    length: int
    size_bytes: int
    truncated: bool = False


@dataclass(frozen=True)
class SearchHit(Record):
    """One matching line (1-based) with up to ``around`` lines before and after it."""

    line: int
    text: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


class GrepLine(NamedTuple):
    """One line of search output: its number, whether it matched, its text."""

    number: int
    hit: bool
    text: str


def grep_groups(hits: Sequence[SearchHit], after_line: int = 0) -> list[list[GrepLine]]:
    """The lines of ``hits`` as ``grep -n -C`` shows them, in line order: each line once,
    a matching line as the hit even where it is also another hit's context, and runs of
    touching lines in one group (groups are printed apart, with ``--`` between).
    ``after_line``: the last line an earlier page showed; context lines up to it are not
    shown again (a hit always is)."""
    lines: dict[int, GrepLine] = {}
    for h in hits:
        first = h.line - len(h.before)
        for i, text in enumerate(h.before):
            lines.setdefault(first + i, GrepLine(first + i, False, text))
        lines[h.line] = GrepLine(h.line, True, h.text)
        for i, text in enumerate(h.after, start=h.line + 1):
            lines.setdefault(i, GrepLine(i, False, text))
    groups: list[list[GrepLine]] = []
    for number in sorted(lines):
        line = lines[number]
        if number <= after_line and not line.hit:
            continue
        if groups and groups[-1][-1].number + 1 == number:
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups
