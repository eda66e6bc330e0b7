"""Retiring a settled pass (``swarm retire``): its completed, cancelled and dead tasks, their
data, own keys and every finding they got, with their entries in every index, removed and
the counters brought down by exactly what went, so that a long-lived swarm can free the work
it is done with. Syntheses stay; a record of each retirement stays in
``Keys.retired_passes``, so that lineage says a finding a synthesis of the pass cites was
retired with its pass rather than lost. A finding a synthesis of another pass cites stays,
with its task: only a pass's own syntheses lose findings to its retirement.

The work is done by ``lua/pass_retire.lua`` in steps of ``RETIRE_CHUNK`` index entries, each
atomic and leaving every invariant of the swarm true, so that no step holds Redis for long
however big the pass: the operation costs one round trip more per step (a pass of n tasks,
about 2n / RETIRE_CHUNK), and one per thousand syntheses, read first to know which findings
other passes cite. Tasks are never popped from Redis by anything else, so nothing else frees
them.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .._codec import UNREADABLE, dumps, loads
from .._errors import Conflict, NotFound
from .._keys import Keys, label_id
from .._models import OPEN_STATUSES, RetiredPass, unknown_pass
from .._protocol import Batch, Call, Cmd, OpContext, Operation
from ._bus import now_from
from ._work import check_label, text
from .tasks import queue_names, shard_names
from .views import SCAN_COUNT, _hash_items, pass_counts

__all__ = ["RETIRE_CHUNK", "retire_pass", "retired_passes"]

# Index entries one step examines: bounds the time Redis spends in one script call (about a
# millisecond per hundred tasks removed).
RETIRE_CHUNK = 500


def _still_open(name: str, open_counts: dict[str, int]) -> str:
    held = ", ".join(f"{n} {status}" for status, n in open_counts.items())
    return (
        f"pass {dumps(name)} still has open tasks ({held}): retire a pass once it is settled. "
        f"Wait for it (swarm task wait --pass {dumps(name)}), or cancel its open tasks "
        f"(swarm task cancel --pass {dumps(name)}; --dry-run counts them first), then retire "
        "it"
    )


def _cited(entries: Any, cited: set[str], but_pass: str | None) -> None:
    """Add to ``cited`` the findings the syntheses in ``entries`` (an HSCAN page) cite, but
    those of pass ``but_pass`` when one is named (a pass's findings: ``retire_pass``'s script
    is given those of the pass). A synthesis stored unreadable cites nothing known
    (``swarm doctor`` names it)."""
    for _sid, raw in _hash_items(entries):
        try:
            synthesis = loads(raw)
            if but_pass is None or synthesis.get("pass_name") != but_pass:
                cited.update(text(fid) for fid in synthesis.get("sources", ()))
        except UNREADABLE:
            continue


def _syntheses_cite(
    ctx: OpContext, first: Any, *, but_pass: str | None = None
) -> Operation[set[str]]:
    """Every finding a synthesis cites (of a pass other than ``but_pass``, when named), from
    the first HSCAN page ``first`` on (a page per round trip): what a retirement keeps
    (``retire_pass``, ``retire_questions``)."""
    cited: set[str] = set()
    cursor, entries = first
    _cited(entries, cited, but_pass)
    while text(cursor) != "0":
        cursor, entries = yield Cmd("HSCAN", ctx.keys.syntheses, cursor, "COUNT", SCAN_COUNT)
        _cited(entries, cited, but_pass)
    return cited


def _citation_reads(k: Keys, findings_of: str, chunk: int) -> tuple[Cmd, Cmd, Cmd]:
    """What a retirement reads of the syntheses before it walks, and again when a step finds
    one stored since: their count (read before them: one stored meanwhile makes the next
    step stale, never missed), their first page, and the first ``chunk`` of the findings it
    walks (``findings_of``)."""
    return (
        Cmd("ZCARD", k.synthesis_index),
        Cmd("HSCAN", k.syntheses, 0, "COUNT", SCAN_COUNT),
        Cmd("ZRANGE", findings_of, 0, chunk - 1),
    )


def _citations_again(
    ctx: OpContext, findings_of: str, chunk: int, *, but_pass: str | None = None
) -> Operation[tuple[Any, set[str], Any]]:
    """A step found a synthesis stored since the citations were read: read them again
    (``_citation_reads``): their count, the findings they cite, the first chunk to walk."""
    seen, scanned, first = yield Batch(_citation_reads(ctx.keys, findings_of, chunk))
    cited = yield from _syntheses_cite(ctx, scanned, but_pass=but_pass)
    return seen, cited, first


def _walk_keys(k: Keys, name: str, queues: list[str], shards: list[str]) -> tuple[str, ...]:
    """The keys of every step but the chunk's own (see lua/pass_retire.lua)."""
    return (
        k.tasks, k.task_data, k.task_index, k.dedupe, k.counts, k.pass_counts, k.events,
        k.pass_tasks(name), k.findings, k.finding_index, k.findings_by("pass", name),
        k.retired_passes, k.synthesis_index,
        *(k.dead(q) for q in queues),
        *(k.findings_by("queue", q) for q in queues),
        *(k.findings_by("shard", s) for s in shards),
    )  # fmt: skip


def retire_pass(ctx: OpContext, pass_name: str, *, dry_run: bool = False) -> Operation[RetiredPass]:
    """Remove the settled work of pass ``pass_name``: its completed, cancelled and dead tasks
    (record, data, own keys, entries in the task, pass, dead-letter and dedupe indexes), every
    finding of them (superseded ones too) with their entries in the finding indexes, and bring
    the queue, shard and pass counters down by exactly that; syntheses are kept. A finding a
    synthesis of another pass cites is kept, and so is its task (``cited``), so that no
    synthesis cites a missing finding. A pass with open tasks (pending, delayed, claimed) is
    refused (Conflict; to a user whose role may not retire, Redis refuses the script first:
    PermissionDenied, as once settled), and one no task was ever posted to (NotFound) unless
    it was retired already (then what an interrupted run or a late report left of it is swept).
    Runs in atomic steps (``RETIRE_CHUNK``), the swarm consistent between them; tasks posted
    to the pass meanwhile are kept (``kept``), records stored unreadable too (``corrupt``).
    ``dry_run`` counts what would go and changes nothing. A retry of a step whose reply was
    lost goes on where it stopped: what that step removed is then missing from the counts
    returned, not from the pass's record (``retired_passes``). ``at`` (ms): when its last step
    removed what it did (the record's ``at``); when it removed nothing (a dry run too), when
    it was called (the server's time)."""
    name = check_label("pass name", pass_name)
    k = ctx.keys
    findings_of = k.findings_by("pass", name)
    raw_passes, fields, record, seen, scanned, first, server_time = yield Batch(
        (
            Cmd("HGETALL", k.pass_counts), Cmd("HKEYS", k.counts),
            Cmd("HGET", k.retired_passes, name),
            *_citation_reads(k, findings_of, RETIRE_CHUNK),
            Cmd("TIME"),  # (when the call was made: the ``at`` of a run that removes nothing)
        )
    )  # fmt: skip
    called_at = now_from(ctx, server_time)
    passes = pass_counts(raw_passes)
    if name not in passes and record is None:
        raise NotFound(unknown_pass(name, list(passes), doing="nothing to retire"))
    queues, shards = queue_names(fields), shard_names(fields)
    keys = _walk_keys(k, name, queues, shards)
    open_counts = {s: n for s in OPEN_STATUSES if (n := passes.get(name, {}).get(s, 0)) > 0}
    if open_counts:
        # A user whose role may not retire is refused that first (Redis refuses it the
        # function: NOPERM), not told to wait for a pass it could not retire once settled: a
        # step that walks nothing and counts only (phase 'done'), on this refusal's path
        # alone. (Redis 6.2 runs scripts by EVALSHA, which a worker may: told to wait there.)
        yield Call(
            "pass_retire",
            keys,
            (ctx.now_arg(), ctx.limits.events_maxlen, name, label_id(name), "0", "done", 0,
             RETIRE_CHUNK, seen, len(queues), len(shards), 0, *queues, *shards),
        )  # fmt: skip
        raise Conflict(_still_open(name, open_counts))
    cited = yield from _syntheses_cite(ctx, scanned, but_pass=name)
    tasks = findings = 0
    # What the last walk found kept (a walk starts over when a synthesis was stored, or a
    # record named a queue or shard listed after the keys were made).
    kept = cited_tasks = corrupt = unknown = 0
    protected: set[str] = set()  # the tasks of the cited findings
    phase, offset, chunk = "findings", 0, [text(fid) for fid in first]
    while True:
        if phase == "tasks":
            flags = ["1" if tid in protected else "0" for tid in chunk]
            own = [key for tid in chunk for key in (k.asked(tid), k.webhooks(tid))]
        else:
            flags = ["1" if fid in cited else "0" for fid in chunk]
            own = []
        reply = yield Call(
            "pass_retire",
            (*keys, *own),
            (ctx.now_arg(), ctx.limits.events_maxlen, name, label_id(name),
             "0" if dry_run else "1", phase, offset, RETIRE_CHUNK, seen, len(queues),
             len(shards), len(chunk), *queues, *shards,
             *(item for pair in zip(chunk, flags, strict=True) for item in pair)),
        )  # fmt: skip
        if text(reply[0]) == "stale":  # a synthesis stored since they were read: again
            seen, cited, first = yield from _citations_again(
                ctx, findings_of, RETIRE_CHUNK, but_pass=name
            )
            if dry_run:
                tasks = findings = 0
            kept = cited_tasks = corrupt = unknown = 0
            protected = set()
            phase, offset, chunk = "findings", 0, [text(fid) for fid in first]
            continue
        phase, offset = text(reply[1]), int(reply[2])
        tasks += int(reply[3])
        findings += int(reply[4])
        kept += int(reply[5])
        cited_tasks += int(reply[6])
        corrupt += int(reply[7])
        unknown += int(reply[8])
        n = int(reply[9])
        chunk = [text(tid) for tid in reply[10 : 10 + n]]
        protected.update(text(tid) for tid in reply[10 + n :])
        if phase != "done":
            continue
        if not unknown:
            break
        # A queue or shard listed after the keys were made: list them again, walk again.
        fields, first = yield Batch(
            (Cmd("HKEYS", k.counts), Cmd("ZRANGE", findings_of, 0, RETIRE_CHUNK - 1))
        )
        now_queues, now_shards = queue_names(fields), shard_names(fields)
        if (now_queues, now_shards) == (queues, shards):  # none new: left as they are
            corrupt += unknown
            break
        queues, shards = now_queues, now_shards
        keys = _walk_keys(k, name, queues, shards)
        if dry_run:
            tasks = findings = 0
        kept = cited_tasks = corrupt = unknown = 0
        protected = set()
        phase, offset, chunk = "findings", 0, [text(fid) for fid in first]
    at = called_at
    if not dry_run and (tasks or findings):  # when its last step removed what it did
        stored = yield Cmd("HGET", k.retired_passes, name)
        with contextlib.suppress(*UNREADABLE):
            at = RetiredPass.stored(name, stored).at or called_at
    return RetiredPass(
        name, tasks, findings, kept, dry_run=dry_run, at=at, cited=cited_tasks, corrupt=corrupt
    )


def retired_passes(ctx: OpContext) -> Operation[dict[str, RetiredPass]]:
    """The passes ``retire_pass`` removed, by name: what it removed of each in all, and when
    it last did (``at``, ms)."""
    raw = yield Cmd("HGETALL", ctx.keys.retired_passes)
    return {
        field: RetiredPass.stored(field, value)
        for field, value in sorted((text(f), text(v)) for f, v in dict(raw or {}).items())
    }
