"""Stored text made safe to show on a terminal.

Summaries, descriptions, pass names, errors and message bodies come from agents, and a
terminal obeys the control characters in what it prints: an ESC sequence can rewrite the
clipboard (OSC 52), clear the screen, hide text or retitle the window. Every human output of
the CLI and of ``swarm watch`` passes stored text through ``printable``, which shows each
C0 and C1 control character (and DEL, and the bidirectional overrides that reorder a line)
as a visible escape: ``\\x1b`` instead of ESC. Newlines and tabs stay. JSON output needs no
such care (its encoder escapes control characters).

A context version (a 64-hex-digit hash) is shown to people as its first ``SHORT_VERSION``
digits, ``short_version``: wherever a version is asked for, a unique prefix is taken. JSON
keeps the whole version.
"""

from __future__ import annotations

__all__ = ["SHORT_VERSION", "printable", "short_version"]

SHORT_VERSION = 12  # hex digits: unique among an owner's kept versions, and fits a table

_KEPT = {0x09, 0x0A}  # tab and newline: layout, not commands
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]

_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in _CONTROLS if c not in _KEPT}
_ESCAPES |= {c: f"\\u{c:04x}" for c in _BIDI}


def printable(text: object) -> str:
    """``text`` as a string with every control character shown as an escape (a ``str``
    enum as its value, as it would print)."""
    if isinstance(text, str):
        return str.translate(text, _ESCAPES)
    return str(text).translate(_ESCAPES)


def short_version(version: str) -> str:
    """A context version as people see it: its first ``SHORT_VERSION`` hex digits."""
    return version[:SHORT_VERSION]
