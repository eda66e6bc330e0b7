"""Records and their one codec.

Records are frozen dataclasses with ``str`` enums for statuses. Timestamps are UTC epoch
milliseconds everywhere, and ISO-8601 UTC when shown (``iso``). ``to_dict`` / ``from_dict``
are the only way records cross a boundary (Redis, JSON output, MCP, HTTP).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import time
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar, Union, overload

from ._errors import ValidationError
from ._hints import LIST_PASSES

__all__ = [
    "DEFAULT_MAX_ABANDONS",
    "OPEN_STATUSES",
    "RECORD_KINDS",
    "Answer",
    "EventType",
    "Finding",
    "GrepLine",
    "Page",
    "Record",
    "Synthesis",
    "Task",
    "TaskSpec",
    "TaskStatus",
    "TypeFilter",
    "Usage",
    "answer_fields",
    "built",
    "byte_size",
    "dumps",
    "grep_groups",
    "iso",
    "loads",
    "now_ms",
    "type_filter",
    "unknown_pass",
    "unpriced_note",
    "usage_line",
    "usd",
]

R = TypeVar("R", bound="Record")

# Abandoned leases (expired with no report: the worker vanished) a task survives by default.
DEFAULT_MAX_ABANDONS = 10


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC (``2026-11-24T07:05:12.345Z``)."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def usd(cost: float | None, unknown: str = "-", *, places: int = 4) -> str:
    """A cost in US dollars as every face shows it: ``places`` decimals (four unless a table
    needs more for its rows to add up to its total), or as many more as a cost under half a
    hundredth of a cent needs not to read as zero; ``unknown`` when no agent said what it
    cost (never "$0.0000", which would claim it was free)."""
    if cost is None:
        return unknown
    if 0 < abs(cost) < 0.00005:
        places = max(places, min(12, 1 - math.floor(math.log10(abs(cost)))))
    return f"${cost:,.{places}f}"


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


_PASSES_NAMED = 10  # the passes a message about an unknown one lists


def unknown_pass(
    name: str, passes: Sequence[str], lists: str = LIST_PASSES, retired: RetiredPass | None = None
) -> str:
    """What the core says of a pass no task was ever posted to (a misspelt one, whose
    counters read as zeros: ``wait`` and ``retire_pass`` refuse it with this, ``swarm status
    --pass`` notes it): the passes there are, and ``lists``, the hint that lists them,
    ``LIST_PASSES`` (which the MCP and A2A faces reword by that key); or, for a pass
    ``retire_pass`` removed (``retired``, from ``retired_passes``), that it was retired, and
    when."""
    if retired is not None:
        return (
            f"pass {dumps(name)} was retired on {iso(retired.at) or 'an unknown date'}: its "
            f"{retired.tasks} settled tasks and {retired.findings} findings were removed, so "
            "there is nothing to wait for and no findings to read; "
            "its synthesis, if it had one, is kept"
        )
    known = ", ".join(dumps(p) for p in passes[:_PASSES_NAMED]) or "none yet"
    if len(passes) > _PASSES_NAMED:
        known += f" and {len(passes) - _PASSES_NAMED} more"
    return (
        f"no task has ever been posted to pass {dumps(name)}: nothing to wait for and no "
        f"findings to read. Check its name (the passes: {known}; {lists}), or post its "
        "tasks first"
    )


def unpriced_note(runs: int, unpriced: int) -> str:
    """What a sum of money leaves out, said after it: `` (2 of 7 runs reported no cost)``
    when some of the ``runs`` it sums reported a cost and ``unpriced`` of them did not (the
    sum is then less than what was spent); "" when every run did, or none (then no cost is
    shown at all). The one wording of it: ``swarm run``'s last line, a pipeline's totals."""
    if not unpriced or unpriced >= runs:
        return ""
    return f" ({unpriced} of {runs} runs reported no cost)"


def usage_line(usage: Usage | Mapping[str, Any] | None, /, *, places: int = 4) -> str:
    """What agent runs cost, on one line as every face shows it: ``$0.0123 · 12,345 in
    (12,000 cached) / 678 out`` (the cached ones: how many of the input tokens were read from
    a prompt cache, said where known). The one formatter of a usage: given a ``Usage``, a
    sum of its figures (a mapping of ``cost_usd``, ``tokens_in``, ``cached_in``,
    ``tokens_out``; a figure missing from it is unknown), or None (nothing recorded: "cost
    unknown"). A cost nobody reported reads "cost unknown"; the tokens are left out when
    neither count was reported, and a missing one reads ``-``. ``places`` as ``usd``'s."""
    if isinstance(usage, Usage):
        cost: float | None = usage.cost_usd
        tokens_in, tokens_out, cached_in = usage.tokens_in, usage.tokens_out, usage.cached_in
    elif isinstance(usage, Mapping):
        cost = usage.get("cost_usd")
        tokens_in, tokens_out = usage.get("tokens_in"), usage.get("tokens_out")
        cached_in = usage.get("cached_in")
    elif usage is None:
        cost = tokens_in = tokens_out = cached_in = None
    else:
        raise TypeError(
            f"usage_line takes a Usage, a mapping of its figures or None, not "
            f"{type(usage).__name__}"
        )
    line = usd(cost, unknown="cost unknown", places=places)
    if tokens_in is None and tokens_out is None:
        return line

    def count(n: float | None) -> str:  # (a sum of counts may be a float: 1500.0)
        return "-" if n is None else f"{int(n):,}"

    cached = "" if cached_in is None else f" ({int(cached_in):,} cached)"
    return f"{line} · {count(tokens_in)} in{cached} / {count(tokens_out)} out"


def dumps(value: Any) -> str:
    """Compact JSON; the one encoder for everything stored or shown."""
    return _ENCODER.encode(value)


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


class EventType(str, enum.Enum):
    """Every state change recorded in the swarm's event stream (field ``type``)."""

    AGENT_JOINED = "agent.joined"
    AGENT_LEFT = "agent.left"
    AGENT_STALE = "agent.stale"
    CONTEXT_PUBLISHED = "context.published"
    TASK_POSTED = "task.posted"
    TASK_CLAIMED = "task.claimed"
    TASK_RENEWED = "task.renewed"
    TASK_RELEASED = "task.released"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_RETRIED = "task.retried"
    TASK_EXPIRED = "task.expired"
    TASK_DUE = "task.due"
    TASK_DEAD = "task.dead"
    TASK_CANCELLED = "task.cancelled"
    TASK_REQUEUED = "task.requeued"
    FINDING_REPORTED = "finding.reported"
    FINDING_SUPERSEDED = "finding.superseded"
    SYNTHESIS_CREATED = "synthesis.created"
    SYNTHESIS_REQUESTED = "synthesis.requested"
    MESSAGE_SENT = "message.sent"
    PASS_RETIRED = "pass.retired"


# What a reader asks of the event stream by type: exact types, and areas (prefixes).
TypeFilter = tuple[frozenset[str], tuple[str, ...]]


def type_filter(types: Iterable[EventType | str] | EventType | str | None) -> TypeFilter | None:
    """Exact event types, or areas (``"task"`` or ``"task.*"``: every task event)."""
    if types is None:
        return None
    if isinstance(types, str):  # EventType is a str too
        types = [types]
    known = {t.value for t in EventType}
    areas = {v.split(".")[0] for v in known}
    exact: set[str] = set()
    prefixes: list[str] = []
    for item in types:
        value = item.value if isinstance(item, EventType) else item
        if not isinstance(value, str):
            raise ValidationError(f"event types must be strings, not {type(value).__name__}")
        area = value[:-2] if value.endswith(".*") else value
        if value in known:
            exact.add(value)
        elif area in areas:
            prefixes.append(area + ".")
        else:
            raise ValidationError(
                f"unknown event type {value!r}: use one of {', '.join(sorted(known))}, "
                f"or an area such as 'task' or 'agent.*'"
            )
    return frozenset(exact), tuple(prefixes)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass ``cursor`` back to get the next (None: no more).
    ``corrupt`` names the records of the page that are stored unreadable (not JSON, or a
    value out of range): they are left out of ``items``; ``swarm doctor`` counts them."""

    items: tuple[T, ...]
    cursor: str | None = None
    corrupt: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        """``page[0]``: an item, as of a list (``Inbox``, ``events()``)."""
        return self.items[index]


# The roles an agent joins a swarm in: its Redis user's rights (_acl, which adds the
# operator's admin), its MCP tools, its init prompt, its hooks' registration.
SwarmRole = Literal["worker", "shard", "coordinator"]
SWARM_ROLES: tuple[SwarmRole, ...] = typing.get_args(SwarmRole)
# The roles a Redis user is made for (swarm acl): the agents', then the operator's admin.
AclRole = Literal[SwarmRole, "admin"]  # (Literal flattens)
ACL_ROLES: tuple[AclRole, ...] = typing.get_args(AclRole)


# === work queue records: Task, Finding, Synthesis (and their statuses) ===


class TaskStatus(str, enum.Enum):
    """Where a task is in its life. ``pending``, ``delayed`` and ``claimed`` are open; the
    others are settled (``dead`` can be reopened by ``requeue_dead`` or a late report)."""

    PENDING = "pending"
    DELAYED = "delayed"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def settled(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.DEAD, TaskStatus.CANCELLED)


# The open statuses' values (pending, delayed, claimed): a pass or queue with a task in one
# of them is not settled.
OPEN_STATUSES: tuple[str, ...] = tuple(s.value for s in TaskStatus if not s.settled)


@dataclass(frozen=True)
class TaskSpec(Record):
    """One task to post (``post_tasks`` takes a list of these, or of dicts with these keys)."""

    queue: str
    description: str
    data: Any = None
    pass_name: str | None = None
    priority: int = 0
    max_attempts: int = 3
    lease_s: float = 900.0
    not_before: int | None = None
    dedupe_key: str | None = None
    parent: str | None = None
    max_abandons: int | None = None  # None: the queue's setting, else DEFAULT_MAX_ABANDONS
    delay_s: float | None = None  # instead of not_before: seconds from now, the server's clock


@dataclass(frozen=True)
class Task(Record):
    """A unit of work in a queue. ``attempts`` counts its claims. ``token`` is set only on the
    task ``claim`` returned: the lease's fencing token ``ATTEMPT.SECRET``, which renew, fail,
    release and report must present. Only a hash of the secret is stored, so a task read any
    other way has no token, and no one but the lease's holder can act on the lease.

    Two budgets are counted apart: ``failures`` (``fail``: the work was tried and failed)
    against ``max_attempts``, and ``abandons`` (a lease expired with no report, fail or
    release: its worker vanished) against ``max_abandons``. Either reaching its limit
    dead-letters the task, with a ``dead_reason`` naming the limit. ``failed_usage`` sums
    what the failed attempts cost (their ``fail`` carried the agent CLI's usage): money
    spent that no finding records.

    ``status_at`` is when the task took its status (epoch ms, the server's clock), written by
    every change of status but the three the hot path makes, whose times the record already
    has: a post (``created_at``), a claim (``claimed_at``), a report (``completed_at``). So a
    claimed or completed task may keep an earlier change's ``status_at``, and a task stored
    before the field existed has none: ``status_since`` is the time to read, for any status."""

    id: str
    queue: str
    description: str
    data: Any = None
    status: TaskStatus = TaskStatus.PENDING
    pass_name: str | None = None
    priority: int = 0
    max_attempts: int = 3
    attempts: int = 0
    failures: int = 0
    abandons: int = 0
    max_abandons: int = DEFAULT_MAX_ABANDONS
    lease_s: float = 900.0
    created_at: int = 0
    not_before: int | None = None
    dedupe_key: str | None = None
    parent: str | None = None
    worker: str | None = None
    lease_deadline: int | None = None
    claimed_at: int | None = None
    completed_at: int | None = None
    status_at: int | None = None
    finding_id: str | None = None
    last_error: str | None = None
    dead_reason: str | None = None
    failed_usage: Usage | None = None
    # A secret (the lease's): kept out of repr, which logs show; to_dict keeps it.
    token: str | None = dataclasses.field(default=None, repr=False)

    @property
    def status_since(self) -> int | None:
        """When the task took its current status (epoch ms), where its record says so: a
        claimed task's claim, a completed task's report, else ``status_at``, else (a task
        never moved since its post) its posting; None for a record stored before
        ``status_at`` existed that was moved since (cancelled, dead-lettered, released, ...)."""
        if self.status == TaskStatus.CLAIMED:
            return self.claimed_at
        if self.status == TaskStatus.COMPLETED:
            return self.completed_at
        if self.status_at is not None:
            return self.status_at
        if self.status in (TaskStatus.PENDING, TaskStatus.DELAYED) and self.attempts == 0:
            return self.created_at or None
        return None


# The kinds of record ``Swarm.corrupt_records`` reads, by the names it returns them under.
RECORD_KINDS = ("task", "finding", "synthesis", "agent", "context")

USAGE_MAX = 1e15  # no agent run costs this many USD or tokens: a bigger number is a misreading
USAGE_MAX_MODELS = 64  # the models one usage breaks its figures down by
_COST_RULE = "a number of US dollars from 0 to 1e15"
_COUNT_RULE = "a whole number of tokens from 0 to 1e15"
_NUMBER_RULE = "a number from 0 to 1e15"
USAGE_COUNTS = ("tokens_in", "tokens_out", "cached_in")  # the figures that count tokens
LABEL_CHARS = 128  # the longest model name, session id or context version a record keeps


def _misfit(value: object, *, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    if not (math.isfinite(value) and 0 <= value <= USAGE_MAX):
        return True
    return whole and value != int(value)


@dataclass(frozen=True)
class Usage(Record):
    """What one agent run cost, as its CLI reported it (Claude Code's ``--output-format json``
    result, Codex's ``exec --json`` events) or its worker said (``parse``): the cost in USD
    (Claude only), every input token (``tokens_in``, cached ones included; ``cached_in`` of
    them read from a prompt cache), the output tokens, and per model (``models``: model ->
    cost_usd, tokens_in, tokens_out) where the CLI breaks it down. ``source`` names the
    format it was read from. None is unknown.

    What no run could report (``faults``: a negative, fractional or huge count, a cost that
    is no finite number, more cached tokens than input tokens) is refused wherever a caller
    gives it (ValidationError); the runner, reading an agent's output, which no user
    controls, keeps such a figure as unknown instead."""

    source: str
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cached_in: int | None = None
    session_id: str | None = None
    models: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    @staticmethod
    def cost_fault(value: object) -> str | None:
        """None when ``value`` can be what a run cost; else what a cost must be."""
        return _COST_RULE if _misfit(value, whole=False) else None

    @staticmethod
    def count_fault(value: object) -> str | None:
        """None when ``value`` can be a run's count of tokens; else what a count must be."""
        return _COUNT_RULE if _misfit(value, whole=True) else None

    @staticmethod
    def shown(value: object) -> str:
        """A figure as a message quotes it: its JSON (``-1``, ``"many"``, ``NaN``), cut short."""
        try:
            text = json.dumps(value, allow_nan=True, default=repr)
        except (TypeError, ValueError):  # keys JSON has no words for, a cycle
            text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    @classmethod
    def parse(cls, data: object, *, source: str = "reported") -> Usage:
        """The usage a worker gives as JSON (the CLI's ``--usage``, MCP's ``usage``): an
        object of this record's fields, ``source`` defaulting to ``"reported"``. Raises
        ValidationError for another shape, an unknown field or any of ``faults``."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict):
            raise ValidationError(
                f"usage must be a JSON object with any of {', '.join(names)}, got "
                f"{type(data).__name__}"
            )
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise ValidationError(
                f"usage has no field {', '.join(unknown)}: give any of {', '.join(names)}"
            )
        usage = cls.from_dict({"source": source, **data})
        faults = usage.faults()
        if faults:
            raise ValidationError("; ".join(faults))
        return usage

    def faults(self) -> list[str]:
        """What no run could report in these figures, each naming the figure and what to
        give instead ([] when nothing)."""
        out: list[str] = []

        def check(name: str, value: object, rule: str | None) -> None:
            if value is not None and rule is not None:
                out.append(f"usage {name} is {self.shown(value)}: give {rule}, or leave it out")

        check("cost_usd", self.cost_usd, self.cost_fault(self.cost_usd))
        for name in USAGE_COUNTS:
            value = getattr(self, name)
            check(name, value, self.count_fault(value))
        cached, total = self.cached_in, self.tokens_in
        counted = not self.count_fault(cached) and not self.count_fault(total)
        if cached is not None and total is not None and counted and cached > total:
            out.append(
                f"usage cached_in ({cached:,}) is more than tokens_in ({total:,}): tokens_in "
                "counts every input token, the cached ones included"
            )
        models: object = self.models
        if not isinstance(models, dict):
            out.append("usage models must be an object: model -> {cost_usd, tokens_in, ...}")
            return out
        if len(models) > USAGE_MAX_MODELS:
            out.append(f"usage names {len(models)} models; the limit is {USAGE_MAX_MODELS}")
        for model, figures in models.items():
            if not isinstance(figures, dict):
                out.append(f"usage of {model} must be an object: {{cost_usd, tokens_in, ...}}")
                continue
            for key, value in figures.items():
                if key == "cost_usd":
                    rule = self.cost_fault(value)
                elif key in USAGE_COUNTS:
                    rule = self.count_fault(value)
                else:
                    rule = _NUMBER_RULE if _misfit(value, whole=False) else None
                check(f"of {model}: {key}", value, rule)
        return out


@dataclass(frozen=True)
class Finding(Record):
    """One worker's structured result for a task, with its lineage. ``superseded`` findings
    arrived after the task was settled: kept, never dropped, but not the task's result."""

    id: str
    task_id: str
    queue: str | None = None
    pass_name: str | None = None
    shard: str | None = None
    worker: str | None = None
    model: str | None = None
    context_version: str | None = None
    summary: str = ""
    details: str | None = None
    sources: tuple[str, ...] = ()
    confidence: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    created_at: int = 0
    superseded: bool = False
    attempt: int | None = None  # the attempt of the lease that reported (None: no lease)
    usage: Usage | None = None  # what the agent run behind it cost, when its CLI said


@dataclass(frozen=True)
class Synthesis(Record):
    """A shard's synthesis of a pass, citing the findings it rests on (all of which exist)."""

    id: str
    shard: str
    pass_name: str
    text: str
    sources: tuple[str, ...] = ()
    created_at: int = 0
    model: str | None = None  # the model of the agent that wrote it, where known
    usage: Usage | None = None  # what the agent that wrote it cost, when its CLI said


@dataclass(frozen=True)
class Answer(Record):
    """The answer to a question (``Swarm.ask``): the first finding reported for the question
    task. ``text`` is the finding's details when it has them, else its summary; ``cost_usd``
    and ``usage`` are what the answering agent's run cost, when its CLI said."""

    text: str
    finding_id: str
    question_id: str
    queue: str
    answerer: str | None = None
    model: str | None = None
    cost_usd: float | None = None
    summary: str = ""
    sources: tuple[str, ...] = ()
    asker_task: str | None = None
    created_at: int = 0
    usage: Usage | None = None
    question: str = ""  # the question's text


QUESTION_KIND = "question"  # the data of a question task: {"kind": "question", ...}
ANSWER_KIND = "answer"  # an answer is a finding whose extra has {"kind": "answer", ...}


def answer_fields(question: Task) -> dict[str, Any]:
    """What makes a finding the answer to ``question`` (``kind``, and the asker's task when
    the question names one); {} when the task is no question (``Swarm.ask`` posts questions
    with data ``{"kind": "question", ...}``)."""
    data = question.data if isinstance(question.data, dict) else {}
    if data.get("kind") != QUESTION_KIND:
        return {}
    fields: dict[str, Any] = {"kind": ANSWER_KIND}
    if isinstance(data.get("asker_task"), str):
        fields["asker_task"] = data["asker_task"]
    return fields


# === what agent runs cost: sums of usages, and every run on one task ===

__all__ += [
    "FIGURES",
    "MONEY_MAX_PLACES",
    "MONEY_PLACES",
    "Money",
    "Sum",
    "TaskCosts",
    "add_figures",
    "adds_up",
    "figure_json",
    "no_figures",
    "plus",
    "summed_figures",
    "usage_figures",
]

# What a usage sums to (``cached_in``: of the input tokens, those read from a prompt cache).
FIGURES = ("cost_usd", "tokens_in", "cached_in", "tokens_out")
MONEY_PLACES = 10  # a sum of float dollars carries noise (0.24000000000000002): rounded


def plus(total: float | None, value: float | None) -> float | None:
    """A sum that stays None (unknown) until something known is added: unknown is not
    zero, and is never shown as ``$0.0000``."""
    if value is None:
        return total
    return value if total is None else total + value


def no_figures() -> dict[str, float | None]:
    return dict.fromkeys(FIGURES)


def add_figures(total: dict[str, float | None], figures: Mapping[str, Any]) -> None:
    """Add the ``FIGURES`` of a usage (or of one model in it) to ``total``: those it
    reports; one it does not report leaves the sum as it was (None if nothing said)."""
    for key in FIGURES:
        value = figures.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = plus(total[key], float(value))


def usage_figures(usage: Usage) -> dict[str, Any]:
    return {key: getattr(usage, key) for key in FIGURES}


def figure_json(key: str, value: Any) -> Any:
    """A summed figure as JSON shows it: a sum of money rounded to ``MONEY_PLACES``, a
    token count as an integer, unknown (None) as null."""
    if isinstance(value, float) and key.endswith("cost_usd"):
        return round(value, MONEY_PLACES)
    if isinstance(value, float) and (key.startswith("tokens_") or key == "cached_in"):
        return int(value)
    return value


def summed_figures(usages: Iterable[Usage | None]) -> dict[str, Any]:
    """The ``FIGURES`` of ``usages`` summed, as every total shows them (``figure_json``;
    None: no usage reported that figure)."""
    total = no_figures()
    for usage in usages:
        if usage is not None:
            add_figures(total, usage_figures(usage))
    return {key: figure_json(key, value) for key, value in total.items()}


MONEY_MAX_PLACES = 6  # the decimals a view may take for its sums to add up (see ``Money``)


def _shown(cost: float, places: int) -> Decimal:
    """``cost`` as ``usd`` shows it, to be added up as a reader would."""
    return Decimal(usd(cost, places=places).lstrip("$").replace(",", ""))


def adds_up(parts: Iterable[float | None], total: float | None, places: int) -> bool:
    """Whether the ``parts`` of a sum, shown with ``places`` decimals, add up to ``total``
    shown so (parts nobody reported aside)."""
    if total is None:
        return True
    known = [p for p in parts if p is not None]
    return sum((_shown(p, places) for p in known), Decimal(0)) == _shown(total, places)


Sum = tuple[Sequence[float | None], float | None]  # a sum of money shown: its parts, its total


class Money:
    """How one view (a table, a tree) shows its costs: every figure with the same decimals,
    the fewest, from four to ``MONEY_MAX_PLACES``, at which each of its ``sums`` (the parts
    it shows and the total it shows under them, the total summed from the exact figures)
    adds up as shown: $1.5852 + $0.3645 never over a total of $1.9496. A total whose parts
    still do not add up (costs of many decimals) reads "≈$1.9496"."""

    def __init__(self, sums: Iterable[Sum] = ()) -> None:
        wanted = list(sums)
        self.places = next(
            (
                places
                for places in range(4, MONEY_MAX_PLACES + 1)
                if all(adds_up(parts, total, places) for parts, total in wanted)
            ),
            4,
        )

    def __call__(self, cost: float | None) -> str:
        """A part: ``usd`` with this view's decimals."""
        return usd(cost, places=self.places)

    def total(self, parts: Sequence[float | None], total: float | None) -> str:
        """A total of ``parts``, "≈" when they do not add up to it as shown."""
        mark = "" if adds_up(parts, total, self.places) else "≈"
        return mark + usd(total, places=self.places)

    def line(
        self, figures: Usage | Mapping[str, Any] | None, parts: Sequence[float | None] = ()
    ) -> str:
        """``figures`` (a usage, a sum of ``FIGURES``, or None: nothing recorded) as
        ``usage_line`` says them, with this view's decimals; with ``parts``: a total of
        them, as ``total``."""
        cost = figures.cost_usd if isinstance(figures, Usage) else (figures or {}).get("cost_usd")
        mark = "≈" if parts and not adds_up(parts, cost, self.places) else ""
        return mark + usage_line(figures, places=self.places)


@dataclass(frozen=True)
class TaskCosts:
    """What every agent run on one task cost, record by record (``Swarm.task_costs``): the
    finding that completed it, the superseded ones reported on it after it was settled
    (their runs cost too), and its failed runs (``task.failed_usage``); ``total`` sums
    them. ``searched_all`` is False when the superseded ones were looked for among only the
    first ``scan_limit`` findings of its pass (else its queue) reported after it settled."""

    # What ``total`` covers, said under it wherever it is shown.
    COVERS: ClassVar[str] = (
        "its finding, the findings reported on it after it was settled, its failed runs"
    )

    task: Task
    finding: Finding | None = None
    superseded: tuple[Finding, ...] = ()
    searched_all: bool = True
    scan_limit: int = 0

    def usages(self) -> list[Usage | None]:
        findings = [self.finding, *self.superseded]
        return [*(f.usage for f in findings if f is not None), self.task.failed_usage]

    @property
    def total(self) -> dict[str, Any]:
        """Every run's ``FIGURES`` summed (``summed_figures``)."""
        return summed_figures(self.usages())


# === context, agent, message and event records ===

__all__ += [
    "Agent",
    "ContextInfo",
    "ContextSlice",
    "Event",
    "GcReport",
    "Inbox",
    "Message",
    "MessageStatus",
    "SearchHit",
    "Webhook",
]


@dataclass(frozen=True)
class ContextInfo(Record):
    """One published version of an owner's context (its manifest, without the chunk list).

    ``version`` is the BLAKE3 hash of the raw bytes (what ``b3sum`` prints for the file;
    SHA-256, as ``sha256sum`` prints, for versions published before BLAKE3);
    ``compression`` is ``"zstd"`` when at least one chunk is stored compressed.
    ``changed`` is False only in what a publish returns when the version was current already
    (the same content, source and media type): it wrote nothing. Stored manifests do not
    carry it, so every version read back says True.
    """

    owner: str
    version: str
    size_bytes: int
    tokens_est: int
    chunks: int
    compression: str | None = None
    source: str = ""
    media_type: str = "text/markdown"
    created_at: int = 0
    total_lines: int = 0
    changed: bool = True


@dataclass(frozen=True)
class GcReport(Record):
    """What a gc of context chunks did (or, with ``dry_run``, would do).

    ``publishes_given_up``: publishes in flight for longer than the grace period, whose
    chunks were released (their flip fails); ``holds_released``: holder tokens removed from
    their chunks (pruned versions', dead publishes'); ``chunks_deleted`` / ``bytes_freed``:
    the chunks whose last holder went, and their stored bytes.
    """

    dry_run: bool
    publishes_given_up: int
    holds_released: int
    chunks_deleted: int
    bytes_freed: int


__all__ += ["RetiredPass"]


@dataclass(frozen=True)
class RetiredPass(Record):
    """What retiring a pass's settled work removed (``retire_pass``), or, with ``dry_run``,
    would remove; or, read back (``retired_passes``), what every retirement of the pass
    removed in all, ``at`` the last one (ms).

    ``tasks``: its completed, cancelled and dead tasks, with their data and index entries;
    ``findings``: every finding of those tasks, superseded ones too; ``kept``: its tasks
    left because they were open (pending, delayed, claimed), posted while it ran; ``cited``:
    its settled tasks kept because a synthesis of another pass cites a finding of theirs
    (they stay with those findings, so that the synthesis cites stored findings);
    ``corrupt``: its tasks and findings stored unreadable (``swarm doctor`` names them),
    left in place."""

    pass_name: str
    tasks: int
    findings: int
    kept: int = 0
    dry_run: bool = False
    at: int | None = None
    cited: int = 0
    corrupt: int = 0

    @classmethod
    def stored(cls, pass_name: str, raw: str | bytes) -> RetiredPass:
        """The record ``retired_passes`` keeps of pass ``pass_name`` (its JSON, ``raw``)."""
        record = loads(raw)
        at = record.get("at")
        return cls(
            pass_name, int(record.get("tasks", 0)), int(record.get("findings", 0)),
            at=int(at) if at is not None else None,
        )  # fmt: skip

    def task_gone(self, task_id: str) -> str:
        """What a report on task ``task_id`` of the pass, retired with it, is told."""
        return (
            f"task {task_id} was retired with its pass {dumps(self.pass_name)} on "
            f"{iso(self.at) or 'an unknown date'} (swarm retire): there is nothing left to "
            "report on; move on to the next task"
        )


@dataclass(frozen=True)
class ContextSlice(Record):
    """A bounded piece of a context: a line range or a byte range.

    Lines are 1-based and inclusive; ``offset``/``length`` are in bytes of the UTF-8 text.
    ``truncated`` is True when the slice ends before the range asked for (the slice limit):
    ask again from ``offset + length`` for the rest, or from ``end_line + 1`` when the text
    ends a line (a cut inside a long line would skip that line's rest).
    """

    owner: str
    version: str
    text: str
    start_line: int
    end_line: int
    total_lines: int
    offset: int
    length: int
    size_bytes: int
    truncated: bool = False


@dataclass(frozen=True)
class SearchHit(Record):
    """One matching line (1-based) with up to ``around`` lines before and after it."""

    line: int
    text: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


class GrepLine(NamedTuple):
    """One line of search output: its number, whether it matched, its text."""

    number: int
    hit: bool
    text: str


def grep_groups(hits: Sequence[SearchHit], after_line: int = 0) -> list[list[GrepLine]]:
    """The lines of ``hits`` as ``grep -n -C`` shows them, in line order: each line once,
    a matching line as the hit even where it is also another hit's context, and runs of
    touching lines in one group (groups are printed apart, with ``--`` between).
    ``after_line``: the last line an earlier page showed; context lines up to it are not
    shown again (a hit always is)."""
    lines: dict[int, GrepLine] = {}
    for h in hits:
        first = h.line - len(h.before)
        for i, text in enumerate(h.before):
            lines.setdefault(first + i, GrepLine(first + i, False, text))
        lines[h.line] = GrepLine(h.line, True, h.text)
        for i, text in enumerate(h.after, start=h.line + 1):
            lines.setdefault(i, GrepLine(i, False, text))
    groups: list[list[GrepLine]] = []
    for number in sorted(lines):
        line = lines[number]
        if number <= after_line and not line.hit:
            continue
        if groups and groups[-1][-1].number + 1 == number:
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


@dataclass(frozen=True)
class Agent(Record):
    """A registered agent. ``last_seen`` is its last heartbeat (ms); ``alive`` is computed
    by the listing that returned it (last heartbeat within ``stale_after_s``), and so is
    ``current_task``: the task its last heartbeat named, else the newest it holds a lease on.

    Workers that only claim and report are registered implicitly by the work queue with a
    minimal record (``implicit`` True, role ``worker``); every other field is then None.
    """

    id: str
    role: str = "worker"
    model: str | None = None
    specialization: str | None = None
    capacity_tokens: int | None = None
    parent: str | None = None
    metadata: dict[str, Any] | None = None
    registered_at: int | None = None
    last_seen: int | None = None
    implicit: bool = False
    current_task: str | None = None
    alive: bool | None = None


@dataclass(frozen=True)
class Message(Record):
    """A message in an agent's inbox; ``to`` is ``"*"`` for a broadcast. ``seq`` is its place
    in the swarm's one message order (a stream id): pass the last one shown to ``mark_read``."""

    id: str
    sender: str | None
    to: str
    kind: str
    body: str
    data: dict[str, Any] | None = None
    created_at: int = 0
    seq: str = ""


class Inbox(list[Message]):
    """What ``inbox`` returns: the messages read, oldest first (a plain list to iterate,
    index or compare), and ``more``: whether more unread messages were waiting after them
    (the read stopped at its ``limit``), so that a reader knows to read on."""

    more: bool

    def __init__(self, messages: Iterable[Message] = (), *, more: bool = False) -> None:
        super().__init__(messages)
        self.more = more


@dataclass(frozen=True)
class MessageStatus(Record):
    """Whether a message was read (shown to its reader). ``read_by`` and ``unread_by`` name
    its readers: the recipient of a direct message; for a broadcast, every agent registered
    when it was sent, its sender aside. ``read`` is true when nobody is left to read it."""

    id: str
    to: str
    seq: str
    read: bool
    read_by: tuple[str, ...] = ()
    unread_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Webhook(Record):
    """Where to push a task's updates (an A2A push notification config): POST to ``url``,
    with ``token`` as the client's own check and ``auth_scheme`` / ``auth_credentials`` as
    its Authorization header."""

    id: str
    task_id: str
    url: str
    # Secrets (the receiver's): kept out of repr, which logs show; to_dict keeps them.
    token: str | None = dataclasses.field(default=None, repr=False)
    auth_scheme: str | None = None
    auth_credentials: str | None = dataclasses.field(default=None, repr=False)
    created_at: int = 0


@dataclass(frozen=True)
class Event(Record):
    """One entry of the swarm's event stream. ``id`` is the stream id (pass it back as
    ``since``), ``at`` the time in ms, ``fields`` what the event names (task, agent, ...)."""

    id: str
    type: EventType
    at: int
    fields: dict[str, str]


__all__ += ["EventsTrimmed"]


@dataclass(frozen=True)
class EventsTrimmed(Record):
    """Events after ``since`` (an event id, or a time in ms) that the capped event stream no
    longer holds: it keeps the newest ``kept``, so a reader starting from ``since`` begins
    at ``oldest``, the oldest event kept. ``certain`` is False where the server cannot
    count what was added (Redis 6.2): they may have been trimmed."""

    since: str | int
    oldest: str
    kept: int
    certain: bool = True

    def note(self) -> str:
        """The line a reader is told, with what to do about it."""
        since = f"from {iso(self.since)}" if isinstance(self.since, int) else f"after {self.since}"
        were = "were" if self.certain else "may have been"
        return (
            f"events {since} up to {self.oldest} {were} trimmed from the stream (it "
            f"keeps the newest {self.kept:,}): what they recorded is still in the tasks, "
            "findings and syntheses themselves (swarm task list, swarm findings, swarm synth "
            "list)"
        )


# === the swarm at a glance: what every face's status shows ===

__all__ += ["AgentCounts", "PassProgress", "Recent", "SwarmStatus"]


@dataclass(frozen=True)
class PassProgress(Record):
    """One pass: its task counts by status, and how many of them are settled."""

    name: str
    counts: dict[str, int]
    total: int
    settled: int

    @property
    def fraction(self) -> float:
        return self.settled / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "fraction": round(self.fraction, 4)}


@dataclass(frozen=True)
class AgentCounts(Record):
    """How many agents are registered, alive and stale; ``by_role`` counts the live ones."""

    total: int
    alive: int
    stale: int
    by_role: dict[str, int]


@dataclass(frozen=True)
class SwarmStatus(Record):
    """The swarm at a glance, read in one round trip whatever the number of tasks: what
    ``swarm status``, the MCP ``swarm_status`` tool, the dashboard and the seed's
    ``get_swarm_status`` show.

    ``last_event_id`` is the newest event already reflected here (read first): follow the
    event stream from it to stay current. ``queues`` maps each queue to its task counts by
    status, ``totals`` adds them up across queues; ``roster`` lists the agents, live ones
    first, then by role and id; ``contexts`` holds the current version of each owner's.
    """

    swarm: str
    last_event_id: str
    queues: dict[str, dict[str, int]]
    totals: dict[str, int]
    passes: tuple[PassProgress, ...]
    agents: AgentCounts
    roster: tuple[Agent, ...]
    contexts: tuple[ContextInfo, ...]


@dataclass(frozen=True)
class Recent(Record):
    """The newest findings, syntheses and dead-lettered tasks (newest first; the tasks
    without their data): what the live views show below the status. ``corrupt`` names the
    records among them stored unreadable (left out). (The task a worker holds is in the
    status's roster, ``SwarmStatus.roster``: the core decides it there, once.)"""

    findings: tuple[Finding, ...]
    syntheses: tuple[Synthesis, ...]
    dead: tuple[Task, ...]
    corrupt: tuple[str, ...] = ()
