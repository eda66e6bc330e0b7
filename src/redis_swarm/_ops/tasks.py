"""The work queue: post (and a queue's settings), the changes made to a task once it is out
(renew, fail, release, cancel, requeue), and the views: get, list, queue, shard and pass
counts. Taking tasks (claim, reap) and waiting for a pass to settle are in ``claiming``,
which builds on this module.

Tasks are leased, never popped: a claim gives a lease (a deadline and a fencing token, the
attempt number); a lease that runs out is reclaimed by the next claim on its queue or by
``reap``, so no daemon is needed. Every state change is one Lua script that also keeps the
counters of ``Keys.counts`` and ``Keys.pass_counts`` exact and appends an event.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypedDict

from .._codec import UNREADABLE, built, dumps, loads
from .._errors import (
    Conflict,
    CorruptRecord,
    NotFound,
    PayloadTooLarge,
    TaskDataDamaged,
    TaskDeadLettered,
    ValidationError,
)
from .._hints import CHECK_TASK_ID
from .._keys import Keys, label_id
from .._models import DEFAULT_MAX_ABANDONS, Page, Task, TaskSpec, TaskStatus, stored_error
from .._printable import short
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from .._usage import Usage
from .._validate import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF_S,
    DEFAULT_TASK_LEASE_S,
    MAX_ATTEMPTS,
    MAX_DELAY_S,
    MAX_DESCRIPTION_CHARS,
    MAX_LEASE_S,
    MAX_NOT_BEFORE_MS,
    MAX_PAGE,
    MAX_PRIORITY,
    MAX_RETRY_AFTER_S,
    MAX_RETRY_BACKOFF_S,
    MIN_LEASE_S,
    MIN_NOT_BEFORE_MS,
    check_agent,
    check_failure_reason,
    check_flag,
    check_id,
    check_list,
    check_name,
    check_unicode,
)
from ._work import (
    LIST_BUDGET,
    STATUSES,
    DamagedLease,
    _DataCorrupt,
    _why,
    check_cursor,
    check_label,
    check_number,
    check_token,
    counter,
    data_corrupt,
    decoded,
    encode_json,
    new_id,
    page,
    remember_route,
    repair_task_data,
    route,
    task_from,
    text,
    usage_body,
)

__all__ = [
    "RECORD_LIMITS",
    "ShardStats",
    "asked_lease_ms",
    "cancel",
    "configure_queue",
    "fail",
    "get_task",
    "give_up_damaged",
    "list_tasks",
    "pass_fields",
    "pass_stats",
    "post_task",
    "post_tasks",
    "queue_counts",
    "queue_names",
    "queue_stats",
    "release",
    "renew",
    "requeue_dead",
    "shard_names",
    "shard_stats",
    "status_counts",
    "task_statuses",
]

MAX_QUEUE_DESCRIPTION = 2_000
POST_CHUNK = 1_000  # tasks per script call: bounds the time Redis spends in one script
# A failed task waits 1 s, 2 s, 4 s, ... before its next attempt, unless its queue sets the
# first wait (configure_queue's retry_backoff_s) or the fail says (retry_after_s).
BACKOFF_BASE_MS = round(DEFAULT_RETRY_BACKOFF_S * 1000)
BACKOFF_CAP_MS = round(MAX_RETRY_BACKOFF_S * 1000)

# The ranges a post accepts for a task's numbers, which the scripts that move a task check
# again in the record they read (a worker may write any record: docs/security.md), sent to
# them as one string (lua/_tasks.lua: record_limits): the largest |priority|, the largest
# max_attempts and max_abandons, a lease's shortest and longest in ms.
RECORD_LIMITS = (
    f"{MAX_PRIORITY} {MAX_ATTEMPTS} {round(MIN_LEASE_S * 1000)} {round(MAX_LEASE_S * 1000)}"
)

_SPEC_FIELDS = frozenset(TaskSpec.__dataclass_fields__)
_SHARD_FIELD = "shard:"  # counts fields shard:NAME|status (a queue name holds no ':')


class ShardStats(TypedDict):
    """What ``shard_stats`` says of one shard: its findings, and its tasks by status."""

    findings: int
    tasks: dict[str, int]


# --- posting


def _spec(item: object) -> TaskSpec:
    if isinstance(item, TaskSpec):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - _SPEC_FIELDS
        if unknown:
            raise ValidationError(
                f"unknown task field(s) {', '.join(sorted(map(str, unknown)))}: "
                f"use {', '.join(sorted(_SPEC_FIELDS))}"
            )
        if "queue" not in item or "description" not in item:
            raise ValidationError("a task needs a queue and a description")
        return TaskSpec(**item)
    raise ValidationError(f"a task spec must be a TaskSpec or a dict, got {type(item).__name__}")


class _Post(NamedTuple):
    """One task checked and ready to send: what the script is told, and what the Task it
    returns is made of (None: not set)."""

    id: str
    queue: str
    description: str
    priority: int
    max_attempts: int
    lease_s: float
    pass_name: str | None
    pass_id: str | None
    not_before: int | None  # epoch ms, as given (None with delay_ms: the server's now + it)
    delay_ms: int | None
    dedupe_key: str | None
    parent: str | None
    max_abandons: int | None
    # What task_post is told of it after its queue and pass (see task_post.lua): id,
    # priority, not_before, dedupe_key, parent, max_abandons ('' for none), the stored
    # record's JSON as the client knows it without its closing brace, its data's JSON.
    args: tuple[Any, ...]

    @property
    def data(self) -> Any:
        """The task's data, as sent (None: none)."""
        return _decode(self.args[-1]) if self.args[-1] else None


def _prepare(ctx: OpContext, spec: TaskSpec, task_id: str | None) -> _Post:
    """Validate one spec (see ``_checked``)."""
    return _checked(
        ctx, spec.queue, spec.description, spec.data, spec.pass_name, spec.priority,
        spec.max_attempts, spec.lease_s, spec.not_before, spec.dedupe_key, spec.parent,
        spec.max_abandons, task_id, spec.delay_s,
    )  # fmt: skip


def _one_each(kind: str, values: Sequence[str] | None, count: int) -> Sequence[str] | None:
    """``task_ids`` or ``labels`` of post_tasks: None, or one string per spec."""
    if values is None:
        return None
    values = check_list(kind, values, of="strings, one per task")
    if len(values) != count:
        raise ValidationError(f"{kind} must be a list of one string per task ({count})")
    return values


def _label(n: int, labels: Sequence[str] | None) -> str:
    """How an error of post_tasks names spec ``n``."""
    return f"task #{n}" if labels is None else labels[n]


def _int_in(kind: str, value: object, lo: int, hi: int) -> int:
    """``check_number(..., integer=True)`` as a plain int, the common case (a plain int in
    range) first."""
    if type(value) is int and lo <= value <= hi:
        return value
    return int(check_number(kind, value, lo, hi, integer=True))


def _checked(
    ctx: OpContext,
    queue: object,
    description: object,
    data: Any,
    pass_name: object,
    priority: object,
    max_attempts: object,
    lease_s: object,
    not_before: object,
    dedupe_key: object,
    parent: object,
    max_abandons: object,
    task_id: object = None,
    delay_s: object = None,
) -> _Post:
    """Validate one task; return what posting it sends and returns. The record is written
    here as ``dumps`` of its fields (in this order) would write it, without the dict and
    the encoder's walk: names and ids need no escaping, numbers are plain ints or floats."""
    queue = check_name("queue", queue)
    if not isinstance(description, str):
        raise ValidationError(
            f"description must be a string, got {type(description).__name__}: say what to do"
        )
    if not description.strip():
        raise ValidationError("description must be a non-empty string: say what to do")
    check_unicode("description", description)
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise PayloadTooLarge(
            f"the description is {len(description):,} characters; the limit is "
            f"{MAX_DESCRIPTION_CHARS:,}: put the material in data or in a context"
        )
    priority = _int_in("priority", priority, -MAX_PRIORITY, MAX_PRIORITY)
    max_attempts = _int_in("max_attempts", max_attempts, 1, MAX_ATTEMPTS)
    lease = _lease_s(lease_s)
    tid = new_id("t-") if task_id is None else check_id("task", task_id, new=True)
    parts = [
        f'{{"id":"{tid}","queue":"{queue}","description":{_json_str(description)},'
        f'"priority":{priority},"max_attempts":{max_attempts},"lease_s":{_json_num(lease)}'
    ]
    abandons = pass_id = None
    if max_abandons is not None:
        abandons = _max_abandons(max_abandons)
        parts.append(f',"max_abandons":{abandons}')
    if pass_name is not None:
        pass_name = check_label("pass name", pass_name, new=True)
        pass_id = label_id(pass_name)
        parts.append(f',"pass_name":{_json_str(pass_name)},"pass_id":"{pass_id}"')
    due: object = ""  # task_post's not_before argument
    delay_ms = None
    if not_before is not None:
        if delay_s is not None:
            raise ValidationError("give not_before (epoch ms) or delay_s (seconds), not both")
        due = not_before = _not_before(not_before)
        parts.append(f',"not_before":{not_before}')
    elif delay_s is not None:
        # Counted by the script from its now, the server's clock (an agent's may be off):
        # the record's not_before is written there.
        delay_ms = round(check_number("delay_s", delay_s, 0, MAX_DELAY_S) * 1000)
        due = f"+{delay_ms}"
    if dedupe_key is not None:
        dedupe_key = check_label("dedupe key", dedupe_key)
        parts.append(f',"dedupe_key":{_json_str(dedupe_key)}')
    if parent is not None:
        parent = check_name("parent", parent)
        parts.append(f',"parent":"{parent}"')
    encoded = "" if data is None else encode_json(data, "task data", ctx.limits.max_task_data_bytes)
    args = (
        tid, priority, due, _or_empty(dedupe_key), _or_empty(parent),
        _or_empty(abandons), "".join(parts), encoded,
    )  # fmt: skip
    return _Post(
        tid, queue, description, priority, max_attempts, lease, pass_name, pass_id, not_before,
        delay_ms, dedupe_key, parent, abandons, args,
    )  # fmt: skip


# JSON of a string and of a number, as ``dumps`` writes them (its encoder's own functions).
_json_str = json.encoder.encode_basestring


def _json_num(value: float) -> str:
    return int.__repr__(value) if isinstance(value, int) else float.__repr__(value)


# How not_before is given, said by each refusal of one.
_EPOCH_MS = (
    "give whole milliseconds since the epoch (int(time.time() * 1000) + MS; seconds times "
    "1000), or delay_s instead (seconds from now)"
)


def _not_before(value: object) -> int:
    """A task's due time, epoch ms: a plain int in range first (the common case)."""
    if type(value) is int and MIN_NOT_BEFORE_MS <= value <= MAX_NOT_BEFORE_MS:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        got = f"float {value!r}" if isinstance(value, float) else type(value).__name__
        raise ValidationError(f"not_before must be an integer, got {got}: {_EPOCH_MS}")
    if value < MIN_NOT_BEFORE_MS:
        raise ValidationError(
            f"not_before is {value}: as milliseconds since the epoch, which it counts, that "
            f"is before 1973 (a time in seconds?): {_EPOCH_MS}. A task due at once needs "
            "neither"
        )
    raise ValidationError(
        f"not_before is {value}: as milliseconds since the epoch, past the year 10,000: {_EPOCH_MS}"
    )


def _max_abandons(value: object) -> int:
    return int(check_number("max_abandons", value, 1, MAX_ATTEMPTS, integer=True))


def _lease_s(value: object) -> float:
    lease = check_number("lease_s", value, MIN_LEASE_S, MAX_LEASE_S)
    return int(lease) if float(lease).is_integer() else lease


def asked_lease_ms(lease_s: float | None) -> int:
    """The lease a claim asks for, in ms (0: each task's own ``lease_s``)."""
    return 0 if lease_s is None else max(1, round(_lease_s(lease_s) * 1000))


@functools.lru_cache(maxsize=1024)
def _post_keys(k: Keys, queue: str) -> tuple[str, ...]:
    """The keys of a task_post call of one queue and no pass (made once per handle and
    queue, as ``claiming._queue_group``): every lone post_task sends them."""
    head = (k.tasks, k.task_data, k.task_index, k.dedupe, k.counts, k.pass_counts, k.events)
    per_queue = (k.pending(queue), k.delayed(queue), k.wake(queue), k.waiters(queue))
    return (*head, k.queue_settings, *per_queue)


def _post_call(ctx: OpContext, chunk: Sequence[_Post]) -> Call:
    """The task_post call of a chunk: what the script routes by, and each task's record as JSON
    without its closing brace (the script closes it with the fields only the server knows, so
    it decodes and encodes no JSON)."""
    k = ctx.keys
    queues: dict[str, int] = {}
    passes: dict[str, tuple[int, str]] = {}  # name -> (its number, its id)
    per_task: list[Any] = []
    for post in chunk:
        qi = queues.get(post.queue) or queues.setdefault(post.queue, len(queues) + 1)
        pi: int | str = ""
        if post.pass_name is not None:
            pi = passes.setdefault(post.pass_name, (len(passes) + 1, post.pass_id or ""))[0]
        per_task.append(qi)
        per_task.append(pi)
        per_task += post.args
    names = list(queues)
    keys = _post_keys(k, names[0])
    if len(names) > 1 or passes:
        extra = [key for queue in names[1:] for key in _post_keys(k, queue)[-4:]]
        keys = (*keys, *extra, *(k.pass_tasks(name) for name in passes))
    args: list[Any] = [ctx.now_arg(), ctx.limits.events_maxlen, len(names), len(passes)]
    args += [DEFAULT_MAX_ABANDONS, *names]
    for name, (_, pass_id) in passes.items():
        args += (pass_id, name)
    return Call("task_post", keys, (*args, *per_task))


def _or_empty(value: object) -> object:
    return "" if value is None else value


# What a post under an id already stored must share with that task to be the same post (a
# retry after a lost reply, which sends them all again as they were): what names the work,
# what it is given, and how it is run and counted. Data as JSON values (1, 1.0 and true
# differ; key order aside: ``_same_json``); lease_s as stored (its repr: read back equal).
# A caller that means "post it, or find the one posted" under a known id with its own data
# or lease_s (a pipeline's lease names the run posting it; a planner's lease_s is the
# plan's, edited since) catches the Conflict and reads the task
# (``_pipeline.names.posted_once``). Not compared: the due
# time, which the server moves (a delay_s counts from the server's now, a failure's backoff
# sets not_before); and an unset max_abandons (the queue's setting was stored).
_SAME_POST = (
    "queue", "description", "pass_name", "parent", "dedupe_key", "priority", "max_attempts",
    "lease_s", "data",
)  # fmt: skip


def _same_json(a: Any, b: Any) -> bool:
    """Two JSON values alike as JSON: ``1``, ``1.0`` and ``true`` differ (Python's ``==``
    takes them for one), an object's key order aside."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same_json, a, b))
    return bool(a == b)


def _other_task(post: _Post, task: Task) -> list[str] | None:
    """Which fields of the task stored under ``post``'s id differ from the post's (None: the
    same post, or a task its dedupe key found, under another id)."""
    if task.id != post.id:
        return None
    differ = [
        name
        for name in _SAME_POST
        if not (
            _same_json(task.data, post.data)
            if name == "data"
            else getattr(task, name) == getattr(post, name)
        )
    ]
    if post.max_abandons is not None and task.max_abandons != post.max_abandons:
        differ.append("max_abandons")
    return differ or None


def _refuse_taken(
    posts: Sequence[_Post],
    tasks: Sequence[Task],
    existed: Sequence[int],
    labels: Sequence[str] | None = None,
) -> None:
    """Raise Conflict when a post's id names another task stored before (``existed``: the
    indices of the posts whose task was stored before; ``labels``: how the error names each
    post of a batch; None for a lone post). Checked on what the script returned: no command
    more; a task this post stored is its own (not compared, its data not decoded again)."""
    taken = [
        (n, differ) for n in existed if (differ := _other_task(posts[n], tasks[n])) is not None
    ]
    if not taken:
        return
    n, differ = taken[0]
    post, task = posts[n], tasks[n]

    def said(record: object) -> str:
        values = ((name, getattr(record, name)) for name in differ)
        return ", ".join(
            f"{k} {short(v, 60)!r}" if isinstance(v, str)
            else ("no data" if v is None else f"data {short(dumps(v), 60)}") if k == "data"
            else f"{k} {v}"
            for k, v in values
        )  # fmt: skip

    more = ""
    if labels is not None:
        if len(taken) > 1:
            more = f" (and {len(taken) - 1} more: {labels[taken[1][0]]}, ...)"
        more += (
            ". The batch's other tasks were posted: post the batch again with a new id for "
            "each refused and the same ids for the others, which returns them (posted once)"
        )
    raise Conflict(
        f"{'' if labels is None else labels[n] + ': '}task id {post.id} is taken by another "
        f"task (its {said(task)}; this post's: {said(post)}), so it was not posted: a task id "
        "names one task, and posts again only the same task (a retry returns the stored one). "
        f"Post it under a new id (Swarm.new_task_id()) or none{more}"
    )


def _posted(ctx: OpContext, chunk: Sequence[_Post], reply: Sequence[Any]) -> list[Task]:
    """The tasks of one posted chunk: built from what was sent, or as stored when the task
    already existed (same id, or same queue and dedupe key); a new task's max_abandons is the
    script's (its queue may set it)."""
    now = int(reply[0])
    tasks: list[Task] = []
    for post, stored, second in zip(chunk, reply[1::2], reply[2::2], strict=True):
        if stored:
            task = task_from(stored, second)
        else:
            nb = post.not_before if post.delay_ms is None else now + post.delay_ms
            task = built(
                Task,
                {
                    "id": post.id, "queue": post.queue, "description": post.description,
                    "data": post.data,
                    "status": TaskStatus.DELAYED if nb is not None and nb > now
                    else TaskStatus.PENDING,
                    "pass_name": post.pass_name, "priority": post.priority,
                    "max_attempts": post.max_attempts, "max_abandons": int(second),
                    "lease_s": post.lease_s, "created_at": now, "not_before": nb,
                    "dedupe_key": post.dedupe_key, "parent": post.parent,
                },
            )  # fmt: skip
        remember_route(ctx, task)
        tasks.append(task)
    return tasks


_decode = json.JSONDecoder().decode


def post_tasks(
    ctx: OpContext,
    specs: Iterable[TaskSpec | Mapping[str, Any]],
    *,
    task_ids: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> Operation[list[Task]]:
    """Post many tasks: validated first (nothing is stored if one is refused), then stored
    atomically per 1,000 tasks, every chunk pipelined in one round trip. ``task_ids``: the
    id of each (default: fresh ones; see ``Swarm.new_task_id``), each its own
    (ValidationError, nothing sent); an id already stored as another task raises Conflict
    once the batch's others are posted (as ``post_task``). ``labels``: what an error calls
    each spec (default ``task #INDEX``, its index in ``specs``; a file's reader passes
    ``line N``)."""
    items = check_list("specs", specs, of="task specs (TaskSpec, or dicts of its fields)")
    ids = _one_each("task_ids", task_ids, len(items))
    names = _one_each("labels", labels, len(items))
    prepared: list[_Post] = []
    first: dict[str, int] = {}  # each id given, and the first spec given it
    for n, item in enumerate(items):
        try:
            prepared.append(_prepare(ctx, _spec(item), None if ids is None else ids[n]))
        except ValidationError as exc:
            raise type(exc)(f"{_label(n, names)}: {exc}") from None
        if ids is not None and (was := first.setdefault(prepared[-1].id, n)) != n:
            raise ValidationError(
                f"{_label(n, names)}: task id {prepared[-1].id} is also {_label(was, names)}'s: "
                "a task id names one task, so give each its own (or none); nothing was posted"
            )
    if not prepared:
        return []
    chunks = [prepared[i : i + POST_CHUNK] for i in range(0, len(prepared), POST_CHUNK)]
    calls = tuple(_post_call(ctx, chunk) for chunk in chunks)
    replies = [(yield calls[0])] if len(calls) == 1 else (yield Batch(calls))
    pairs = zip(chunks, replies, strict=True)
    tasks = [task for chunk, reply in pairs for task in _posted(ctx, chunk, reply)]
    if ids is not None:  # (a fresh id names no task stored)
        stored = (found for reply in replies for found in reply[1::2])
        existed = [n for n, found in enumerate(stored) if found]
        _refuse_taken(prepared, tasks, existed, [_label(n, names) for n in range(len(prepared))])
    return tasks


def post_task(
    ctx: OpContext,
    queue: str,
    description: str,
    data: Any = None,
    *,
    pass_name: str | None = None,
    priority: int = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    lease_s: float = DEFAULT_TASK_LEASE_S,
    not_before: int | None = None,
    dedupe_key: str | None = None,
    parent: str | None = None,
    max_abandons: int | None = None,
    task_id: str | None = None,
    delay_s: float | None = None,
) -> Operation[Task]:
    """Post one task. With a ``dedupe_key`` already used in the queue, the existing task is
    returned and nothing is posted: its id is not ``task_id`` (give one, from
    ``Swarm.new_task_id``, to tell). ``max_attempts`` bounds its failures, ``max_abandons`` its
    abandoned leases (None: the queue's setting, else 10). A ``task_id`` already stored
    returns the stored task when it is this same task (a retried post is not posted twice:
    see ``_SAME_POST``), else raises Conflict (the id is another task's: post under a new
    id, or none). ``not_before`` (epoch ms) or ``delay_s`` (seconds from now on the server's
    clock) delays it."""
    chunk = (
        _checked(
            ctx, queue, description, data, pass_name, priority, max_attempts, lease_s,
            not_before, dedupe_key, parent, max_abandons, task_id, delay_s,
        ),
    )  # fmt: skip
    reply = yield _post_call(ctx, chunk)
    tasks = _posted(ctx, chunk, reply)
    if task_id is not None and reply[1]:  # (a task this post stored is its own)
        _refuse_taken(chunk, tasks, [0])
    return tasks[0]


def configure_queue(
    ctx: OpContext,
    queue: str,
    *,
    max_abandons: int | None = None,
    description: str | None = None,
    retry_backoff_s: float | None = None,
) -> Operation[dict[str, Any]]:
    """Set a queue's settings (None: leave as is); returns them. ``max_abandons``: abandoned
    leases a task posted from now on survives (a task's own value wins); ``description``:
    what the queue's tasks are for, shown to those who send work (``swarm a2a``'s skills);
    ``retry_backoff_s``: how long a task of the queue waits after its first failure before
    it may run again, doubled at each further failure up to 5 min (0: at once; default 1 s),
    from the next failure on. ``description`` and ``retry_backoff_s`` are in the result once
    set."""
    name = check_name("queue", queue)
    key = ctx.keys.queue_settings
    # (task_update.lua reads QUEUE|retry_backoff_ms, in ms as its other ARGV times)
    fields = (f"{name}|max_abandons", f"{name}|description", f"{name}|retry_backoff_ms")
    writes: list[Cmd] = []
    if max_abandons is not None:
        writes.append(Cmd("HSET", key, fields[0], _max_abandons(max_abandons)))
    if description is not None:
        about = check_label("description", description, max_chars=MAX_QUEUE_DESCRIPTION)
        writes.append(Cmd("HSET", key, fields[1], about))
    if retry_backoff_s is not None:
        backoff = check_number("retry_backoff_s", retry_backoff_s, 0, MAX_RETRY_BACKOFF_S)
        writes.append(Cmd("HSET", key, fields[2], round(backoff * 1000)))
    replies = yield Batch((*writes, *(Cmd("HGET", key, field) for field in fields)))
    value, described, backoff_ms = replies[-3:]
    out: dict[str, Any] = {"max_abandons": DEFAULT_MAX_ABANDONS if value is None else int(value)}
    if described is not None:
        out["description"] = text(described)
    if backoff_ms is not None:
        out["retry_backoff_s"] = int(backoff_ms) / 1000
    return out


# --- while working


def _update_call(
    ctx: OpContext,
    task_id: str,
    queue: str,
    action: str,
    token: str,
    *extra: Any,
    op: str | None = None,
) -> Call:
    """The task_update call of one change of task ``task_id`` of ``queue``; ``op``: its op id
    (default a fresh one), which the task holds once the change is made (a bulk change tells
    its own changes by it: ``bulk``)."""
    k = ctx.keys
    q = queue
    keys: tuple[str, ...] = (k.tasks, k.counts, k.pass_counts, k.events)
    keys += (k.pending(q), k.delayed(q), k.leases(q), k.dead(q), k.task_data, k.wake(q))
    keys += (k.queue_settings,)  # (read by a fail alone: its queue's backoff)
    keys += (k.presence,)  # (a renewal marks its worker present)
    op = new_id("o-") if op is None else op
    args = (ctx.now_arg(), ctx.limits.events_maxlen, action, task_id, q, op, token)
    return Call("task_update", keys, (*args, RECORD_LIMITS, *extra))


def _update(
    ctx: OpContext, task_id: str, action: str, token: str = "", *extra: Any
) -> Operation[Task]:
    r = yield from route(ctx, task_id)
    raw, data = yield _update_call(ctx, task_id, r.queue, action, token, *extra)
    try:
        return task_from(raw, data)
    except CorruptRecord:
        # Its data is damaged (the giving-up a damaged claim's error advises): the update is
        # done, so the task is returned without its data, not as an error of the update.
        return decoded("task", task_id, task_from, raw, None)


def renew(
    ctx: OpContext, task_id: str, token: str | None, lease_s: float | None = None
) -> Operation[Task]:
    """Extend the lease held with ``token`` to ``lease_s`` from now (default: the length
    the claim asked for, else the task's ``lease_s``). The task returned carries ``token``,
    as the claim's did: the lease is still that token's, and the next renew or the report
    presents it."""
    held = check_token(token)
    renewed = yield from _update(ctx, task_id, "renew", held, asked_lease_ms(lease_s))
    return dataclasses.replace(renewed, token=held)


def fail(
    ctx: OpContext,
    task_id: str,
    token: str | None,
    error: str,
    *,
    retry: bool = True,
    usage: Usage | None = None,
    retry_after_s: float | None = None,
) -> Operation[Task]:
    """Give the task up with an error (one failure): back to its queue after a backoff (its
    queue's ``retry_backoff_s``, 1 s unless configured, then twice that, ... up to 5 min)
    while failures stay under ``max_attempts`` and ``retry``, else dead-lettered with the
    reason. ``retry_after_s``: run it again no sooner than this, instead of the backoff, for
    this failure only (a rate limit's Retry-After; 0: at once), up to a day. ``usage``: what
    the failed agent run cost, when its CLI said; it adds to the task's ``failed_usage``."""
    after: int | str = ""  # task_update's retry-after ms ('': the queue's backoff)
    if retry_after_s is not None:
        after = round(check_number("retry_after_s", retry_after_s, 0, MAX_RETRY_AFTER_S) * 1000)
    spent = dumps(usage_body(usage)) if usage is not None else ""
    check_failure_reason(error)
    error = stored_error(error)
    return (
        yield from _update(
            ctx, task_id, "fail", check_token(token), "1" if retry else "0",
            error,
            BACKOFF_BASE_MS, BACKOFF_CAP_MS, spent, after,
        )
    )  # fmt: skip


def add_failed_usage(
    ctx: OpContext, task_id: str, token: str | None, usage: Usage
) -> Operation[Task]:
    """Add what a failed run cost to its task's ``failed_usage`` after its failure, which
    said nothing of it (a ``fail`` without ``usage``: an agent that failed its own task, then
    printed its cost). Only the lease of the attempt that failed last may (``token``), and
    only while that failure's cost is unknown; sent again (a retry after a lost reply), it
    adds nothing more and returns the task. Neither its status nor its counters change.
    Refused (InvalidState, nothing added) for another attempt's token, a task that has not
    failed since, or a failure that gave its usage; LeaseLost for a token the task never
    issued."""
    spent = dumps(usage_body(usage))
    held = check_token(token)
    return (yield from _update(ctx, task_id, "add_failed_usage", held, "", "", "", "", spent))


def give_up_damaged(ctx: OpContext, lease: DamagedLease) -> Operation[str]:
    """Dead-letter a task a claim just leased whose record or data cannot be read here
    (``claiming.claimed``): a fail without retry under the claim's own lease, its error
    (``last_error``, and the dead reason) naming the damage and the repair. Its reply, the
    damaged task, is not decoded; its queue is the one the claim's reply named (no look-up
    of its route, which a damaged record may not give). Returns why it was dead-lettered
    (what ``TaskDeadLettered`` says)."""
    if lease.task_id is None or lease.queue is None:
        raise CorruptRecord(lease.error(), record_id=lease.task_id)
    error = stored_error(lease.error())
    extra = ("0", error, BACKOFF_BASE_MS, BACKOFF_CAP_MS, "", "")
    try:
        yield _update_call(ctx, lease.task_id, lease.queue, "fail", lease.token, *extra)
    except CorruptRecord as refused:
        # A record the script cannot move either (a field the fail reads is damaged too) it
        # dead-letters itself, answering so (lua/task_update.lua, ``damaged``): given up,
        # for the reason it answers.
        said = TaskDeadLettered.said(lease.task_id, "")
        _, found, reason = str(refused).partition(said)
        if not found:
            raise
        return reason
    return error


def release(ctx: OpContext, task_id: str, token: str | None) -> Operation[Task]:
    """Put the task back in its queue now: neither a failure nor an abandon."""
    return (yield from _update(ctx, task_id, "release", check_token(token)))


def cancel(ctx: OpContext, task_id: str, *, dead: bool = False) -> Operation[Task]:
    """Cancel an open task (its worker's lease ends; a later report is kept superseded).
    A dead task is refused (InvalidState: requeue it, or drop it) unless ``dead``: then it
    is dropped from the dead-letter set for good, as cancelled (a worker's rights refuse
    that: it may only add dead letters). A completed task is refused: InvalidState."""
    check_flag("dead", dead)
    return (yield from _update(ctx, task_id, "cancel", "", "1" if dead else "0"))


def requeue_dead(ctx: OpContext, task_id: str) -> Operation[Task]:
    """Put a dead-lettered task back in its queue with fresh budgets of failures and
    abandons. Refused (CorruptRecord, nothing changed) while its data is stored damaged: its
    next claim would only dead-letter it again, an attempt spent (``claiming.claimed``)."""
    task_id = check_id("task", task_id)
    data = yield Cmd("HGET", ctx.keys.task_data, task_id)
    if data is not None:
        try:
            loads(data)
        except UNREADABLE as exc:
            raise CorruptRecord(
                f"task {task_id}'s data is still stored damaged ({_why(exc)}), so it was "
                "not requeued (its next claim would dead-letter it again): repair it first, "
                f"{repair_task_data(ctx.keys.task_data, task_id)}, then swarm task requeue "
                f"{task_id}",
                record_id=task_id,
            ) from None
    return (yield from _update(ctx, task_id, "requeue"))


# --- views


def get_task(ctx: OpContext, task_id: str) -> Operation[Task]:
    """One task, with its data.

    A task whose record reads but whose data is stored corrupt (written around redis-swarm)
    raises ``TaskDataDamaged`` (a CorruptRecord): its data is not handed out, as good or as
    none, but its record is there on the error (``task``, its data None: its status, its
    ``dead_reason``...), with the command that repairs its data (``repair``). A record that
    cannot be read raises CorruptRecord."""
    check_id("task", task_id)
    k = ctx.keys
    raw, data = yield Batch((Cmd("HGET", k.tasks, task_id), Cmd("HGET", k.task_data, task_id)))
    if raw is None:
        raise NotFound(f"task {task_id} does not exist: {CHECK_TASK_ID}")
    try:
        task = decoded("task", task_id, task_from, raw, data)
    except CorruptRecord as exc:
        if not isinstance(exc, _DataCorrupt):
            raise  # (the record itself: nothing to show)
        raise _data_damaged(ctx, task_from(raw, None), exc.why) from None
    remember_route(ctx, task)
    return task


def _data_damaged(ctx: OpContext, record: Task, why: str) -> TaskDataDamaged:
    """The TaskDataDamaged of ``record``, a task whose data cannot be decoded (``why``)."""
    data_key = ctx.keys.task_data
    said = data_corrupt(record.id, why, data_key, record.status)
    return TaskDataDamaged(said, task=record, repair=repair_task_data(data_key, record.id))


def task_statuses(
    ctx: OpContext, task_ids: Collection[str]
) -> Operation[dict[str, TaskStatus | None]]:
    """The status of each task of ``task_ids`` (None: no such task), read in one round trip
    without their data, ``MAX_PAGE`` ids at most: what a face that keeps lease tokens on a
    machine asks to tell the tokens still worth keeping (``_lease_tokens.outlived``) without
    a read per token. A task stored unreadable is left out (whether it is open is not
    known)."""
    given = check_list("task_ids", task_ids, of="task ids")
    ids = list(dict.fromkeys(check_id("task", t) for t in given))
    if len(ids) > MAX_PAGE:
        raise ValidationError(
            f"{len(ids):,} task ids asked for at once; the limit is {MAX_PAGE:,}: ask in batches"
        )
    if not ids:
        return {}
    raws = yield Cmd("HMGET", ctx.keys.tasks, *ids)
    statuses: dict[str, TaskStatus | None] = {}
    for task_id, raw in zip(ids, raws, strict=True):
        try:
            statuses[task_id] = None if raw is None else task_from(raw, None).status
        except UNREADABLE:  # written around the operations: left out, its token kept
            continue
    return statuses


def list_tasks(
    ctx: OpContext,
    queue: str | None = None,
    status: str | TaskStatus | None = None,
    pass_name: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
    *,
    with_data: bool = False,
    newest_first: bool = False,
) -> Operation[Page[Task]]:
    """Tasks in posting order (the newest first with ``newest_first``), filtered; pass
    ``page.cursor`` back for the next page, in the same order (a cursor of the other order is
    refused). A page may be short (filters are applied to at most 5,000 tasks per call) and
    still have a cursor: the listing ends when the cursor is None. A filter by queue or status
    first reads the counters: nothing matches, an empty last page at once; a status with a
    per-queue set (pending, delayed, claimed, dead) held by at most ``LIVE_READ_MAX`` tasks
    of the queues to read, the page is made from those sets (see ``_live_page``). ``data``
    is included only when ``with_data`` (``get_task`` always has it)."""
    k = ctx.keys
    filters: list[str] = []
    if queue is not None:
        queue = check_name("queue", queue)
        filters += ["queue", queue]
    wanted: TaskStatus | None = None
    if status is not None:
        try:
            wanted = TaskStatus(status)
        except ValueError:
            raise ValidationError(
                f"unknown status {status!r}: use one of {', '.join(STATUSES)}"
            ) from None
        filters += ["status", wanted.value]
    if pass_name is not None:
        pass_name = check_label("pass name", pass_name)
    index = k.task_index if pass_name is None else k.pass_tasks(pass_name)
    keys = (index, k.tasks, k.task_data) if with_data else (index, k.tasks)
    cursor = check_cursor(cursor)
    if filters and (cursor is None or _in_order(cursor, newest_first)):
        size = int(check_number("limit", limit, 1, MAX_PAGE, integer=True))
        query = _Live(queue, wanted, pass_name, cursor, size, with_data, newest_first, filters)
        live = yield from _live_page(ctx, query)
        if live is not None:
            return live
    return (
        yield from page(
            ctx, keys, cursor, limit, None, with_data, filters, task_from,
            newest_first=newest_first,
        )
    )  # fmt: skip


# A filter by a status whose tasks a per-queue set holds is answered from those sets when the
# counters say they hold at most this many tasks, in the queues to read: a page then costs
# reading them (never more than one scanning call examines), whatever the history's length.
LIVE_READ_MAX = LIST_BUDGET
# The per-queue set that holds every task of a status (completed and cancelled have none).
_LIVE_SETS: dict[TaskStatus, Callable[[Keys, str], str]] = {
    TaskStatus.PENDING: Keys.pending,
    TaskStatus.DELAYED: Keys.delayed,
    TaskStatus.CLAIMED: Keys.leases,
    TaskStatus.DEAD: Keys.dead,
}
# How index_page marks a cursor of a listing newest first, and what parts the id from its
# score in a cursor, ID@SCORE (lua/index_page.lua: no id holds either).
_NEWEST_MARK = "~"
_SCORE_MARK = "@"


def _in_order(cursor: object, newest_first: bool) -> bool:
    """Whether ``cursor`` is a string of this listing's order (else the scan refuses it)."""
    return isinstance(cursor, str) and cursor.startswith(_NEWEST_MARK) == newest_first


class _Live(NamedTuple):
    """A filtered listing call, checked: what ``_live_page`` answers."""

    queue: str | None
    status: TaskStatus | None
    pass_name: str | None
    cursor: str | None
    size: int
    with_data: bool
    newest_first: bool
    filters: list[str]


def _live_page(ctx: OpContext, q: _Live) -> Operation[Page[Task] | None]:
    """The page of a listing filtered by queue or status made without scanning the history,
    or None to scan. One round trip reads the counters (the queue's, or every queue's; the
    pass's): none match, an empty last page. A status with a per-queue set whose queues hold
    at most ``LIVE_READ_MAX`` of them: a second reads those sets and their records (one
    index_page call per queue, which checks the filters on each record as it reads it), and
    a third the data of the page's tasks when ``with_data``. The tasks are ordered as the
    index orders them (posting time, then id) and the page cut after the cursor's task as a
    scan would: a cursor means the same whichever way the page was made. A cursor whose task
    is no longer stored (retired) still says where it was, by its score (the task's posting
    time) and id. A set that has outgrown one read, or a cursor that names no task of this
    listing (or is of the older form, the id alone, and its task is gone), goes to the scan,
    which refuses it or says what to do."""
    k = ctx.keys
    reads: list[Cmd] = []
    if q.queue is None:
        reads.append(Cmd("HGETALL", k.counts))
    else:
        reads.append(Cmd("HMGET", k.counts, *(f"{q.queue}|{s}" for s in STATUSES)))
    if q.pass_name is not None:
        reads.append(Cmd("HMGET", k.pass_counts, *pass_fields(q.pass_name)))
    replies = [(yield reads[0])] if len(reads) == 1 else (yield Batch(tuple(reads)))
    if q.queue is None:
        per_queue = queue_counts(replies[0])
    else:
        per_queue = {q.queue: status_counts(replies[0])}
    statuses = STATUSES if q.status is None else (q.status.value,)
    matching = sum(counts[s] for counts in per_queue.values() for s in statuses)
    if q.pass_name is not None:
        by_pass = status_counts(replies[1])
        matching = min(matching, sum(by_pass[s] for s in statuses))
    if matching <= 0:
        return Page(())
    if q.status is None or q.status not in _LIVE_SETS:
        return None
    held = {name: counts[q.status.value] for name, counts in per_queue.items()}
    queues = [name for name, n in held.items() if n > 0]
    if sum(held[name] for name in queues) > LIVE_READ_MAX:
        return None
    filters = q.filters if q.pass_name is None else [*q.filters, "pass_name", q.pass_name]
    args = ("", LIVE_READ_MAX, "", LIVE_READ_MAX, "0", "0", *filters)
    set_of = _LIVE_SETS[q.status]
    calls: list[Cmd | Call] = [
        Call("index_page", (set_of(k, name), k.tasks), args) for name in queues
    ]
    after, score = None, ""
    if q.cursor is not None:
        after, _, score = q.cursor.removeprefix(_NEWEST_MARK).partition(_SCORE_MARK)
        calls.append(Cmd("HMGET", k.tasks, after))
    replies = list((yield Batch(tuple(calls))))
    start: tuple[int, bytes] | None = None
    if after is not None:
        stored = replies.pop()[0]
        if stored is None and after and score.isascii() and score.isdigit():
            start = (int(score), after.encode())  # retired: where it was in the index
        else:
            try:
                known = task_from(stored, None)
            except UNREADABLE:  # no such task (None), or unreadable: the scan says what to do
                return None
            if q.pass_name is not None and known.pass_name != q.pass_name:
                return None  # not in the pass's index: the scan refuses it
            start = (known.created_at, known.id.encode())
    found: dict[str, tuple[tuple[int, bytes], Any]] = {}
    unplaced: list[str] = []  # unreadable records: no place in the order, named on page one
    for reply in replies:
        if reply[0]:
            return None  # the set grew past one read since the counters were read
        for record_id, raw in zip(reply[1::3], reply[2::3], strict=True):
            try:
                task = task_from(raw, None)
            except UNREADABLE:  # written around the operations: named, not fatal
                unplaced.append(text(record_id))
                continue
            found[task.id] = ((task.created_at, task.id.encode()), raw)
    order = sorted(found.values(), key=lambda item: item[0], reverse=q.newest_first)
    if start is not None:
        order = [i for i in order if (i[0] < start if q.newest_first else i[0] > start)]
    chosen = order[: q.size]
    ids = [key[1].decode() for key, _ in chosen]
    nxt = None
    if len(order) > q.size:
        (posted, _), _ = chosen[-1]
        nxt = f"{_NEWEST_MARK if q.newest_first else ''}{ids[-1]}{_SCORE_MARK}{posted}"
    data: Sequence[Any] = [None] * len(chosen)
    if q.with_data and chosen:
        data = yield Cmd("HMGET", k.task_data, *ids)
    items: list[Task] = []
    corrupt = unplaced if q.cursor is None else []
    for task_id, (_, raw), value in zip(ids, chosen, data, strict=True):
        try:
            items.append(task_from(raw, value))
        except UNREADABLE:
            corrupt.append(task_id)
    return Page(tuple(items), nxt, tuple(corrupt))


def status_counts(values: Sequence[Any]) -> dict[str, int]:
    """A queue's (or pass's) counters in ``STATUSES`` order; one that holds no integer is
    the CorruptRecord naming it (``counter``)."""
    return {status: counter(status, v or 0) for status, v in zip(STATUSES, values, strict=True)}


def queue_stats(ctx: OpContext) -> Operation[dict[str, dict[str, int]]]:
    """``{queue: {status: count}}`` for every queue ever posted to: one HGETALL of counters
    kept exact by every script, so the cost does not depend on the number of tasks."""
    raw = yield Cmd("HGETALL", ctx.keys.counts)
    return queue_counts(raw)


def queue_names(fields: Iterable[Any]) -> list[str]:
    """Every queue ever posted to, sorted, from the fields of ``Keys.counts`` (a post
    creates the queue's ``QUEUE|pending`` or ``QUEUE|delayed``; no set of names is kept)."""
    names = set()
    for field in fields:
        queue, sep, status = text(field).rpartition("|")
        if sep and status in STATUSES and not queue.startswith(_SHARD_FIELD):
            names.add(queue)
    return sorted(names)


def shard_names(fields: Iterable[Any]) -> list[str]:
    """Every shard that ever posted a task, sorted, from the fields of ``Keys.counts``
    (``shard:NAME|status``, beside the queues' own)."""
    names = set()
    for field in fields:
        shard, sep, status = text(field).rpartition("|")
        if sep and status in STATUSES and shard.startswith(_SHARD_FIELD):
            names.add(shard.removeprefix(_SHARD_FIELD))
    return sorted(names)


def queue_counts(raw: Mapping[Any, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        queue, sep, status = text(field).rpartition("|")
        if sep and status in STATUSES and not queue.startswith(_SHARD_FIELD):
            out.setdefault(queue, dict.fromkeys(STATUSES, 0))[status] = counter(field, value)
    return dict(sorted(out.items()))


def shard_stats(ctx: OpContext, shards: Sequence[str]) -> Operation[dict[str, ShardStats]]:
    """``{shard: {"findings": n, status: count, ...}}``: the findings reported to each shard
    and its posted tasks by status, in one round trip (a counter per shard and status, kept
    exact by the task scripts, and one ZCARD per shard)."""
    given = check_list("shards", shards, of="shard names")
    names = list(dict.fromkeys(check_agent("shard", s) for s in given))
    if not names:
        return {}
    k = ctx.keys
    fields = [f"{_SHARD_FIELD}{name}|{status}" for name in names for status in STATUSES]
    zcards = tuple(Cmd("ZCARD", k.findings_by("shard", name)) for name in names)
    values, *found = yield Batch((Cmd("HMGET", k.counts, *fields), *zcards))
    per = len(STATUSES)
    out: dict[str, ShardStats] = {}
    for i, name in enumerate(names):
        counts = status_counts(values[i * per : (i + 1) * per])
        out[name] = ShardStats(findings=int(found[i]), tasks=counts)
    return out


def pass_fields(pass_name: str) -> list[str]:
    pid = label_id(check_label("pass name", pass_name))
    return [f"{pid}|{status}" for status in STATUSES]


def pass_stats(ctx: OpContext, pass_name: str) -> Operation[dict[str, int]]:
    """``{status: count}`` of the tasks of a pass, in one HMGET."""
    values = yield Cmd("HMGET", ctx.keys.pass_counts, *pass_fields(pass_name))
    return status_counts(values)
