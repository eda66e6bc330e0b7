"""Settling the tasks of a whole pass or queue at once: ``cancel_tasks`` cancels its open
tasks (pending, delayed, claimed), ``requeue_tasks`` puts its dead tasks back, so that a big
pass can be retired (``swarm retire`` refuses one with open tasks) without a command per task.

Each task still changes by the one atomic script a lone ``cancel`` or ``requeue_dead`` runs
(``lua/task_update.lua``: its counters, its event, its op id), and those calls are pipelined
``BULK_CHUNK`` (``REQUEUE_CHUNK``) at a time, the records of the next chunk read in the same
round trip: a pass of n tasks costs about n / ``BULK_CHUNK`` round trips. The ids come from
the indexes the core keeps (the pass's index, the queue's sets), never from a scan of the
keyspace; they are read first, then each chunk's records just before it changes, so that a
task that settled meanwhile is counted as settled, not changed.

Settling a whole pass or queue is a shard's or coordinator's decision (docs/security.md): a
worker's user is refused before anything is read, as Redis refuses it the function
``rs_counts_recount`` that each run calls first with no queue (which recounts nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._codec import UNREADABLE, Record, dumps, first_few, loads
from .._errors import Conflict, CorruptRecord, InvalidState, LeaseLost, NotFound, ValidationError
from .._keys import Keys
from .._models import OPEN_STATUSES, TaskStatus, unknown_pass
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from .._validate import check_flag, check_list, check_name
from ._work import check_label, counter, new_id, text
from .tasks import _update_call, queue_names
from .views import pass_counts

__all__ = [
    "BULK_CHUNK",
    "REQUEUE_CHUNK",
    "CancelledTasks",
    "RequeuedTasks",
    "cancel_tasks",
    "requeue_tasks",
]

# Tasks changed per round trip: each one task_update call (about 30 µs of Redis each), so a
# round trip holds Redis for milliseconds, not longer, however big the pass.
BULK_CHUNK = 500
# A requeue also reads each dead task's data (a task whose data is stored damaged is not
# requeued, as ``requeue_dead`` refuses it): fewer per round trip, data being up to 1 MiB.
REQUEUE_CHUNK = 100
# Ids read from an index per command, and commands per round trip while reading them.
ID_PAGE = 10_000
ID_PAGES_AT_ONCE = 10
# The skipped tasks a result names, at most (the counts say how many).
SKIPPED_NAMED = 20
# Errors a pipelined change may answer for one task (settled meanwhile, damaged, moved): the
# chunk's records are read again to tell what happened to each.
_ONE_TASK_REFUSED = (Conflict, CorruptRecord, InvalidState, LeaseLost, NotFound)
_ALL = frozenset(s.value for s in TaskStatus)
# The per-queue set of each status a queue's tasks are read from (completed and cancelled
# have none: nothing to change there).
_SETS: dict[str, Callable[[Keys, str], str]] = {
    "pending": Keys.pending,
    "delayed": Keys.delayed,
    "claimed": Keys.leases,
    "dead": Keys.dead,
}


@dataclass(frozen=True)
class CancelledTasks(Record):
    """What ``cancel_tasks`` did (with ``dry_run``: would do) to the open tasks of a pass
    and/or queue. ``cancelled``: the tasks this call cancelled (their events written, their
    counters moved); ``settled``: tasks of the pass or queue met already settled (completed,
    cancelled, dead), or settled by another before their cancel ran, left as they are (read
    from the pass's index, every settled task of the pass is met; from a queue's sets, which
    hold open tasks only, those settled meanwhile); ``skipped``: open tasks left open,
    stored unreadable or refused by the script (``skipped_ids`` names the first ones:
    ``swarm task show ID`` says why); ``round_trips``: the round trips the call took."""

    pass_name: str | None
    queue: str | None
    statuses: tuple[str, ...]
    cancelled: int = 0
    settled: int = 0
    skipped: int = 0
    skipped_ids: tuple[str, ...] = ()
    round_trips: int = 0
    dry_run: bool = False


@dataclass(frozen=True)
class RequeuedTasks(Record):
    """What ``requeue_tasks`` did (with ``dry_run``: would do) to the dead tasks of a pass
    and/or queue. ``requeued``: put back in their queue with fresh budgets (their events
    written); ``not_dead``: tasks of the pass or queue met not dead (open, completed,
    cancelled), left as they are; ``skipped``: dead tasks left dead, their data or record
    stored damaged, or refused by the script (``skipped_ids`` names the first ones);
    ``round_trips`` as ``CancelledTasks``'."""

    pass_name: str | None
    queue: str | None
    requeued: int = 0
    not_dead: int = 0
    skipped: int = 0
    skipped_ids: tuple[str, ...] = ()
    round_trips: int = 0
    dry_run: bool = False


@dataclass
class _Tally:
    """Counts kept while a run goes."""

    changed: int = 0
    settled: int = 0
    skipped: int = 0
    skipped_ids: list[str] | None = None
    round_trips: int = 0

    def skip(self, task_id: str) -> None:
        self.skipped += 1
        ids = self.skipped_ids = self.skipped_ids or []
        if len(ids) < SKIPPED_NAMED:
            ids.append(task_id)


@dataclass(frozen=True)
class _Scope:
    """What a run changes: the tasks of ``pass_name`` and/or ``queue`` in ``statuses``."""

    action: str  # task_update's: cancel | requeue
    pass_name: str | None
    queue: str | None
    statuses: tuple[str, ...]

    def holds(self, state: dict[str, Any]) -> bool | None:
        """Whether a stored task (its decoded record) is of the pass and queue (None: not),
        and if so whether it is of the statuses changed."""
        if self.queue is not None and state.get("queue") != self.queue:
            return None
        if self.pass_name is not None and state.get("pass_name") != self.pass_name:
            return None
        return state.get("status") in self.statuses

    def left_as_settled(self, status: object) -> bool:
        """Whether a task of the pass or queue in ``status`` is counted as left settled: a
        cancel's, completed, cancelled or dead; a requeue's, not dead (open or settled)."""
        if self.action == "requeue":
            return status in _ALL and status != TaskStatus.DEAD.value
        return status in _ALL and TaskStatus(status).settled


def _statuses(status: object) -> tuple[str, ...]:
    """The open statuses ``cancel_tasks`` is asked to cancel (None: all three)."""
    if status is None:
        return OPEN_STATUSES
    given = [status] if isinstance(status, str) else check_list("status", status, of="statuses")
    out: list[str] = []
    for one in given:
        try:
            value = TaskStatus(one).value
        except ValueError:
            raise ValidationError(
                f"unknown status {one!r}: cancel_tasks cancels open tasks, give one or more of "
                f"{', '.join(OPEN_STATUSES)} (none: all three)"
            ) from None
        if value == TaskStatus.DEAD.value:
            raise ValidationError(
                "dead tasks are not cancelled in bulk: requeue them (requeue_tasks, swarm task "
                "requeue --pass P), or retire their pass, which removes them (swarm retire P)"
            )
        if value not in OPEN_STATUSES:
            raise ValidationError(
                f"{value} tasks are settled, so there is nothing to cancel: give one or more of "
                f"{', '.join(OPEN_STATUSES)} (none: all three)"
            )
        if value not in out:
            out.append(value)
    return tuple(out)


def _checked(action: str, pass_name: object, queue: object, statuses: tuple[str, ...]) -> _Scope:
    if pass_name is None and queue is None:
        each = "cancel_tasks(pass_name=P)" if action == "cancel" else "requeue_tasks(pass_name=P)"
        one = "cancel(task_id)" if action == "cancel" else "requeue_dead(task_id)"
        raise ValidationError(
            f"give a pass (pass_name), a queue, or both: {each} or queue=Q changes the tasks "
            f"of one pass or queue, never every task of the swarm; one task: {one}"
        )
    name = None if pass_name is None else check_label("pass name", pass_name)
    q = None if queue is None else check_name("queue", queue)
    return _Scope(action, name, q, statuses)


def cancel_tasks(
    ctx: OpContext,
    *,
    pass_name: str | None = None,
    queue: str | None = None,
    status: str | TaskStatus | Sequence[str | TaskStatus] | None = None,
    dry_run: bool = False,
) -> Operation[CancelledTasks]:
    """Cancel every open task of pass ``pass_name`` and/or ``queue`` (both: those of the pass
    in that queue), or of the open ``status`` (or statuses) given only: pending, delayed,
    claimed (None: all three; a claimed task's worker loses its lease, its late report is
    kept superseded). Each task is cancelled as ``cancel`` cancels one (its counters, its
    ``task.cancelled`` event), ``BULK_CHUNK`` cancels pipelined per round trip; dead tasks
    are left (``requeue_tasks`` puts them back; ``swarm retire`` removes them with their
    pass). Refused without a pass or a queue (ValidationError); NotFound for a pass or queue
    no task was ever posted to. A shard's or coordinator's operation: a worker's user is
    refused (PermissionDenied) before anything changes. ``dry_run``: count what would be
    cancelled, change nothing. Tasks posted to the pass or queue while it runs may be left
    open: run it again (a run that finds nothing open cancels nothing)."""
    check_flag("dry_run", dry_run)
    scope = _checked("cancel", pass_name, queue, _statuses(status))
    tally = yield from _run(ctx, scope, dry_run)
    return CancelledTasks(
        scope.pass_name, scope.queue, scope.statuses, tally.changed, tally.settled,
        tally.skipped, tuple(tally.skipped_ids or ()), tally.round_trips, dry_run,
    )  # fmt: skip


def requeue_tasks(
    ctx: OpContext,
    *,
    pass_name: str | None = None,
    queue: str | None = None,
    dry_run: bool = False,
) -> Operation[RequeuedTasks]:
    """Put every dead task of pass ``pass_name`` and/or ``queue`` back in its queue, each as
    ``requeue_dead`` puts one (fresh budgets of failures and abandons, its counters, its
    ``task.requeued`` event), ``REQUEUE_CHUNK`` per round trip. A dead task whose data is
    stored damaged is skipped (its next claim would only dead-letter it again: repair it
    first). Refused without a pass or a queue (ValidationError); NotFound for a pass or queue
    no task was ever posted to; a worker's user is refused (PermissionDenied) before anything
    changes. ``dry_run``: count what would be requeued, change nothing."""
    check_flag("dry_run", dry_run)
    scope = _checked("requeue", pass_name, queue, (TaskStatus.DEAD.value,))
    tally = yield from _run(ctx, scope, dry_run)
    return RequeuedTasks(
        scope.pass_name, scope.queue, tally.changed, tally.settled, tally.skipped,
        tuple(tally.skipped_ids or ()), tally.round_trips, dry_run,
    )  # fmt: skip


def _run(ctx: OpContext, scope: _Scope, dry_run: bool) -> Operation[_Tally]:
    """Read the ids of the scope's tasks, then change them chunk by chunk: each round trip
    sends the changes of one chunk and the reads of the next."""
    tally = _Tally()
    ids = yield from _ids(ctx, scope, tally)
    chunk = REQUEUE_CHUNK if scope.action == "requeue" else BULK_CHUNK
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    sent: list[tuple[str, Call]] = []  # (op id, call) of the chunk read last
    for n in range(len(chunks) + 1):
        reads = () if n == len(chunks) else _reads(ctx, scope, chunks[n])
        if not sent and not reads:
            break
        try:
            replies = list((yield Batch((*(call for _, call in sent), *reads))))
        except _ONE_TASK_REFUSED:
            # One change was refused (its task settled or moved since its record was read):
            # the others ran. What each task became is read back, with the next reads.
            if not sent:
                raise
            tally.round_trips += 1
            replies = yield from _read_back(ctx, scope, sent, reads, tally)
        else:
            tally.round_trips += 1
            # (each reply: the task as the script left it, which saved it: an object)
            for (op, call), reply in zip(sent, replies, strict=False):
                _count(scope, _record(reply[0]) or {}, op, str(call.args[3]), tally)
        sent = []
        if reads:
            changes = _changes(scope, chunks[n], replies[-len(reads) :], tally)
            if dry_run:
                tally.changed += len(changes)
                continue
            # ('0': a dead one is refused; the fail's arguments empty; then the statuses the
            # task may have, else it is refused: one claimed since its pending record was read
            # keeps its lease. The reply then holds no data.)
            dead = "0" if scope.action == "cancel" else ""
            extra = (dead, "", "", "", "", "", ",".join(scope.statuses))
            for task_id, queue in changes:
                op = new_id("o-")
                sent.append(
                    (op, _update_call(ctx, task_id, queue, scope.action, "", *extra, op=op))
                )
    return tally


def _ids(ctx: OpContext, scope: _Scope, tally: _Tally) -> Operation[list[str]]:
    """Every id the scope's tasks may have, in index order, without repeats: from the pass's
    index, or from the queue's sets of the statuses changed when they hold fewer. The first
    round trip also refuses a worker (see the module's docstring) and a pass or queue never
    posted to."""
    k = ctx.keys
    reads: list[Cmd | Call] = [
        Call("counts_recount", (k.counts,), ()),  # (no queue: recounts nothing; see above)
        Cmd("HKEYS", k.counts),
    ]
    sets: list[str] = []
    if scope.queue is not None:
        sets = [_SETS[s](k, scope.queue) for s in scope.statuses]
    if scope.pass_name is not None:
        reads += [Cmd("HGETALL", k.pass_counts), Cmd("ZCARD", k.pass_tasks(scope.pass_name))]
    if scope.queue is not None:
        statuses = scope.statuses
        reads.append(Cmd("HMGET", k.counts, *(f"{scope.queue}|{s}" for s in statuses)))
        reads += [Cmd("ZCARD", key) for key in sets]
    replies = list((yield Batch(tuple(reads))))
    tally.round_trips += 1
    fields = replies[1]
    rest = replies[2:]
    sources: list[tuple[str, int]] = []
    if scope.pass_name is not None:
        passes = pass_counts(rest[0])
        if scope.pass_name not in passes:
            doing = "nothing to cancel" if scope.action == "cancel" else "nothing to requeue"
            raise NotFound(unknown_pass(scope.pass_name, list(passes), doing=doing))
        sources = [(k.pass_tasks(scope.pass_name), int(rest[1]))]
        rest = rest[2:]
    if scope.queue is not None:
        known = queue_names(fields)
        if scope.queue not in known:
            raise NotFound(
                f"no task was ever posted to queue {dumps(scope.queue)}, so there is nothing "
                f"to {scope.action}: the queues are {first_few(known, 10)} (swarm task list "
                "shows their tasks)"
            )
        held = sum(
            counter(f"{scope.queue}|{s}", v or 0)
            for s, v in zip(scope.statuses, rest[0], strict=True)
        )
        by_set = [(key, int(n)) for key, n in zip(sets, rest[1:], strict=True)]
        if not sources or held < sources[0][1]:
            sources = by_set
    pages = [
        Cmd("ZRANGE", key, start, start + ID_PAGE - 1)
        for key, size in sources
        for start in range(0, size, ID_PAGE)
    ]
    seen: dict[str, None] = {}
    for at in range(0, len(pages), ID_PAGES_AT_ONCE):
        replies = list((yield Batch(tuple(pages[at : at + ID_PAGES_AT_ONCE]))))
        tally.round_trips += 1
        for reply in replies:
            seen.update(dict.fromkeys(text(member) for member in reply))
    return list(seen)


def _reads(ctx: OpContext, scope: _Scope, ids: Sequence[str]) -> tuple[Cmd, ...]:
    """What a chunk's changes are made from: its records (and a requeue, its data)."""
    k = ctx.keys
    if scope.action == "requeue":
        return (Cmd("HMGET", k.tasks, *ids), Cmd("HMGET", k.task_data, *ids))
    return (Cmd("HMGET", k.tasks, *ids),)


def _changes(
    scope: _Scope, ids: Sequence[str], read: Sequence[Any], tally: _Tally
) -> list[tuple[str, str]]:
    """The tasks of a chunk to change, (id, queue), from their records as read; the others
    counted (settled, skipped) or left out (not of the scope)."""
    records = read[0]
    data: Iterable[Any] = read[1] if len(read) > 1 else [None] * len(ids)
    changes: list[tuple[str, str]] = []
    for task_id, raw, value in zip(ids, records, data, strict=True):
        if raw is None:  # retired since (settled), or never stored: nothing to change
            continue
        state = _record(raw)
        if state is None:
            tally.skip(task_id)  # (swarm doctor names it; its change would be refused)
            continue
        holds = scope.holds(state)
        if holds is None:
            continue
        if not holds:
            if scope.left_as_settled(state.get("status")):
                tally.settled += 1
            continue
        queue = state.get("queue")
        if not isinstance(queue, str):
            tally.skip(task_id)
            continue
        if value is not None:
            try:
                loads(value)
            except UNREADABLE:  # (its next claim would dead-letter it again: requeue_dead)
                tally.skip(task_id)
                continue
        changes.append((task_id, queue))
    return changes


def _record(raw: Any) -> dict[str, Any] | None:
    """A task's record as stored, decoded; None when it is no JSON object (unreadable)."""
    try:
        state = loads(raw)
    except UNREADABLE:
        return None
    return state if isinstance(state, dict) else None


def _count(scope: _Scope, state: dict[str, Any], op: str, task_id: str, tally: _Tally) -> None:
    """Count one change by the task as it is after it: changed by this run when it holds
    this run's op id, else settled by another first, else left as it was (skipped)."""
    if state.get("op") == op:
        tally.changed += 1
    elif scope.left_as_settled(state.get("status")):
        tally.settled += 1
    else:
        tally.skip(task_id)


def _read_back(
    ctx: OpContext,
    scope: _Scope,
    sent: Sequence[tuple[str, Call]],
    reads: tuple[Cmd, ...],
    tally: _Tally,
) -> Operation[list[Any]]:
    """What each task of a chunk became when one change of it was refused: changed by this
    run (its op id), settled by another, or left (skipped); returns the replies of ``reads``,
    sent again in the same round trip."""
    ids = [str(call.args[3]) for _, call in sent]
    replies = list((yield Batch((Cmd("HMGET", ctx.keys.tasks, *ids), *reads))))
    tally.round_trips += 1
    for (op, _), task_id, raw in zip(sent, ids, replies[0], strict=True):
        if raw is None:  # (retired since: settled)
            tally.settled += 1
            continue
        state = _record(raw)
        if state is None:
            tally.skip(task_id)
        else:
            _count(scope, state, op, task_id, tally)
    return replies
