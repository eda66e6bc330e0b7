"""Stored text made safe to show on a terminal, and long lists of names made readable.

Summaries, descriptions, pass names, errors and message bodies come from agents, and a
terminal obeys the control characters in what it prints: an ESC sequence can rewrite the
clipboard (OSC 52), clear the screen, hide text or retitle the window. Every human output of
the CLI and of ``swarm watch`` passes stored text through ``printable``, which shows each
C0 and C1 control character (and DEL, and the bidirectional overrides that reorder a line)
as a visible escape: ``\\x1b`` instead of ESC. Newlines and tabs stay. JSON output writes
the same characters ``\\uXXXX`` (``_codec.shown_json``). Where stored text sits in a table or a
tree, ``short`` puts it on one line, cut to fit.

Text a sender wrote (a message's body, its data) that an agent is handed among the swarm's
own lines (a hook's context, a channel notice) has every line after its first indented,
``indented``: whatever line breaks it holds (``\\r``, U+2028 and the others
``str.splitlines`` knows, each made one), no line of it begins where the swarm's own lines
do, so none reads as another message, another notice, or what the swarm says of it.

A name or an id shown among those lines (a task id, a queue, a pass, an agent, a message id,
a kind) comes from an event or an inbox entry, which anyone who may write there may have
forged with any text: ``shown_name`` shows it as it is when it is a valid name (the core's
rule, ``_validate.is_name``), else quoted and escaped on one line, so that no line break in
it starts a line that reads as the swarm's own.

A context version (a 64-hex-digit hash) is shown to people as its first ``SHORT_VERSION``
digits, ``short_version``: wherever a version is asked for, a unique prefix is taken. JSON
keeps the whole version.

Queues and passes are shown to people in natural order (``natural_key``: day-2 before
day-10), and a view that lists them (``swarm status``, ``swarm watch``) shows every one with
open work but only the last ``SETTLED_SHOWN`` settled ones (``bounded``): a swarm run daily
for a year holds a thousand settled passes, and today's must not be buried among them.
Likewise a view that lists agents (``swarm watch``, the dashboard) lists only the
``LIVE_SHOWN`` live ones and the ``STALE_SHOWN`` stale ones seen last (``bounded_agents``):
agents that come and go leave hundreds of stale ones behind, and a swarm of 2,000 live
agents sent them all on every poll (568 KB). A view that lists context owners (``swarm
status``, ``swarm watch``, the dashboard, MCP's ``swarm_status``) lists the ``OWNERS_SHOWN``
that published last (``bounded_owners``): a swarm of 2,000 shards is 2,000 owners.
``not_shown`` and ``stale_not_shown`` say how many each left out, and how to see them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from ._codec import UNSAFE_CONTROLS, UNSAFE_WIDE, counted
from ._models import OPEN_STATUSES as _OPEN
from ._models import Agent
from ._validate import MAX_LABEL_CHARS, is_name

__all__ = [
    "BODY_INDENT",
    "LIVE_SHOWN",
    "OWNERS_SHOWN",
    "SETTLED_SHOWN",
    "SHORT_VERSION",
    "STALE_SHOWN",
    "agents_not_shown",
    "bounded",
    "bounded_agents",
    "bounded_owners",
    "bounded_passes",
    "bounded_queues",
    "in_a_list",
    "indented",
    "natural_key",
    "not_shown",
    "one_line",
    "printable",
    "redis_cli_word",
    "short",
    "short_version",
    "shown_name",
    "stale_not_shown",
]

SHORT_VERSION = 12  # hex digits: unique among an owner's kept versions, and fits a table
# The most settled queues, and settled passes, a view for people lists (its --all: every one).
SETTLED_SHOWN = 10
# The most stale agents a live view for people lists, the ones seen last (its --all: every one).
STALE_SHOWN = 5
# The most live agents a view for people lists, the ones seen last (its --all: every one).
LIVE_SHOWN = 200
# The most context owners a view lists, those that published last (its --all, all=true: all).
OWNERS_SHOWN = 20

# The indent of the continuation lines of text a sender wrote (``indented``): deeper than
# any line the swarm writes around it (a hook's ``  data:`` line, a notice's own lines).
BODY_INDENT = "    "

T = TypeVar("T")

_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in UNSAFE_CONTROLS}
_ESCAPES |= {c: f"\\u{c:04x}" for c in UNSAFE_WIDE}

_DIGITS = re.compile(r"([0-9]+)")  # ASCII digits: what a counter in a name is written in


def printable(text: object) -> str:
    """``text`` as a string with every control character shown as an escape (a ``str``
    enum as its value, as it would print)."""
    if isinstance(text, str):
        return str.translate(text, _ESCAPES)
    return str(text).translate(_ESCAPES)


# The whitespace ``one_line`` makes one space: any run of it but the characters
# ``printable`` escapes (U+2028, U+2029, the C0 and C1 controls str.split() takes for spaces),
# which stay to be shown escaped, as every other face shows them; a carriage return is
# made a space too, the end of a line written \r\n.
_BLANKS = re.compile(
    r"[^\S"
    + "".join(re.escape(chr(c)) for c in sorted((UNSAFE_CONTROLS | UNSAFE_WIDE) - {0x0D}))
    + "]+"
)


def one_line(text: str) -> str:
    """``text`` on one line: each run of whitespace (a line break, a tab) one space, none at
    either end; the characters ``printable`` escapes are kept, for it to show them."""
    return _BLANKS.sub(" ", text).strip(" ")


def short(text: Any, limit: int = 80) -> str:
    """``text`` (a summary, a description) on one line, cut at ``limit`` characters, safe to
    print: a newline in it would start a line at column 0, outside a table or a tree."""
    value = printable(one_line(str(text or "")))
    return value if len(value) <= limit else value[: limit - 1] + "…"


def shown_name(value: object, *, label: bool = False, limit: int = 80) -> str:
    """A name or an id read from an event or an inbox entry (see the module), to show among
    the swarm's own lines: as it is when it is a valid name (``is_name``; with ``label``, a
    free-text label such as a pass name, when it is printable on one line and within
    ``MAX_LABEL_CHARS``), else quoted with every line break and control character escaped
    (``\\n``, ``\\x1b``, ``\\u2028``), cut at ``limit`` characters: never a raw line break."""
    if is_name(value):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if label and text.strip() and len(text) <= MAX_LABEL_CHARS and text.isprintable():
        return text
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def indented(text: str) -> str:
    """``text`` with every line after its first indented (``BODY_INDENT``), each line break
    (``\\r``, U+2028 and the others ``str.splitlines`` knows) made one: a sender's text
    cannot forge a line that reads as the swarm's own (another message, its data)."""
    return f"\n{BODY_INDENT}".join(text.splitlines()) if text else text


def asked_otherwise(question_id: str, text: str) -> str:
    """How a message names the question a dedupe key met that was asked with other text
    (its answer answers that text): the CLI's note on such an answer, an ask's timeout."""
    return f"question {question_id}, asked with other text ({short(text)!r})"


def short_version(version: str) -> str:
    """A context version as people see it: its first ``SHORT_VERSION`` hex digits."""
    return version[:SHORT_VERSION]


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort ``name`` as people count: each run of digits as its number (day-2 before day-10,
    run-9.b before run-10.a), letters regardless of case; the name itself breaks ties
    (day-07 and day-7), so the order is total."""
    # re.split with a group alternates text and digits, text first: every key has text at
    # even places and numbers at odd ones, so two keys never compare a str with an int.
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def bounded(
    items: Iterable[T],
    name: Callable[[T], str],
    counts: Callable[[T], Mapping[str, int]],
    settled: int | None = SETTLED_SHOWN,
) -> tuple[list[T], int]:
    """``items`` in natural order of their ``name``: every one with open work (a task
    pending, delayed or claimed in its ``counts``) and the last ``settled`` settled ones
    (None: all), the newest where names count up; and how many settled ones are left out."""
    ordered = sorted(items, key=lambda item: natural_key(name(item)))
    if settled is None:
        return ordered, 0
    done = [item for item in ordered if not any(counts(item).get(s, 0) for s in _OPEN)]
    hidden = max(0, len(done) - settled)
    left_out = {id(item) for item in done[:hidden]}
    return [item for item in ordered if id(item) not in left_out], hidden


class _Progress(Protocol):
    """A pass as the bounded views list it (``PassProgress``, and a snapshot's pass)."""

    @property
    def name(self) -> str: ...

    @property
    def counts(self) -> Mapping[str, int]: ...


P = TypeVar("P", bound=_Progress)
Q = TypeVar("Q", bound=Mapping[str, int])


def bounded_queues(
    queues: Mapping[str, Q], settled: int | None = SETTLED_SHOWN
) -> tuple[list[tuple[str, Q]], int]:
    """``bounded`` of queues (or queues of questions) given as name -> counts: (name, counts)
    pairs, and how many settled ones are left out."""
    return bounded(queues.items(), _queue_name, _queue_counts, settled)


def bounded_passes(passes: Iterable[P], settled: int | None = SETTLED_SHOWN) -> tuple[list[P], int]:
    """``bounded`` of passes, each with its ``name`` and ``counts``."""
    return bounded(passes, _pass_name, _pass_counts, settled)


def _queue_name(queue: tuple[str, Mapping[str, int]]) -> str:
    return queue[0]


def _queue_counts(queue: tuple[str, Mapping[str, int]]) -> Mapping[str, int]:
    return queue[1]


def _pass_name(progress: _Progress) -> str:
    return progress.name


def _pass_counts(progress: _Progress) -> Mapping[str, int]:
    return progress.counts


def not_shown(
    queues: int, passes: int, command: str, *, lists: str | None = None, owners: int = 0
) -> str | None:
    """The line a bounded view prints under its lists: how many settled queues and passes
    (and context ``owners``, ``bounded_owners``) it left out, and that ``command`` (the
    view's: ``swarm status``) lists them with --all, or what ``lists`` them where that is
    no command (an MCP tool's argument) (None when it left out none)."""
    parts = [
        counted(n, one, many)
        for n, one, many in (
            (queues, "settled queue", "settled queues"),
            (passes, "settled pass", "settled passes"),
            (
                owners,
                "context owner that published longer ago",
                "context owners that published longer ago",
            ),
        )
        if n
    ]
    if not parts:
        return None
    return f"not shown: {in_a_list(parts)} ({lists or command + ' --all'} lists them)"


def in_a_list(items: Sequence[str]) -> str:
    """``items`` as a sentence lists them: "a", "a and b", "a, b and c"."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def bounded_agents(
    agents: Sequence[Agent], stale: int | None = STALE_SHOWN, live: int | None = LIVE_SHOWN
) -> tuple[list[Agent], int]:
    """``agents`` in their order: the ``live`` live ones and the ``stale`` stale ones seen
    last (``live`` None: every live one; ``stale`` None: every agent, live or stale, as a
    view's --all lists them); and how many are left out, live and stale."""
    if stale is None:
        return list(agents), 0
    kept: set[int] = set()
    for state, most in ((True, live), (False, stale)):
        group = [a for a in agents if bool(a.alive) is state]
        if most is not None:
            group.sort(key=lambda a: a.last_seen or 0, reverse=True)
            del group[most:]
        kept.update(id(a) for a in group)
    shown = [a for a in agents if id(a) in kept]
    return shown, len(agents) - len(shown)


def stale_not_shown(stale: int, command: str, *, live: int = 0) -> str | None:
    """The line under a bounded list of agents: how many stale (and ``live``) ones it left
    out, and where they are listed (None when it left out none)."""
    if not stale and not live:
        return None
    parts = [counted(n, f"{state} agent") for n, state in ((live, "live"), (stale, "stale")) if n]
    # (swarm agents lists every agent; --alive or --stale, only those left out)
    option = "" if live and stale else " --alive" if live else " --stale"
    return (
        f"not shown: {' and '.join(parts)} seen longer ago (swarm agents{option} lists "
        f"them, {command} --all shows them here)"
    )


def agents_not_shown(shown: Sequence[Agent], hidden: int, alive: int, command: str) -> str | None:
    """``stale_not_shown`` of a list of agents ``bounded_agents`` left ``hidden`` out of,
    ``alive`` of them live in all (those of ``shown`` and those left out)."""
    live = max(0, alive - sum(1 for a in shown if a.alive))
    return stale_not_shown(max(0, hidden - live), command, live=live)


class _Owned(Protocol):
    """A context as ``bounded_owners`` lists it (``ContextInfo``)."""

    @property
    def owner(self) -> str: ...

    @property
    def created_at(self) -> int: ...


C = TypeVar("C", bound=_Owned)


def bounded_owners(contexts: Sequence[C], most: int | None = OWNERS_SHOWN) -> tuple[list[C], int]:
    """``contexts`` (one an owner) in their order: the ``most`` that were published last
    (None: all); and how many are left out."""
    if most is None:
        return list(contexts), 0
    newest = sorted(contexts, key=lambda c: c.created_at or 0, reverse=True)[:most]
    kept = {id(c) for c in newest}
    return [c for c in contexts if id(c) in kept], len(contexts) - len(kept)


# The bytes ``redis_cli_word`` writes as they are: printable ASCII but the quotes (the shell's
# and redis-cli's) and the backslash (redis-cli's escape).
_CLI_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("'"), ord('"'), ord("\\")}


def redis_cli_word(value: str) -> str | None:
    """``value`` (a key) as one word of a shell command that ``redis-cli --quoted-input``
    (redis-cli 7.0 or later) reads back as it is: in double quotes for redis-cli, inside single
    quotes for the shell, each byte of its UTF-8 but ``_CLI_PLAIN`` written ``\\xNN`` (which
    redis-cli decodes): only printable ASCII, so nothing in it acts on a terminal or a shell,
    and it pastes as it is shown. None when it is no UTF-8 text (a lone surrogate): no
    command line gives it."""
    try:
        raw = value.encode()
    except UnicodeEncodeError:
        return None
    quoted = "".join(chr(b) if b in _CLI_PLAIN else f"\\x{b:02x}" for b in raw)
    return f"'\"{quoted}\"'"
