"""The status counters against what Redis holds of the same tasks: ``swarm doctor``'s
``counters`` row (``check_counters``) and its repair, ``swarm doctor --recount``
(``recount_counters``).

The counters (``Keys.counts``: ``QUEUE|STATUS`` and ``shard:NAME|STATUS``;
``Keys.pass_counts``: ``PASS-ID|STATUS``) are what ``queue_stats``, ``pass_stats``,
``status`` and ``wait`` read, and a worker may ``HINCRBY`` them by any amount
(docs/security.md, 'Forge the status counters'). Four of a queue's statuses have a truth that
Redis holds and counts in O(1): its pending, delayed, lease and dead sets (``ZCARD``). The
others have none: completed and cancelled tasks are in no set of their own, a shard's tasks
span queues, and a pass's tasks (``Keys.pass_tasks``) are told apart by status only by reading
each one's record, O(tasks of the pass). For those a value below zero is the one sure sign
of a wrong counter, and the one checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._codec import counted, first_few
from .._errors import REAPPLY_OLDER_USER, PermissionDenied
from .._keys import Keys
from .._printable import shown_name
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from ._stream_health import ACL_LIMITS, REPAIRER
from ._work import RECOUNT_COMMAND, SEQ_FIELD, STATUSES, text
from .findings import FUNCTION_REFUSED
from .tasks import queue_names
from .views import pass_names

__all__ = [
    "QUEUES_CHECKED",
    "RECOUNT_CHUNK",
    "RECOUNT_COMMAND",
    "SET_STATUSES",
    "BadCounter",
    "CounterCheck",
    "CounterMismatch",
    "Recounted",
    "check_counters",
    "recount_counters",
]

# The statuses whose truth is a set of the queue's, and the set (lua/counts_recount.lua and
# lua/_tasks.lua's unlink pair them the same way).
SET_STATUSES: dict[str, Callable[[Keys, str], str]] = {
    "pending": Keys.pending,
    "delayed": Keys.delayed,
    "claimed": Keys.leases,
    "dead": Keys.dead,
}
# The queues ``check_counters`` holds against their sets, at most (the first by name): an
# HMGET of its counters and four ZCARDs each, in one pipeline.
QUEUES_CHECKED = 1_000
# The queues of one recount script call (each call atomic over its queues; all the calls
# pipelined in one round trip).
RECOUNT_CHUNK = 100
# Where the counters no recount sets are said to be set by hand.
BY_HAND = "docs/security.md, 'Forge the status counters'"
_POSTING = "the posting sequence"  # (a BadCounter's owner, for SEQ_FIELD)
_SHARD = "shard:"  # counts fields shard:NAME|status (a queue name holds no ':')
_SHOWN = 10  # the wrong counters a row or warning names, at most


def _value(counter: int | None) -> str:
    """A counter as a row shows it (None: its field holds no integer)."""
    return "not a number" if counter is None else f"{counter:,}"


@dataclass(frozen=True)
class CounterMismatch:
    """A queue's counter of a status that a set of the queue holds (``SET_STATUSES``), and
    the set's size. ``counter`` None: the field holds no integer. (A worker may HINCRBY a
    field of any name: a queue or shard is named by ``shown_name``, quoted and escaped when
    it is no valid name.)"""

    queue: str
    status: str
    counter: int | None
    held: int

    @property
    def text(self) -> str:
        return (
            f"queue {shown_name(self.queue)} {self.status}: counter {_value(self.counter)}, "
            f"set {self.held:,}"
        )


@dataclass(frozen=True)
class BadCounter:
    """A counter no set can check, that is wrong whatever the tasks: below zero (``value``
    None: it holds no integer). ``owner``: "queue Q", "shard S" or "pass 'P'"."""

    owner: str
    status: str
    value: int | None

    @property
    def text(self) -> str:
        return f"{self.owner} {self.status}: {_value(self.value)}"


@dataclass(frozen=True)
class CounterCheck:
    """The status counters as ``check_counters`` read them: ``queues`` are named in the
    counters, the first ``checked`` of them (by name) were held against their sets;
    ``passes`` are counted. ``refused``: why they were not read (this user may not)."""

    queues: int = 0
    checked: int = 0
    passes: int = 0
    mismatches: tuple[CounterMismatch, ...] = ()
    bad: tuple[BadCounter, ...] = ()
    refused: str | None = None
    # The passes with counters whose name field is gone, as ``BadCounter.owner`` says them.
    nameless: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing wrong was found (or nothing could be read: ``refused`` says so)."""
        return not self.mismatches and not self.bad and not self.nameless

    @property
    def capped(self) -> bool:
        return self.checked < self.queues

    @property
    def row(self) -> str:
        """The doctor's ``counters`` row."""
        if self.refused is not None:
            return f"not read: {self.refused}"
        if self.ok:
            return f"ok: {self._held_words}; no counter of {self._owners_words} is below zero"
        wrong = [m.text for m in self.mismatches] + [b.text for b in self.bad]
        wrong += list(self.nameless)
        return f"wrong: {first_few(wrong, _SHOWN)} (see the warnings)"

    @property
    def _held_words(self) -> str:
        """What was held against the sets, for any count of queues (none too)."""
        if not self.queues:
            return "no queue has counters yet"
        which = counted(self.queues, "queue")
        if self.capped:
            which = f"the first {self.checked:,} of {which} (by name)"
        return f"the pending, delayed, claimed and dead counters of {which} match their sets"

    @property
    def _owners_words(self) -> str:
        """Whose counters were looked at for a value below zero: "a queue, a shard or any of
        the 3 passes" (no queue and no pass: left out, not counted as 0)."""
        owners = ["a queue"] if self.queues else []
        owners.append("a shard")
        if self.passes == 1:
            owners.append("the pass")
        elif self.passes:
            owners.append(f"any of the {self.passes:,} passes")
        return ", ".join(owners[:-1]) + " or " + owners[-1] if len(owners) > 1 else owners[0]

    @property
    def warnings(self) -> list[str]:
        """What is wrong, what it means, and the repair (never a worker's)."""
        out: list[str] = []
        effect = (
            "what reads them (swarm status, queue_stats, pass_stats, wait, swarm task wait, "
            "a pipeline moving to its next pass) may take a queue or pass for settled while "
            "tasks of it are open, or wait on it for ever"
        )
        if self.mismatches:
            queues = len({m.queue for m in self.mismatches})
            out.append(
                f"the status counters of {counted(queues, 'queue')} do not match the sets "
                f"that hold their tasks ({first_few([m.text for m in self.mismatches], _SHOWN)}):"
                f" {effect}. A worker may HINCRBY them by any amount ({ACL_LIMITS}), and a "
                "claim that meets a task record stored unreadable drops it from its set and "
                f"leaves it counted (corrupt_records names those). To repair, {REPAIRER}: "
                f"{RECOUNT_COMMAND} (it sets each queue's pending, delayed, claimed and dead "
                "counters to what its sets hold, atomically per queue)"
            )
        # (a counter below zero is no sign of stray ids: nothing but a forgery or a lost
        # write takes it there, and its set may be empty)
        stray = [
            m.text for m in self.mismatches if m.counter is not None and 0 <= m.counter < m.held
        ]
        if stray:
            # (a recount counts what a set holds: ids no task backs too, which a claim later
            # drops without moving the counter, leaving it above its set)
            out.append(
                f"a set holds more than its counter ({first_few(stray, _SHOWN)}): it may hold "
                "ids no task of that queue and status backs (a worker's ZADD), which a "
                f"recount counts too and a claim later drops (the counter then one above its "
                "set again); look at the set's ids first (ZRANGE of it: swarm task show ID of "
                "each says whether it is that queue's task in that status), an admin ZREMs "
                f"the others, then {RECOUNT_COMMAND}"
            )
        status_bad = [b for b in self.bad if b.status != SEQ_FIELD]
        if len(status_bad) < len(self.bad):
            out.append(
                f"the posting sequence ({SEQ_FIELD} in the task counts hash) holds no integer: "
                "every task post fails on it. No recount sets it: "
                f"{REPAIRER}, HSET it by hand to at least the number of tasks posted so far "
                "(HLEN of the tasks hash; a lower value only lets new tasks of a priority go "
                "before older ones)"
            )
        if status_bad:
            out.append(
                f"status counters below zero ({first_few([b.text for b in status_bad], _SHOWN)})"
                f": {effect}. {RECOUNT_COMMAND} cannot set them (no set holds the tasks of "
                "those statuses, shards or passes apart, only their records say: completed "
                f"and cancelled tasks, a shard's, a pass's): {REPAIRER}, set each back by "
                f"hand ({BY_HAND}); a worker may HINCRBY them "
                f"({ACL_LIMITS}): if the swarm's workers are not all trusted, rotate the "
                "worker password (swarm acl --role worker --user NAME --apply)"
            )
        if self.nameless:
            out.append(
                f"the pass counters hold counters of a pass without its name "
                f"({first_few(list(self.nameless), _SHOWN)}; deleted around redis-swarm): "
                f"swarm status and the pass listings leave that pass out; {REPAIRER}, HSET "
                "that field ID back to the pass's name, as its tasks hold it (ID is the hex "
                "of the name's 8-byte BLAKE2b hash)"
            )
        if self.capped:
            out.append(
                f"the counters of {self.queues - self.checked:,} queues past the first "
                f"{self.checked:,} (by name) were not held against their sets (only checked "
                f"for values below zero); {RECOUNT_COMMAND} recounts every queue"
            )
        return out


@dataclass(frozen=True)
class Recounted:
    """One counter ``recount_counters`` set: its value before (None: there was none, or it
    held no integer) and now (its set's size)."""

    queue: str
    status: str
    was: int | None
    now: int


def _integer(value: Any) -> int | None:
    try:
        return int(text(value))
    except ValueError:
        return None


def check_counters(ctx: OpContext) -> Operation[CounterCheck]:
    """The status counters against what Redis holds of the same tasks (``swarm doctor``):
    each queue's pending, delayed, claimed and dead counters against the size of its set of
    that status (the first ``QUEUES_CHECKED`` queues by name), and every counter of the
    queues, shards and passes for a value below zero. Two round trips (the counters, then
    each queue's counters beside its sets' sizes), a third to read again the queues found
    wrong (a script run between two reads is no mismatch), whatever the number of tasks;
    plain reads, no script."""
    k = ctx.keys
    try:
        counts, by_pass = yield Batch((Cmd("HGETALL", k.counts), Cmd("HGETALL", k.pass_counts)))
    except PermissionDenied as exc:
        return CounterCheck(refused=str(exc))
    per_queue: dict[str, dict[str, int | None]] = {}
    bad: list[BadCounter] = []
    for field, value in counts.items():
        owner, sep, status = text(field).rpartition("|")
        if not sep and status == SEQ_FIELD and _integer(value) is None:
            bad.append(BadCounter(_POSTING, SEQ_FIELD, None))  # (every post fails on it)
        if not sep or status not in STATUSES:
            continue  # (#seq, a queue's due hint)
        if owner.startswith(_SHARD):
            _sure(bad, f"shard {shown_name(owner.removeprefix(_SHARD))}", status, value)
        else:
            per_queue.setdefault(owner, {})[status] = _integer(value)
    names = pass_names(by_pass)
    nameless: set[str] = set()
    for field, value in sorted(by_pass.items(), key=lambda item: text(item[0])):
        pid, sep, status = text(field).rpartition("|")
        if sep and status in STATUSES:
            if pid not in names:
                nameless.add(pid)
            _sure(bad, _pass_owner(k, pid, names), status, value)
    queues = sorted(per_queue)
    checked = queues[:QUEUES_CHECKED]
    found = yield from _held_against_sets(k, checked)
    if found:  # (read again: a script run between two reads is no mismatch)
        again = yield from _held_against_sets(k, sorted({m.queue for m in found}))
        before = {(m.queue, m.status) for m in found}
        found = [m for m in again if (m.queue, m.status) in before]
    mismatches = found
    looked = set(checked)
    for queue in queues:
        for status, value in per_queue[queue].items():
            unchecked = queue not in looked or status not in SET_STATUSES
            if unchecked and (value is None or value < 0):
                bad.append(BadCounter(f"queue {shown_name(queue)}", status, value))
    return CounterCheck(
        queues=len(queues),
        checked=len(checked),
        passes=len(names),
        mismatches=tuple(mismatches),
        bad=tuple(bad),
        nameless=tuple(_pass_owner(k, pid, names) for pid in sorted(nameless)),
    )


def _pass_owner(k: Keys, pid: str, names: dict[str, str]) -> str:
    """A pass as the doctor names it: by its name, or, when its name field is gone (written
    around redis-swarm), as such, with its id and where the name goes back."""
    if pid in names:
        return f"pass {names[pid]!r}"
    return f"pass id {shown_name(pid)} (its name missing from {k.pass_counts})"


def _held_against_sets(k: Keys, queues: list[str]) -> Operation[list[CounterMismatch]]:
    """The counters of ``queues`` that do not match their sets, in one round trip: each
    queue's counters read right beside its sets' sizes, every script moving both at once."""
    if not queues:
        return []
    per = len(SET_STATUSES)
    replies = yield Batch(
        tuple(
            cmd
            for queue in queues
            for cmd in (
                Cmd("HMGET", k.counts, *(f"{queue}|{status}" for status in SET_STATUSES)),
                *(Cmd("ZCARD", set_of(k, queue)) for set_of in SET_STATUSES.values()),
            )
        )
    )
    out: list[CounterMismatch] = []
    for i, queue in enumerate(queues):
        values, *sizes = replies[i * (per + 1) : (i + 1) * (per + 1)]
        for status, value, size in zip(SET_STATUSES, values, sizes, strict=True):
            counter = 0 if value is None else _integer(value)
            if counter != int(size):
                out.append(CounterMismatch(queue, status, counter, int(size)))
    return out


def _sure(bad: list[BadCounter], owner: str, status: str, value: Any) -> None:
    """Add the counter of ``owner`` when it is wrong whatever the tasks."""
    number = _integer(value)
    if number is None or number < 0:
        bad.append(BadCounter(owner, status, number))


def recount_counters(ctx: OpContext) -> Operation[tuple[Recounted, ...]]:
    """Set every queue's pending, delayed, claimed and dead counters to the size of its set
    of that status (``swarm doctor --recount``), atomically per queue; the counters that
    changed, with their values before and now. A shard's, coordinator's or admin's: never a
    worker's (Redis refuses its function to the worker role). Counters no set holds
    (completed, cancelled, a shard's, a pass's) are left as they are: ``check_counters``
    names those below zero. Two round trips: the queue names, then a script call per
    ``RECOUNT_CHUNK`` queues, pipelined."""
    k = ctx.keys
    queues = queue_names((yield Cmd("HKEYS", k.counts)))
    if not queues:
        return ()
    chunks = [queues[i : i + RECOUNT_CHUNK] for i in range(0, len(queues), RECOUNT_CHUNK)]
    calls = tuple(
        Call(
            "counts_recount",
            (
                k.counts,
                *(
                    key
                    for queue in chunk
                    for key in (
                        k.pending(queue), k.delayed(queue), k.leases(queue), k.dead(queue),
                        k.wake(queue),
                    )
                ),
            ),
            tuple(chunk),
        )
        for chunk in chunks
    )  # fmt: skip
    try:
        replies = yield Batch(calls)
    except PermissionDenied as exc:
        if FUNCTION_REFUSED not in str(exc):
            raise
        raise PermissionDenied(
            "recounting the status counters is a shard's, a coordinator's or an admin's, "
            f"never a worker user's: run {RECOUNT_COMMAND} with such a user's URL; "
            f"{REAPPLY_OLDER_USER}. {exc}"
        ) from None
    out: list[Recounted] = []
    for reply in replies:
        flat = list(reply or [])
        for i in range(0, len(flat), 4):
            queue, status, was, now = flat[i : i + 4]
            before = None if was is None else _integer(was)
            out.append(Recounted(text(queue), text(status), before, int(now)))
    return tuple(out)
