"""The storage under ``redis_swarm.a2a``: the tasks and task events of an a2a-sdk server.

The a2a-sdk (``a2a.server.tasks.TaskStore``, ``a2a.server.cluster.VersionedTaskStore`` and
``TaskEventStream``) defines what is stored; these operations store it without knowing its
types: a task arrives as protobuf bytes with the few facts a listing filters and sorts on
(its context, its state, its status time), an event as bytes with the version it produced.
So the core does not import the SDK, and ``redis_swarm.a2a`` (which does) holds no key or
script.

Layout (``_keys``): per owner (the SDK's scope of a caller), one hash of records and one
lexicographic index (see ``lua/_a2a_store.lua``), so that a save is one script, a read one
command and a page of a listing one script whatever the filters; per task, one stream of
events whose entry ids are the versions, so a reader after version N reads on from N-0.
Every key carries the swarm's hash tag: on a cluster one script sees them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import CorruptRecord, NotFound, ValidationError
from .._protocol import Call, Cmd, OpContext, Operation
from .._validate import check_unicode
from ._work import text

__all__ = [
    "A2AEvent",
    "A2APage",
    "A2AStored",
    "a2a_delete",
    "a2a_destroy",
    "a2a_events",
    "a2a_get",
    "a2a_list",
    "a2a_publish",
    "a2a_save",
    "sort_key",
]

SaveMode = Literal["plain", "check", "cancel"]
_MODES = frozenset({"plain", "check", "cancel"})

# The sort key of a task: '1' and its status time in ns, shifted so that the earliest time
# protobuf allows (year 1) is 0 and padded to a fixed width; '0' and zeros without a time.
# Fixed width makes byte order the ListTasks order (time, then id).
_NS_SHIFT = 62_135_596_800 * 1_000_000_000
_TIME_DIGITS = 21
SORT_KEY_WIDTH = 1 + _TIME_DIGITS
_LAST_TIME = 10**_TIME_DIGITS - 1
EVENTS_READ = 100  # entries per read of a task's stream


def _time_digits(timestamp_ns: int) -> str:
    return str(min(max(timestamp_ns + _NS_SHIFT, 0), _LAST_TIME)).zfill(_TIME_DIGITS)


def sort_key(timestamp_ns: int | None) -> str:
    """The sort key of a task whose status time is ``timestamp_ns`` (None: it has none)."""
    if timestamp_ns is None:
        return "0" * SORT_KEY_WIDTH
    return "1" + _time_digits(timestamp_ns)


def _unsort_key(key: str) -> int | None:
    if key[0] == "0":
        return None
    return int(key[1:]) - _NS_SHIFT


@dataclass(frozen=True)
class A2AStored:
    """A stored task (protobuf bytes) and its version (0: never saved by a versioned save)."""

    data: bytes
    version: int


@dataclass(frozen=True)
class A2APage:
    """One page of a listing: how many tasks match, the tasks (protobuf bytes), and where
    the next page starts (the last task's status time and id; None: this was the last)."""

    total: int
    tasks: list[bytes]
    next: tuple[int | None, str] | None


@dataclass(frozen=True)
class A2AEvent:
    """One event of a task's stream: the version it produced, the event (bytes), and the
    stream id to read on after it."""

    version: int
    data: bytes
    cursor: str


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    check_unicode(what, value)
    return value


def _check_id(task_id: object) -> str:
    if not _check_text("a task id", task_id):
        raise ValidationError("a task id must not be empty")
    return str(task_id)


def _check_owner(owner: object) -> str:
    """The owner of a2a tasks (the SDK's scope of a caller): text, its keys made from it."""
    return _check_text("the owner", owner)


def _version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"a task version is an integer >= 0, not {value!r}")
    return value


def a2a_save(
    ctx: OpContext,
    owner: str,
    task_id: str,
    data: bytes,
    *,
    context_id: str,
    state: int,
    timestamp_ns: int | None,
    mode: SaveMode = "check",
    expected_version: int = 0,
    write_id: str = "",
    event: bytes = b"",
    terminal_states: Iterable[int] = (),
    events_ttl_ms: int = 0,
) -> Operation[int | None]:
    """Store a task (one script): ``mode`` "plain" overwrites and keeps the version; "check"
    needs the stored version to be ``expected_version`` (0: none yet) and adds one; "cancel"
    adds one if the task exists and its state is not in ``terminal_states``. ``event`` joins
    the task's stream under the new version in the same step. Returns the version, or None
    when the check or the cancel was refused. ``write_id`` (fresh per save, the same for its
    retries) makes a save resent after a lost reply return its version instead of None."""
    if mode not in _MODES:
        raise ValidationError(f"mode must be one of {sorted(_MODES)}, not {mode!r}")
    k = ctx.keys
    owner, task_id = _check_owner(owner), _check_id(task_id)
    reply = yield Call(
        "a2a_task_save",
        (k.a2a_records(owner), k.a2a_index(owner), k.a2a_events(task_id)),
        (
            task_id,
            bytes(data),
            _check_text("a context id", context_id),
            int(state),
            sort_key(timestamp_ns),
            mode,
            _version(expected_version),
            write_id,
            bytes(event),
            "," + ",".join(str(int(s)) for s in terminal_states) + ",",
            max(0, int(events_ttl_ms)),
        ),
    )
    version = int(reply)
    return None if version < 0 else version


def a2a_get(ctx: OpContext, owner: str, task_id: str) -> Operation[A2AStored | None]:
    """A task of ``owner`` and its version, or None (one command: both fields at once)."""
    owner, task_id = _check_owner(owner), _check_id(task_id)
    data, meta = yield Cmd("HMGET", ctx.keys.a2a_records(owner), f"t|{task_id}", f"m|{task_id}")
    if data is None or meta is None:
        return None
    try:
        version = int(json.loads(text(meta))["v"])
    except (ValueError, KeyError, TypeError):
        raise CorruptRecord(
            f"the meta of a2a task {task_id!r} is unreadable: delete the task and save it again"
        ) from None
    return A2AStored(bytes(data), version)


def a2a_list(
    ctx: OpContext,
    owner: str,
    *,
    page_size: int,
    context_id: str = "",
    state: int = 0,
    timestamp_after_ns: int | None = None,
    after: tuple[int | None, str] | None = None,
    start_id: str | None = None,
) -> Operation[A2APage]:
    """One page of ``owner``'s tasks, newest status time first (then id, descending; those
    without a time last), in one script: of a context and/or in a state ("" / 0: any), with
    a status time at or after ``timestamp_after_ns``; the page starts after the task
    ``after`` (status time, id: a previous page's ``next``), or at the task ``start_id`` (a
    legacy page token; NotFound when it does not exist). ``total`` counts every match."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValidationError(f"page_size must be an integer >= 1, not {page_size!r}")
    owner = _check_owner(owner)
    listing = ("x" if state else "c") if context_id else ("s" if state else "a")
    cursor = ""
    if after is not None:
        cursor = sort_key(after[0]) + _check_id(after[1])
    reply = yield Call(
        "a2a_task_list",
        (ctx.keys.a2a_records(owner), ctx.keys.a2a_index(owner)),
        (
            listing,
            _check_text("a context id", context_id),
            int(state),
            "" if timestamp_after_ns is None else _time_digits(timestamp_after_ns),
            cursor,
            "" if start_id is None else _check_id(start_id),
            page_size,
            SORT_KEY_WIDTH,
        ),
    )
    total = int(reply[0])
    if total < 0:
        raise NotFound(f"no task {start_id!r} to start the page at")
    tasks = [bytes(reply[i]) for i in range(3, len(reply), 2) if reply[i] is not None]
    following = text(reply[1])
    next_page = None
    if following:
        key, last_id = following[:SORT_KEY_WIDTH], following[SORT_KEY_WIDTH:]
        next_page = (_unsort_key(key), last_id)
    return A2APage(total, tasks, next_page)


def a2a_delete(ctx: OpContext, owner: str, task_id: str) -> Operation[bool]:
    """Delete a task of ``owner``, its index entries and its event stream (one script);
    True when it existed."""
    owner, task_id = _check_owner(owner), _check_id(task_id)
    k = ctx.keys
    deleted = yield Call(
        "a2a_task_delete",
        (k.a2a_records(owner), k.a2a_index(owner), k.a2a_events(task_id)),
        (task_id,),
    )
    return bool(deleted)


def a2a_publish(
    ctx: OpContext, task_id: str, version: int, event: bytes, expire_ms: int = 0
) -> Operation[bool]:
    """Append an event to a task's stream at ``version`` (>= 1), unless the stream already
    holds that version or a later one; True when appended. ``expire_ms`` > 0 (the task's
    last event): the stream expires that long after."""
    if _version(version) < 1:
        raise ValidationError("an event's version is >= 1: events of unversioned tasks stay local")
    appended = yield Call(
        "a2a_event_publish",
        (ctx.keys.a2a_events(_check_id(task_id)),),
        (version, event, max(0, int(expire_ms))),
    )
    return bool(appended)


def a2a_events(
    ctx: OpContext, task_id: str, after: int | str, block_s: float
) -> Operation[list[A2AEvent]]:
    """The events of a task's stream after version ``after`` (an int), or after the event
    whose ``cursor`` is ``after`` (a str), oldest first, waiting up to ``block_s`` for one
    (0: no wait)."""
    cursor = f"{_version(after)}-0" if isinstance(after, int) else _check_text("a cursor", after)
    key = ctx.keys.a2a_events(_check_id(task_id))
    wait: tuple[Any, ...] = ()
    if block_s > 0:
        # Stay under the socket timeout, or the wait would look like a dead connection.
        block_ms = max(1, int(min(block_s, ctx.settings.socket_timeout - 1.0) * 1000))
        wait = ("BLOCK", block_ms)
    reply = yield Cmd("XREAD", "COUNT", EVENTS_READ, *wait, "STREAMS", key, cursor)
    if not reply:
        return []
    # RESP2: [[stream, entries]]; RESP3: {stream: [entries]}
    streams = [v[0] for v in reply.values()] if isinstance(reply, dict) else [r[1] for r in reply]
    out = []
    for entry_id, fields in (e for stream in streams for e in stream):
        found = _fields(fields)
        out.append(A2AEvent(int(found[b"v"]), found[b"e"], text(entry_id)))
    return out


def _fields(fields: Any) -> dict[bytes, bytes]:
    if isinstance(fields, dict):
        return {bytes(k): bytes(v) for k, v in fields.items()}
    return {bytes(fields[i]): bytes(fields[i + 1]) for i in range(0, len(fields), 2)}


def a2a_destroy(ctx: OpContext, task_id: str) -> Operation[None]:
    """Delete a task's event stream (TaskEventStream.destroy): its readers wait on."""
    yield Cmd("DEL", ctx.keys.a2a_events(_check_id(task_id)))
