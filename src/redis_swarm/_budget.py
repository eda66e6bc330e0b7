"""How much text an agent is handed at once, in estimated tokens: one budget for every face
that puts swarm text in a model's context (an MCP tool result, a hook's additionalContext).

Claude Code warns above 10,000 tokens per tool result and truncates near 25,000; its hooks
cap each output string at 10,000 characters. A face measures what it hands over against a
``Budget`` (default 8,000 estimated tokens at ~4 characters per token) and cuts with ``clip``,
which says what was left out and where the rest is. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import ConfigError

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_BUDGET_TOKENS",
    "MIN_BUDGET_TOKENS",
    "Budget",
    "clip",
    "estimate_tokens",
]

CHARS_PER_TOKEN = 4
DEFAULT_BUDGET_TOKENS = 8_000
MIN_BUDGET_TOKENS = 500
# Room kept on every page for the JSON header that says what the page is and how to go on.
HEADER_CHARS = 1_200


def estimate_tokens(text: str) -> int:
    """The estimate agent clients are held to: about four characters per token."""
    return -(-len(text) // CHARS_PER_TOKEN)


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
        return sum(len(p) for p in parts) <= self.chars


def clip(text: str, max_chars: int, hint: str) -> str:
    """``text`` shortened to ``max_chars`` with a note saying how much was left out and why."""
    if len(text) <= max_chars:
        return text
    note = f" …[clipped {len(text) - max_chars:,} chars: {hint}]"
    return text[: max(0, max_chars - len(note))] + note
