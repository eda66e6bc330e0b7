"""Records and their one codec.

Records are frozen dataclasses with ``str`` enums for statuses. Timestamps are UTC epoch
milliseconds everywhere, and ISO-8601 UTC when shown (``iso``); sizes are shown by
``byte_size``, counts of a thing by ``counted`` (``1 task``, ``2 tasks``) and the names a
message offers by ``first_few`` ("a, b and 3 more"): the core's messages say them too, and
``_printable`` imports ``_models``, so they live here. ``to_dict``
/ ``from_dict`` are the only way records cross a boundary (Redis, JSON output, MCP, HTTP).
JSON a face prints or returns for people and agents to read (the CLI's --json, MCP tool
results, the dashboard's and A2A's answers, the hooks' output) passes through
``shown_json``, which writes the characters a terminal acts on (``UNSAFE_CONTROLS``) or that
reorder or break a line (``UNSAFE_WIDE``) as ``\\uXXXX``: the decoded value is the same; what is
stored stays as ``dumps`` writes it (its hashes and sizes count those bytes).
The records themselves live in ``_models`` (tasks, findings, agents, events, status),
``_usage`` (what agent runs cost) and ``_context_records``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import time
import types
import typing
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar, Union

__all__ = [
    "MAX_ISO_MS",
    "UNSAFE_BIDI",
    "UNSAFE_CONTROLS",
    "UNSAFE_SEPARATORS",
    "UNSAFE_WIDE",
    "Record",
    "built",
    "byte_size",
    "counted",
    "dumps",
    "dumps_shown",
    "first_few",
    "foreign_bom",
    "iso",
    "loads",
    "now_ms",
    "readable_number",
    "shown_json",
]

R = TypeVar("R", bound="Record")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# 9999-12-31T23:59:59.999Z: the last time ISO-8601 (and ``iso``) can write.
MAX_ISO_MS = 253_402_300_799_999


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC (``2026-11-24T07:05:12.345Z``)."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def byte_size(n: int | None, unknown: str = "") -> str:
    """A size as every face shows it, in decimal units (1 KB = 1,000 bytes): ``3.4 MB``,
    ``100 KB``, ``512 B``; ``unknown`` for None. Decimal, so that the label means what it
    says (as ``ls --si``, disk makers and the benchmarks' "3.2 MB" do); bounds the docs state
    in binary units are written KiB / MiB there, not through this."""
    if n is None:
        return unknown
    if abs(n) < 1000:
        return f"{n} B"
    units = ("KB", "MB", "GB", "TB")
    value, unit = n / 1000, 0
    # The unit is chosen on the rounded figure: 999,960 bytes read "1 MB", never "1000 KB".
    while abs(round(value, 1)) >= 1000 and unit < len(units) - 1:
        value, unit = value / 1000, unit + 1
    return f"{value:,.1f}".removesuffix(".0") + f" {units[unit]}"


# An integer of more digits than this is said by its count of digits (Python writes none of
# over 4,300 digits, and so many say nothing more to a reader); one of fewer, whole.
_SAID_BY_DIGITS = 30


def readable_number(number: float) -> str:
    """A number as a person reads it, in a bound or a refused value: digits grouped, no
    exponent (2,592,000; 1,000,000,000; 0.001), all its digits (``2.592e+06`` reads as a
    code, not a number); an integer of over 30 digits by their count ("a number of 401
    digits")."""
    if isinstance(number, int):
        digits = integer_digits(number)
        if digits > _SAID_BY_DIGITS:
            return f"a{' negative' if number < 0 else ''} number of {digits:,} digits"
        return f"{number:,}"
    return f"{number:,.16g}" if math.isfinite(number) else str(number)


def integer_digits(value: int) -> int:
    """How many digits ``value`` has (its sign aside), counted without writing it (Python
    writes no integer of over 4,300 digits)."""
    value = abs(value)
    if value == 0:
        return 1
    digits = int(value.bit_length() * math.log10(2)) + 1  # (this, or one too many)
    return digits if value >= 10 ** (digits - 1) else digits - 1


def counted(n: int, noun: str, plural: str = "") -> str:
    """A count as every face says it, the noun in the singular for one: ``1 task``,
    ``2 tasks``, ``1,206 settled passes`` (``plural``: the noun's plural when it is not the
    noun with an s)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def first_few(names: Sequence[str], most: int, none: str = "none yet") -> str:
    """The first ``most`` of ``names`` as a message lists candidates ("a, b and 3 more"),
    ``none`` when there are none."""
    shown = ", ".join(names[:most]) or none
    return f"{shown} and {len(names) - most:,} more" if len(names) > most else shown


def dumps(value: Any) -> str:
    """Compact JSON; the one encoder for everything stored or shown (shown: through
    ``shown_json``, ``dumps_shown``)."""
    return _ENCODER.encode(value)


# The characters stored text may hold that a terminal acts on rather than shows: every C0
# control but tab and newline (layout, not commands), DEL, and every C1 control (U+009B is
# an 8-bit CSI); and those that reorder what a reader sees of a line, the bidirectional
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069); and the line and
# paragraph separators (U+2028, U+2029), which break a line where a reader splits lines
# (Python's ``splitlines``, some terminals and editors) though no newline is there, so a
# worker's text could seem to end where it does not. ``printable`` shows them as escapes in
# what people read, ``shown_json`` in the JSON the faces print or return.
UNSAFE_CONTROLS = frozenset([*range(0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)])
UNSAFE_BIDI = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
UNSAFE_SEPARATORS = frozenset([0x2028, 0x2029])
# Those beyond Latin-1, which ``printable`` writes \uXXXX (the controls: \xXX).
UNSAFE_WIDE = UNSAFE_BIDI | UNSAFE_SEPARATORS
_UNSAFE = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in sorted(UNSAFE_CONTROLS | UNSAFE_WIDE)) + "]"
)


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def shown_json(text: str) -> str:
    """JSON ``text`` (as ``dumps`` or ``json.dumps(ensure_ascii=False)`` writes it) as a face
    prints or returns it: each of ``UNSAFE_CONTROLS`` and ``UNSAFE_WIDE`` written
    ``\\uXXXX`` (``\\u009b``, ``\\u202e``, ``\\u2028``), which a JSON reader decodes to the
    same text; other non-ASCII text (é, 漢字, emoji) as it is. Such a character can only
    stand inside a JSON string (JSON's own syntax is ASCII), so the text stays valid JSON; a
    string without one (nearly all) is returned as it is, after one scan."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escaped, text)


def dumps_shown(value: Any) -> str:
    """``dumps`` of ``value`` as a face prints or returns it (``shown_json``); never for what
    is stored."""
    return shown_json(_ENCODER.encode(value))


def loads(text: str | bytes) -> Any:
    # json.loads of bytes first guesses their encoding (UTF-16, UTF-32, a BOM) and decodes
    # them allowing surrogates: what Redis hands back is nearly always a plain UTF-8 JSON
    # object, decoded here for a third of that; anything else takes json.loads' own way.
    if type(text) is bytes and text[:1] == b"{" and text[1:2] != b"\x00":
        try:
            return _DECODE(text.decode())
        except UnicodeDecodeError:
            pass
    return json.loads(text)


# What decoding a record written around the operations raises: not JSON (ValueError), not an
# object (AttributeError), a field missing (KeyError, TypeError) or out of range (ValueError).
# Readers of many records leave such a record out (and name it where they can).
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, RecursionError)


def _default(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# Made once: json.dumps with options builds a new encoder at every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default)
_DECODE = json.JSONDecoder().decode


class Record:
    """Base of the frozen dataclass records: a generic, type-driven codec."""

    # Per class, built at its first from_dict: how each field's JSON value becomes the field's
    # (None: as it is). Worked out from the type hints once, not at every record read.
    _coercers: ClassVar[dict[str, Callable[[Any], Any] | None]]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        coercers = cls.__dict__.get("_coercers")
        if coercers is None:
            hints = typing.get_type_hints(cls)
            fields = dataclasses.fields(cls)  # type: ignore[arg-type]
            coercers = {f.name: _coercer(hints[f.name]) for f in fields}
            cls._coercers = coercers
        values = {}
        for k, v in data.items():
            if k in coercers:
                coerce = coercers[k]
                values[k] = v if coerce is None or v is None else coerce(v)
        return cls(**values)

    def to_json(self) -> str:
        return dumps(self.to_dict())


_UNSET: Any = object()  # a field with no default, in the templates of ``built``


_Template = tuple[dict[str, Any], tuple[str, ...], tuple[Any, ...], bool]
_TEMPLATES: dict[type[Record], _Template] = {}


def _template(cls: type[Record]) -> _Template:
    """Every field of ``cls`` in order with its default (``_UNSET``: none), the fields with
    no default, (name, factory) for the fields made by a default factory, and whether the
    class has a ``__post_init__``."""
    found = _TEMPLATES.get(cls)
    if found is not None:
        return found
    template: dict[str, Any] = {}
    required, factories = [], []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        template[f.name] = f.default if f.default is not dataclasses.MISSING else _UNSET
        if f.default_factory is not dataclasses.MISSING:
            factories.append((f.name, f.default_factory))
        elif f.default is dataclasses.MISSING:
            required.append(f.name)
    post_init = hasattr(cls, "__post_init__")
    found = _TEMPLATES[cls] = (template, tuple(required), tuple(factories), post_init)
    return found


def built(cls: type[R], values: dict[str, Any]) -> R:
    """``cls(**values)``, for records decoded by the thousand: a frozen dataclass's
    ``__init__`` sets each field with ``object.__setattr__`` (about 4 us for a Task, the
    dearest step of decoding one); this fills the instance's dict at once, in field order.
    A record with a ``__post_init__`` (none yet) and an unknown or missing field take
    ``cls(**values)``, whose checks and TypeError then run as written."""
    template, required, factories, post_init = _TEMPLATES.get(cls) or _template(cls)
    if post_init:
        return cls(**values)
    state = template.copy()
    state.update(values)
    if len(state) != len(template):
        return cls(**values)
    for name in required:
        if state[name] is _UNSET:
            return cls(**values)
    for name, factory in factories:
        if name not in values:
            state[name] = factory()
    record: R = object.__new__(cls)
    record.__dict__.update(state)
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _coercer(hint: Any) -> Callable[[Any], Any] | None:
    """How a JSON value (never None: that stays None) becomes a field of type ``hint``: an
    enum from its value, a record from its dict, a tuple from its list (items coerced too);
    None when it is taken as it is."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coercer(members[0]) if len(members) == 1 else None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if isinstance(hint, type) and issubclass(hint, Record):
        record = hint
        return lambda value: record.from_dict(value) if isinstance(value, dict) else value
    if origin is tuple:
        args = typing.get_args(hint)
        inner = _coercer(args[0]) if args else None

        def to_tuple(value: Any) -> Any:
            if not isinstance(value, list):
                return value
            if inner is None:
                return tuple(value)
            return tuple(None if item is None else inner(item) for item in value)

        return to_tuple
    return None


# Byte order marks of the encodings a file that is not UTF-8 text most often is in (Windows'
# "Unicode"): named, so that an error says what the file is.
_OTHER_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def foreign_bom(data: bytes) -> str | None:
    """What ``data`` begins with when it is the byte order mark of another encoding than
    UTF-8 (``a UTF-16 byte order mark (bytes FF FE)``), for an error saying so; else None."""
    for bom, encoding in _OTHER_BOMS.items():
        if data.startswith(bom):
            return f"a {encoding} byte order mark (bytes {' '.join(f'{b:02X}' for b in bom)})"
    return None
