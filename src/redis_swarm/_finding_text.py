"""The finding in an agent's output: the block between the run's finding tags, a fenced JSON
block, a bare JSON object, or the text.

Each run's prompt asks the agent to put its finding between two tags holding a mark made for
that run (``finding_tags``). Text the agent quotes after its answer (a context, a file) cannot
hold the mark, so it cannot take the finding's place; the older rules apply only to an output
without a marked block.

The runner (``_runner``) reads a finding from an agent's output with it, and the hooks
(``_hooks``) from a session's last answer: it imports nothing of either.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

__all__ = ["SUMMARY_LIMIT", "finding_tags", "new_mark", "normalize_finding", "parse_finding"]

OBJECT_SEARCH = 256 * 1024  # the last characters searched for a bare JSON object
OBJECT_TRIES = 2000  # at most this many '{' positions tried, newest first
# Before those last characters, the '{' also tried: the first this many, and those that begin
# the last this many lines begun with one (a finding bigger than the window: ``_last_object``),
# an object begun there taken only when it ends in the last characters (not an example quoted
# early in prose).
EARLY_STARTS = 8
SUMMARY_LIMIT = 2000  # the core's limit on a finding's summary (characters)
DETAILS_LIMIT = 64 * 1024  # the most of an answer that is not JSON kept in details


_LINE_OBJECT = re.compile(r"^[ \t]*\{", re.M)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)\n[ \t]*```", re.S)
# Envelopes of agent CLIs' JSON output: claude -p --output-format json ("result"),
# gemini -o json ("response"). The finding is inside the text they carry.
_ENVELOPE_KEYS = ("result", "response")


def new_mark() -> str:
    """A mark for one run's finding tags: not guessable by whoever wrote the task's context."""
    return secrets.token_hex(6)


def finding_tags(mark: str) -> tuple[str, str]:
    """The lines an agent writes before and after its finding."""
    return f"<finding-{mark}>", f"</finding-{mark}>"


def _as_finding(
    value: Any, depth: int = 0, mark: str | None = None
) -> tuple[dict[str, Any], str | None] | None:
    """``value`` if it is a finding; or the finding inside an agent CLI's JSON envelope (with
    how it was found there)."""
    if not isinstance(value, dict):
        return None
    summary = value.get("summary")
    if isinstance(summary, str) and summary.strip():
        return value, None
    if depth < 2:
        for key in _ENVELOPE_KEYS:
            inner = value.get(key)
            if isinstance(inner, str):
                found = _search(inner, depth + 1, mark)
                if found is not None:
                    return found
    return None


def _last_object(
    text: str, depth: int, mark: str | None
) -> tuple[dict[str, Any], str | None] | None:
    """The JSON object with a summary that ends last in ``text`` (the outermost one).

    Its start is searched for in the last ``OBJECT_SEARCH`` characters, and before them only
    at ``EARLY_STARTS``' (each start tried parses the text once at most), and one begun there
    is taken only when it ends in the window: an object bigger than the window (a finding too
    big to store) is found whole, so that the core refuses it for its size (the run fails
    saying so), never made the finding as a cut text; an example quoted early in a long text
    answer (``Reply as {"summary": ...}``) is never the finding."""
    window = max(len(text) - OBJECT_SEARCH, 0)
    decoder = json.JSONDecoder()
    starts = [window + m.start() for m in re.finditer(r"\{", text[window:])][-OBJECT_TRIES:]
    if window:
        lines = [m.end() - 1 for m in _LINE_OBJECT.finditer(text, 0, window)][-EARLY_STARTS:]
        braces = re.finditer(r"\{", text[:window])
        first = [m.start() for _, m in zip(range(EARLY_STARTS), braces, strict=False)]
        starts = sorted({*first, *lines}) + starts
    best: tuple[dict[str, Any], str | None] | None = None
    best_end = -1
    for start in reversed(starts):
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # (RecursionError: nested too deep)
            continue
        if start < window and end <= window:
            continue  # (begun early, ended before the window: not the output's last object)
        found = _as_finding(value, depth, mark)
        if found is not None and end >= best_end:
            best, best_end = found, end
    return best


def _marked(text: str, depth: int, mark: str) -> tuple[dict[str, Any], str] | None:
    """The finding in the last block between the run's tags that holds one."""
    start, end = (re.escape(tag) for tag in finding_tags(mark))
    for match in reversed(list(re.finditer(f"{start}(.*?){end}", text, re.S))):
        found = _search(match.group(1), depth)
        if found is not None:
            return found[0], "marked"
    return None


def _search(
    text: str, depth: int = 0, mark: str | None = None
) -> tuple[dict[str, Any], str] | None:
    if mark is not None:
        marked = _marked(text, depth, mark)
        if marked is not None:
            return marked
    for match in reversed(list(_FENCE.finditer(text))):
        if match.group(1).lower() not in ("", "json", "jsonc", "json5"):
            continue
        try:
            value = json.loads(match.group(2))
        except ValueError:
            continue
        found = _as_finding(value, depth, mark)
        if found is not None:
            return found[0], found[1] or "fenced"
    found = _last_object(text, depth, mark)
    if found is not None:
        return found[0], found[1] or "object"
    return None


def parse_finding(
    text: str, *, summary_limit: int = SUMMARY_LIMIT, mark: str | None = None
) -> tuple[dict[str, Any], str] | None:
    """The finding in an agent's output, and how it was found.

    The last block between the tags of ``mark`` (``finding_tags``) holding a JSON object with
    a ``summary`` (fenced or not); else the last fenced JSON block holding one; else the last
    such JSON object in the text; else the text itself becomes the summary (cut to
    ``summary_limit`` characters, the whole text kept in ``details``). An agent CLI's JSON
    envelope is looked into the same way. Returns ``(finding, "marked" | "fenced" | "object"
    | "text")``, or None when the output is empty. A JSON finding is made acceptable where
    that loses nothing (see ``normalize_finding``).
    """
    found = _search(text, 0, mark)
    if found is not None:
        return normalize_finding(found[0], summary_limit), found[1]
    stripped = text.strip()
    if not stripped:
        return None
    if len(stripped) <= summary_limit:
        return {"summary": stripped}, "text"
    return {"summary": _cut(stripped, summary_limit), "details": _cut(stripped, DETAILS_LIMIT)}, (
        "text"
    )


def _cut(text: str, limit: int) -> str:
    marker = " [...]"
    return text if len(text) <= limit else text[: max(limit - len(marker), 0)].rstrip() + marker


def normalize_finding(
    finding: dict[str, Any], summary_limit: int = SUMMARY_LIMIT
) -> dict[str, Any]:
    """What agents get wrong in a finding, fixed without losing anything: a summary too long
    (cut; the whole of it opens ``details``), ``details`` that is not a string (its JSON),
    ``sources`` as one string or holding non-strings, a ``confidence`` that is not a number
    from 0 to 1 (kept as ``confidence_raw``)."""
    out = dict(finding)
    summary = str(out["summary"]).strip()
    details = out.get("details")
    if details is not None and not isinstance(details, str):
        details = json.dumps(details, ensure_ascii=False, indent=1)
    if len(summary) > summary_limit:
        details = summary + (f"\n\n{details}" if details else "")
        summary = _cut(summary, summary_limit)
    out["summary"] = summary
    if details is not None:
        out["details"] = details
    sources = out.get("sources")
    if isinstance(sources, str):
        out["sources"] = [sources]
    elif isinstance(sources, list | tuple):
        out["sources"] = [s if isinstance(s, str) else json.dumps(s) for s in sources]
    elif sources is not None:
        out["sources_raw"] = out.pop("sources")
    confidence = out.get("confidence")
    if confidence is not None:
        try:
            value = float(confidence)
        except (TypeError, ValueError):
            value = -1.0
        if isinstance(confidence, bool) or not 0 <= value <= 1:
            out["confidence_raw"] = out.pop("confidence")
        else:
            out["confidence"] = value
    return out
