"""What the work-queue operations share: ids, task routes, validation, decoding, waiting."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import secrets
import shlex
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from .._codec import UNREADABLE, built, first_few, loads, readable_number
from .._errors import CorruptRecord, NotFound, PayloadTooLarge, ValidationError
from .._hints import CHECK_TASK_ID, KEPT_TOKEN, PUBLISH_CONTEXT
from .._keys import label_id
from .._models import Finding, Page, Synthesis, Task, TaskStatus, lease_token
from .._protocol import Call, Cmd, OpContext, Operation, remember
from .._usage import LABEL_CHARS, USAGE_COUNTS, Usage
from .._validate import (
    MAX_COUNT,
    MAX_PAGE,
    begins_like_option,
    check_id,
    check_json_depth,
    check_json_keys,
    option_like,
    too_deep,
)
from .._validate import check_label as check_label  # (the operations import it from here)

__all__ = [
    "RECOUNT_COMMAND",
    "SEQ_FIELD",
    "STATUSES",
    "UNREADABLE",
    "DamagedLease",
    "Route",
    "await_events",
    "block_chunk_s",
    "check_cursor",
    "check_field_types",
    "check_label",
    "check_number",
    "check_token",
    "counter",
    "damaged_counter",
    "decoded",
    "encode_json",
    "field_types",
    "finding_from",
    "finding_record",
    "forget_presence",
    "leased",
    "leased_damaged",
    "new_id",
    "new_secret",
    "newest",
    "page",
    "presence_due",
    "refuse_new_option_like",
    "remember_route",
    "report_secret",
    "route",
    "synthesis_from",
    "task_from",
    "text",
    "usage_body",
]

T = TypeVar("T")

STATUSES: tuple[str, ...] = tuple(s.value for s in TaskStatus)

# --- ids: time-ordered, random, generated here so that a retried request is idempotent

_B32 = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case


_PAIRS = [a + b for a in _B32 for b in _B32]  # 10 bits -> 2 characters


# The shifts of the pairs of 10 digits, most significant first.
_SHIFTS = tuple(range(40, -1, -10))


def _b32(value: int) -> str:
    """``value`` (< 2**50) in 10 base32 digits, most significant first."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


class _IdSource:
    """``PREFIX`` + 10 characters of milliseconds + 8 of randomness, monotonic within a
    process: ids made in the same millisecond count up from a random start, so a batch keeps
    its order when sorted by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._ms = 0
        self._rand = 0
        self._ms_text = (-1, "")  # the last millisecond written, and as written

    def new(self, prefix: str) -> str:
        ms = time.time_ns() // 1_000_000
        with self._lock:
            if ms <= self._ms:
                ms, rand = self._ms, self._rand + 1
                if rand >= 1 << 40:
                    ms, rand = ms + 1, secrets.randbits(39)
            else:
                rand = secrets.randbits(39)
            self._ms, self._rand = ms, rand
            # The ids of one millisecond share their first ten characters: written once.
            if self._ms_text[0] != ms:
                self._ms_text = (ms, _b32(ms))
            head = self._ms_text[1]
        pairs = _PAIRS  # the 8 digits of rand (< 2**40)
        return (
            prefix + head + pairs[rand >> 30 & 1023] + pairs[rand >> 20 & 1023]
            + pairs[rand >> 10 & 1023] + pairs[rand & 1023]
        )  # fmt: skip


_IDS = _IdSource()


def new_id(prefix: str) -> str:
    """A fresh id such as ``t-01j9z3k4m5abcdefgh``, the one id maker of every record (tasks,
    findings, messages, agents, publishes): made on the client, so a retried request that
    carries it is recognised, not applied twice."""
    return _IDS.new(prefix)


# --- lease tokens: ATTEMPT.SECRET, the secret chosen here (a script's randomness is not)

_TOKEN = re.compile(r"[1-9][0-9]{0,9}\.[A-Za-z0-9_-]{16,64}")


def new_secret() -> str:
    """The secret of a new lease: 128 random bits, URL-safe (the task stores its SHA-1)."""
    return secrets.token_urlsafe(16)


# The key of this process's report secrets (see ``report_secret``).
_REPORT_KEY = secrets.token_bytes(32)


def report_secret(finding_id: str) -> str:
    """The secret of the lease a report's ``claim_next`` takes: the same for every try of one
    report (its finding id) from this process, so that a retry whose first reply was lost
    gets that lease back; as unguessable as ``new_secret`` without this process's key (keyed
    BLAKE2b, a MAC: a third of HMAC-SHA256's cost here)."""
    digest = hashlib.blake2b(finding_id.encode(), key=_REPORT_KEY, digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# What a sentence may leave on a token copied out of it: no token ends so.
_PUNCTUATION = frozenset(".,;:!?)'\"`")


def _cut(value: object) -> str:
    """``value`` in a message: its repr, cut before it is quoted (a repr cut afterwards lost
    its closing quote: "token is str '1.8Vc_0M-DjEaCAZyxI, not ...")."""
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:37]) + "..."
    return repr(value)[:60]


def check_token(token: object) -> str:
    """A lease token as ``claim`` returned it (``ATTEMPT.SECRET``), else a ValidationError."""
    if isinstance(token, str) and _TOKEN.fullmatch(token):
        return token
    if token is None:
        raise ValidationError(
            "no token: only the task claim returned carries one (a task read with get_task "
            "has none); pass the token of your claim"
        )
    if isinstance(token, str) and token[-1:] in _PUNCTUATION and _TOKEN.fullmatch(token[:-1]):
        raise ValidationError(
            f"token ends with {token[-1]!r}, which is no part of a lease token (punctuation "
            f"copied with it from a sentence): pass it without that last {token[-1]!r}"
        )
    shown = "an integer" if isinstance(token, int) else f"{type(token).__name__} {_cut(token)}"
    raise ValidationError(
        f"token is {shown}, not a lease token: pass the whole token your claim returned, a "
        f"string ATTEMPT.SECRET such as '2.k3JvQ0aZ...' {KEPT_TOKEN}; a token lost "
        "everywhere is not shown again: the task goes back to its queue when its lease ends, "
        "to be claimed anew"
    )


# --- routes: the immutable facts about a task that its keys depend on


@dataclass(frozen=True)
class Route:
    """A task's queue, pass and parent: they never change, and name the keys its scripts
    need, so a process that posted or claimed a task knows them without asking Redis."""

    queue: str
    pass_name: str | None
    parent: str | None


class _Routes:
    """A bounded LRU of ``(swarm, task id) -> Route``, shared by the threads of a process."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], Route] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, swarm: str, task_id: str) -> Route | None:
        with self._lock:
            found = self._items.get((swarm, task_id))
            if found is not None:
                self._items.move_to_end((swarm, task_id))
            return found

    def put(self, swarm: str, task_id: str, value: Route) -> None:
        with self._lock:
            self._items[(swarm, task_id)] = value
            self._items.move_to_end((swarm, task_id))
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_ROUTES = _Routes()


def remember_route(ctx: OpContext, task: Task) -> None:
    _ROUTES.put(ctx.settings.swarm, task.id, Route(task.queue, task.pass_name, task.parent))


def route(ctx: OpContext, task_id: object) -> Operation[Route]:
    """The task's route: from this process's memory, else one HGET."""
    tid = check_id("task", task_id)
    found = _ROUTES.get(ctx.settings.swarm, tid)
    if found is not None:
        return found
    raw = yield Cmd("HGET", ctx.keys.tasks, tid)
    if raw is None:
        raise NotFound(f"task {tid} does not exist: {CHECK_TASK_ID}")
    # (a record written around the operations: the one CorruptRecord a get_task says, not a
    # raw JSONDecodeError, KeyError or TypeError out of a report, renew, fail, ...)
    found = decoded("task", tid, _route_of, raw)
    _ROUTES.put(ctx.settings.swarm, tid, found)
    return found


def _route_of(raw: Any) -> Route:
    state = loads(raw)
    queue, pass_name, parent = state["queue"], state.get("pass_name"), state.get("parent")
    if type(queue) is not str or not _optional_text(pass_name) or not _optional_text(parent):
        raise ValueError("its queue, pass_name or parent is not a string")
    return Route(queue, pass_name, parent)


def _optional_text(value: Any) -> bool:
    return value is None or type(value) is str


# --- implicit workers: a worker that only claims is registered, and its presence kept, by
# its claims: on the first claim of a worker in this process, then at most once per
# PRESENCE_EVERY_S (presence is read in seconds; doing it on every claim cost two commands).

PRESENCE_EVERY_S = 1.0


def presence_due(ctx: OpContext, worker: str) -> bool:
    """Whether this claim should register ``worker`` and mark it present (remembered per
    handle, so that a new handle, as after a server was replaced, registers at once). The
    script does so only when it leases a task: a claim that leased none calls
    ``forget_presence``, or the worker's next claims, leasing, would skip it for a second."""
    if ctx.clock is not None:  # a test's clock: every claim marks presence, as the clock says
        return True
    now = time.monotonic()
    if now - ctx.presence_sent.get(worker, -math.inf) < PRESENCE_EVERY_S:
        return False
    remember(ctx.presence_sent, worker, now)
    return True


def forget_presence(ctx: OpContext, worker: str) -> None:
    """The next claim of ``worker`` through this handle registers it again (after
    deregister, or a claim that leased nothing and so registered nothing)."""
    ctx.presence_sent.pop(worker, None)


# --- validation at the edge


def repair_task_data(data_key: str | None, task_id: str | None) -> str:
    """The command that repairs a task's damaged data (``data_key``: ``Keys.task_data``; None:
    not known to the reader, which names where to find it), as a shell runs it written so."""
    key = shlex.quote(data_key) if data_key is not None else "TASK_DATA (swarm doctor names it)"
    return f"redis-cli HSET {key} {task_id} 'JSON' with its data"


def data_corrupt(task_id: str | None, why: str, data_key: str | None, status: TaskStatus) -> str:
    """The one wording of a task whose record reads but whose data is stored corrupt
    (written around redis-swarm; ``why``: what decoding it met): a reader's
    (``task_from``), ``get_task``'s (``TaskDataDamaged``), and the error of one a claim
    dead-letters (``DamagedLease``); the repair names ``data_key`` (``Keys.task_data``), the
    next step follows its ``status``."""
    if status is TaskStatus.DEAD:
        then = f"then run it again: swarm task requeue {task_id}"
    elif status.settled:
        then = "if its data is still wanted (it is settled: nothing runs it again)"
    else:  # (open: its next claim dead-letters it, as one that cannot be run)
        then = (
            "before it is claimed (a claim dead-letters it), or cancel it: "
            f"swarm task cancel {task_id}"
        )
    return (
        f"task {task_id}'s data is stored corrupt ({why}): something wrote it around "
        f"redis-swarm, so it is not handed out (its record reads: status {status.value}). "
        f"Repair it: {repair_task_data(data_key, task_id)}, {then}"
    )


class DamagedLease(NamedTuple):
    """A lease a claim took on a task whose record or data cannot be read here (written
    around redis-swarm): what the claim gives up at once, dead-lettering the task
    (``claiming.claimed``), so that no worker holds it and it does not come back lease
    after lease."""

    task_id: str | None  # None: its record names no id (nothing to give up by)
    queue: str | None  # the queue its record names (None: none readable)
    token: str
    what: str  # "task ID" or "task ID's data"
    why: str  # what decoding it met
    data_key: str  # the task data hash (Keys.task_data), which the repair of its data names

    @property
    def lease(self) -> str:
        return f"{self.task_id or 'a task'} (token {self.token})"

    def error(self) -> str:
        """Why it is dead-lettered (its ``last_error``): the damage and the repair."""
        if self.what.endswith("'s data"):  # (dead now: ``data_corrupt``'s words)
            return data_corrupt(self.task_id, self.why, self.data_key, TaskStatus.DEAD)
        return (
            f"{self.what} is stored corrupt ({self.why}): something wrote it around "
            "redis-swarm, and no worker can read it; it is kept as it is. Repair it (rewrite "
            f"it), then run it again: swarm task requeue {self.task_id}"
        )


def leased(
    ctx: OpContext, pairs: Sequence[Any], lease_secrets: Sequence[str]
) -> tuple[list[Task], list[DamagedLease]]:
    """The tasks a claim leased, from the script's (task JSON, data JSON) pairs and the
    secrets sent, one per task in order: each with its token; and the leases it took on
    tasks that cannot be read here (``DamagedLease``), which the claim gives up."""
    tasks = []
    damaged: list[DamagedLease] = []
    data_key = ctx.keys.task_data
    for raw, data, secret in zip(pairs[0::2], pairs[1::2], lease_secrets, strict=False):
        try:
            task = task_from(raw, data, secret)
        except UNREADABLE as exc:
            # The script leased it, its record readable to it, its data (or a field) not to
            # us: the lease stands and its token is only here, so it is kept, not lost.
            tid, queue, token = _lease_of(raw, secret)
            if isinstance(exc, _DataCorrupt):
                damaged.append(
                    DamagedLease(tid, queue, token, f"task {tid}'s data", exc.why, data_key)
                )
            else:
                damaged.append(DamagedLease(tid, queue, token, f"task {tid}", _why(exc), data_key))
            continue
        remember_route(ctx, task)
        tasks.append(task)
    return tasks, damaged


def _lease_of(raw: Any, secret: str) -> tuple[str | None, str | None, str]:
    """The id, queue and token of a task leased whose record decoding refused
    (``leased``): read as leniently as the script did."""
    try:
        state = loads(raw)
        tid, queue, attempts = state.get("id"), state.get("queue"), state.get("attempts", 0)
    except UNREADABLE:
        tid, queue, attempts = None, None, 0
    token = lease_token(attempts if type(attempts) is int else 0, secret)
    return (tid if type(tid) is str else None), (queue if type(queue) is str else None), token


def leased_damaged(
    damaged: Sequence[DamagedLease], tasks: Sequence[Task], failed: BaseException
) -> CorruptRecord:
    """The CorruptRecord of a claim that leased tasks stored damaged and could not give them
    up (``failed``: why): it names each, its token and the repair, and every lease the
    claim took (a batch's good tasks too), so that none is held by nobody until its lease
    ends."""
    said = "; ".join(
        f"{d.error()}. It is leased to you with token {d.token} and could not be given up "
        f"({failed}): swarm task fail {d.task_id} --token {d.token} --error damaged "
        "--no-retry dead-letters it"
        for d in damaged
    )
    leases = [f"{t.id} (token {t.token})" for t in tasks] + [d.lease for d in damaged]
    took = f". This claim leased: {first_few(leases, 20)}" if len(leases) > 1 else ""
    return CorruptRecord(said + took, record_id=damaged[0].task_id)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


# Made once (json.dumps with options builds an encoder at every call): no NaN, compact.
_STRICT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_json(value: Any, what: str, max_bytes: int) -> str:
    """``value`` as compact JSON, refused (nothing stored) if it is not JSON or too big."""
    try:
        encoded = _STRICT_JSON.encode(value)
        size = len(encoded) if encoded.isascii() else len(encoded.encode())
    except RecursionError:
        raise too_deep(what) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{what} is not JSON-serialisable ({exc}): use dicts, lists, strings, finite "
            "numbers, booleans and None"
        ) from None
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{what} is {size:,} bytes encoded; the limit is {max_bytes:,}: store large "
            f"material in a context {PUBLISH_CONTEXT} and pass a reference"
        )
    check_json_keys(what, value)  # (the encoder wrote a key 1 as "1": one value lost of two)
    return check_json_depth(what, encoded)


def check_number(kind: str, value: object, lo: float, hi: float, *, integer: bool = False) -> float:
    """A finite number in ``[lo, hi]`` (an int when ``integer``), else a ValidationError."""
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        want = "an integer" if integer else "a number"
        raise ValidationError(f"{kind} must be {want}, got {type(value).__name__}")
    # (an int is compared as it is: one past a float's range is out of range, not an error)
    if (isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi:
        raise ValidationError(
            f"{kind} is {readable_number(value)}; it must be between {readable_number(lo)} "
            f"and {readable_number(hi)}"
        )
    return value


# --- decoding


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def newest(replies: Sequence[Any], n: int) -> list[str]:
    """The ``n`` members of highest score across ZREVRANGE ... WITHSCORES replies (each as
    RESP2, flat, or RESP3, pairs, parsed it): the newest of several sorted sets."""
    scored: list[tuple[float, str]] = []
    for reply in replies:
        pairs = (
            reply
            if reply and isinstance(reply[0], list | tuple)
            else zip(reply[::2], reply[1::2], strict=True)
        )
        scored += [(float(score), text(member)) for member, score in pairs]
    scored.sort(reverse=True)
    return [member for _, member in scored[:n]]


_TASK_FIELDS = frozenset(Task.__dataclass_fields__) - {"data", "status"}
# The counts of a task's runs that its readers add up (``_models.runs_of``), read as counts as
# the task is decoded (``_count``): a big one cjson wrote as a float (1e+14) is its whole
# number; one that is no count at all (written around redis-swarm) is left out (its default)
# rather than crash whatever sums it, and ``swarm doctor`` names the record (``strict``). Not
# refused in every decode: a script's reply is decoded after Redis made its change.
_RUN_COUNTS = ("failures", "failed_run_count")
_FINDING_FIELDS = frozenset(Finding.__dataclass_fields__) - {"sources"}
# The fields of a Finding that only the report that stored it sets (from its script's
# reply), never read from a stored record.
REPORT_ONLY_FIELDS = ("overtaken_by", "overtaken_attempt")
# The field of a half-stored report's superseded copy that names the first try's record, in
# no index by design (lua/_report.lua's ``stands_for``): the doctor counts it as no loss.
HALF_STORED_FIELD = "stands_for"


def decoded(kind: str, record_id: str, decode: Callable[..., T], *raw: Any) -> T:
    """``decode(*raw)``, or CorruptRecord naming the record when it cannot be read."""
    try:
        return decode(*raw)
    except CorruptRecord:
        raise  # (already naming the record: ``task_from``'s)
    except UNREADABLE as exc:
        # A task deleted leaves the counts it is in (its queue's, its pass's, its shard's)
        # counting it, and a pass waited for never settles: rewriting it is the repair.
        how = (
            "rewrite it (deleting it leaves its pass and queue counting it: swarm doctor "
            "--recount sets a queue's counters, not a pass's)"
            if kind == "task"
            else "rewrite it, or delete it from Redis"
        )
        raise CorruptRecord(
            f"{kind} {record_id} is stored corrupt ({_why(exc)}); "
            f"something wrote it around redis-swarm. Listings skip it and swarm doctor counts "
            f"such records: {how}",
            record_id=record_id,
        ) from None


def _count(value: Any) -> int | None:
    """``value`` as a count (a whole number from 0 to ``MAX_COUNT``, as the scripts check
    one), or None when it is none."""
    if type(value) is float and value.is_integer():
        value = int(value)
    return value if type(value) is int and 0 <= value <= MAX_COUNT else None


def task_from(
    raw: Any, data: Any, lease_secret: str | None = None, *, strict: bool = False
) -> Task:
    """A Task from its stored JSON and its data JSON (None or '' for no data). A direct
    constructor call: listings and batches decode thousands, and only ``status`` needs
    converting. ``lease_secret``: the task was just leased with it; its token is
    ``ATTEMPT.SECRET`` (made here, not by a second construction). ``strict``: a run count
    that is no count is refused (ValueError) rather than left out (``_RUN_COUNTS``)."""
    state: dict[str, Any] = loads(raw)
    fields = {k: v for k, v in state.items() if k in _TASK_FIELDS}
    check_field_types(fields, _TASK_TYPES)
    for name in _RUN_COUNTS:
        if name in fields:
            count = _count(fields[name])
            if count is None and fields[name] is not None:
                if strict:
                    raise ValueError(f"{name} is {fields[name]!r}, not a count")
                del fields[name]
            else:
                fields[name] = count
    if isinstance(fields.get("failed_usage"), dict):
        fields["failed_usage"] = Usage.from_dict(fields["failed_usage"])
    if lease_secret is not None:
        fields["token"] = lease_token(fields.get("attempts", 0), lease_secret)
    fields["status"] = TaskStatus(state["status"])
    if data:
        try:
            fields["data"] = loads(data)
        except UNREADABLE as exc:
            # The record reads, its data does not: one CorruptRecord naming the task and
            # what is damaged (a ValueError too, so that listings leave it out as any).
            why, tid = _why(exc), fields["id"]
            said = data_corrupt(tid, why, None, fields["status"])  # (the key: not known here)
            raise _DataCorrupt(said, record_id=tid, why=why) from None
    else:
        fields["data"] = None
    return built(Task, fields)


class _DataCorrupt(CorruptRecord, ValueError):
    """A task whose data cannot be decoded: a CorruptRecord for its direct readers, and one of
    the errors (``UNREADABLE``) that listings and ``swarm doctor`` leave out and count.
    ``why``: what decoding it met."""

    def __init__(self, message: str, *, record_id: str, why: str) -> None:
        super().__init__(message, record_id=record_id)
        self.why = why


# The fields of a record its views read as text, or as numbers (``iso``, sorting, sums): of
# another type (written around redis-swarm), the record is damaged, not shown wrong later.
# A type() check each: listings decode thousands.
_TASK_TEXT = ("id", "queue", "description", "pass_name", "parent", "worker", "finding_id",
              "last_error", "dead_reason", "dedupe_key", "failed_cost")  # fmt: skip
_TASK_NUMBERS = ("created_at", "priority", "attempts", "abandons", "max_attempts",
                 "max_abandons", "lease_s", "lease_ms", "not_before", "lease_deadline",
                 "claimed_at", "completed_at", "status_at")  # fmt: skip
_FINDING_TEXT = ("id", "task_id", "queue", "pass_name", "shard", "worker", "model",
                 "context_version", "summary", "details")  # fmt: skip
_FINDING_NUMBERS = ("created_at", "confidence", "attempt")
_TEXT: frozenset[type] = frozenset((str, type(None)))
_NUMBER: frozenset[type] = frozenset((int, float, type(None)))


def field_types(text: Sequence[str], numbers: Sequence[str]) -> dict[str, frozenset[type]]:
    """What ``check_field_types`` holds a record's fields to: ``text`` ones a str, ``numbers``
    an int or float (None stands for any: a default)."""
    return {**dict.fromkeys(text, _TEXT), **dict.fromkeys(numbers, _NUMBER)}


_TASK_TYPES = field_types(_TASK_TEXT, _TASK_NUMBERS)
_SYNTHESIS_TYPES = field_types(("id", "shard", "pass_name", "text", "model"), ("created_at",))
_FINDING_TYPES = field_types(_FINDING_TEXT, _FINDING_NUMBERS)


def check_field_types(fields: Mapping[str, Any], types: Mapping[str, frozenset[type]]) -> None:
    """ValueError (one of ``UNREADABLE``: the record is damaged) naming the first field of
    ``fields`` whose type ``types`` does not allow it. One pass over the record's fields, a
    dict lookup and a set test each."""
    for name, value in fields.items():
        allowed = types.get(name)
        if allowed is not None and type(value) not in allowed:
            raise ValueError(f"its field {name} is {value!r:.40}, of the wrong type")


def synthesis_from(raw: Any) -> Synthesis:
    """A Synthesis from its stored JSON."""
    state: dict[str, Any] = loads(raw)
    check_field_types(state, _SYNTHESIS_TYPES)
    return Synthesis.from_dict(state)


def finding_from(raw: Any, meta: Mapping[str, Any] | None = None) -> Finding:
    """A Finding from its stored JSON (``meta``: fields to set over what it holds)."""
    state: dict[str, Any] = loads(raw)
    # (never stored: only a report's own reply says it; a record written around redis-swarm
    # that holds it says nothing)
    for field in REPORT_ONLY_FIELDS:
        state.pop(field, None)
    if meta is not None:
        state.update(meta)
    return finding_record(state)


def finding_record(state: dict[str, Any]) -> Finding:
    """A Finding from its decoded record."""
    fields = {k: v for k, v in state.items() if k in _FINDING_FIELDS}
    check_field_types(fields, _FINDING_TYPES)
    if isinstance(fields.get("usage"), dict):
        fields["usage"] = Usage.from_dict(fields["usage"])
    fields["sources"] = tuple(state.get("sources") or ())
    return built(Finding, fields)


# --- the status counters (Keys.counts, Keys.pass_counts): integers a worker may HINCRBY

# The repair of the status counters, as the doctor names it (its option is cli/_server.py's).
RECOUNT_COMMAND = "swarm doctor --recount"
# The posting sequence's field in the counts hash (lua/task_post.lua): no status counter.
SEQ_FIELD = "#seq"


def damaged_counter(field: str | None, value: Any = None) -> CorruptRecord:
    """The CorruptRecord of a counter that holds no integer (``field``: which, when known;
    None: a script met it, and Redis does not say which)."""
    named = f"the counter {field} (holding {text(value)[:40]!r})" if field else "a counter"
    return CorruptRecord(
        f"{named} of the swarm's task counts is not an integer: something wrote it around "
        f"redis-swarm. swarm doctor names it; {RECOUNT_COMMAND} sets every queue's pending, "
        "delayed, claimed and dead counters from its sets, and the doctor says how to set "
        f"the others ({SEQ_FIELD}, completed, cancelled, a pass's) by hand",
        record_id=field,
    )


def counter(field: Any, value: Any) -> int:
    """A status counter's value (``field`` of a counts hash) as an int, else the
    CorruptRecord naming it and the repair (never a raw ValueError out of every view)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise damaged_counter(text(field), value) from None


# --- listing

LIST_BUDGET = 5_000  # index entries one listing call may examine

# What a listing's cursor looks like (lua/index_page.lua makes them): the last id listed,
# ``~`` before it newest first, ``@`` and its index score after it (an older cursor: the id
# alone). Anything else was not given by a listing: refused before it reaches a script.
_CURSOR = re.compile(r"~?[A-Za-z0-9._-]{1,64}(@[0-9]{1,20})?")


def check_cursor(cursor: object) -> str | None:
    """``cursor`` as a listing gave it (or None), else a ValidationError that quotes a
    bounded part of it."""
    if cursor is None:
        return None
    if not isinstance(cursor, str):
        raise ValidationError(f"cursor must be a string, got {type(cursor).__name__}")
    if not _CURSOR.fullmatch(cursor):
        # (The sentence index_page.lua says of a cursor of another listing, so that a face
        # rewording it, as A2A's pageToken, meets one sentence; only the quote is bounded.)
        raise ValidationError(
            f"cursor {cursor[:80]}{'...' if len(cursor) > 80 else ''} does not belong to this "
            "listing: pass back the cursor of the previous page with the same filters"
        )
    return cursor


def page(
    ctx: OpContext,
    keys: tuple[str, ...],
    cursor: str | None,
    limit: int,
    since: int | None,
    with_data: bool,
    filters: list[str],
    decode: Callable[[Any, Any], T],
    *,
    newest_first: bool = False,
) -> Operation[Page[T]]:
    """One page of records through an index (script index_page), oldest first or
    ``newest_first``; a record that cannot be decoded is left out and named in
    ``Page.corrupt``. A cursor of one order is refused (ValidationError) by the other."""
    size = int(check_number("limit", limit, 1, MAX_PAGE, integer=True))
    cursor = check_cursor(cursor)
    start = "" if since is None else str(int(check_number("since", since, 0, 2**53, integer=True)))
    flags = ("1" if with_data else "0", "1" if newest_first else "0")
    args = (cursor or "", size, start, LIST_BUDGET, *flags, *filters)
    reply = yield Call("index_page", keys, args)
    items: list[T] = []
    corrupt: list[str] = []
    for record_id, raw, data in zip(reply[1::3], reply[2::3], reply[3::3], strict=True):
        try:
            items.append(decode(raw, data))
        except UNREADABLE:  # written around the operations: named, not fatal
            corrupt.append(text(record_id))
    nxt = text(reply[0])
    return Page(tuple(items), nxt or None, tuple(corrupt))


# --- waiting on the event stream (no busy polling)


def block_chunk_s(ctx: OpContext) -> float:
    """The longest single XREAD BLOCK: well under the socket timeout, so that a blocked read
    is never mistaken for a dead connection."""
    return max(0.05, min(5.0, ctx.settings.socket_timeout / 3))


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of an XREAD reply, whatever shape the client parsed it into."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [item[1] for item in reply]
    out: list[tuple[str, dict[str, str]]] = []
    for entries in streams:
        # RESP3 parsing wraps the entry list in one more list.
        if (
            entries
            and isinstance(entries[0], list)
            and entries[0]
            and (isinstance(entries[0][0], tuple | list))
        ):
            entries = entries[0]
        for entry_id, fields in entries:
            if isinstance(fields, dict):
                pairs = {text(k): text(v) for k, v in fields.items()}
            else:
                flat = list(fields or ())
                pairs = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
            out.append((text(entry_id), pairs))
    return out


def await_events(
    ctx: OpContext,
    last_id: str,
    block_s: float,
    accept: Callable[[Mapping[str, str]], bool],
) -> Operation[str]:
    """Block on the event stream after ``last_id`` until an accepted event arrives or
    ``block_s`` passes; returns the id of the last event read."""
    end = time.monotonic() + block_s
    while True:
        ms = int((end - time.monotonic()) * 1000)
        if ms < 1:  # BLOCK 0 would mean forever
            return last_id
        reply = yield Cmd("XREAD", "COUNT", 200, "BLOCK", ms, "STREAMS", ctx.keys.events, last_id)
        entries = _entries(reply)
        if not entries:
            return last_id
        for entry_id, fields in entries:
            last_id = entry_id
            if accept(fields):
                return last_id


def usage_body(usage: object) -> dict[str, Any]:
    """A Usage as stored (on a finding, a synthesis, a failed task): refused with any of its
    ``faults``; token counts given as whole floats stored as the integers they are."""
    if not isinstance(usage, Usage):
        raise ValidationError(f"usage must be a Usage record, got {type(usage).__name__}")
    faults = usage.faults()
    if faults:
        raise ValidationError("; ".join(faults))
    check_label("usage source", usage.source, max_chars=64)
    if usage.session_id is not None:
        check_label("usage session_id", usage.session_id, max_chars=LABEL_CHARS)
    for model in usage.models:
        check_label("usage model", model, max_chars=LABEL_CHARS)
    body = usage.to_dict()
    for figures in (body, *body["models"].values()):
        for name in USAGE_COUNTS:
            if figures.get(name) is not None:
                figures[name] = int(figures[name])
    return body


def refuse_new_option_like(ctx: OpContext, kind: str, agent_id: str) -> Operation[None]:
    """Refuse ``agent_id`` as the name of a new agent when it ``begins_like_option`` (a '-'
    first, or only dots: a file's name under SWARM_HOME); one
    registered under it before the rule registers again (as ``join`` does). Register's rule,
    and a claim's, which registers its worker too (``claiming.claim``, a report's
    ``claim_next``). Only such a name costs a round trip (HEXISTS): an ordinary name's claim
    sends nothing more."""
    if begins_like_option(agent_id) and not (yield Cmd("HEXISTS", ctx.keys.agents, agent_id)):
        raise option_like(kind, agent_id)


def check_pass_written(ctx: OpContext, pass_name: str) -> Operation[str]:
    """A pass name a synthesis or a synthesis request writes: as a new one (``check_label``'s
    ``new``: no whitespace at either end, no control character), save for a pass already
    posted to under such a name (before those rules: its syntheses stay possible). One
    HEXISTS, on that path only."""
    name = check_label("pass name", pass_name)
    try:
        check_label("pass name", name, new=True)
    except ValidationError:
        known = yield Cmd("HEXISTS", ctx.keys.pass_counts, label_id(name))
        if not int(known):
            raise
    return name
