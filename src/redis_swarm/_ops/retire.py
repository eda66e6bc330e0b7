"""Retiring a settled pass (``swarm retire``): its completed, cancelled and dead tasks, their
data and every finding they got, with their entries in every index, removed and the counters
brought down by exactly what went, so that a long-lived swarm can free the work it is done
with. Syntheses stay; a record of each retirement stays in ``Keys.retired_passes``, so that
lineage says a finding a synthesis cites was retired with its pass rather than lost.

The work is done by ``lua/pass_retire.lua`` in steps of ``RETIRE_CHUNK`` index entries, each
atomic and leaving every invariant of the swarm true, so that no step holds Redis for long
however big the pass: the operation costs one round trip more per step (a pass of n tasks,
about 2n / RETIRE_CHUNK). Tasks are never popped from Redis by anything else, so nothing else
frees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._errors import Conflict, NotFound
from .._keys import Keys, label_id
from .._models import RetiredPass, TaskStatus, dumps, loads, unknown_pass
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from ._work import check_label, text
from .tasks import queue_names
from .views import pass_counts

__all__ = ["RETIRE_CHUNK", "retire_pass", "retired_passes"]

# Index entries one step examines: bounds the time Redis spends in one script call (about a
# millisecond per hundred tasks removed).
RETIRE_CHUNK = 500
_OPEN = tuple(s.value for s in TaskStatus if not s.settled)
_SHARD_FIELD = "shard:"  # counts fields shard:NAME|status (see tasks.queue_names)


def _shard_names(fields: Iterable[Any]) -> list[str]:
    """Every shard that ever posted a task, from the fields of ``Keys.counts``."""
    names = set()
    for field in fields:
        shard, sep, _status = text(field).rpartition("|")
        if sep and shard.startswith(_SHARD_FIELD):
            names.add(shard.removeprefix(_SHARD_FIELD))
    return sorted(names)


def _task_keys(k: Keys, ids: list[str]) -> list[str]:
    """The keys of their own that tasks may have: the questions asked while on them, their
    webhooks. Deleted by the client, after the step that removed the tasks (a script never
    builds a key, and learns the ids only as it goes)."""
    return [key for tid in ids for key in (k.asked(tid), k.webhooks(tid))]


def _still_open(name: str, open_counts: dict[str, int]) -> str:
    held = ", ".join(f"{n} {status}" for status, n in open_counts.items())
    return (
        f"pass {dumps(name)} still has open tasks ({held}): retire a pass once it is settled. "
        f"Wait for it (swarm task wait --pass {dumps(name)}), or cancel its open tasks "
        "(swarm task cancel ID), then retire it"
    )


def retire_pass(ctx: OpContext, pass_name: str, *, dry_run: bool = False) -> Operation[RetiredPass]:
    """Remove the settled work of pass ``pass_name``: its completed, cancelled and dead tasks
    (record, data, entries in the task, pass, dead-letter and dedupe indexes), every finding of
    them (superseded ones too) with their entries in the finding indexes, and bring the
    queue, shard and pass counters down by exactly that; syntheses are kept. A pass with
    open tasks (pending, delayed, claimed) is refused (Conflict), and one no task was ever
    posted to (NotFound) unless it was retired already (then nothing is left to remove).
    Runs in atomic steps (``RETIRE_CHUNK``), the swarm consistent between them; tasks posted
    to the pass meanwhile are kept (``kept``). ``dry_run`` counts what would go and changes
    nothing. A retry of a step whose reply was lost goes on where it stopped: what that
    step removed is then missing from the counts returned, not from the pass's record
    (``retired_passes``)."""
    name = check_label("pass_name", pass_name)
    k = ctx.keys
    raw_passes, fields, record = yield Batch(
        (Cmd("HGETALL", k.pass_counts), Cmd("HKEYS", k.counts), Cmd("HGET", k.retired_passes, name))
    )
    passes = pass_counts(raw_passes)
    if name not in passes:
        if record is not None:  # retired whole already: nothing of it is left
            return RetiredPass(name, 0, 0, dry_run=dry_run)
        raise NotFound(unknown_pass(name, list(passes), "swarm status lists them"))
    open_counts = {s: n for s in _OPEN if (n := passes[name].get(s, 0)) > 0}
    if open_counts:
        raise Conflict(_still_open(name, open_counts))
    fields = list(fields or ())
    queues, shards = queue_names(fields), _shard_names(fields)
    keys = (
        k.tasks, k.task_data, k.task_index, k.dedupe, k.counts, k.pass_counts, k.events,
        k.pass_tasks(name), k.findings, k.finding_index, k.findings_by("pass", name),
        k.retired_passes,
        *(k.dead(q) for q in queues),
        *(k.findings_by("queue", q) for q in queues),
        *(k.findings_by("shard", s) for s in shards),
    )  # fmt: skip
    names = (len(queues), len(shards), *queues, *shards)
    phase, offset = "findings", 0
    tasks = findings = kept = 0
    gone: list[str] = []  # tasks removed by the last step, whose own keys are still there
    while True:
        step = Call(
            "pass_retire",
            keys,
            (ctx.now_arg(), ctx.limits.events_maxlen, name, label_id(name),
             "0" if dry_run else "1", phase, offset, RETIRE_CHUNK, *names),
        )  # fmt: skip
        if gone:  # the last step's leftovers deleted in the same round trip as this step
            reply = (yield Batch((Cmd("DEL", *_task_keys(k, gone)), step)))[1]
        else:
            reply = yield step
        done, phase, offset = int(reply[0]), text(reply[1]), int(reply[2])
        tasks += int(reply[3])
        findings += int(reply[4])
        kept += int(reply[5])
        gone = [text(tid) for tid in reply[7:]]
        if done:
            break
    if gone:
        yield Cmd("DEL", *_task_keys(k, gone))
    return RetiredPass(name, tasks, findings, kept, dry_run=dry_run)


def retired_passes(ctx: OpContext) -> Operation[dict[str, RetiredPass]]:
    """The passes ``retire_pass`` removed, by name: what it removed of each in all, and when
    it last did (``at``, ms)."""
    raw = yield Cmd("HGETALL", ctx.keys.retired_passes)
    out: dict[str, RetiredPass] = {}
    for field, value in sorted((text(f), text(v)) for f, v in dict(raw or {}).items()):
        stored = loads(value)
        out[field] = RetiredPass(
            field, int(stored.get("tasks", 0)), int(stored.get("findings", 0)),
            at=int(stored["at"]) if "at" in stored else None,
        )  # fmt: skip
    return out
