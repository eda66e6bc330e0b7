"""What an agent CLI printed: its answer, what the run cost, and whether the CLI itself says
the run failed.

Three machine formats are read, besides plain text (the answer as it is):

- Claude Code's ``claude -p --output-format json``: one result object, ``{"type": "result",
  "subtype", "is_error", "result", "session_id", "total_cost_usd", "usage": {"input_tokens",
  "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"}, "modelUsage":
  {MODEL: {"inputTokens", "outputTokens", "cacheReadInputTokens",
  "cacheCreationInputTokens", "costUSD"}}}``; ``result`` is the answer. The last line of
  ``--output-format stream-json`` is the same object, so that format is read too. Its
  ``usage`` covers only part of the run (its last iteration, and not the other models'),
  ``modelUsage`` the whole run: the run's tokens are the sums over ``modelUsage``, ``usage``
  read only when ``modelUsage`` gives no tokens.
- Codex's ``codex exec --json``: one event per line; the answer is the text of the last
  ``{"type": "item.completed", "item": {"type": "agent_message", "text"}}``, the usage that
  of each ``{"type": "turn.completed", "usage": {"input_tokens", "cached_input_tokens",
  "output_tokens"}}`` added up; ``turn.failed`` (``{"error": {"message"}}``) or an
  ``error`` event with no answer after it is a failed run.
- Gemini CLI's ``gemini -p --output-format json``: one object, ``{"session_id", "response",
  "stats": {"models": {MODEL: {"tokens": {"prompt", "candidates", "cached", "thoughts",
  "total", "tool"}}}}, "error": {"type", "message", "code"}, "warnings": [...]}``;
  ``response`` is the answer; the input tokens are ``prompt``, the output tokens
  ``candidates`` and ``thoughts`` added, summed over the models. It reports no cost (unknown,
  never 0); its model is the one that used the most tokens. An ``error`` object is a failed
  run. ``warnings`` (Gemini CLI 0.61: a loop detected, the turn limit reached, a tool a hook
  or policy blocked) is kept in ``AgentOutput.notes``. A key it may add later is tolerated
  when ``stats`` holds ``models`` as Gemini's does (``_is_gemini_result``).

An output longer than the runner keeps (``child.Capture``: its first and last bytes, the
middle dropped) cannot be read whole: ``read_output`` then fails the run with why
(``AgentOutput.cut``), reading what it cost from the end kept where the format allows
(``_read_cut``); an answer whole in the end (the last line of JSON lines) is read as usual.
An output kept whole that begins as a format's JSON and ends before it does (the CLI stopped
while it wrote, yet exited 0) fails the run too, its cost unknown (``_cut_short``); so does
Claude's stream-json cut at a line's end (no result line last: ``_stream_unended``), its
cost that of an earlier turn's result line if it holds one. Any other output beginning with
``{`` is an answer printed as text.

Input tokens are counted whole in ``Usage.tokens_in``: Claude reports the cached ones apart
from ``input_tokens`` (they are added), Codex and Gemini within them.

The answer is the work; the usage is what it cost, read as far as it can be trusted. A figure
no run could report (``Usage.cost_fault``, ``Usage.count_fault``: negative, fractional,
huge, not a number, more cached tokens than input tokens) is kept as unknown (None), and so
is a total any of whose parts is: never a wrong number, and never a refused finding. What was
left out is named in ``AgentOutput.dropped``, for the runner's log line. Figures by model
that contradict the run's (Claude's ``total_cost_usd`` under its ``modelUsage`` costs added
up) are made to agree by ``Usage.reconciled`` (the run's raised to its models' sum), said in
``AgentOutput.notes``: a pass's cost never reads less than its cost per model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .._printable import printable
from .._usage import LABEL_CHARS, USAGE_MAX_MODELS, Usage, usd
from .child import Capture

__all__ = [
    "QUOTE_CHARS",
    "QUOTE_LINES",
    "AgentOutput",
    "cost_note",
    "cut_reason",
    "machine_option",
    "quote_tail",
    "read_output",
    "warning_kind",
]

# How much of what a failed agent printed its failure quotes: its last few lines, which say
# why far more often than its first, short enough for one console line.
QUOTE_LINES = 5
QUOTE_CHARS = 500

CLAUDE = "claude-json"
CODEX = "codex-jsonl"
GEMINI = "gemini-json"
_GEMINI_KEYS = frozenset({"session_id", "response", "stats", "error", "warnings"})
# Gemini's warnings noted: at most this many, each cut to this many characters.
_GEMINI_WARNINGS = 3
_GEMINI_WARNING_CHARS = 200
_CODEX_EVENTS = frozenset(
    {"thread.started", "turn.started", "turn.completed", "turn.failed", "item.started",
     "item.updated", "item.completed", "error"}
)  # fmt: skip
_NO_MESSAGE = "the agent CLI printed no agent_message"
# The option by which an agent command asks its CLI for a machine format: Claude Code's and
# Gemini CLI's ``--output-format json`` (or ``stream-json``; Gemini's ``-o json``), Codex's
# ``exec --json``. ``-o`` and ``--json`` are common options, so they count only after a word
# ``gemini`` or ``codex`` in the same simple command (its program, by name or path:
# ``/usr/local/bin/codex``, npx's ``@google/gemini-cli``; not ``~/codex/run.sh`` nor
# ``--codex-compat``), and each value only as a word of its own (not ``json.txt``).
_PROGRAM = r"""(?:^|[\s;&|(`])(?:[^\s;&|()`'"]*/)?"""
_WORD_END = r"""(?=["']?(?:[\s;&|)`]|$))"""
_MACHINE_OPTION = re.compile(
    rf"""(?:^|\s)(--output-format(?:\s+|=)["']?(?:stream-)?json){_WORD_END}"""
    rf"""|{_PROGRAM}gemini(?:-cli)?(?=\s)[^|;&]*?\s(-o\s+["']?json){_WORD_END}"""
    rf"""|{_PROGRAM}codex(?=\s)[^|;&]*?\s(--json){_WORD_END}"""
)
# Where a string may end in the tail of an output cut inside it: a quote not escaped (an even
# number of backslashes before it), then the comma before the object's next key. The
# backslashes are matched only from the start of their run (the lookbehind): matched from
# each of its characters, a long run was scanned again from each (quadratic: an hour for a
# tail of a megabyte of backslashes, holding the GIL, so heartbeats and lease renewals stop).
_STRING_END = re.compile(r'(?<!\\)(?:\\\\)*"\s*,')
CUT_TRIES = 32  # at most this many string ends tried in a cut output's tail


@dataclass(frozen=True)
class AgentOutput:
    """An agent run's output read: ``answer`` is the text to find the finding in; ``usage``
    what the run cost (None: the format does not say); ``error`` set when the CLI reported
    the run as failed (Claude's ``is_error``, Codex's ``turn.failed``, Gemini's ``error``);
    ``model`` the main model the CLI names (the one that cost the most), if it names one;
    ``ended`` how the CLI says the run ended, when not plainly (Claude's ``subtype`` other
    than ``success``: ``error_max_turns``); ``stray`` the lines of a machine format's output
    that are not JSON (a CLI's own complaint printed among its events); ``notes`` what
    ``warning`` says besides the figures dropped; ``cut`` why the output was not read whole
    (``cut_reason``: longer than the runner keeps; or, kept whole, a machine format cut
    short: ``_cut_short``), None when it was. A cut machine format
    has its ``error`` set to it (the run fails); a cut text has the end kept as its
    ``answer``: a finding found there (tagged, fenced, an object) is whole, the text itself
    is not."""

    answer: str
    usage: Usage | None = None
    error: str | None = None
    model: str | None = None
    dropped: tuple[str, ...] = ()  # the usage figures left out as implausible, as printed
    ended: str | None = None
    stray: str = ""
    notes: tuple[str, ...] = ()
    cut: str | None = None

    @property
    def machine(self) -> bool:
        """Whether the CLI printed one of the machine formats (a result object, events),
        rather than the answer as text."""
        return self.usage is not None

    @property
    def text(self) -> str:
        """What the agent printed as text, outside any machine format: all of its output
        when it printed none (what a failed run's error quotes when its stderr is empty)."""
        return self.stray if self.machine else self.answer

    @property
    def warnings(self) -> tuple[str, ...]:
        """What was amiss in the output, a line each: the usage figures kept as unknown,
        then the ``notes``. Each reads ``KIND: DETAILS`` (``warning_kind``)."""
        said = list(self.notes)
        if self.dropped:
            said.insert(
                0, "usage figures no run reports, kept as unknown: " + "; ".join(self.dropped)
            )
        return tuple(said)

    @property
    def warning(self) -> str | None:
        """``warnings`` on one line, or None when nothing was amiss."""
        return "; ".join(self.warnings) or None


def warning_kind(warning: str) -> str:
    """What kind of thing ``warning`` (one of ``AgentOutput.warnings``) says was amiss: its
    words before its details (every one is written ``KIND: DETAILS``), so that a view
    saying it once for many runs (a pipeline's progress) says each kind once."""
    return warning.partition(": ")[0]


def cost_note(usage: Usage | None) -> str:
    """What a run cost, as a failure's reason says it (" (the run cost $0.0421)"), or "" when
    its CLI did not say: a failed run's cost is easily overlooked."""
    if usage is None or usage.cost_usd is None:
        return ""
    return f" (the run cost {usd(usage.cost_usd)})"


def quote_tail(text: str) -> str:
    """The end of what an agent printed, as a failure quotes it: its last ``QUOTE_LINES``
    non-empty lines on one line (joined by `` | ``), control characters shown as escapes (it
    is shown on terminals: ``printable``), at most ``QUOTE_CHARS`` (its start cut with
    ``…``); "" when it printed nothing but blanks."""
    lines = [printable(line.strip()) for line in _lines(text) if line.strip()]
    quoted = " | ".join(lines[-QUOTE_LINES:])
    if len(quoted) <= QUOTE_CHARS:
        return quoted
    return "…" + quoted[-(QUOTE_CHARS - 1) :]


def _lines(text: str) -> list[str]:
    """The lines of what an agent printed, split on "\\n" alone (a "\\r" before one dropped):
    U+2028 or U+0085, left raw in a JSON string by Node, end no line (``str.splitlines``
    would split a JSON line there, and a quote's lines)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _json_lines(text: str) -> tuple[list[str], list[Any]]:
    """The lines of ``text`` holding more than blanks (``_lines``), and each parsed (None:
    no JSON)."""
    texts = [line for line in _lines(text) if line.strip()]
    return texts, [_json(line) for line in texts]


def _printed(capture: Capture) -> str:
    return (
        f"the agent printed {capture.total:,} bytes on stdout, more than the {capture.limit:,} "
        f"kept whole (its first {capture.head_max:,} and last {capture.tail_max:,})"
    )


def cut_reason(capture: Capture, cost: str = "") -> str:
    """Why an output longer than ``capture`` keeps is not stored, with what the run cost
    (``cost``: ``cost_note``'s words), and what to do about it."""
    return (
        f"{_printed(capture)}: its answer was cut, so it is not stored{cost}; ask the agent "
        "for a shorter answer (the finding in a few kilobytes, anything else on stderr or in "
        "a file)"
    )


def machine_option(command: str) -> str | None:
    """The option by which ``command`` asks its agent CLI for a machine format (as written,
    quotes removed: ``--output-format json``), or None."""
    found = _MACHINE_OPTION.search(command)
    if found is None:
        return None
    return next(g for g in found.groups() if g is not None).replace('"', "").replace("'", "")


def read_output(printed: str | Capture, *, command: str | None = None) -> AgentOutput:
    """The answer, usage and error in an agent's stdout (its text, or its ``Capture``: one
    that dropped its middle is read by ``_read_cut``), whatever of the formats it is in.
    ``command``, the agent command: when it asks for a machine format (``machine_option``)
    and the output is in none, the output is read as text, as always, with a warning; a cut
    output is read for what the run cost as that format would say it."""
    option = machine_option(command) if command is not None else None
    if isinstance(printed, Capture):
        if printed.truncated:
            return _read_cut(printed, asked=option is not None)
        printed = printed.text()
    short = _cut_short(printed)
    if short is not None:
        return short
    output = _read(printed)
    if option is not None and not output.machine and printed.strip():
        note = (
            f"the agent command asks for JSON output ({option}) but printed none of the "
            "formats read (docs/agents.md): read as text, what the run cost unknown"
        )
        output = replace(output, notes=(*output.notes, note))
    return output


def _cut_short(text: str) -> AgentOutput | None:
    """``text``, an output kept whole, read as a machine format cut short (its CLI killed,
    its pipe broken, the disk full while it wrote: the run fails, its ``error`` and ``cut``
    saying so), or None when it is not one.

    It is when it does not parse and ends inside the JSON it began (``_unended``: in a string
    or a bracket left open; JSON closed and followed by text, or JSON that is not, is not
    cut), and that JSON is a format's: JSON lines (Codex's events, Claude's stream-json)
    whose first line is an event (an object with a ``type``) and whose last line is cut; or
    one object that begins as Claude's result object or Codex's event (``"type"`` its first
    member, ``"result"`` or an event's type) or holds Gemini's keys alone up to the cut
    (``session_id`` or ``response`` among them) (``_begun_as``). Claude's stream-json cut
    at a line's end, every line whole but no result line, or a later turn's events after the
    last (``_stream_unended``), is cut too: what the run cost is that of the last result
    line it holds (an earlier turn's), else unknown. Any other output begun with ``{`` is
    read as text: an answer printed as JSON, also from a command that asks for a machine
    format (``claude -p --output-format json | jq -r .result`` prints the answer)."""
    stripped = text.strip()
    if stripped.startswith("["):
        return _array_cut(stripped, text)
    if not stripped.startswith("{"):
        return None
    read = AgentOutput("")  # (what the run cost: unknown, unless a result line says)
    ends = "it does"
    head = _json(stripped.partition("\n")[0])
    if isinstance(head, dict):  # JSON lines (or one object on one line, whole)
        if not isinstance(head.get("type"), str):
            return None
        texts, lines = _json_lines(stripped)
        last = texts[-1].strip()
        if len(texts) > 1 and last.startswith("{") and lines[-1] is None and _unended(last):
            what = "Codex's JSON events" if head.get("type") in _CODEX_EVENTS else "JSON events"
        else:
            events = [v for v in lines if isinstance(v, dict)]
            if _codex_unended(events):
                what, ends = "Codex's JSON events", "the end of its turn (turn.completed)"
            elif not _stream_unended(events):
                return None
            else:
                results = [v for v in events if _is_claude_result(v)]
                read = _claude(results[-1]) if results else read
                what, ends = "Claude Code's stream-json events", "its result line"
    else:
        try:
            _DECODER.raw_decode(stripped)
        except (ValueError, RecursionError):
            pass
        else:
            return None  # (JSON whole, text after it: no format's, and not cut)
        if not _unended(stripped):
            return None
        kind = _begun_as(stripped)
        if kind is None:
            return None
        what = _FORMAT_NAMES[kind]
    return _failed_cut(text, stripped, read, what, ends)


def _array_cut(stripped: str, text: str) -> AgentOutput | None:
    """``_cut_short`` of an output begun with ``[``: Claude Code's verbose JSON array (its
    events, ``_read``) that does not parse, ended inside it, its first element Claude's
    (a ``system`` event naming the session): cut, what the run cost that of the last result
    object among the elements whole, else unknown. Any other is text."""
    try:
        _DECODER.raw_decode(stripped)
    except (ValueError, RecursionError):
        pass
    else:
        return None  # (whole: read by ``_read``, or text)
    if not _unended(stripped):
        return None
    events: list[dict[str, Any]] = []
    at = 1
    while True:
        value, at = _decoded(stripped, at)
        if not isinstance(value, dict):
            break
        events.append(value)
        if not stripped.startswith(",", at):
            break
        at += 1
    if not events or not _begins_claude_array(events[0]):
        return None
    results = [v for v in events if _is_claude_result(v)]
    read = _claude(results[-1]) if results else AgentOutput("")
    return _failed_cut(text, stripped, read, "Claude Code's JSON array of events", "its result")


def _begins_claude_array(first: Any) -> bool:
    """Whether ``first``, the first element of a JSON array, begins Claude Code's verbose
    array of events: a ``system`` event (its ``init``, or a hook's before it) naming the
    session."""
    return (
        isinstance(first, dict)
        and first.get("type") == "system"
        and _session(first.get("session_id")) is not None
    )


# Where a result object of Claude's may begin in its JSON array (compact or indented).
_RESULT_START = re.compile(r'\{\s*"type"\s*:\s*"result"')


def _array_result(head: str, tail: str) -> AgentOutput | None:
    """The answer and cost of Claude's verbose JSON array whose middle was dropped: ``head``
    begins as its array (its first element a ``system`` event naming the session), ``tail``
    ends with its result object and the closing bracket; None when they do not."""
    first, _ = _decoded(head, _skip_space(head, 0) + 1)
    if not _begins_claude_array(first):
        return None
    starts = list(_RESULT_START.finditer(tail))
    if not starts:
        return None
    result, end = _decoded(tail, starts[-1].start())
    if not _is_claude_result(result) or tail[end:].strip() != "]":
        return None
    return _claude(result)


def _failed_cut(text: str, stripped: str, read: AgentOutput, what: str, ends: str) -> AgentOutput:
    """The failed output of ``text`` cut short, begun as ``what`` and ended before ``ends``;
    ``read``: what its whole parts say the run cost."""
    said = quote_tail(stripped)[-_CUT_QUOTE:]
    cost = " and what the run cost is unknown"
    if read.usage is not None and read.usage.cost_usd is not None:  # (later turns' unknown)
        cost = f" (the run cost {usd(read.usage.cost_usd)} up to its last result line)"
    reason = (
        f"the agent's output was cut: it begins as {what} but ends before {ends} "
        f"({len(text.encode(errors='replace')):,} bytes on stdout, ending {said!r}), so it "
        f"holds no answer to store{cost}; the CLI was stopped while it wrote (killed, its pipe "
        "broken, the disk full)"  # (retried or dead-lettered: the failure's budget says)
    )
    return AgentOutput("", read.usage, reason, read.model, read.dropped, cut=reason)


def _stream_unended(events: list[dict[str, Any]]) -> bool:
    """Whether ``events``, the objects of JSON lines in order, are Claude Code's stream-json
    (holding its ``init`` event, a ``system`` one naming the ``session_id``, or a result
    line) cut at a line's end: no result line among them (the CLI killed between two events
    of its first turn), or an event that carries a new turn after the last one
    (``_begins_turn``: killed in a later turn than the result line held). Any other event
    after the result line cuts nothing: the CLI prints events of its own on its own
    schedule (a hook's or thinking tokens' ``system`` event, a ``rate_limit_event``, types
    a later version adds), which no answer follows."""
    if not any(_is_claude_init(v) or _is_claude_result(v) for v in events):
        return False
    last = next(
        (at for at in range(len(events) - 1, -1, -1) if _is_claude_result(events[at])), None
    )
    return last is None or any(_begins_turn(v) for v in events[last + 1 :])


def _codex_unended(events: list[dict[str, Any]]) -> bool:
    """Whether ``events`` are Codex's (``exec --json``) cut at a line's end after an
    ``agent_message`` whose turn did not end (no ``turn.completed``, ``turn.failed`` or
    ``error`` after it): the CLI killed mid-turn, that message maybe one of its first
    (Codex says what it will do, then does it), no answer. Events with no message are read
    as before: their error, or no agent_message; so are events with no ``turn.started``
    (filtered to the messages: ``jq 'select(.item.type=="agent_message")'``)."""
    if not events or events[0].get("type") not in _CODEX_EVENTS:
        return False
    if not any(v.get("type") == "turn.started" for v in events):
        return False
    said = next((at for at in range(len(events) - 1, -1, -1) if _agent_message(events[at])), None)
    if said is None:
        return False
    return not any(
        v.get("type") in ("turn.completed", "turn.failed", "error") for v in events[said + 1 :]
    )


def _agent_message(event: dict[str, Any]) -> bool:
    item = event.get("item")
    return (
        event.get("type") == "item.completed"
        and isinstance(item, dict)
        and item.get("type") == "agent_message"
    )


def _begins_turn(event: dict[str, Any]) -> bool:
    """Whether ``event`` of Claude Code's stream-json carries a turn: the model's message
    (``assistant``), the input or a tool's result (``user``), or a session's ``init``."""
    kind = event.get("type")
    return kind in ("assistant", "user") or (kind == "system" and event.get("subtype") == "init")


_CUT_QUOTE = 160  # the characters of a cut output's end its failure quotes
_FORMAT_NAMES = {
    CLAUDE: "Claude Code's JSON result object",
    CODEX: "Codex's JSON events",
    GEMINI: "Gemini CLI's JSON object",
}
# A JSON string (closed, or left open by the end of the text: its closing quote group empty),
# or a bracket. A string is matched whole from its opening quote, so each character is
# looked at once (a string regex that can fail would be tried again from each quote in it).
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*("?)|[\[{]|[\]}]', re.S)


def _unended(text: str) -> bool:
    """Whether ``text``, begun with a bracket, ends inside the JSON value it begins: inside a
    string, or with a bracket left open. A value closed before the end (JSON followed by
    text, or brackets balanced in text that is no JSON) is not."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        if token.group().startswith('"'):
            if not token.group(1):
                return True  # (a string open at the end of the text)
        elif token.group() in "[{":
            depth += 1
        else:
            depth -= 1
            if depth <= 0:
                return False
    return depth > 0


def _begun_as(start: str) -> str | None:
    """The format whose object ``start`` (JSON cut short) begins as: ``CLAUDE`` when its
    first member is ``"type": "result"``, ``CODEX`` when it is an event's type, ``GEMINI``
    when the keys up to the cut are Gemini's alone, ``session_id`` or ``response`` among
    them; None for any other (an answer printed as JSON)."""
    at = _skip_space(start, 0) + 1  # (past its "{")
    keys: list[str] = []
    first: Any = None
    while True:
        key, at = _decoded(start, at)
        if not isinstance(key, str) or not start.startswith(":", at):
            break
        keys.append(key)
        value, at = _decoded(start, at + 1)
        if len(keys) == 1:
            first = value
        if at < 0 or not start.startswith(",", at):
            break
        at += 1
    if keys[:1] == ["type"] and first == "result":
        return CLAUDE
    if keys[:1] == ["type"] and first in _CODEX_EVENTS:
        return CODEX
    if keys and set(keys) <= _GEMINI_KEYS and {"session_id", "response"} & set(keys):
        return GEMINI
    return None


def _read_cut(capture: Capture, *, asked: bool = False) -> AgentOutput:
    """An output whose middle ``capture`` dropped (``asked``: its command asks for a machine
    format, ``machine_option``).

    Text: the tail kept is its ``answer`` (contiguous, unlike ``Capture.text``), ``cut`` set.
    JSON lines (Codex's events, Claude's stream-json): when the whole lines of the tail say
    how the run ended (Claude's result line, no later turn's event after it:
    ``_stream_unended``; Codex's last ``agent_message``, or its failure), the output is read
    from the whole lines kept, as if whole: only earlier events were dropped (Codex's tokens
    of a turn among them are not counted: a note says so). Otherwise, and for a JSON object
    (Claude's, Gemini's), the run fails (``error``: ``cut_reason``) with what it cost where
    the end kept says it: the whole lines' events (the last result line's), else the end of
    the object whose string the cut fell in (``_object_end``), read only when that object
    began as Claude's result object or Gemini's (``_cut_envelope``) or the command asked for
    a machine format: any other is an answer printed as text, whose own keys (an agent's
    ``"total_cost_usd": 999``) are no cost."""
    head, tail = capture.parts()
    reason = cut_reason(capture)
    if head.lstrip().startswith("["):
        # Claude's verbose JSON array (``_read``), the likeliest to be long (it holds every
        # tool's result): its result object, last, is the whole run's answer and cost.
        ended = _array_result(head, tail)
        return ended if ended is not None else AgentOutput(tail, cut=reason)
    if not head.lstrip().startswith("{"):
        return AgentOutput(tail, cut=reason)
    tail_lines = tail.partition("\n")[2]  # (its first line is cut)
    kept = head.rpartition("\n")[0] + "\n" + tail_lines  # (the whole lines of both ends)
    lines = _read(kept)
    ended = _read(tail_lines)
    if ended.usage is not None and ended.usage.source != CODEX:
        events = [v for v in _json_lines(tail_lines)[1] if isinstance(v, dict)]
        if not _stream_unended(events):
            return ended  # Claude's result line: the whole run's answer and cost
        # (a later turn's events after it: that turn cut, the cost read from the lines kept)
    elif (
        ended.usage is not None
        and ended.error != _NO_MESSAGE
        and not _codex_unended([v for v in _json_lines(kept)[1] if isinstance(v, dict)])
    ):  # Codex's answer, its turn ended; or its failure
        whole = lines if lines.machine else ended  # (the session, the turns of the head)
        note = f"{_printed(capture)}: the tokens of turns that ended in its middle are not counted"
        return replace(whole, notes=(*whole.notes, note))
    if lines.machine:
        found: AgentOutput | None = lines
    else:
        kind = _cut_envelope(head)
        if kind is None and not asked:
            return AgentOutput(tail, cut=reason)
        found = _object_end(tail, kind)
    if found is None:
        error = cut_reason(capture, " (what the run cost is not in the end kept: unknown)")
        return AgentOutput("", error=error, cut=reason)
    error = cut_reason(capture, cost_note(found.usage))
    return AgentOutput("", found.usage, error, found.model, found.dropped, cut=reason)


def _object_end(tail: str, kind: str | None = None) -> AgentOutput | None:
    """What a run cost, read from the end of a JSON object cut inside one of its strings
    (its answer): the tail past that string's end is the rest of the object (Claude's result
    object puts ``session_id``, ``total_cost_usd``, ``usage`` and ``modelUsage`` after
    ``result``; Gemini's puts ``stats`` after ``response``). Each string end in the tail is
    tried, at most ``CUT_TRIES``, for the rest to parse as Claude's or Gemini's object (only
    the one ``kind`` names, ``CLAUDE`` or ``GEMINI``, when the object's start said which);
    None when none does."""
    for tries, end in enumerate(_STRING_END.finditer(tail)):
        if tries == CUT_TRIES:
            break
        rest = _json("{" + tail[end.end() :])
        if not isinstance(rest, dict):
            continue
        if kind != GEMINI and ("total_cost_usd" in rest or "modelUsage" in rest):
            return _claude({**rest, "type": "result", "result": ""})
        gemini = {**rest, "response": ""}
        if kind != CLAUDE and _is_gemini_result(gemini):
            return _gemini(gemini)
    return None


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")


def _cut_envelope(head: str) -> str | None:
    """Which CLI's object the cut fell in, by its members before the one cut (whole in the
    head kept): ``CLAUDE`` for a result object (``type`` ``"result"``) cut in its ``result``,
    ``GEMINI`` for Gemini's keys alone cut in its ``response``; None for any other start (an
    answer printed as JSON). The object is the head's last line begun when the head is JSON
    lines (stream-json: the cut fell in the last line the head begins), else the head."""
    first, newline, _ = head.lstrip().partition("\n")
    start = head.rpartition("\n")[2] if newline and isinstance(_json(first), dict) else head
    at = _skip_space(start, 0)
    if not start.startswith("{", at):
        return None
    members: dict[str, Any] = {}
    at += 1
    while True:
        key, at = _decoded(start, at)
        if not isinstance(key, str) or not start.startswith(":", at):
            return None
        value, at = _decoded(start, at + 1)
        if at < 0:  # the member cut: its value runs on past the head
            break
        members[key] = value
        if not start.startswith(",", at):
            return None  # (the object ended, or is no JSON: not cut in a member)
        at += 1
    if key == "result" and members.get("type") == "result":
        return CLAUDE
    if key == "response" and set(members) <= _GEMINI_KEYS:
        return GEMINI
    return None


def _decoded(text: str, at: int) -> tuple[Any, int]:
    """The JSON value in ``text`` from ``at`` (space around it skipped) and where the text
    goes on after it; ``(None, -1)`` when none is whole there."""
    try:
        value, end = _DECODER.raw_decode(text, _skip_space(text, at))
    except (ValueError, RecursionError):  # (RecursionError: nested too deep)
        return None, -1
    return value, _skip_space(text, end)


def _skip_space(text: str, at: int) -> int:
    found = _SPACE.match(text, at)
    return found.end() if found is not None else at


def _read(text: str) -> AgentOutput:
    stripped = text.strip()
    if stripped.startswith("["):
        # Claude Code's --output-format json in verbose mode (--verbose, or "viewMode":
        # "verbose" in its settings): every event of the session in one array, its result
        # object last.
        whole = _json(stripped)
        events = [v for v in whole if isinstance(v, dict)] if isinstance(whole, list) else []
        results = [v for v in events if _is_claude_result(v)]
        if results and any(_is_claude_init(v) for v in events):
            return _claude(results[-1])
    if stripped.startswith("{"):
        whole = _json(stripped)
        if _is_claude_result(whole):
            return _claude(whole)
        if _is_gemini_result(whole):
            return _gemini(whole)
        texts, lines = _json_lines(stripped)
        # (a failed run quotes them: the CLI's own words among its events)
        stray = "\n".join(t for t, v in zip(texts, lines, strict=True) if not isinstance(v, dict))
        results = [v for v in lines if _is_claude_result(v)]
        if results:  # stream-json: its last result (events after it: ``_stream_unended``)
            return replace(_claude(results[-1]), stray=stray)
        events = [v for v in lines if isinstance(v, dict) and v.get("type") in _CODEX_EVENTS]
        if events and isinstance(lines[0], dict):
            return replace(_codex(events), stray=stray)
    return AgentOutput(text)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # (nested deeper than the parser goes: not a format)
        return None


def _is_claude_result(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "result"
        and ("result" in value or "is_error" in value)
    )


def _is_claude_init(value: dict[str, Any]) -> bool:
    """Whether ``value`` is Claude Code's stream-json ``init`` event (its session begun)."""
    return (
        value.get("type") == "system"
        and value.get("subtype") == "init"
        and isinstance(value.get("session_id"), str)
    )


def _is_gemini_result(value: Any) -> bool:
    """Gemini's object: ``stats`` with its ``response`` (or ``error``), or an ``error``
    object alone, and no key Gemini does not print (a finding printed as JSON is no result).
    A key Gemini may add later is tolerated only beside ``stats`` holding a ``models``
    object, its shape: ``{"response": ..., "stats": {...}}`` alone is not enough for JSON
    with other keys to be taken for Gemini's."""
    if not isinstance(value, dict) or not value:
        return False
    stats = value.get("stats")
    if not set(value) <= _GEMINI_KEYS and not (
        isinstance(stats, dict) and isinstance(stats.get("models"), dict)
    ):
        return False
    error = value.get("error")
    if isinstance(stats, dict):
        return "response" in value or "error" in value
    return isinstance(error, dict) and "message" in error and "response" not in value


class _Figures:
    """Reads the figures of an agent's usage, keeping the plausible ones; what it leaves out
    is noted once, under the name the agent gave it."""

    def __init__(self) -> None:
        self.dropped: dict[str, None] = {}  # an ordered set

    def drop(self, note: str) -> None:
        self.dropped[note] = None

    def cost(self, where: str, value: Any) -> float | None:
        return float(value) if self._kept(where, value, Usage.cost_fault) else None

    def count(self, where: str, value: Any) -> int | None:
        return int(value) if self._kept(where, value, Usage.count_fault) else None

    def _kept(self, where: str, value: Any, fault: Callable[[object], str | None]) -> bool:
        """Whether ``value`` is given and plausible (``fault`` finds nothing); a value given
        and implausible is noted."""
        if value is None:
            return False
        if fault(value) is not None:
            self.drop(f"{where} {Usage.shown(value)}")
            return False
        return True

    def total(self, where: str, figures: dict[str, Any], main: str, *parts: str) -> int | None:
        """``main`` plus ``parts`` of ``figures`` (a part not given counts 0): None when
        ``main`` is not given or any of them is implausible, or the sum is."""
        counts = [self.count(f"{where}{name}", figures.get(name)) for name in (main, *parts)]
        given = [figures.get(name) is not None for name in (main, *parts)]
        if counts[0] is None or any(g and c is None for g, c in zip(given, counts, strict=True)):
            return None
        added = sum(filter(None, counts))
        return self.count(f"{where}{main} with {', '.join(parts)} added", added)

    def model(self, name: Any, where: str = "modelUsage") -> str | None:
        """A model's name as the core stores it (cut to ``LABEL_CHARS``), or None."""
        if not isinstance(name, str):
            return None
        if not name.strip() or not _encodable(name):
            self.drop(f"{where} name {Usage.shown(name)}")
            return None
        return name[:LABEL_CHARS]


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON's \ud800 can carry
        return False
    return True


def _session(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or not _encodable(value):
        return None
    return value[:LABEL_CHARS]


def _claude(result: dict[str, Any]) -> AgentOutput:
    read = _Figures()
    cost = read.cost("total_cost_usd", result.get("total_cost_usd"))
    models, whole = _claude_models(read, result.get("modelUsage"))
    counts = whole if whole is not None else _claude_usage(read, result.get("usage"))
    record, fixed = Usage(
        source=CLAUDE,
        cost_usd=cost,
        tokens_in=counts["tokens_in"],
        tokens_out=counts["tokens_out"],
        cached_in=counts["cached_in"],
        session_id=_session(result.get("session_id")),
        models=models,
    ).reconciled()
    answer = result.get("result")
    answer = answer if isinstance(answer, str) else ""
    error = None
    raw_subtype = result.get("subtype")
    subtype = raw_subtype[:80] if isinstance(raw_subtype, str) and raw_subtype.strip() else None
    if result.get("is_error") is True:
        why = answer.strip() or subtype or "no reason given"
        # (the cost said here too: a failed run's cost is easily overlooked)
        error = f"the agent CLI reported an error: {why[:500]}{cost_note(record)}"
    main = max(models, key=lambda m: models[m].get("cost_usd", 0.0), default=None)
    ended = subtype if subtype not in (None, "success") else None
    return AgentOutput(answer, record, error, main, tuple(read.dropped), ended, notes=(*fixed,))


_COUNTS = ("tokens_in", "cached_in", "tokens_out")
_CACHE_PARTS = ("cacheCreationInputTokens", "cacheReadInputTokens")


def _claude_usage(read: _Figures, raw: Any) -> dict[str, int | None]:
    """The run's counts from Claude's top-level ``usage``: read only when ``modelUsage``
    gives none, as it covers only part of a run (its last iteration)."""
    usage = raw if isinstance(raw, dict) else {}
    cache_parts = ("cache_creation_input_tokens", "cache_read_input_tokens")
    return {
        "tokens_in": read.total("usage.", usage, "input_tokens", *cache_parts),
        "cached_in": read.count(
            "usage.cache_read_input_tokens", usage.get("cache_read_input_tokens")
        ),
        "tokens_out": read.count("usage.output_tokens", usage.get("output_tokens")),
    }


def _claude_models(
    read: _Figures, raw: Any
) -> tuple[dict[str, dict[str, float]], dict[str, int | None] | None]:
    """Claude's ``modelUsage``: per model its cost and counts (``cached_in``: its
    ``cacheReadInputTokens``, where given), and the run's counts summed over the models,
    which cover the whole run (each None once a model's is unknown or not given; a cache
    part not given counts 0 in ``tokens_in``, as in ``usage``'s). The sums are None (read
    ``usage`` instead) when no model gives its tokens."""
    models: dict[str, dict[str, float]] = {}
    sums: dict[str, int | None] = dict.fromkeys(_COUNTS, 0)
    tokens_given = complete = False
    for raw_name, figures in (raw if isinstance(raw, dict) else {}).items():
        name = read.model(raw_name)
        if name is None or not isinstance(figures, dict):
            continue
        if len(models) == USAGE_MAX_MODELS:
            read.drop(f"modelUsage beyond its first {USAGE_MAX_MODELS} models")
            complete = False
            break
        complete = True
        tokens_given |= "inputTokens" in figures or "outputTokens" in figures
        where = f"modelUsage[{Usage.shown(name)}]."
        cached = figures.get("cacheReadInputTokens")
        found: dict[str, int | None] = {
            "tokens_in": read.total(where, figures, "inputTokens", *_CACHE_PARTS),
            "cached_in": read.count(f"{where}cacheReadInputTokens", cached),
            "tokens_out": read.count(f"{where}outputTokens", figures.get("outputTokens")),
        }
        entry = {"cost_usd": read.cost(f"{where}costUSD", figures.get("costUSD")), **found}
        models[name] = {k: v for k, v in entry.items() if v is not None}
        for key in _COUNTS:
            value, sum_so_far = found[key], sums[key]
            sums[key] = None if sum_so_far is None or value is None else sum_so_far + value
    if not tokens_given:
        return models, None
    if not complete:  # (models left unread: their sums are unknown)
        return models, dict.fromkeys(_COUNTS)
    for key in _COUNTS:  # many models can add up to more than any run uses
        sums[key] = read.count(f"modelUsage {key}, added up over the models,", sums[key])
    return models, sums


def _gemini(result: dict[str, Any]) -> AgentOutput:
    read = _Figures()
    names = ("tokens_in", "cached_in", "tokens_out")
    # None once a model did not say (or said what no run reports): its sum is unknown
    totals: dict[str, int | None] = dict.fromkeys(names, 0)
    models: dict[str, dict[str, float]] = {}
    stats = result.get("stats")
    raw_models = stats.get("models") if isinstance(stats, dict) else None
    for raw_name, figures in (raw_models if isinstance(raw_models, dict) else {}).items():
        name = read.model(raw_name, "stats.models")
        if name is None or not isinstance(figures, dict):
            continue
        if len(models) == USAGE_MAX_MODELS:
            read.drop(f"stats.models beyond its first {USAGE_MAX_MODELS} models")
            break
        raw_tokens = figures.get("tokens")
        tokens = raw_tokens if isinstance(raw_tokens, dict) else {}
        where = f"stats.models[{Usage.shown(name)}].tokens."
        found: dict[str, int | None] = {
            "tokens_in": read.count(f"{where}prompt", tokens.get("prompt")),
            "cached_in": read.count(f"{where}cached", tokens.get("cached")),
            "tokens_out": read.total(where, tokens, "candidates", "thoughts"),
        }
        tokens_in, cached = found["tokens_in"], found["cached_in"]
        if tokens_in is not None and cached is not None and cached > tokens_in:
            read.drop(f"{where}cached {cached} above {where}prompt {tokens_in}")
            found["cached_in"] = None
        for key in names:
            value, sum_so_far = found[key], totals[key]
            totals[key] = None if sum_so_far is None or value is None else sum_so_far + value
        models[name] = {k: v for k, v in found.items() if v is not None}
    if not models:
        totals = dict.fromkeys(names)
    for key in names:  # many models can add up to more than any run uses
        totals[key] = read.count(f"stats.models {key}, added up over the models,", totals[key])
    record, fixed = Usage(
        source=GEMINI,
        tokens_in=totals["tokens_in"],
        tokens_out=totals["tokens_out"],
        cached_in=totals["cached_in"],
        session_id=_session(result.get("session_id")),
        models=models,
    ).reconciled()
    answer = result.get("response")
    answer = answer if isinstance(answer, str) else ""
    error = None
    raw_error = result.get("error")
    if isinstance(raw_error, dict):
        message = raw_error.get("message")
        why = message if isinstance(message, str) and message.strip() else "no reason given"
        error = f"the agent CLI reported an error: {why[:500]}"
    notes = (*fixed, *_gemini_warnings(result.get("warnings")))
    main = max(
        models,
        key=lambda m: models[m].get("tokens_in", 0) + models[m].get("tokens_out", 0),
        default=None,
    )
    return AgentOutput(answer, record, error, main, tuple(read.dropped), notes=notes)


def _gemini_warnings(raw: Any) -> tuple[str, ...]:
    """Gemini's ``warnings`` as one note (a turn limit reached, a loop, a blocked tool: why
    an answer may be short), or none."""
    said = [w.strip() for w in raw if isinstance(w, str) and w.strip()] if isinstance(
        raw, list) else []  # fmt: skip
    if not said:
        return ()
    shown = [printable(w[:_GEMINI_WARNING_CHARS]) for w in said[:_GEMINI_WARNINGS]]
    more = f" (and {len(said) - _GEMINI_WARNINGS} more)" if len(said) > _GEMINI_WARNINGS else ""
    return ("Gemini CLI warned: " + " | ".join(shown) + more,)


def _codex(events: list[dict[str, Any]]) -> AgentOutput:
    answer: str | None = None
    error: str | None = None
    read = _Figures()
    names = {"in": "input_tokens", "cached": "cached_input_tokens", "out": "output_tokens"}
    # None once a turn did not say (or said what no run reports): its sum is unknown
    totals: dict[str, int | None] = dict.fromkeys(names, 0)
    turns = 0
    session = None
    for event in events:
        kind = event.get("type")
        if kind == "thread.started":
            session = _session(event.get("thread_id"))
        elif _agent_message(event):
            text = event["item"].get("text")
            if isinstance(text, str):
                answer, error = text, None
        elif kind == "turn.completed":
            turns += 1
            raw = event.get("usage")
            usage = raw if isinstance(raw, dict) else {}
            for key, name in names.items():
                value = read.count(f"turn.completed usage.{name}", usage.get(name))
                sum_so_far = totals[key]
                totals[key] = None if sum_so_far is None or value is None else sum_so_far + value
        elif kind in ("turn.failed", "error"):
            error = f"the agent CLI reported an error: {_codex_error(event)[:500]}"
    if not turns:
        totals = dict.fromkeys(names)
    for key, name in names.items():  # many turns can add up to more than any run uses
        totals[key] = read.count(f"{name}, added up over the turns,", totals[key])
    tokens_in, cached = totals["in"], totals["cached"]
    if tokens_in is not None and cached is not None and cached > tokens_in:
        read.drop(f"cached_input_tokens {cached} above input_tokens {tokens_in}")
        cached = None
    record = Usage(
        source=CODEX,
        tokens_in=tokens_in,
        tokens_out=totals["out"],
        cached_in=cached,
        session_id=session,
    )
    if answer is None and error is None:
        error = _NO_MESSAGE
    return AgentOutput(answer or "", record, error, dropped=tuple(read.dropped))


def _codex_error(event: dict[str, Any]) -> str:
    inner = event.get("error")
    message = inner.get("message") if isinstance(inner, dict) else event.get("message")
    return message if isinstance(message, str) and message.strip() else "no reason given"
