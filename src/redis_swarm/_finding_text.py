"""The finding in an agent's output: the block between the run's finding tags, a fenced JSON
block, a bare JSON object, or the text.

Each run's prompt asks the agent to put its finding between two tags holding a mark made for
that run (``finding_tags``). Text the agent quotes after its answer (a context, a file) cannot
hold the mark, so it cannot take the finding's place: a block between the tags is the answer,
a JSON finding or else its text; the older rules apply only to an output without one.

The runner (``_runner``) reads a finding from an agent's output with it, and the hooks
(``_hooks``) from a session's last answer: it imports nothing of either.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import secrets
from typing import Any

from ._models import Finding

__all__ = [
    "SUMMARY_LIMIT",
    "finding_refused",
    "finding_tags",
    "found_as",
    "new_mark",
    "normalize_finding",
    "parse_finding",
    "set_aside_note",
]

OBJECT_SEARCH = 256 * 1024  # the last characters searched for a bare JSON object
OBJECT_TRIES = 2000  # at most this many '{' positions tried, newest first
# Before those last characters, the '{' also tried (``_early_starts``): this many of the
# first of the output, this many of the first of the line the last characters begin in, and
# those opening the pretty-printed objects whose closing '}' begins a line there; an object
# begun there is taken only when it ends in the last characters (not an example quoted
# early in prose).
EARLY_STARTS = 8
# The most blanks before a pretty-printed object's closing '}' whose opening '{' is looked
# for: an answer's own object is indented little.
PRETTY_INDENT = 16
# At most this many starts nested deeper than the parser goes are tried: each costs a parse
# that deep (a tenth of a millisecond), and the core stores no JSON nested over 200 levels.
# The other starts of the run of '{' such a start is nested in (no '}' or ']' between them)
# are skipped untried, not counted: the '{' before that run, a finding among them, are tried.
DEEP_TRIES = 8
SUMMARY_LIMIT = 2000  # the core's limit on a finding's summary (characters)
DETAILS_LIMIT = 64 * 1024  # the most of an answer that is not JSON kept in details
# The fields of a finding's record that the swarm sets (its id, task, queue, worker, time,
# attempt, model, what the run cost...), never the agent's finding: the Finding's fields but
# those an agent writes and ``extra``, where the finding's other keys go.
SET_BY_SWARM = tuple(
    f.name
    for f in dataclasses.fields(Finding)
    if f.name not in ("summary", "details", "sources", "confidence", "extra")
)


# A '{' that may begin an object (a key or its '}' next): a '{' of prose, code or a template
# ("{x}", "{{") is not tried, so that many of them cost nothing.
_OBJECT_START = re.compile(r'\{(?=[ \t\n\r]*["}])')
# The first line (from where the search begins) whose first character follows at most N
# blanks (N: the index).
_LINE_BELOW = [re.compile(rf"\n([ \t]{{0,{n}}})([^ \t\r\n])") for n in range(PRETTY_INDENT + 1)]
# The last line (of the text matched) whose first character follows at most N blanks (N: the
# index), else the first line if it does: the greedy ``.*`` goes to the end at once, then
# back from newline to newline.
_LINE_ABOVE = [
    re.compile(rf"(?:.*\n)?[ \t]{{0,{n}}}([^ \t\r\n])", re.S) for n in range(PRETTY_INDENT + 1)
]
# A fenced block is "```", a language (after blanks), the rest of that line, then the text up
# to the first line that begins "```" after blanks (``_fences``): the closing line, and the
# language word, looked for by these two.
_FENCE_CLOSE = re.compile(r"\n[ \t]*```")
_FENCE_LANGUAGE = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")
# Envelopes of agent CLIs' JSON output: claude -p --output-format json ("result"),
# gemini -o json ("response"). The finding is inside the text they carry.
_ENVELOPE_KEYS = ("result", "response")


def new_mark() -> str:
    """A mark for one run's finding tags: not guessable by whoever wrote the task's context."""
    return secrets.token_hex(6)


def finding_tags(mark: str) -> tuple[str, str]:
    """The lines an agent writes before and after its finding."""
    return f"<finding-{mark}>", f"</finding-{mark}>"


# How ``parse_finding`` found a finding, said in plain words (a newcomer reading "finding
# from object output" learned nothing): what the agent printed, and what was taken of it.
_FOUND_AS = {
    "marked": "the agent printed its finding between the tags its prompt gave",
    "marked-text": "the agent printed text, not a JSON finding with a summary, between the tags "
    "its prompt gave: that text was taken as the finding's summary",
    "fenced": "the agent printed a JSON block in ``` fences, taken as its finding",
    "object": "the agent printed a JSON object, taken as its finding",
    "text": "the agent printed no JSON finding: its text was taken as the finding's summary",
}


def found_as(how: str) -> str:
    """What ``parse_finding``'s ``how`` ("marked", "marked-text", "fenced", "object",
    "text") means, in plain words: the one wording of it, for every line that says how a
    finding was read."""
    return _FOUND_AS.get(how, f"the finding was read from the agent's output ({how})")


def set_aside_note(names: list[str]) -> str:
    """What a line says of the fields of its finding the swarm sets that an agent gave
    (``normalize_finding``'s ``set_aside``); "" when it gave none."""
    if not names:
        return ""
    given = ", ".join(f'"{n}"' for n in names)
    kept = ", ".join(f'"{n}_raw"' for n in names)
    return (
        f"the agent's finding gave its own {given}, which the swarm sets itself: "
        f"not taken as the finding's, kept in its extra as {kept}"
    )


def finding_refused(error: Exception) -> str:
    """Why a finding parsed from an agent's output was not stored: the core refused it
    (``error``, a ValidationError: too big to store, or no finding), so the task fails, to
    be retried, rather than keep a lease no one will report."""
    return f"the finding was refused: {error}"


def _as_finding(
    value: Any, depth: int = 0, mark: str | None = None
) -> tuple[dict[str, Any] | str, str | None] | None:
    """``value`` if it is a finding; or the finding inside an agent CLI's JSON envelope (with
    how it was found there: the text between the run's tags, too)."""
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


# An agent's JSON as it wrote it, but for NaN and Infinity (which Python's parser takes and no
# JSON encoder writes back: the report refused the whole finding, every retry alike): kept as
# the words the agent wrote ("NaN"), so a confidence of NaN is kept as confidence_raw.
_AGENT_JSON = json.JSONDecoder(parse_constant=str)


def _last_object(
    text: str, depth: int, mark: str | None
) -> tuple[dict[str, Any] | str, str | None] | None:
    """The JSON object with a summary that ends last in ``text`` (the outermost one).

    Its start is searched for in the last ``OBJECT_SEARCH`` characters, and before them only
    at ``EARLY_STARTS``' (``_early_starts``), and one begun there is taken only when it ends
    in the window: an object bigger than the window (a finding too big to store) is found
    whole, so that the core refuses it for its size (the run fails saying so), never made
    the finding as a cut text; an example quoted early in a long text answer (``Reply as
    {"summary": ...}``) is never the finding.

    Only a '{' followed by a key or '}' is tried (``_OBJECT_START``), each at most once, and
    parsed from a copy of the text from it: a parse that fails counts the lines up to where
    it failed, which in the whole text was a pass over all of it for each '{' tried (20 s
    for 4 MiB of '{'). Each search looks at a part of the text once, so a big output costs
    a few passes over it."""
    window = max(len(text) - OBJECT_SEARCH, 0)
    decoder = _AGENT_JSON
    starts = [m.start() for m in _OBJECT_START.finditer(text, window)][-OBJECT_TRIES:]
    if window:
        starts = sorted(_early_starts(text, window)) + starts
    best: tuple[dict[str, Any] | str, str | None] | None = None
    best_end = -1
    deep = 0
    run = len(text)  # where the run of '{' the last start nested too deep is in begins
    for start in reversed(starts):
        if start >= run:
            continue  # (it encloses that start, no bracket closed between: as deep)
        try:
            value, end = decoder.raw_decode(text[start:])
        except RecursionError:  # (nested deeper than the parser goes: no finding)
            deep += 1
            if deep == DEEP_TRIES:
                break
            run = max(text.rfind("}", 0, start), text.rfind("]", 0, start))
            continue
        except ValueError:
            continue
        end += start
        if start < window and end <= window:
            continue  # (begun early, ended before the window: not the output's last object)
        found = _as_finding(value, depth, mark)
        if found is not None and end >= best_end:
            best, best_end = found, end
    return best


def _early_starts(text: str, window: int) -> set[int]:
    """The '{' before ``window`` (where the last ``OBJECT_SEARCH`` characters begin) tried as
    an object's start: the first ``EARLY_STARTS`` of the text, and of the line ``window``
    falls in (a compact object bigger than the window is on that line: its own, or after
    prose), each looked for in the first ``OBJECT_SEARCH`` characters; and those opening a
    pretty-printed object (``json.dumps(indent=2)``, multi-line) whose closing '}' begins a
    line in the window (after at most ``PRETTY_INDENT`` blanks): the '{' beginning or ending
    the nearest line above it with no more blanks before it (a pretty-printed object's
    lines are indented deeper than its brackets, however many '{' they and the prose before
    it hold), whatever the lines after it hold (code: many more closing lines).

    That line is before the window only for a closing line no line in the window before it
    is indented as little as: the first line there indented at most N blanks, for some N.
    Of those (each less indented than those before it), only the last closing line's is
    taken: every other is inside the object it closes (taking each closing line from the
    last up, and skipping one inside an object found above a later one, finds that one
    alone). So the window is looked at once, and the text above that closing line up to its
    opening line once, however many closing lines the window holds."""
    found: set[int] = set()
    line = text.rfind("\n", 0, window) + 1
    for begin in (0, line):
        end = min(window, begin + OBJECT_SEARCH)
        # (the key after a '{' just before ``end`` is looked at past it)
        starts = _OBJECT_START.finditer(text, begin, min(end + 64, len(text)))
        found |= {m.start() for m in itertools.islice(starts, EARLY_STARTS) if m.start() < end}
    close = None
    at, most = window - 1, PRETTY_INDENT
    while most >= 0:  # (each line found less indented than the one before it)
        below = _LINE_BELOW[most].search(text, at)
        if below is None:
            break
        close = below if below.group(2) == "}" else close
        at, most = below.end(), len(below.group(1)) - 1
    above = (
        None if close is None else _LINE_ABOVE[len(close.group(1))].match(text, 0, close.start())
    )
    if close is not None and above is not None:
        first = above.start(1)
        end = text.find("\n", first, close.start())
        opening = text[first : close.start() if end < 0 else end].rstrip()
        ends = (first, first + len(opening) - 1)  # (one in the window is tried anyway)
        found |= {at for at in ends if at < window and text.startswith("{", at)}
    return found


def _fences(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of ``text`` (language, body), first to last: what
    ``re.finditer(r"```[ \\t]*([A-Za-z0-9_+-]*)[^\\n]*\\n(.*?)\\n[ \\t]*```", text, re.S)``
    finds, in linear time. That regex looked for the closing line again from each "```" left
    open, so a message of many such openers took minutes (a hook killed, the work lost). An
    opener that finds no closing line is the last tried: a later one opens no earlier."""
    blocks: list[tuple[str, str]] = []
    at = 0
    while (opener := text.find("```", at)) >= 0:
        line_end = text.find("\n", opener + 3)
        close = None if line_end < 0 else _FENCE_CLOSE.search(text, line_end + 1)
        if close is None:
            break
        language = _FENCE_LANGUAGE.match(text, opener + 3, line_end)
        blocks.append((language.group(1) if language else "", text[line_end + 1 : close.start()]))
        at = close.end()
    return blocks


def _tagged(text: str, start: str, end: str) -> list[str]:
    """The text between each ``start`` and the first ``end`` after it, first to last: what
    ``re.finditer(f"{start}(.*?){end}", text, re.S)`` finds (escaped), in linear time."""
    blocks: list[str] = []
    at = 0
    while (opened := text.find(start, at)) >= 0:
        closed = text.find(end, opened + len(start))
        if closed < 0:
            break
        blocks.append(text[opened + len(start) : closed])
        at = closed + len(end)
    return blocks


# A finding: the JSON object found, or the text of an answer that holds none (taken as a
# text answer is: ``_text_finding``).
_Found = tuple[dict[str, Any] | str, str]


def _marked(text: str, depth: int, mark: str) -> _Found | None:
    """The finding between the run's tags: that of the last block holding one; else the
    text of the last block that is not blank, a text answer (``"marked-text"``), but for
    the prompt's words naming the tags (``_names_the_tags``). None when no block holds
    anything: the output has no answer between the tags."""
    blocks = _tagged(text, *finding_tags(mark))
    for block in reversed(blocks):
        found = _search(block, depth)
        if found is not None and not isinstance(found[0], str):
            return found[0], "marked"
    for block in reversed(blocks):
        if block.strip() and not _names_the_tags(block):
            return block, "marked-text"
    return None


def _names_the_tags(block: str) -> bool:
    """Whether ``block`` is what lies between the tags named in backticks, as the prompt
    names them (`` `<finding-MARK>` and a line `</finding-MARK>` ``: an agent that prints
    its prompt back), not an answer."""
    return len(block) > 1 and block.startswith("`") and block.endswith("`")


def _search(text: str, depth: int = 0, mark: str | None = None) -> _Found | None:
    if mark is not None:
        marked = _marked(text, depth, mark)
        if marked is not None and isinstance(marked[0], str):
            # Text between the tags: of an agent CLI's JSON envelope, the tags in its
            # answer's string (escaped), that answer is read (its own tags unescaped).
            envelope = _envelope(text, depth, mark)
            return marked if envelope is None else envelope
        if marked is not None:
            return marked  # (the answer, whatever JSON is quoted after it)
    for language, body in reversed(_fences(text)):
        if language.lower() not in ("", "json", "jsonc", "json5"):
            continue
        try:
            value = _AGENT_JSON.decode(body)
        except ValueError:
            continue
        found = _as_finding(value, depth, mark)
        if found is not None:
            return found[0], found[1] or "fenced"
    found = _last_object(text, depth, mark)
    if found is not None:
        return found[0], found[1] or "object"
    return None


def _envelope(text: str, depth: int, mark: str) -> _Found | None:
    """The finding in ``text`` when the whole of it is an agent CLI's JSON envelope."""
    try:
        value = _AGENT_JSON.decode(text.strip())
    except (ValueError, RecursionError):
        return None
    found = _as_finding(value, depth, mark)
    return None if found is None else (found[0], found[1] or "object")


def _text_finding(text: str, summary_limit: int) -> dict[str, Any] | None:
    """An answer that holds no JSON finding, as its finding: its text is the summary (cut to
    ``summary_limit`` characters, the whole text kept in ``details``); None when blank."""
    stripped = text.strip()
    if not stripped:
        return None
    if len(stripped) <= summary_limit:
        return {"summary": stripped}
    return {"summary": _cut(stripped, summary_limit), "details": _cut(stripped, DETAILS_LIMIT)}


def parse_finding(
    text: str,
    *,
    summary_limit: int = SUMMARY_LIMIT,
    mark: str | None = None,
    set_aside: list[str] | None = None,
) -> tuple[dict[str, Any], str] | None:
    """The finding in an agent's output, and how it was found.

    The last block between the tags of ``mark`` (``finding_tags``) holding a JSON object with
    a ``summary`` (fenced or not); else, when a block between them holds anything, the last
    such block's text, taken as a text answer is (``"marked-text"``): the tags say where the
    answer is, so JSON quoted after it never takes its place. Without such a block, the last
    fenced JSON block holding one; else the last such JSON object in the text; else the text
    itself becomes the summary (cut to ``summary_limit`` characters, the whole text, up to
    ``DETAILS_LIMIT``, kept in ``details``). An agent CLI's JSON envelope is looked into the
    same way. Returns ``(finding, "marked" | "marked-text" | "fenced" | "object" |
    "text")``, or None when the output is empty. A JSON finding is made acceptable where
    that loses nothing (see ``normalize_finding``); ``set_aside`` gets the fields of the
    record it held that the swarm sets (``SET_BY_SWARM``: ``set_aside_note`` says them).
    """
    found = _search(text, 0, mark)
    if found is None:
        found = text, "text"
    answer, how = found
    if isinstance(answer, str):
        finding = _text_finding(answer, summary_limit)
        return None if finding is None else (finding, how)
    return normalize_finding(answer, summary_limit, set_aside), how


def _cut(text: str, limit: int) -> str:
    marker = " [...]"
    return text if len(text) <= limit else text[: max(limit - len(marker), 0)].rstrip() + marker


def normalize_finding(
    finding: dict[str, Any],
    summary_limit: int = SUMMARY_LIMIT,
    set_aside: list[str] | None = None,
) -> dict[str, Any]:
    """What agents get wrong in a finding, fixed without losing anything: a summary too long
    (cut; the whole of it opens ``details``), ``details`` that is not a string (its JSON),
    ``sources`` as one string or holding non-strings, a ``confidence`` that is not a number
    from 0 to 1 (kept as ``confidence_raw``), a field the swarm sets of its own
    (``SET_BY_SWARM``: an ``id``, a ``queue``, a ``worker``, a ``usage``...: kept as
    ``id_raw``, ..., named in ``set_aside``, which ``set_aside_note`` says). The report
    sets those itself (the id the swarm's, what a run cost read from the agent CLI's own
    output, and the core refuses a ``usage`` key); kept under its own name in ``extra``,
    an agent's ``id`` read as the finding's own to a person looking at it."""
    out = dict(finding)
    for name in SET_BY_SWARM:
        if name in out:
            kept = f"{name}_raw"
            while kept in out:  # (an id_raw of its own too: neither is lost)
                kept += "_"
            out[kept] = out.pop(name)
            if set_aside is not None:
                set_aside.append(name)
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
