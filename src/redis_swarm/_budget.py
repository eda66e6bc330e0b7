"""How much text an agent is handed at once, in estimated tokens: one budget for every face
that puts swarm text in a model's context (an MCP tool result, a hook's additionalContext).

Claude Code warns above 10,000 tokens per tool result and truncates near 25,000; its hooks
cap each output string at 10,000 characters. A face measures what it hands over against a
``Budget`` (default 8,000 estimated tokens at ~4 characters per token) and cuts with ``clip``,
which says what was left out and where the rest is. Nothing here does I/O.

Characters are counted as the clients count them (``client_len``): Claude Code and Gemini
CLI are Node programs, and a JavaScript string's length is in UTF-16 code units, so a
character outside the Basic Multilingual Plane (an emoji, 🐝) counts two. Counted in Python's
code points, a text of emoji under a cap by our count is nearly twice over it by theirs, and
the client cuts its end (the report command, a lease token). A cut (``client_end``) falls
between two characters, never inside one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import ConfigError

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_BUDGET_TOKENS",
    "MIN_BUDGET_TOKENS",
    "Budget",
    "client_end",
    "client_len",
    "clip",
    "estimate_tokens",
]

CHARS_PER_TOKEN = 4
DEFAULT_BUDGET_TOKENS = 8_000
MIN_BUDGET_TOKENS = 500
# Room kept on every page for the JSON header that says what the page is and how to go on.
HEADER_CHARS = 1_200
# The characters that are two UTF-16 code units (a surrogate pair) in a JavaScript string.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def client_len(text: str) -> int:
    """The length of ``text`` as agent clients count it: in UTF-16 code units (JavaScript's
    ``length``), a character beyond U+FFFF counting two."""
    if text.isascii():
        return len(text)
    # ("surrogatepass": a lone surrogate a JSON escape left in a str is one unit, as in JS)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def client_end(text: str, most: int, start: int = 0) -> int:
    """Where the longest run of ``text`` from ``start`` that is at most ``most`` characters
    as clients count them (``client_len``) ends (an index into ``text``): never between the
    two halves of a surrogate pair, a character that does not fit left out whole."""
    most = max(most, 0)
    end = min(len(text), start + most)
    if text.isascii():
        return end
    extra = 0  # the characters before the one looked at that count two
    for match in _ASTRAL.finditer(text, start, end):
        at = match.start()
        if at - start + extra + 2 > most:  # (it, or what comes before it, does not fit)
            return min(at, start + most - extra)
        extra += 1
    return min(end, start + most - extra)


def estimate_tokens(text: str) -> int:
    """The estimate agent clients are held to: about four characters (``client_len``) per
    token."""
    return -(-client_len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Budget:
    """The most one result handed to an agent may hold, in estimated tokens."""

    tokens: int = DEFAULT_BUDGET_TOKENS

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, int) or self.tokens < MIN_BUDGET_TOKENS:
            raise ConfigError(
                f"the token budget must be at least {MIN_BUDGET_TOKENS} tokens, "
                f"not {self.tokens!r}: pass a larger --budget"
            )

    @property
    def chars(self) -> int:
        """The whole result, header included."""
        return self.tokens * CHARS_PER_TOKEN

    @property
    def body_chars(self) -> int:
        """A page body, leaving room for the header."""
        return self.chars - HEADER_CHARS

    def fits(self, *parts: str) -> bool:
        return sum(client_len(p) for p in parts) <= self.chars


def clip(text: str, max_chars: int, hint: str) -> str:
    """``text`` shortened to ``max_chars`` (as clients count them: ``client_len``) with a note
    saying how much was left out and why."""
    size = client_len(text)
    if size <= max_chars:
        return text
    note = f" …[clipped {size - max_chars:,} chars: {hint}]"
    return text[: client_end(text, max_chars - client_len(note))] + note
