"""Validation of names at the edge: every name that ends up inside a Redis key passes here."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._codec import UNSAFE_BIDI, UNSAFE_SEPARATORS
from ._errors import ValidationError

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_POLL_S",
    "DEFAULT_RETRY_BACKOFF_S",
    "DEFAULT_TASK_LEASE_S",
    "DEFAULT_TIMEOUT_S",
    "MAX_AGENT_NAME",
    "MAX_AROUND",
    "MAX_ASK_TIMEOUT_S",
    "MAX_ATTEMPTS",
    "MAX_CAPACITY_TOKENS",
    "MAX_CLAIM_BATCH",
    "MAX_CONTEXT_BYTES",
    "MAX_COUNT",
    "MAX_DELAY_S",
    "MAX_DESCRIPTION_CHARS",
    "MAX_DURATION_S",
    "MAX_EVENTS",
    "MAX_HITS",
    "MAX_JSON_DEPTH",
    "MAX_LABEL_CHARS",
    "MAX_LEASE_S",
    "MAX_NAME",
    "MAX_NOT_BEFORE_MS",
    "MAX_PAGE",
    "MAX_PASS_WAIT_S",
    "MAX_POLL_S",
    "MAX_PRIORITY",
    "MAX_QUEUES",
    "MAX_READ",
    "MAX_RETRY_AFTER_S",
    "MAX_RETRY_BACKOFF_S",
    "MAX_ROLE",
    "MAX_TASK_DATA_BYTES",
    "MAX_WAIT_S",
    "MIN_LEASE_S",
    "MIN_NOT_BEFORE_MS",
    "READ_DEFAULT",
    "begins_like_option",
    "check_agent",
    "check_failure_reason",
    "check_flag",
    "check_id",
    "check_json_depth",
    "check_json_keys",
    "check_label",
    "check_list",
    "check_name",
    "check_printable",
    "check_queues",
    "check_swarm_name",
    "is_name",
    "not_ascii_number",
    "only_dots",
    "option_like",
    "too_deep",
]

# Bounds the operations check, which the faces show in their own checks (click ranges, tool
# schemas) before a call: here, so that a face need not import an operation's module.
MAX_CLAIM_BATCH = 100  # tasks one claim may lease at once (n)
MAX_DELAY_S = 100 * 365 * 86_400.0  # the longest delay a task may be posted with: a century
MAX_DESCRIPTION_CHARS = 64 * 1024  # a task's description; the material goes in data or a context
MAX_LABEL_CHARS = 256  # a free-text label's characters (a pass name, a dedupe key): check_label
MAX_EVENTS = 10_000  # events one listing may return (limit)
MAX_READ = 1000  # messages one inbox read may return (limit)
READ_DEFAULT = 100  # messages an inbox read returns unless told
MAX_HITS = 1000  # hits one context search may list
MAX_AROUND = 20  # lines shown around a hit
DEFAULT_AROUND = 2  # ... when the caller does not say
MAX_LEASE_S = 30 * 86_400.0  # the longest lease a claim may take or a renew give: 30 days
MIN_LEASE_S = 0.001  # a task's lease_s, and the lease a claim or a renewal asks for
DEFAULT_TASK_LEASE_S = 900.0  # a task's lease_s when its post gives none: 15 minutes
# A task's not_before is epoch milliseconds. One below 10**11 (March 1973) can only be a
# mistake: in ms it is a due time long past (the task would be pending at once, as with
# none), and it is what a time in seconds looks like (every date until the year 5138 is
# under 10**11 s; time.time() is about 1.8e9): refused, not read as 1970. The largest is
# past the year 10,000.
MIN_NOT_BEFORE_MS = 10**11
MAX_NOT_BEFORE_MS = 2**48
MAX_WAIT_S = 86_400.0  # the longest one call blocks (a claim, a report's next task, an inbox)
MAX_ASK_TIMEOUT_S = MAX_WAIT_S  # the longest an ask waits for its answer
MAX_PASS_WAIT_S = 7 * 86_400.0  # the longest a wait for a pass or queue to settle may be
# A failed task waits its queue's retry_backoff_s, then twice that, ... at most this long (the
# cap); a queue's first wait is at most the cap too (past it, every wait would be the cap).
MAX_RETRY_BACKOFF_S = 300.0
# The longest duration any call takes where no tighter bound applies (retire_questions'
# older_than_s; every CLI duration, ``Seconds``): about 31 years.
MAX_DURATION_S = 1e9
MAX_PAGE = 1_000  # the most items one page of a listing holds (its limit)
# The largest context a swarm stores by default (Limits.max_context_bytes): the largest
# payload of all, and the bound of what a face reads from a file or stdin before refusing it.
MAX_CONTEXT_BYTES = 64 * 1024 * 1024
# The largest task data (and question data) a swarm stores by default, encoded
# (Limits.max_task_data_bytes): also the most a face reads of a --data file or stdin.
MAX_TASK_DATA_BYTES = 1024 * 1024
# A task's priority, either way: the pending score keeps FIFO order exact within +-10,000.
MAX_PRIORITY = 10_000
# A task's max_attempts and max_abandons (a queue's too).
MAX_ATTEMPTS = 1_000
DEFAULT_MAX_ATTEMPTS = 3  # a task's max_attempts when its post gives none
# A runner's idle claim waits at most this long before it looks again (--poll), 1 s unless set.
MAX_POLL_S = 60.0
DEFAULT_POLL_S = 1.0
# The most one agent run may take when no timeout is given (``swarm run``/``serve``
# ``--timeout``, a plan's ``timeout_s``), whatever the task's lease_s: the lease is renewed
# every third of it while the agent runs (``LeaseRenewal``), so it is no time limit. (Before,
# ``swarm run`` took each task's lease_s as the timeout, and a short lease killed agents that
# would have finished: a setup that relied on it passes --timeout.) Here, not in the runner,
# so that the CLI's help says it without importing the runner.
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_RETRY_BACKOFF_S = 1.0  # a queue's first wait after a failure, unless it sets one
# The longest a fail's retry_after_s may hold a task back: a day covers a rate limit's
# Retry-After up to a daily quota's reset; longer is a task to dead-letter or post delayed.
MAX_RETRY_AFTER_S = 86_400.0

# JSON payloads (task data, findings, messages, metadata) nest at most this deep: deeper
# values are refused at the edge rather than stored for readers that might not decode them.
MAX_JSON_DEPTH = 200
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")

# Letters, digits and ``._-``: nothing that could break a key (``:``), a hash tag (``{}``),
# a glob (``*?[``) or a terminal (control characters).
_NAME = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME = 128  # the longest name (an owner, a queue, a worker) unless its kind says less


def check_name(kind: str, value: object, *, max_len: int = MAX_NAME, new: bool = False) -> str:
    """Return ``value`` if it is a valid name of ``kind``, else raise a ValidationError.

    ``new``: the name is given to something made now (a task posted under a given id, a
    finding or synthesis stored under one), and may not begin with '-': every command that
    names it (a hint's swarm task show -t1, copied as is) would read it as an option. A
    new agent's name is refused so too, by the operations that know it is new (register,
    join: ``begins_like_option``). A name read (a lookup, a removal) may: a record already
    stored under one stays reachable (the CLI names it after '--')."""
    if not isinstance(value, str):
        raise ValidationError(f"{kind} must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError(f"{kind} is empty: use ASCII letters, digits, '.', '_' or '-'")
    if len(value) > max_len:
        raise ValidationError(
            f"{kind} is {len(value)} characters long; the limit is {max_len}: use a shorter name"
        )
    if not _NAME.fullmatch(value):
        bad = next(ch for ch in value if not _NAME.fullmatch(ch))
        raise ValidationError(
            f"{kind} {value[:40]!r} contains {bad!r}: use only ASCII letters, digits, '.', '_' "
            "or '-' (a-z, A-Z, 0-9: no accented or other letters)"
        )
    if new and begins_like_option(value):
        raise option_like(kind, value)
    return value


def is_name(value: object, *, max_len: int = MAX_NAME) -> bool:
    """Whether ``value`` is a valid name (``check_name``'s rule, without the error): for a
    name read from where anyone who may write it could have put any text (an event's
    fields, an inbox entry), to show it only when it is one (``_printable.shown_name``)."""
    return isinstance(value, str) and 0 < len(value) <= max_len and bool(_NAME.fullmatch(value))


def begins_like_option(name: str) -> bool:
    """Whether a command naming ``name`` (``swarm agents deregister NAME``, copied from a
    hint) would read it as an option: a name given to something new may not (``new``).
    Nor may a name that is only dots (``only_dots``): every operation that refuses a new
    name asks this, so it says that too (``option_like`` words each)."""
    return name.startswith("-") or only_dots(name)


def only_dots(name: str) -> bool:
    """Whether ``name`` is only dots ('.', '..'): files under SWARM_HOME are named after
    swarms and agents (lease tokens, the hooks' spool), where '.' is the folder itself and
    '..' the one above it, outside the home. A name that merely begins with '.' ('.x') is
    one file inside its folder, hidden from ls but no escape: it stays allowed."""
    return bool(name) and not name.strip(".")


def option_like(kind: str, value: str) -> ValidationError:
    """The refusal of a new ``kind`` named ``value``, which ``begins_like_option``."""
    if only_dots(value):
        return ValidationError(
            f"{kind} {value[:40]!r} is only dots: files are named after it, where '.' and "
            "'..' name folders, not files of their own; use a name with an ASCII letter, "
            "a digit, '_' or '-' in it"
        )
    return ValidationError(
        f"{kind} {value[:40]!r} begins with '-', which a command naming it would read as "
        "an option: begin it with an ASCII letter, a digit, '.' or '_'"
    )


# The longest number an error rewrites in ASCII digits for the user to copy ("as 10"): a
# longer one is no number a setting takes.
_MOST_REWRITTEN = 40


def not_ascii_number(what: str, text: str, *, fraction: bool = False) -> str | None:
    """The error for ``text``, the number given as ``what`` (an option and its value), when
    it is not written in ASCII digits; None when it is. Python's ``int`` and ``float`` read
    ``1_0`` as 10, and the Arabic-Indic ``١٠`` and the full-width ``１０`` too: a value that one
    program takes and the next (redis-py, a shell script, a config checker) does not, so every
    edge that reads a number from text (a URL, a variable of the environment, the CLI's
    options) refuses them alike, saying the number to write when it can. ``fraction``: the
    number may have one (a timeout in seconds)."""
    if text.isascii() and "_" not in text:
        return None
    point = ", a '.' before any fraction" if fraction else ""
    return (
        f"{what} is not written in ASCII digits: write it with 0-9 only{point}, no '_' "
        f"between them{_in_ascii(text)}"
    )


def _in_ascii(text: str) -> str:
    """``text``'s digits in ASCII (``, as 10``), when that makes it all ASCII; else ""."""

    def ascii_digit(ch: str) -> str:
        digit = None if ch.isascii() else unicodedata.decimal(ch, None)
        return ch if digit is None else str(digit)

    written = "".join(ascii_digit(ch) for ch in text.strip().replace("_", ""))
    if not written or not written.isascii() or len(written) > _MOST_REWRITTEN:
        return ""
    return f", as {written}"


def check_unicode(subject: str, text: str, *, fix: str = "") -> None:
    """Refuse ``text`` holding a lone surrogate (half of a character: Python takes it, UTF-8
    and so Redis cannot), naming ``subject``; ``fix``: as ``check_printable``'s."""
    if text.isascii():
        return
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValidationError(
            f"{subject} is not valid Unicode text (it holds a lone surrogate): fix the text{fix}"
        ) from None


def check_label(
    kind: str, value: object, *, max_chars: int = MAX_LABEL_CHARS, new: bool = False
) -> str:
    """Free text used as a label (pass names, dedupe keys, a model's name): any characters,
    bounded. Here, so that a face refuses what the core would before it calls.

    ``new``: the label is written now (the pass name of a task posted or of a synthesis
    stored), and may not begin or end with whitespace: ``"Pass 1\\n"`` (a line read from a
    file, or ``input()``) would be another pass than ``"Pass 1"``, the two alike in a listing,
    and a look-up by the name shown would find nothing. Nor may it hold a control character
    (a tab, a line break, ESC) or a bidirectional override (``check_printable``'s rule):
    ``"p\\n2"`` and ``"p 2"`` would show as two identical rows, and a command naming it in a
    hint could not be copied. As with ``check_name``'s ``new``, a label read (a look-up, a
    retirement) may: what was stored under one stays reachable."""
    if not isinstance(value, str):
        raise ValidationError(f"{kind} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(f"the {kind} is empty: give a non-blank one")
    if new and value != value.strip():
        raise _edge_space(kind, value)
    if len(value) > max_chars:
        raise ValidationError(
            f"{kind} is {len(value)} characters long; the limit is {max_chars}: shorten it"
        )
    check_unicode(kind, value)
    if new:
        check_printable(f"the {kind}", value, max_chars=max_chars)
    return value


def _edge_space(kind: str, value: str) -> ValidationError:
    """The refusal of a new ``kind`` ``value`` that begins or ends with whitespace."""
    where, ch = ("ends", value[-1]) if value[-1].isspace() else ("begins", value[0])
    what = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", " ": "a space"}
    said = what.get(ch, f"whitespace (U+{ord(ch):04X})")
    stripped = value.strip()
    return ValidationError(
        f"the {kind} {value[:60]!r} {where} with {said}: it would be another {kind} than "
        f"{stripped[:60]!r}, the two alike in a listing, and a look-up by {stripped[:60]!r} "
        "would find nothing; give it without whitespace at either end"
    )


def check_printable(kind: str, value: str, *, max_chars: int, fix: str = "") -> str:
    """A one-line label shown in tables (an agent's model, its specialization, a context's
    source): at most ``max_chars`` characters, none of them one that ``printable`` shows as
    an escape (C0 and C1 control characters, DEL, the bidirectional overrides, U+2028 and
    U+2029), nor a tab or newline. ``fix``: what the refusal adds to its own advice, for a
    label with a way of its own to be given apart (a context's source: ``--source``)."""
    # (Imported here: _printable imports _models, whose records' defaults are this module's.)
    from ._printable import printable

    if len(value) > max_chars:
        raise ValidationError(
            f"{kind} is {len(value)} characters long; the limit is {max_chars}: shorten it"
        )
    for position, ch in enumerate(value, 1):
        if ch in "\t\n" or printable(ch) != ch:
            what = (
                "a bidirectional override"
                if ord(ch) in UNSAFE_BIDI
                else "a line separator"
                if ord(ch) in UNSAFE_SEPARATORS
                else "a control character"
            )
            raise ValidationError(
                f"{kind} holds {what} (U+{ord(ch):04X}) at position {position}: "
                f"use printable text on one line{fix}"
            )
    return value


# Queues one claim names at most (one script gets every queue's keys), and so what any face
# that claims from, runs workers on or watches a list of queues takes.
MAX_QUEUES = 64


def check_queues(queues: str | Sequence[str], *, what: str = "claim") -> tuple[str, ...]:
    """The distinct names of ``queues`` (one queue name or a list of them), in order, each
    checked, at least one and at most ``MAX_QUEUES``; else a ValidationError naming
    ``what`` took them."""
    given: object = queues  # (typed as the callers should call it; checked as they may)
    if isinstance(given, bytes | bytearray):  # a Sequence, of ints: named as what it is
        raise ValidationError(
            f"queue must be a string, got {type(given).__name__}: decode it (.decode())"
        )
    if isinstance(queues, str):
        names = [queues]
    elif isinstance(queues, Sequence):
        names = list(queues)
    else:
        raise ValidationError(f"{what} takes a queue name or a list of queue names")
    if not names:
        raise ValidationError(f"{what} needs at least one queue")
    # (the distinct ones are counted: a name given twice is one queue, claimed from once)
    distinct = tuple(dict.fromkeys(check_name("queue", q) for q in names))
    if len(distinct) > MAX_QUEUES:
        twice = ""
        if len(names) > len(distinct):
            twice = f" ({len(names)} names, some given more than once)"
        raise ValidationError(
            f"{what} got {len(distinct)} queues{twice}; the limit is {MAX_QUEUES}: split them"
        )
    return distinct


def check_list(kind: str, value: object, *, of: str) -> list[Any]:
    """``value``, a list (or a tuple, a set, a generator) of ``of``, as a list; else a
    ValidationError naming ``kind``: None, a number, one string (iterated, it would be its
    characters) or one mapping (its keys) is no list of them."""
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        one = ""
        if isinstance(value, str):
            one = f": [{value!r}] for one" if len(value) <= 40 else ": put it in a list"
        elif isinstance(value, Mapping):
            one = ": put it in a list ([...]) for one"
        raise ValidationError(f"{kind} must be a list of {of}, not {type(value).__name__}{one}")
    return list(value)


def check_flag(kind: str, value: object) -> bool:
    """``value``, a bool; else a ValidationError naming ``kind`` (1, "yes" and None are no
    answer to a yes-or-no option: Python would take them as one)."""
    if not isinstance(value, bool):
        raise ValidationError(f"{kind} must be true or false, not {value!r}")
    return value


def check_swarm_name(value: object) -> str:
    """Swarm names go into every key's hash tag, so they are kept short. One that is only
    dots is refused, read or new (``only_dots``): files under SWARM_HOME are named after a
    swarm, and no swarm can be named so without its files escaping the home."""
    name = check_name("swarm name", value, max_len=64)
    if only_dots(name):
        raise option_like("swarm name", name)
    return name


# The largest count a record may hold (failures, attempts, ...): what Lua's numbers and JSON keep
# exact, and what the scripts check a count against (lua/_tasks.lua's COUNT_LIMIT).
MAX_COUNT = 2**53
MAX_AGENT_NAME = 64  # an agent's name: it is part of its inbox's key and of every message
MAX_ROLE = 40  # an agent's role (worker, planner, ...): a word, as every agents listing shows it
# The most tokens an agent's capacity_tokens may say: far beyond any model's context or
# budget, and still exact as a number in Lua and JSON (below 2**53).
MAX_CAPACITY_TOKENS = 10**12


def check_agent(kind: str, value: object, *, new: bool = False) -> str:
    """An agent's name (a sender, a recipient, a parent, a shard): a name of at most
    ``MAX_AGENT_NAME`` characters; ``new``: of an agent registered now (``check_name``)."""
    return check_name(kind, value, max_len=MAX_AGENT_NAME, new=new)


def check_failure_reason(error: object) -> str:
    """A task's failure reason: a string, not blank (whoever reads the dead letter acts on
    it). Here, so that a face refuses a blank one as the core does, before the call."""
    if not isinstance(error, str):
        raise ValidationError(f"error must be a string, got {type(error).__name__}")
    if not error.strip():
        raise ValidationError("error is empty: say why the task failed")
    return error


def check_id(kind: str, value: object, *, new: bool = False) -> str:
    """Ids are generated by redis-swarm, but arrive back from users and agents: check them.
    ``new``: an id a caller gives to what it makes now (``check_name``)."""
    return check_name(f"{kind} id", value, max_len=64, new=new)


def check_json_depth(what: str, encoded: str) -> str:
    """Refuse JSON text nested deeper than MAX_JSON_DEPTH (cheap when it has few brackets)."""
    if encoded.count("[") + encoded.count("{") <= MAX_JSON_DEPTH:
        return encoded
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", encoded)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_JSON_DEPTH:
        raise ValidationError(
            f"{what} is nested {deepest} levels deep; the limit is {MAX_JSON_DEPTH}: "
            "flatten it (or store it in a context and pass a reference)"
        )
    return encoded


# What a JSON value's walk for keys needs not enter: what holds no dict.
_JSON_LEAVES = frozenset({str, int, float, bool, type(None)})


def check_json_keys(what: str, value: object) -> None:
    """Refuse (ValidationError) a dict key that is not a string anywhere in ``value`` (task
    data, a finding, a message's data), naming where: JSON has string keys only, and its
    encoder would write ``1``, ``True`` or ``None`` as ``"1"``, ``"true"``, ``"null"``
    silently, a value lost where that string is a key of the same dict too. One walk of the
    value's dicts and lists, cheap (a small post's data: well under a microsecond); a value
    nested too deep or holding itself is left to the encoder, which refuses it."""
    try:
        path = _bad_key(value)
    except RecursionError:
        return
    if path is None:
        return
    *where, key = path
    at = "".join(f"[{step!r}]" for step in where)
    try:  # (what the encoder would make of it: int, float, bool and None keys)
        as_text = next(iter(json.loads(json.dumps({key: 0}))))
        stored = (
            f": it would be stored as {as_text!r} without a word, one value lost where a key "
            f"{as_text!r} is there too"
        )
    except (TypeError, ValueError):
        stored = ""
    raise ValidationError(
        f"{what}{' at ' + at if at else ''} has the key {key!r} ({type(key).__name__}): JSON "
        f"keys are strings{stored}; make every key a string"
    )


def _bad_key(value: object) -> list[Any] | None:
    """The path to the first key of ``value``'s dicts that is not a str (its last item), or
    None."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                return [key]
            if type(item) not in _JSON_LEAVES:
                inner = _bad_key(item)
                if inner is not None:
                    return [key, *inner]
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            if type(item) not in _JSON_LEAVES:
                inner = _bad_key(item)
                if inner is not None:
                    return [n, *inner]
    return None


def too_deep(what: str) -> ValidationError:
    """The error for a value too deeply nested for Python's JSON encoder itself."""
    return ValidationError(
        f"{what} is nested too deeply to encode as JSON (the limit is {MAX_JSON_DEPTH} "
        "levels): flatten it (or store it in a context and pass a reference)"
    )
