"""Keeping every tool result inside what agent clients accept.

Every result of this server is measured against the core's token ``Budget`` (``redis_swarm.
_budget``: default 8,000 estimated tokens at ~4 characters per token, the same budget the
hooks' context is held to) and, when larger, split into pages that the agent fetches one by
one:

- results with a natural order (a context's text, findings, agents, search hits) carry a
  stateless cursor of their own that says where the next page starts;
- anything else that is still too large (a task with a megabyte of data, a long message) is
  split by ``Spill``: the first page is returned, the rest are kept in memory for
  ``next_page(cursor)``.

Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .._budget import (
    CHARS_PER_TOKEN,
    DEFAULT_BUDGET_TOKENS,
    MIN_BUDGET_TOKENS,
    Budget,
    client_end,
    client_len,
    clip,
    estimate_tokens,
)
from .._codec import dumps
from .._errors import ValidationError

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_BUDGET_TOKENS",
    "MIN_BUDGET_TOKENS",
    "Budget",
    "Spill",
    "client_len",
    "clip",
    "cut",
    "decode_cursor",
    "encode_cursor",
    "estimate_tokens",
    "same_filters",
]


def cut(text: str, start: int, max_chars: int) -> int:
    """Where a page of ``text`` that begins at ``start`` should end (exclusive): at most
    ``max_chars`` characters as clients count them (``client_len``: an emoji is two).

    Pages end after a newline when one falls in the second half of the page, so that a
    page holds whole lines; a single line longer than a page is split where it must be
    (between two characters, never inside one).
    """
    end = client_end(text, max_chars, start)
    if end >= len(text):
        return len(text)
    newline = text.rfind("\n", start + (end - start) // 2, end)
    return newline + 1 if newline >= 0 else end


# What each kind of cursor holds, member by member, and the types each may have: a cursor
# whose state holds a member of another type was not made here (forged, or edited), and is
# refused as damaged rather than read as a page of something else.
_CURSOR_STATES: dict[str, dict[str, tuple[type, ...]]] = {
    # next_page: the spilled result's key, the page's index
    "page": {"k": (str,), "i": (int,)},
    # get_context: owner, version, byte offset; the line it is inside, when not at a start
    "context": {"o": (str,), "v": (str,), "c": (int,), "l": (int,)},
    # search_context: owner, version, pattern, regex, ignore_case, around, hits shown, the
    # last line shown
    "search": {
        "o": (str,), "v": (str,), "p": (str,), "r": (bool,), "i": (bool,),
        "a": (int,), "s": (int,), "l": (int,),
    },
    # list_findings: the core's cursor, findings of its page shown, pass, queue, shard
    "findings": {
        "c": (str, type(None)), "s": (int,),
        "p": (str, type(None)), "q": (str, type(None)), "h": (str, type(None)),
    },
    # list_agents: agents shown, role, alive
    "agents": {"o": (int,), "r": (str, type(None)), "a": (bool, type(None))},
}  # fmt: skip


def _fits(kind: str, state: dict[str, Any]) -> bool:
    """Whether each member of ``state`` that a ``kind`` cursor holds is of its types."""
    shape = _CURSOR_STATES[kind]
    for member, value in state.items():
        types = shape.get(member)
        # (A bool is an int to Python, not to a cursor: true is no offset, 1 no flag.)
        if types is None:  # (read by no tool)
            continue
        if bool not in types if isinstance(value, bool) else not isinstance(value, types):
            return False
    return True


def encode_cursor(kind: str, state: dict[str, Any]) -> str:
    """An opaque, stateless cursor: the tool it belongs to, then where the next page starts."""
    raw = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()
    return f"{kind}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


# How to start a listing again, for a cursor that cannot be read: the tools whose cursor is
# optional start at the first page without one; next_page needs one, which only the call that
# returned the first page gives.
_START_AGAIN = "omit the cursor to start at the first page"
_PAGES_AGAIN = (
    "repeat the call that returned the first page (the tool you called before next_page) "
    "to start again"
)


def decode_cursor(kind: str, cursor: str) -> dict[str, Any]:
    """The state inside a cursor made by ``encode_cursor(kind, ...)``; refuses any other."""
    again = _PAGES_AGAIN if kind == "page" else _START_AGAIN
    prefix, _, body = cursor.partition(".")
    if prefix != kind or not body:
        if kind == "page":
            take = (
                "next_page takes the next_cursor of a result that says to call next_page (any "
                "other cursor goes back to the tool that returned it)"
            )
        else:
            take = f"pass the next_cursor of the previous {kind} page unchanged"
        raise ValidationError(f"{cursor[:40]!r} is not a {kind} cursor: {take}, or {again}")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError):
        state = None
    if isinstance(state, dict):
        if _fits(kind, state):
            return state
        # (One that decoded is said damaged as the tools say an offset out of range.)
        again = _PAGES_AGAIN if kind == "page" else "omit it to start at the first page"
    raise ValidationError(
        f"the {kind} cursor {cursor[:40]!r} is damaged: pass the next_cursor of the "
        f"previous page unchanged, or {again}"
    )


def same_filters(tool: str, state: dict[str, Any], given: dict[str, tuple[str, Any]]) -> None:
    """Refuse a filter given with a cursor that pages another one: the cursor's state holds
    the filters of its listing (``given``: member -> the argument and the value passed, None
    when left out), and going on with it under other filters would list what they exclude.
    A filter left out goes on with the cursor's."""
    for member, (argument, value) in given.items():
        paged = state.get(member)
        if value is not None and value != paged:
            what = f"{argument}={dumps(paged)}" if paged is not None else f"no {argument}"
            raise ValidationError(
                f"this cursor pages {tool} with {what}: leave {argument} out to go on, or "
                f"call {tool}({argument}={dumps(value)}) without the cursor to start anew"
            )


@dataclass
class _Spilled:
    pages: list[str]
    touched: float


class Spill:
    """Pages of oversized results, kept in memory for ``next_page``.

    Bounded by entry count, total size and age; a cursor that has been evicted gets an error
    that tells the agent to repeat the original call.
    """

    def __init__(
        self, *, max_entries: int = 64, max_chars: int = 64 * 1024 * 1024, ttl_s: float = 3600.0
    ) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.ttl_s = ttl_s
        self._items: OrderedDict[str, _Spilled] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def paginate(self, document: str, budget: Budget) -> tuple[str, dict[str, Any]]:
        """Split ``document`` into pages; return the first page and its header."""
        pages: list[str] = []
        start = 0
        while start < len(document):
            end = cut(document, start, budget.body_chars)
            pages.append(document[start:end])
            start = end
        if len(pages) <= 1:
            return document, {"page": 1, "pages": 1}
        key = secrets.token_urlsafe(9)
        with self._lock:
            self._expire()
            self._items[key] = _Spilled(pages, time.monotonic())
            self._size += len(document)
            while self._items and (
                len(self._items) > self.max_entries or self._size > self.max_chars
            ):
                _, old = self._items.popitem(last=False)
                self._size -= sum(len(p) for p in old.pages)
        return pages[0], self._header(key, 0, len(pages))

    def page(self, cursor: str) -> tuple[str, dict[str, Any]]:
        """The page a ``next_page`` cursor points at, and its header."""
        state = decode_cursor("page", cursor)
        key, index = state.get("k"), state.get("i")
        entry = None
        if isinstance(key, str):
            with self._lock:
                self._expire()
                entry = self._items.get(key)
                if entry is not None:
                    entry.touched = time.monotonic()
                    self._items.move_to_end(key)
        if entry is None or not isinstance(index, int) or not 0 < index < len(entry.pages):
            raise ValidationError(
                "this next_page cursor has expired or is unknown (pages are kept in this server "
                "process for an hour after their last use): repeat the call that returned it "
                "(a message read_inbox split into pages: read_inbox(message_id=ID), its id on "
                "page 1, shows it again)"
            )
        assert isinstance(key, str)
        return entry.pages[index], self._header(key, index, len(entry.pages))

    @staticmethod
    def _header(key: str, index: int, total: int) -> dict[str, Any]:
        header: dict[str, Any] = {"page": index + 1, "pages": total}
        if index + 1 < total:
            cursor = encode_cursor("page", {"k": key, "i": index + 1})
            header["next_cursor"] = cursor
            header["next"] = (
                f"this result is longer than one tool result may be: call "
                f"next_page(cursor={dumps(cursor)}) for page {index + 2} of {total}"
            )
        return header

    def _expire(self) -> None:
        deadline = time.monotonic() - self.ttl_s
        while self._items:
            key, entry = next(iter(self._items.items()))
            if entry.touched >= deadline:
                break
            del self._items[key]
            self._size -= sum(len(p) for p in entry.pages)

    def __len__(self) -> int:
        return len(self._items)
