"""Agents: registration, presence by heartbeat, listing (with parents and children), sweep.

An agent's ``current_task`` is decided here, once: what its last heartbeat said, else the
newest task it holds a lease on (``held``): every face reads it from these listings.

``agents`` holds each agent's record (JSON) and ``presence`` its last heartbeat (ms); an
agent is alive when its last heartbeat is more recent than ``stale_after_s``, unless its
session said it ended (``mark_stale``: the record's ``left_at``) with no sign of life since.
Workers that only claim and report are registered implicitly by the work queue with a minimal
record.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._codec import UNREADABLE, dumps, loads
from .._errors import Conflict, NotFound, ValidationError
from .._hints import CHECK_AGENT_ID
from .._models import STALE_AFTER_S, Agent, Page, Task, TaskStatus
from .._protocol import Batch, Call, Cmd, OpContext, Operation, together
from .._validate import (
    MAX_CAPACITY_TOKENS,
    MAX_DURATION_S,
    MAX_PAGE,
    MAX_ROLE,
    begins_like_option,
    check_agent,
    check_id,
    check_list,
    check_name,
    check_printable,
    option_like,
)
from ._bus import check_data, new_id, now_from, text
from ._work import (
    check_field_types,
    check_number,
    decoded,
    field_types,
    forget_presence,
    newest,
    refuse_new_option_like,
    task_from,
)

__all__ = [
    "agent_state",
    "agents",
    "deregister",
    "deregister_if_read",
    "get_agent",
    "heartbeat",
    "join",
    "leases_of",
    "mark_stale",
    "register",
    "sweep",
    "tally",
]

MAX_METADATA_BYTES = 16 * 1024
MAX_FIELD_CHARS = 200
# Agents examined per sweep script call (each brings its inbox key along).
SWEEP_BATCH = 500
# Live leases a sweep reads per round trip (and task records per HMGET): no command of a
# sweep reads every lease, however many there are.
LEASE_CHUNK = 1000
# A deregistration is remembered this long, and this many at most, to answer its retry.
DEPARTURE_KEEP_MS = 3600 * 1000
DEPARTURES_KEPT = 10_000
# What agent_deregister answers when it kept the agent: a message waits (deregister_if_read).
_KEPT = -1
# The newest leases (by deadline, across queues) looked through for the task an agent holds.
HELD_LEASES = 100
# The record key saying when the agent's session ended (``mark_stale``). Kept last in the
# record: a heartbeat that names a task rewrites everything after "current_task" (dropping
# it, rightly: the agent is back), one that names none leaves it, and a registration writes
# a new record without it.
LEFT_AT = "left_at"
# Tries of a record's compare-and-set (``agent_swap``) before giving up: each lost one is
# another write to the same record in between, which only the agent's own sessions make.
SWAP_TRIES = 20


def _check_label(kind: str, value: object) -> str | None:
    """A free-text field of the profile (model, specialization): short, printable."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{kind} must be a string, got {type(value).__name__}")
    if not value.strip():  # a blank would show as an empty column, set yet saying nothing
        raise ValidationError(f"{kind} is blank: name it, or leave it out")
    return check_printable(kind, value, max_chars=MAX_FIELD_CHARS)


def _check_stale(stale_after_s: object) -> int:
    if (
        not isinstance(stale_after_s, int | float)
        or isinstance(stale_after_s, bool)
        or not math.isfinite(stale_after_s)
        or not 0 <= stale_after_s <= MAX_DURATION_S  # (past it, its ms overflow an int)
    ):
        raise ValidationError(
            f"stale_after_s must be a number of seconds, finite and >= 0 (at most "
            f"{MAX_DURATION_S:g}), not {stale_after_s!r}"
        )
    return int(stale_after_s * 1000)


# The fields of an agent record its views sort, show and compare (``status``'s roster,
# ``agents``), as text or as numbers: of another type (written around redis-swarm), the record
# is damaged, left out and counted by swarm doctor, not a TypeError out of every view.
_AGENT_TYPES = field_types(
    ("role", "model", "specialization", "parent", "current_task"),
    ("registered_at", "last_seen", "capacity_tokens", LEFT_AT),
)


def agent_state(record: Any) -> dict[str, Any]:
    """An agent record as stored, decoded and its fields' types checked: ValueError (one of
    ``UNREADABLE``) when it is damaged (``swarm doctor`` reads them so too)."""
    data: dict[str, Any] = loads(record)
    if type(data.get("id")) is not str:
        raise ValueError("its id is not a string")
    check_field_types(data, _AGENT_TYPES)
    return data


def _agent(
    record: Any,
    last_seen: Any,
    now: int | None,
    stale_ms: int | None,
    holding: Mapping[str, tuple[str, ...]],
) -> Agent:
    data = agent_state(record)
    seen = int(float(last_seen)) if last_seen is not None else data.get("registered_at")
    data["last_seen"] = seen
    if now is not None and stale_ms is not None:
        # Stale at once once its session ended (``mark_stale``), until a sign of life after
        # that (a heartbeat, a claim, registering again) moves its presence past the end.
        left = data.get(LEFT_AT)
        ended = isinstance(left, int) and seen is not None and seen <= left
        data["alive"] = seen is not None and now - seen <= stale_ms and not ended
    # What an agent works on is what it said (a heartbeat's task), else the newest task it
    # holds a lease on: a worker that only claims (swarm run's, the seed's) says none. Decided
    # here, once, for every face that lists agents.
    held_ids = holding.get(str(data.get("id")))
    if not data.get("current_task") and held_ids:
        data["current_task"] = held_ids[0]
    return Agent.from_dict(data)


def held(
    ctx: OpContext, leases: int = HELD_LEASES
) -> Operation[tuple[dict[str, tuple[str, ...]], tuple[str, ...]]]:
    """Who holds the ``leases`` newest leases (by deadline, across queues): each worker's
    claimed task ids, newest lease first, and the ids of the leased tasks stored unreadable.
    At most three round trips: the queue names, their newest leases, those tasks."""
    from .tasks import queue_names  # (here: an agent's record and presence need no task's)

    k = ctx.keys
    queues = queue_names((yield Cmd("HKEYS", k.counts)))
    if not queues:
        return {}, ()
    # A lease set is scored by deadline; who holds a task is on its record only.
    replies = yield Batch(
        tuple(Cmd("ZREVRANGE", k.leases(q), 0, leases - 1, "WITHSCORES") for q in queues)
    )
    return (yield from _holders(ctx, newest(replies, leases)))


def _holders(
    ctx: OpContext, task_ids: list[str]
) -> Operation[tuple[dict[str, tuple[str, ...]], tuple[str, ...]]]:
    """Who holds the leases on ``task_ids`` (newest first): each worker's claimed task ids,
    in that order, and the ids of the tasks stored unreadable. One round trip (none for no
    ids)."""
    if not task_ids:
        return {}, ()
    raws = yield Cmd("HMGET", ctx.keys.tasks, *task_ids)
    claimed, corrupt = _still_claimed(task_ids, raws, [None] * len(task_ids))
    holding: dict[str, list[str]] = {}
    for task in claimed:
        if task.worker:
            holding.setdefault(task.worker, []).append(task.id)
    return {worker: tuple(ids) for worker, ids in holding.items()}, corrupt


def _still_claimed(
    task_ids: list[str], raws: list[Any], data: list[Any]
) -> tuple[list[Task], tuple[str, ...]]:
    """Of the records ``raws`` (with their ``data``) of ``task_ids``, read after their leases
    were: the tasks still claimed (one deleted, settled or released meanwhile is no longer
    held), and the ids of those stored unreadable (written around the operations: named,
    not fatal)."""
    claimed: list[Task] = []
    corrupt: list[str] = []
    for task_id, raw, value in zip(task_ids, raws, data, strict=True):
        if not raw:
            continue
        try:
            task = task_from(raw, value)
        except UNREADABLE:
            corrupt.append(task_id)
            continue
        if task.status is TaskStatus.CLAIMED:
            claimed.append(task)
    return claimed, tuple(corrupt)


def leases_of(
    ctx: OpContext, worker: str, task_ids: Collection[str] = (), *, newest_leases: int = HELD_LEASES
) -> Operation[Page[Task]]:
    """The tasks ``worker`` holds a lease on, with their data, found without listing the
    swarm's tasks (no index says who holds what: a listing reads every claimed task): those
    of ``task_ids``, each read by id however many leases the swarm holds (``swarm hook``
    gives the tasks whose lease tokens the machine keeps), and the worker's among the
    swarm's ``newest_leases`` leases (by deadline, across queues, as ``agents`` finds a
    worker's task: a lease claimed where no token was kept is found while fewer than that
    many are newer; 0: ``task_ids`` alone). An id of ``task_ids`` left out of the page is
    held by no lease of ``worker`` now (no such task; settled, released or expired; another
    worker's); one in ``page.corrupt`` is stored unreadable: whether it is held is not
    known. In the order of ``task_ids``, then newest lease first; never a cursor. One round
    trip with ``newest_leases=0``, else four."""
    worker = check_agent("worker", worker)
    task_ids = check_list("task_ids", task_ids, of="task ids")
    if len(task_ids) > MAX_PAGE:
        raise ValidationError(
            f"{len(task_ids):,} task ids asked for at once; the limit is {MAX_PAGE:,}: ask in "
            "batches"
        )
    asked = [check_id("task", t) for t in task_ids]
    count = int(check_number("newest_leases", newest_leases, 0, MAX_PAGE, integer=True))
    if count:
        holding, _ = yield from held(ctx, count)
        asked += holding.get(worker, ())
    ids = list(dict.fromkeys(asked))
    if not ids:
        return Page(())
    k = ctx.keys
    raws, data = yield Batch((Cmd("HMGET", k.tasks, *ids), Cmd("HMGET", k.task_data, *ids)))
    claimed, corrupt = _still_claimed(ids, raws, data)
    return Page(tuple(t for t in claimed if t.worker == worker), None, corrupt)


def _profile(
    agent_id: str,
    role: str,
    *,
    model: str | None = None,
    specialization: str | None = None,
    capacity_tokens: int | None = None,
    parent: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record ``agent_register`` stores for a registration, its fields checked."""
    role = check_name("role", role, max_len=MAX_ROLE)
    if parent is not None:
        check_agent("parent agent", parent)
        # (one not registered is refused by agent_register, which checks it as it writes)
        if parent == agent_id:  # (refused before anything is stored: the record stays)
            raise ValidationError(
                f"agent {agent_id} cannot be its own parent: name the agent that started it "
                "(a shard, a coordinator), or leave the parent out"
            )
    if capacity_tokens is not None and (
        not isinstance(capacity_tokens, int)
        or isinstance(capacity_tokens, bool)
        or not 1 <= capacity_tokens <= MAX_CAPACITY_TOKENS
    ):
        raise ValidationError(
            f"capacity_tokens must be an integer from 1 to {MAX_CAPACITY_TOKENS:,}, not "
            f"{capacity_tokens!r}: give the agent's context window in tokens, or leave it out"
        )
    meta = check_data("metadata", metadata, MAX_METADATA_BYTES)
    return {
        "id": agent_id,
        "registration": new_id("r-"),  # second: agent_register finds it there
        "role": role,
        "model": _check_label("model", model),
        "specialization": _check_label("specialization", specialization),
        "capacity_tokens": capacity_tokens,
        "parent": parent,
        "metadata": loads(meta) if meta else None,
        "implicit": False,
    }


def _store(
    ctx: OpContext, record: dict[str, Any], *replacing: str | bytes, announce: bool = True
) -> Operation[Any]:
    """Send ``record`` to ``agent_register`` (``replacing``: the stored record it was built
    from, '' for none: a compare-and-set; ``announce=False``, with ``replacing``: no
    ``agent.joined`` for an agent registered in this life); its reply."""
    keys = ctx.keys
    # (ARGV[9] follows ARGV[8]: without ``replacing``, a '1' would be taken for the record
    # it replaces)
    assert announce or replacing, "announce=False goes with the record it replaces"
    quiet = () if announce else ("1",)
    reply = yield Call(
        "agent_register",
        (keys.agents, keys.presence, keys.cursors, keys.broadcast, keys.events, keys.contexts),
        (
            record["id"],
            dumps(record)[:-1],
            ctx.now_arg(),
            ctx.limits.events_maxlen,
            record["role"],
            record["parent"] or "",
            record["registration"],
            *replacing,
            *quiet,
        ),
    )
    return reply


def _registered(reply: Any) -> Agent:
    stored, now = reply
    return Agent.from_dict({**loads(stored), "last_seen": int(now), "alive": True})


def register(
    ctx: OpContext,
    role: str,
    *,
    name: str | None = None,
    model: str | None = None,
    specialization: str | None = None,
    capacity_tokens: int | None = None,
    parent: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Operation[Agent]:
    """Register an agent (``name`` is its id; without one, an id ``ROLE-...`` is made).

    Registering an id still registered again replaces its profile and keeps its inbox, its
    broadcast cursor and its ``registered_at`` (the same life: a broadcast it read stays
    read); after it left or was swept, it starts anew. The call is safe to retry: sent
    again after a lost reply, it changes nothing and records one agent.joined. (To build
    on what is registered, as a second session of the agent does: ``join``.)

    A ``parent`` names a registered agent (or a context owner: a ``swarm serve`` slot's);
    another is refused, NotFound, nothing registered (a typo would be stored as the parent),
    unless the stored record holds it already (``lua/agent_register.lua`` checks it with
    the write: no race with the parent's own registration or departure)."""
    checked_role = check_name("role", role, max_len=MAX_ROLE)
    if name is None:
        agent_id = new_id(f"{checked_role}-")
    else:
        agent_id = check_agent("agent name", name)
        yield from refuse_new_option_like(ctx, "agent name", agent_id)
    record = _profile(
        agent_id, role, model=model, specialization=specialization,
        capacity_tokens=capacity_tokens, parent=parent, metadata=metadata,
    )  # fmt: skip
    return _registered((yield from _store(ctx, record)))


def join(
    ctx: OpContext,
    agent_id: str,
    revise: Callable[[Agent | None], Mapping[str, Any]],
    *,
    announce: bool = True,
) -> Operation[Agent]:
    """Register ``agent_id`` (again) as ``revise`` says from its record as stored now (None
    when it is not registered): ``revise`` returns ``register``'s keywords (``role``,
    ``metadata``, ``model``, ...). What it built is stored only if the record is still the
    one it was given, else the record is read again and ``revise`` called again (a
    compare-and-set, as ``tally``'s): sessions of one agent registering it at once (an MCP
    server starting, the hooks' SessionStart) each build on what the other wrote, never
    write over it with what they read before. As ``register``: marks the agent present,
    drops ``left_at``, keeps its inbox, and records an ``agent.joined``.

    ``announce=False``: the agent's running process revises its own profile (``swarm
    serve`` recording a slot's new conversation), it does not arrive: no ``agent.joined``
    while the agent is registered (the same life); one gone since (deregistered, swept)
    starts a new life, announced all the same."""
    agent_id = check_agent("agent id", agent_id)
    keys = ctx.keys
    for _ in range(SWAP_TRIES):
        raw, seen = yield Batch(
            (Cmd("HGET", keys.agents, agent_id), Cmd("ZSCORE", keys.presence, agent_id))
        )
        if raw is None and begins_like_option(agent_id):
            # (a name a command would read as an option: not given to a new agent; one
            # registered under it before the rule joins again)
            raise option_like("agent id", agent_id)
        stored: Agent | None = None
        if raw is not None:
            with contextlib.suppress(*UNREADABLE):  # (written around the operations: replaced)
                stored = _agent(raw, seen, None, None, {})
        profile = dict(revise(stored))
        record = _profile(agent_id, **profile)
        # (the stored bytes as read: a record that is not UTF-8 is compared, then replaced)
        reply = yield from _store(ctx, record, "" if raw is None else raw, announce=announce)
        if reply != 0:
            return _registered(reply)
    raise Conflict(
        f"the record of agent {agent_id!r} kept changing under this registration "
        f"({SWAP_TRIES} tries): try again"
    )


def heartbeat(
    ctx: OpContext, agent_id: str, *, current_task: str | None = None
) -> Operation[Agent]:
    """Mark the agent present now; ``current_task`` sets what it works on ("" clears it):
    NotFound (and nothing changed) for a task that does not exist."""
    agent_id = check_agent("agent id", agent_id)
    if current_task is not None and current_task != "":  # "" clears it
        check_id("task", current_task)  # as every task id is: tables and the dashboard show it
    keys = ctx.keys
    task_json = dumps(current_task or None)
    stored, now = yield Call(
        "agent_heartbeat",
        (keys.agents, keys.presence, keys.tasks),
        (
            agent_id, ctx.now_arg(), "0" if current_task is None else "1", task_json,
            current_task or "",
        ),
    )  # fmt: skip
    return Agent.from_dict({**loads(stored), "last_seen": int(now), "alive": True})


def deregister(ctx: OpContext, agent_id: str) -> Operation[None]:
    """Remove the agent, its presence and its inbox (its unread direct messages are dropped
    with it and counted in the ``agent.left`` event's ``unread``; broadcasts stay for the
    others and are not counted). The call is safe to retry: sent again after a lost reply,
    it returns as the first did (no NotFound) and records one agent.left."""
    yield from _deregister(ctx, agent_id, if_read=False)


def deregister_if_read(ctx: OpContext, agent_id: str) -> Operation[bool]:
    """``deregister`` the agent only if no direct message waits unread for it (broadcasts do
    not count: a deregistration drops none), looked for by the script that removes it, so
    that none sent after a look at its inbox is lost; else nothing changes. Returns whether
    it was removed. Safe to retry as ``deregister`` is: sent again after a lost reply, a call
    that removed the agent returns True (no NotFound, one agent.left); one that kept it
    looks again."""
    return (yield from _deregister(ctx, agent_id, if_read=True))


def _deregister(ctx: OpContext, agent_id: str, *, if_read: bool) -> Operation[bool]:
    agent_id = check_agent("agent id", agent_id)
    keys = ctx.keys
    # Before the call, whatever it answers: one whose reply is lost may have removed the agent
    # (a handle that still took it for present would claim as an unregistered worker); one
    # that kept it costs this handle's next claim a registration it did not need.
    forget_presence(ctx, agent_id)
    dropped = yield Call(
        "agent_deregister",
        (
            keys.agents,
            keys.presence,
            keys.cursors,
            keys.inbox(agent_id),
            keys.events,
            keys.departures,
        ),
        (
            agent_id,
            ctx.limits.events_maxlen,
            new_id("d-"),
            DEPARTURE_KEEP_MS,
            DEPARTURES_KEPT,
            ctx.now_arg(),
            "1" if if_read else "0",
        ),
    )
    return int(dropped) != _KEPT


def _swap(ctx: OpContext, agent_id: str, edit: Any) -> Operation[Any]:
    """Edit the agent's record atomically: read it (with the presence and the server's time
    ``edit`` may need), ``edit(record, last_seen, now)`` in place, and store it only if nobody
    wrote it meanwhile, else read again. Returns what the last ``edit`` returned."""
    keys = ctx.keys
    for _ in range(SWAP_TRIES):
        raw, seen, server_time = yield Batch(
            (Cmd("HGET", keys.agents, agent_id), Cmd("ZSCORE", keys.presence, agent_id),
             Cmd("TIME"))
        )  # fmt: skip
        if raw is None:
            raise NotFound(f"agent {agent_id!r} is not registered: {CHECK_AGENT_ID}")
        record: dict[str, Any] = loads(raw)
        last_seen = int(float(seen)) if seen is not None else None
        result = edit(record, last_seen, now_from(ctx, server_time))
        stored = yield Call("agent_swap", (keys.agents,), (agent_id, text(raw), dumps(record)))
        if int(stored) == 1:
            return result
    raise Conflict(
        f"the record of agent {agent_id!r} kept changing under this update ({SWAP_TRIES} "
        "tries): try again"
    )


def mark_stale(
    ctx: OpContext, agent_id: str, *, session: Mapping[str, Any] | None = None
) -> Operation[bool]:
    """The agent's session ended but the agent stays registered (its id was given, someone
    comes back as it: its inbox is kept): it reads stale at once in every listing, instead
    of alive until its last heartbeat is ``stale_after_s`` old, and works on no task (its
    heartbeat's ``current_task`` dropped). Its last heartbeat is kept as its ``last_seen`` (a
    sweep removes it that long after, as any silent agent). Any sign of life after this (a
    heartbeat, a claim, registering) makes it alive again.

    ``session``: the metadata that names the session that ended (an MCP server's host and
    pid; a key given None: one the record must not have). The agent is marked only while its
    record still says so: another session of the agent that registered it since runs on, and
    it is left as it is. Those keys are dropped from the record as it is marked, so that no
    reader takes them for a session that runs. Returns whether the agent was marked."""
    agent_id = check_agent("agent id", agent_id)
    if session is not None and not isinstance(session, Mapping):
        raise ValidationError(f"session must be a mapping of metadata, not {session!r}")
    names = dict(session or {})

    def end(record: dict[str, Any], last_seen: int | None, now: int) -> bool:
        metadata = record.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        if any(metadata.get(key) != value for key, value in names.items()):
            return False  # (stored again as it was read)
        for key in names:
            metadata.pop(key, None)
        if "current_task" in record:
            record["current_task"] = None
        record.pop(LEFT_AT, None)  # (kept last: see LEFT_AT)
        record[LEFT_AT] = max(now, last_seen or 0)
        return True

    marked: bool = yield from _swap(ctx, agent_id, end)
    return marked


def tally(
    ctx: OpContext,
    agent_id: str,
    name: str,
    key: str,
    add: int = 1,
    *,
    reset: bool = False,
    keep: int = 8,
) -> Operation[int]:
    """Add ``add`` to the count ``key`` in the agent's metadata ``name`` (a JSON object of
    counts, newest last; ``reset`` drops ``key`` instead), atomically: two processes
    counting for one agent at once both count. Keeps the ``keep`` newest keys (the one just
    counted is the newest). Returns the count of ``key`` now (0 after ``reset``)."""
    agent_id = check_agent("agent id", agent_id)
    name = check_name("metadata name", name, max_len=40)
    key = check_name("count key", key, max_len=80)
    if not isinstance(add, int) or isinstance(add, bool) or add < 0:
        raise ValidationError(f"add must be a whole number >= 0, not {add!r}")
    if not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= 100:
        raise ValidationError(f"keep must be between 1 and 100, not {keep!r}")

    def count(record: dict[str, Any], _seen: int | None, _now: int) -> int:
        metadata = record.get("metadata")
        if not isinstance(metadata, dict):
            metadata = record["metadata"] = {}
        old = metadata.get(name)
        counts = {
            str(k): v
            for k, v in (old.items() if isinstance(old, dict) else ())
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0
        }
        done = counts.pop(key, 0)
        if not reset:
            counts[key] = done = done + add
        metadata[name] = dict(list(counts.items())[-keep:])
        return 0 if reset else done

    result: int = yield from _swap(ctx, agent_id, count)
    return result


def _pairs(reply: Any) -> dict[str, Any]:
    """ZRANGE ... WITHSCORES as {member: score}, whatever shape the client returned."""
    if not reply:
        return {}
    if isinstance(reply[0], list | tuple):
        return {text(m): s for m, s in reply}
    return {text(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def agents(
    ctx: OpContext,
    alive: bool | None = None,
    role: str | None = None,
    stale_after_s: float = STALE_AFTER_S,
    parent: str | None = None,
) -> Operation[list[Agent]]:
    """Every registered agent, oldest first; filter by liveness, role, or parent
    (``parent=X`` lists the children of X). An agent that said no task (a heartbeat's) gets
    the newest task it holds a lease on (``held``), so every face shows the same task. One
    round trip, and two more for the leases when there are queues."""
    stale_ms = _check_stale(stale_after_s)
    if role is not None:
        check_name("role", role, max_len=MAX_ROLE)
    if parent is not None:
        check_agent("parent agent", parent)
    keys = ctx.keys
    roster = Batch(
        (
            Cmd("HGETALL", keys.agents),
            Cmd("ZRANGE", keys.presence, 0, -1, "WITHSCORES"),
            Cmd("TIME"),
        )
    )
    (records, presence, server_time), (holding, _) = yield from together(
        _replies(roster), held(ctx)
    )
    now = now_from(ctx, server_time)
    seen = _pairs(presence)
    items = (
        records.items()
        if isinstance(records, dict)
        else zip(records[::2], records[1::2], strict=True)
    )
    out: list[Agent] = []
    for aid, rec in items:
        try:
            out.append(_agent(rec, seen.get(text(aid)), now, stale_ms, holding))
        except UNREADABLE:  # written around the operations: left out, swarm doctor names it
            continue
    out = [
        a
        for a in out
        if (alive is None or a.alive == alive)
        and (role is None or a.role == role)
        and (parent is None or a.parent == parent)
    ]
    return sorted(out, key=lambda a: (a.registered_at or 0, a.id))


def get_agent(
    ctx: OpContext, agent_id: str, stale_after_s: float = STALE_AFTER_S
) -> Operation[Agent]:
    """One agent, in one round trip: its record as it keeps it, ``current_task`` what its last
    heartbeat said. (``agents`` and ``status`` also name the task a worker that only claims
    holds a lease on, two round trips more; a point read stays one, as the hooks make it at
    every turn and ``swarm serve`` at every question.)"""
    agent_id = check_agent("agent id", agent_id)
    stale_ms = _check_stale(stale_after_s)
    keys = ctx.keys
    record, seen, server_time = yield Batch(
        (Cmd("HGET", keys.agents, agent_id), Cmd("ZSCORE", keys.presence, agent_id), Cmd("TIME"))
    )
    if record is None:
        raise NotFound(f"agent {agent_id!r} is not registered: {CHECK_AGENT_ID}")
    now = now_from(ctx, server_time)
    return decoded("agent", agent_id, _agent, record, seen, now, stale_ms, {})


def _replies(batch: Batch) -> Operation[list[Any]]:
    """``batch``'s replies, as an operation to run beside others (``together``)."""
    return list((yield batch))


@dataclass
class _After:
    """Where a scan of a sorted set by score stopped: its last member listed (``score``,
    ``member`` as bytes: Redis orders ties by their bytes), and how many listed at that
    score may still be in the range (a page resumes there, skipping them by comparison, not
    by an offset: members leaving the range mid-scan, as a lease holder renewing, would
    make an offset skip the unlisted)."""

    score: int
    member: bytes
    tied: int


def _scored(reply: Any) -> list[tuple[int, bytes]]:
    """A ZRANGEBYSCORE ... WITHSCORES reply (RESP2, flat, or RESP3, pairs) as (score,
    member bytes)."""
    pairs = (
        reply
        if reply and isinstance(reply[0], list | tuple)
        else zip(reply[::2], reply[1::2], strict=True)
    )
    return [(int(float(score)), text(member).encode()) for member, score in pairs]


def _page(
    key: str, low: str, high: int | str, after: _After | None, count: int
) -> Operation[list[tuple[int, bytes]]]:
    """The next ``count`` members (with scores) of sorted set ``key`` scored from ``low`` to
    ``high``, after ``after`` (None: from the start). One round trip."""
    start, tied = (low, 0) if after is None else (str(after.score), after.tied)
    reply = yield Cmd("ZRANGEBYSCORE", key, start, high, "WITHSCORES", "LIMIT", 0, count + tied)
    page = _scored(reply)
    if after is not None:
        page = [(sc, m) for sc, m in page if (sc, m) > (after.score, after.member)]
    return page[:count]


def _next_after(
    after: _After | None, page: list[tuple[int, bytes]], left: Collection[str] = ()
) -> _After:
    """Where the scan stops after ``page`` (not empty): its last member, counting the
    members listed at that score that may still be in the range (all but those ``left``)."""
    score, member = page[-1]
    tied = sum(1 for sc, m in page if sc == score and m.decode() not in left)
    if after is not None and after.score == score:
        tied += after.tied
    return _After(score, member, tied)


@dataclass
class _Leases:
    """The live leases a sweep has read so far, and whose: the queues still to read (those
    that held live leases when counted, each with that count), read in chunks of about
    ``LEASE_CHUNK`` leases: queues smaller than that together, a bigger one in pages."""

    queues: list[tuple[str, int]] | None = None
    after: _After | None = None  # where the page read of the first queue stopped
    holders: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.queues is not None and not self.queues


def _read_leases(ctx: OpContext, leases: _Leases, now: int) -> Operation[None]:
    """Read the next chunk of live leases (deadline after ``now``) and their holders: two
    round trips (the first time, two more: the queue names, then how many live leases each
    holds, all in one batch, so that a swarm of many queues holding few leases costs no
    round trip per queue)."""
    from .tasks import queue_names  # (here: as in held)

    k = ctx.keys
    if leases.queues is None:
        names = queue_names((yield Cmd("HKEYS", k.counts)))
        counts = (
            (yield Batch(tuple(Cmd("ZCOUNT", k.leases(q), f"({now}", "+inf") for q in names)))
            if names
            else []
        )
        leases.queues = [(q, int(c)) for q, c in zip(names, counts, strict=True) if int(c)]
        return
    queues = leases.queues
    first, size = queues[0]
    if size >= LEASE_CHUNK or leases.after is not None:  # a big queue: in pages
        page = yield from _page(k.leases(first), f"({now}", "+inf", leases.after, LEASE_CHUNK)
        if len(page) < LEASE_CHUNK:
            queues.pop(0)
            leases.after = None
        else:  # (a lease read stays in its set: settled or renewed since, it is only read again)
            leases.after = _next_after(leases.after, page)
        ids = [m.decode() for _, m in page]
    else:  # small queues, together, as many as a chunk holds
        group: list[str] = []
        total = 0
        while (
            queues
            and queues[0][1] < LEASE_CHUNK
            and (not group or total + queues[0][1] <= LEASE_CHUNK)
        ):
            name, count = queues.pop(0)
            group.append(name)
            total += count
        replies = yield Batch(
            tuple(
                Cmd(
                    "ZRANGEBYSCORE",
                    k.leases(q),
                    f"({now}",
                    "+inf",
                    "WITHSCORES",
                    "LIMIT",
                    0,
                    LEASE_CHUNK,
                )
                for q in group
            )
        )
        ids = []
        for name, reply in zip(group, replies, strict=True):
            page = _scored(reply)
            ids += [m.decode() for _, m in page]
            if len(page) < LEASE_CHUNK:
                continue
            # Grown since it was counted: the rest in pages, after this chunk (a second one
            # grown in the same group is read again from its start, later).
            if leases.after is None:
                queues.insert(0, (name, LEASE_CHUNK))
                leases.after = _next_after(None, page)
            else:
                queues.append((name, LEASE_CHUNK))
    holding, _ = yield from _holders(ctx, ids)
    leases.holders.update(holding)


def _unheld(
    ctx: OpContext, leases: _Leases, candidates: list[str], now: int
) -> Operation[list[str]]:
    """The ``candidates`` holding no live lease: leases are read (in chunks, each read once
    per sweep) until every candidate is found holding one, or none is left to read."""
    while not leases.done and not leases.holders.issuperset(candidates):
        yield from _read_leases(ctx, leases, now)
    return [a for a in candidates if a not in leases.holders]


def sweep(ctx: OpContext, stale_after_s: float = STALE_AFTER_S) -> Operation[dict[str, int]]:
    """Remove the agents whose last sign of life (a heartbeat, a claim, a lease renewal,
    registering) is older than ``stale_after_s``, with their inboxes; returns their ids, each
    with the unread direct messages dropped with it (iterating gives the ids). Each gets an
    ``agent.stale`` event with that ``unread`` (as ``deregister``'s).

    An agent holding a lease not yet expired is kept, however silent: its task is still its
    own (a renewal would mark it present, but a claim with a long lease need not renew), and
    removing it would drop its inbox and show its claimed task held by nobody. Once the
    lease expires (and is reaped, or the task settles), the next sweep removes it.

    Stale agents are read ``SWEEP_BATCH`` at a time, by score (never by an offset that one
    leaving the range would shift); live leases only once stale agents were found, in
    chunks of ``LEASE_CHUNK``, and only until each stale agent is known to hold one or
    not: a sweep finding none pays nothing, no command reads every lease at once."""
    stale_ms = _check_stale(stale_after_s)
    keys = ctx.keys
    removed: dict[str, int] = {}
    leases = _Leases()
    after: _After | None = None
    while True:
        server_time = None if ctx.clock is not None else (yield Cmd("TIME"))
        now = now_from(ctx, server_time)
        page = yield from _page(keys.presence, "-inf", now - stale_ms, after, SWEEP_BATCH)
        if not page:
            return removed
        # (one that takes a lease since it was listed is marked present by that claim, and
        # the script keeps it)
        candidates = yield from _unheld(ctx, leases, [m.decode() for _, m in page], now)
        gone: dict[str, int] = {}
        if candidates:
            reply = yield Call(
                "agent_sweep",
                (
                    keys.agents,
                    keys.presence,
                    keys.cursors,
                    keys.events,
                    *map(keys.inbox, candidates),
                ),
                (ctx.now_arg(), stale_ms, ctx.limits.events_maxlen, *candidates),
            )
            gone = {text(reply[i]): int(reply[i + 1]) for i in range(0, len(reply), 2)}
            removed.update(gone)
        if len(page) < SWEEP_BATCH:
            return removed
        after = _next_after(after, page, gone)
