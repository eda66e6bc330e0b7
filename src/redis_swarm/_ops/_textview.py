"""Pure functions over a context's bytes: line indexes, bounded slices and search.

Nothing here talks to Redis. A slice is cut from a *window*: a run of the context's bytes
(the whole context, or the few chunks that cover the range asked for), known by where it
starts and how many newlines precede it, so that a line range of a 64 MiB context needs
only the chunks that hold it.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import re
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import re2

from .._context_records import SearchHit
from .._errors import ValidationError
from .._validate import MAX_AROUND, MAX_HITS, check_flag

__all__ = [
    "SNIPPET_CHARS",
    "NotText",
    "Window",
    "check_search",
    "count_lines",
    "line_starts",
    "search_text",
    "slice_bytes",
    "slice_lines",
]

# A hit's line is cut to this many characters around the match (context lines: from their
# start), so that one minified 1 MB line cannot flood an agent's window.
SNIPPET_CHARS = 240
MAX_PATTERN_CHARS = 1000
# RE2's cap on counted repetition ({n,m}), nested counts multiplied (re2/parse.cc kMaxRepeat).
RE2_MAX_REPEAT = 1000


def count_lines(data: bytes) -> int:
    """Lines of a text: a final newline does not start another line; empty text has none."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


# How much of a text ``line_starts`` indexes in one C call. Each call holds the GIL from
# start to end, so an AsyncSwarm that indexes in a worker thread stalled its event loop for
# the whole text (70-100 ms for 3.2 MB of short lines, measured). Off the main thread, the
# GIL is offered between two pieces (about half a millisecond each): ``time.sleep(0)`` lets
# it go (~90 us here), where the interpreter would switch only every 5 ms
# (``sys.getswitchinterval``); on the main thread nobody waits for it.
LINE_INDEX_PIECE = 1 << 18


def line_starts(text: bytes | str) -> Sequence[int]:
    """Offsets where each line starts (``0`` first): C speed, 8 bytes a line, in pieces of
    ``LINE_INDEX_PIECE`` (see there)."""
    starts = array("q", [0])
    offer = threading.current_thread() is not threading.main_thread()
    for at in range(0, len(text), LINE_INDEX_PIECE):
        if at and offer:
            time.sleep(0)  # (the GIL offered to the other threads: see LINE_INDEX_PIECE)
        piece = text[at : at + LINE_INDEX_PIECE]
        parts: Sequence[bytes | str] = (
            piece.split(b"\n") if isinstance(piece, bytes) else piece.split("\n")
        )
        # Within the piece, the line after its k-th newline starts after the first k parts
        # and their k newlines (the last part runs on into the next piece).
        lengths = itertools.accumulate(map(len, itertools.islice(parts, len(parts) - 1)))
        starts.extend(map(operator.add, lengths, itertools.count(at + 1)))
    return starts


@dataclass(frozen=True)
class Window:
    """``data`` = the context's bytes from ``start``; ``lines_before`` newlines precede it."""

    data: bytes
    start: int
    lines_before: int
    starts: Sequence[int]  # line_starts(data)
    at_end: bool = True  # data runs to the end of the context


@dataclass(frozen=True)
class Cut:
    text: str
    start_line: int
    end_line: int
    offset: int
    length: int
    truncated: bool


def _is_continuation(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def _char_floor(data: bytes, pos: int) -> int:
    """Move ``pos`` back to the start of the UTF-8 character it falls in."""
    while 0 < pos < len(data) and _is_continuation(data[pos]):
        pos -= 1
    return pos


def _char_ceil(data: bytes, pos: int) -> int:
    """Move ``pos`` forward past the UTF-8 character it falls in."""
    while 0 < pos < len(data) and _is_continuation(data[pos]):
        pos += 1
    return pos


class NotText(ValueError):
    """A slice's bytes are not UTF-8: ``at`` is the context's offset of the first that is
    not. A slice is the context's exact text or nothing: never text with U+FFFD put in."""

    def __init__(self, at: int) -> None:
        super().__init__(f"byte {at} is not UTF-8")
        self.at = at


def _decode(data: bytes, start: int) -> str:
    """``data`` (the context's bytes from ``start``) as text; NotText if it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotText(start + exc.start) from None


def slice_lines(win: Window, first: int, last: int, total_lines: int, max_bytes: int) -> Cut:
    """Lines ``first..last`` (1-based, inclusive, ``last`` clamped), cut at a line end to stay
    within ``max_bytes``; a single longer line is cut at a character boundary."""
    last = min(last, total_lines)
    # Index in win.starts of the start of line n: n - 1 - lines_before.
    begin = win.starts[first - 1 - win.lines_before]
    end_index = last - win.lines_before  # start of line last+1, if the window holds it
    if end_index < len(win.starts):
        end, exact = win.starts[end_index], True
    else:  # the window ends with line ``last``, unless it was cut short
        end, exact = len(win.data), win.at_end
    truncated = False
    if end - begin > max_bytes or not exact:
        truncated = True
        limit = min(begin + max_bytes, len(win.data))
        # The last line start within the limit, after the first line: cut there.
        k = bisect.bisect_right(win.starts, limit) - 1
        if win.starts[k] > begin:
            end = win.starts[k]
            last = k + win.lines_before
        else:
            end = _char_floor(win.data, limit)
            if end <= begin:  # a bound smaller than the first character: that character
                end = _char_ceil(win.data, begin + 1)
            last = first
    return Cut(
        text=_decode(win.data[begin:end], win.start + begin),
        start_line=first,
        end_line=last,
        offset=win.start + begin,
        length=end - begin,
        truncated=truncated,
    )


def slice_bytes(win: Window, offset: int, length: int, max_bytes: int) -> Cut:
    """Bytes ``offset..offset+length`` widened to whole characters, at most ``max_bytes``
    (and a character more where the bound cuts one). ``truncated``: the slice ends before
    the range asked for does (the context's end is not a cut), so ``offset + length`` of the
    result is where to read on."""
    lo = offset - win.start
    wanted = lo + length
    hi = min(lo + min(length, max_bytes), len(win.data))
    begin = _char_floor(win.data, lo)
    end = _char_ceil(win.data, hi) if hi > begin else begin
    truncated = end < (min(wanted, len(win.data)) if win.at_end else wanted)
    chunk = win.data[begin:end]
    first = win.lines_before + bisect.bisect_right(win.starts, begin)
    if win.at_end and begin == len(win.data) and (not win.data or win.data[-1] == 0x0A):
        # The very end, after a final newline: no line starts there, so the slice is
        # placed at the last line (an empty context has none: lines 1-0, as read by lines).
        first -= 1
        return Cut("", max(first, 1), first, win.start + begin, 0, truncated)
    last = first + chunk.count(b"\n", 0, max(len(chunk) - 1, 0))
    return Cut(
        text=_decode(chunk, win.start + begin),
        start_line=first,
        end_line=last,
        offset=win.start + begin,
        length=end - begin,
        truncated=truncated,
    )


def _snippet(line: str, at: int = 0, width: int = 0) -> str:
    """``line`` cut to SNIPPET_CHARS around ``at..at+width``, marking the cuts with '…'."""
    if len(line) <= SNIPPET_CHARS:
        return line
    room = max(SNIPPET_CHARS - min(width, SNIPPET_CHARS), 0)
    lo = max(0, min(at - room // 2, len(line) - SNIPPET_CHARS))
    hi = lo + SNIPPET_CHARS
    return ("…" if lo > 0 else "") + line[lo:hi] + ("…" if hi < len(line) else "")


def compile_regex(pattern: str, *, ignore_case: bool = False) -> re2._Regexp[bytes]:
    """``pattern`` compiled by RE2, a linear-time engine: no pattern can make a search hang
    (``(a+)+$`` is as fast as ``a+$``). ``^`` and ``$`` match at line ends, as in grep.
    ``ignore_case``: letters match in either case, by Unicode's simple case folding.

    RE2 has no backreferences or lookaround, and caps counted repetition; a pattern that
    goes past RE2's bounds is refused with a message that names them, one that uses what RE2
    lacks with a message that says so, and one that no engine accepts as invalid.
    """
    try:
        return re2.compile(("(?m)" + pattern).encode(), _re2_options(ignore_case=ignore_case))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        reason = str(reason)
        # RE2's words for its bounds (re2/parse.cc, re2/re2.cc): a pattern Python accepts
        # may pass them, and is not refused for what RE2 lacks.
        if reason.startswith("invalid repetition size"):
            raise ValidationError(
                f"the search pattern repeats more than the regex engine (RE2) allows "
                f"({reason}): a count in {{n}}, {{n,}} or {{n,m}} is at most "
                f"{RE2_MAX_REPEAT:,}, and counts nested in one another multiply to at most "
                f"{RE2_MAX_REPEAT:,} ((a{{10}}){{100}} is the most). Use smaller counts, + or *, "
                "or search for plain text instead of a regex"
            ) from None
        if reason.startswith("pattern too large"):
            raise ValidationError(
                "the search pattern compiles to more than the regex engine (RE2) takes "
                f"({reason}): a large count of a wide class (\\pL{{1000}}: any letter, 1000 "
                "times) costs the most. Use smaller counts, + or *, or search for plain text"
            ) from None
        try:
            re.compile(pattern)
        except re.error as invalid:
            raise ValidationError(
                f"the search pattern is not a valid regular expression ({invalid}): "
                "fix it, or search for plain text instead of a regex"
            ) from None
        raise ValidationError(
            f"the search pattern uses what the linear-time regex engine (RE2) does not have "
            f"({reason}): no backreferences (\\1), lookahead or lookbehind ((?=, (?!, (?<=, (?<!), "
            "possessive or atomic groups; write \\z for the end of the text. Rewrite it, or "
            "search for plain text instead of a regex"
        ) from None


@functools.cache
def _re2_options(*, ignore_case: bool = False) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error goes back to the caller, not to stderr
    options.case_sensitive = not ignore_case
    return options


def _ignoring_case(pattern: str) -> re2._Regexp[bytes]:
    """Plain text found in either case: the text quoted as an RE2 regex, rather than found in
    a lowered copy of the text, whose offsets would not be the text's (lowering changes the
    length of some characters: ``İ`` becomes two) and which would copy a 64 MiB context."""
    return re2.compile(re2.escape(pattern.encode()), _re2_options(ignore_case=True))


class _Utf8Finder:
    """Successive RE2 searches over the UTF-8 of ``text`` from character positions that only
    grow (line starts): the text is encoded once and every offset converted incrementally,
    so a whole search stays linear in the text."""

    def __init__(self, compiled: re2._Regexp[bytes], text: str) -> None:
        self.compiled = compiled
        self.text = text
        self.data = text.encode()
        self.char = self.byte = 0  # one position known both as a character and a byte offset

    def __call__(self, pos: int) -> tuple[int, int] | None:
        if pos < self.char:
            self.char = self.byte = 0
        self.byte += len(self.text[self.char : pos].encode())
        self.char = pos
        match = self.compiled.search(self.data, self.byte)
        if match is None:
            return None
        begin, end = match.span()
        at = self.char + len(self.data[self.byte : begin].decode())
        return at, at + len(self.data[begin:end].decode())


def check_search(pattern: object, *, max_hits: object, around: object, ignore_case: object) -> None:
    """A search's arguments, checked before anything is fetched: the pattern a non-empty
    ``str`` (bytes or a number is named as what it is, not called empty), the bounds
    integers in range (a bool is no count)."""
    if not isinstance(pattern, str):
        raise ValidationError(
            f"the search pattern must be text (a str), not {type(pattern).__name__}: pass "
            "the text to look for"
        )
    if not pattern:
        raise ValidationError("the search pattern is empty: pass the text to look for")
    try:  # (plain text would match nothing, a regex would fail inside its engine)
        pattern.encode()
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"the search pattern holds {pattern[exc.start]!r} at character {exc.start:,}, "
            "which is not valid Unicode (a lone surrogate, half of a character): no text "
            "holds it, plain or regex; fix the pattern"
        ) from None
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValidationError(
            f"the search pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_CHARS}"
        )
    for name, value, lo, hi in (
        ("max_hits", max_hits, 1, MAX_HITS),
        ("around", around, 0, MAX_AROUND),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValidationError(f"{name} must be between {lo} and {hi}, not {value!r}")
    check_flag("ignore_case", ignore_case)


def search_text(
    text: str,
    starts: Sequence[int],
    pattern: str,
    *,
    regex: bool,
    max_hits: int,
    around: int,
    ignore_case: bool = False,
) -> list[SearchHit]:
    """At most ``max_hits`` lines matching ``pattern`` (one hit per line), each with up to
    ``around`` lines before and after; every line is cut to SNIPPET_CHARS. ``ignore_case``:
    letters match in either case (Unicode simple case folding, as grep -i and RE2 do)."""
    check_search(pattern, max_hits=max_hits, around=around, ignore_case=ignore_case)
    find: Callable[[int], tuple[int, int] | None]
    if regex:
        find = _Utf8Finder(compile_regex(pattern, ignore_case=ignore_case), text)
    elif ignore_case:
        find = _Utf8Finder(_ignoring_case(pattern), text)
    else:

        def find(pos: int) -> tuple[int, int] | None:
            at = text.find(pattern, pos)
            return (at, at + len(pattern)) if at >= 0 else None

    total = len(starts) - (1 if text.endswith("\n") or not text else 0)

    def line_text(index: int) -> str:
        begin = starts[index]
        end = starts[index + 1] - 1 if index + 1 < len(starts) else len(text)
        return text[begin:end]

    hits: list[SearchHit] = []
    pos = 0
    while len(hits) < max_hits and pos <= len(text):
        found = find(pos)
        if found is None:
            break
        at, end = found
        index = bisect.bisect_right(starts, at) - 1
        if index >= total:  # a match after the final newline (e.g. '^' on empty tail)
            break
        line = line_text(index)
        hits.append(
            SearchHit(
                line=index + 1,
                text=_snippet(line, at - starts[index], end - at),
                before=tuple(_snippet(line_text(i)) for i in range(max(0, index - around), index)),
                after=tuple(
                    _snippet(line_text(i)) for i in range(index + 1, min(total, index + 1 + around))
                ),
            )
        )
        pos = starts[index + 1] if index + 1 < len(starts) else len(text) + 1
    return hits
