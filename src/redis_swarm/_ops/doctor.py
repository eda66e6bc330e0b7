"""The doctor's scan (``swarm doctor``): what is stored damaged, read record by record
(``corrupt_records``, ``record_damage``: every hash of records scanned side by side by
``_Scan``, then every index checked against its records both ways, the chunks the manifests
name against their stored length, the completed tasks against their findings), and the
indexes put right from that scan (``repair_indexes``, ``swarm doctor --repair``). A record
met in the scan and gone, or one stored since, when looked for again after is no damage: the
scan runs beside the swarm's work, never stopping it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .._codec import UNREADABLE, loads
from .._errors import REAPPLY_OLDER_USER, PermissionDenied, ValidationError
from .._keys import Keys
from .._models import (
    RECORD_KINDS,
    REPAIR_COMMAND,
    Agent,
    IndexEntries,
    RecordDamage,
    Task,
    TaskCosts,
    TaskStatus,
)
from .._protocol import WRONG_TYPE, Batch, Call, Cmd, OpContext, Operation, past_wrong_type
from . import agents as agent_ops
from . import messages as message_ops
from . import tasks as task_ops
from ._context_store import Manifest, parse_manifest
from ._work import HALF_STORED_FIELD, finding_from, synthesis_from, task_from, text
from .counters import SET_STATUSES
from .views import SCAN_COUNT, _hash_items, pass_names, task_costs

__all__ = ["corrupt_records", "finding_lost", "record_damage", "repair_indexes"]

R = TypeVar("R")


def corrupt_records(ctx: OpContext) -> Operation[dict[str, list[str]]]:
    """What is stored damaged (written around the operations: by hand, another program, a
    bad restore), by kind (``RECORD_KINDS``): what ``swarm doctor`` names.

    - ``task``, ``finding``, ``synthesis``, ``agent``: the ids of records stored unreadable
      (not JSON, a status out of range, ...; a task whose data is unreadable too);
      ``context``: the owners whose pointer (current manifest) is.
    - ``version``: ``OWNER|VERSION`` of the kept versions a read refuses: their manifest is
      damaged (``parse_manifest``), or a chunk of it is missing or not its stored length.
    - ``chunk``: the digests of those chunks.
    - ``message``: the ids of entries of the message index (``message_status``) that are
      not ``TO SEQ AT ...``; ``cursor``: the fields of the read cursors hash that are not of
      their shape (a stream id, a pending or an orphan batch: ``lua/inbox_read.lua``).
    - ``index``: the keys of indexes (``task_index``, ``finding_index``,
      ``synthesis_index``, a pass's tasks, the findings of a queue, pass or shard) that lack
      records they index (listings miss those records: all of them, the index deleted), or
      hold entries of records no longer stored (deleted by hand: listings skip them); and
      the sets of a queue (pending, delayed, leases, dead) holding ids of tasks no longer
      stored (counted in the queue's status for ever, a ``--until-done`` run never ends), or
      lacking a stored task of their status (never claimed: ``_unqueued``; its score in
      ``IndexEntries.lacking`` is its record's creation time, as for an index: the repair
      computes the set's own from the record). ``record_damage`` says which entries
      (``_check_indexes``).
    - ``key``: keys it reads that hold another type than redis-swarm writes there.

    It reads every record, a thousand of each kind per round trip, then the indexes' entries
    (ten thousand per round trip) and the length of every chunk the manifests name (a
    thousand per round trip): their bytes are not read, so a chunk rewritten with other
    bytes of its length shows only when read (its hash)."""
    damage = yield from record_damage(ctx)
    return damage.found


def record_damage(ctx: OpContext) -> Operation[RecordDamage]:
    """``corrupt_records``, with the entries each index it names lacks or holds in vain,
    the completed tasks whose finding is no longer stored (a finding deleted by hand: the
    task's result is lost), and the reports stored half-way, waiting for their retry
    (``_Scan.waiting_reports``), read in the same scan."""
    damage, _ = yield from _damage(ctx)
    return damage


def _damage(ctx: OpContext) -> Operation[tuple[RecordDamage, _Scan]]:
    """``record_damage``, and its scan (the hash of records of each index it read:
    ``records_of``; the queue's sets among them: ``sets``)."""
    scan = _Scan(ctx.keys)
    yield from scan.run()
    scan.forgive_half_stored()
    indexes, waiting = yield from _check_indexes(scan)
    yield from scan.check_chunks()
    lost = yield from _lost_findings(scan)
    scan.found["index"] += [entries.index for entries in indexes]
    found = {kind: sorted(set(ids)) for kind, ids in scan.found.items()}
    return RecordDamage(found, indexes, lost, waiting), scan


def repair_indexes(ctx: OpContext) -> Operation[tuple[IndexEntries, ...]]:
    """Every index put right (``swarm doctor --repair``): each stored record it lacks added
    back at its score (``_Scan.created``: a record whose creation time cannot be read is
    left out, named by ``record_damage`` until rewritten), each entry of a record no longer
    stored removed (a queue's pending, delayed, leases and dead sets too, and a task those
    sets lack added back to the one of its status, at the score its record gives it there:
    the status counters then count those removed, and miss those added, until recounted,
    which ``swarm doctor --repair`` does after); what it did, by index, and the records it
    could not re-add (in ``lacking`` at None: their record holds no creation time), so that
    a repair without a check after (``--quick``) names them. After the scan of
    ``record_damage``, by the
    script ``index_repair`` (a thousand ids a call, ten calls a round trip), which looks
    for each record again just before its write (one retired or stored since the scan is
    left as it is) and refuses a user who may not remove entries before writing anything.
    A report stored half-way (``RecordDamage.half_stored``) is no index's to hold: its
    retry indexes it. A shard's, coordinator's or admin's: a worker may add to some
    indexes, never remove from one."""
    damage, scan = yield from _damage(ctx)
    calls: list[Call] = []
    done: dict[str, tuple[dict[str, int | None], list[str]]] = {}
    for entries in damage.indexes:
        # (a queue's set: its status and queue, which the script reads each record for, and
        # the score it gives it there, whatever its creation time; an index: '', and the
        # record's creation time)
        status, queue = scan.sets.get(entries.index, ("", ""))
        added = sorted(i for i, score in entries.lacking.items() if score is not None or status)
        left: dict[str, int | None] = {
            i: None for i, s in entries.lacking.items() if s is None and not status
        }
        if left:  # (said as lacked at None: no write places them)
            done[entries.index] = (left, [])
        ids = [(i, True) for i in added] + [(i, False) for i in entries.dangling]
        for start in range(0, len(ids), SCAN_COUNT):
            some = ids[start : start + SCAN_COUNT]
            adds = [i for i, add in some if add]
            scored = [a for i in adds for a in ("" if status else entries.lacking[i], i)]
            removes = [i for i, add in some if not add]
            keys: tuple[str, ...] = (entries.index, scan.records_of[entries.index])
            if status:  # (a queue's set: a task put back wakes a claimer, or lowers the hint)
                keys += (ctx.keys.counts, ctx.keys.delayed(queue), ctx.keys.wake(queue))
            args = (len(adds), status, queue, *scored, *removes)
            calls.append(Call("index_repair", keys, args))
    per_round = _IDS_A_ROUND // SCAN_COUNT
    for start in range(0, len(calls), per_round):
        some_calls = calls[start : start + per_round]
        try:
            replies = yield Batch(tuple(some_calls))
        except PermissionDenied as exc:
            raise PermissionDenied(
                "repairing the indexes is a shard's, a coordinator's or an admin's, never a "
                f"worker user's: run {REPAIR_COMMAND} with such a user's URL (nothing was "
                f"changed); {REAPPLY_OLDER_USER}. {exc}"
            ) from None
        for call, (added_ids, removed_ids) in zip(some_calls, replies, strict=True):
            index = call.keys[0]
            lacking, dangling = done.setdefault(index, ({}, []))
            lacking.update(  # (at the score written: a queue set's is its record's)
                {text(added_ids[i]): int(added_ids[i + 1]) for i in range(0, len(added_ids), 2)}
            )
            dangling += map(text, removed_ids)
    return tuple(
        IndexEntries(index, lacking, tuple(sorted(dangling)))
        for index, (lacking, dangling) in sorted(done.items())
        if lacking or dangling
    )


def _index_score(raw: Any) -> int | None:
    """Where a stored record stands in its indexes: its ``created_at`` (ms), the stamp the
    script that stores it writes both into the record and as its score in every index of it
    (lua/task_post.lua, lua/_report.lua, lua/synthesis_create.lua); None when the record
    does not hold one."""
    try:
        record = loads(raw)
    except UNREADABLE:
        return None
    stamp = record.get("created_at") if isinstance(record, dict) else None
    # (the scripts write it as a whole number: anything else was written by hand)
    return stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None


# The most ids one round trip of the index check sends (ten commands of a thousand, or more
# commands of fewer): a pipeline of a few hundred KB, not one of every index at once.
_IDS_A_ROUND = 10 * SCAN_COUNT

P = TypeVar("P", bound=tuple[Any, ...])


def _rounds(pieces: list[P], size: Callable[[P], int]) -> list[list[P]]:
    """``pieces`` (an index and some of its ids, or a range of its entries: ``size`` ids)
    grouped into round trips of at most ``_IDS_A_ROUND`` ids and ``SCAN_COUNT`` commands
    each."""
    rounds: list[list[P]] = [[]]
    held = 0
    for piece in pieces:
        n = size(piece)
        if rounds[-1] and (held + n > _IDS_A_ROUND or len(rounds[-1]) >= SCAN_COUNT):
            rounds.append([])
            held = 0
        rounds[-1].append(piece)
        held += n
    return [r for r in rounds if r]


def _check_indexes(
    scan: _Scan,
) -> Operation[tuple[tuple[IndexEntries, ...], dict[str, str]]]:
    """Every index against its records, both ways: the records of it the scan met, entry by
    entry (``_lacking``), and every entry of it against the records stored (``_dangling``).
    The indexes that hold anything wrong, by key (those of another type named: ``key``);
    and the reports stored half-way, which no index lacks (``_Scan.waiting_reports``)."""
    lacking = yield from _lacking(scan)
    waiting = scan.waiting_reports(lacking)
    dangling = yield from _dangling(scan)
    indexes = tuple(
        IndexEntries(key, lacking.get(key, {}), tuple(sorted(dangling.get(key, ()))))
        for key in sorted(set(lacking) | set(dangling))
    )
    return indexes, waiting


def _lacking(scan: _Scan) -> Operation[dict[str, dict[str, int | None]]]:
    """Every index against the records of it the scan met, entry by entry (ZMSCORE, a
    thousand ids a command, ``_rounds`` of them a round trip: a size alone let a lost entry
    hide behind one whose record was deleted); the records an index lacks looked for again
    after (HEXISTS, ten thousand a round trip: a script that retires a record drops its
    entries with it, so a record retired between the two reads is found gone, never short),
    each with the score it belongs at, as the scan read it (``_Scan.created``); a task a
    queue's set lacks read again apart (``_unqueued``)."""
    pieces = [
        (key, ids[start : start + SCAN_COUNT])
        for key, (_, seen) in scan.indexes.items()
        for ids in [sorted(seen)]
        for start in range(0, len(ids), SCAN_COUNT)
    ]
    lacking: list[tuple[str, str]] = []  # (index, a record id it lacks)
    for some in _rounds(pieces, lambda piece: len(piece[1])):
        replies = yield from past_wrong_type(tuple(Cmd("ZMSCORE", key, *ids) for key, ids in some))
        for (key, ids), scores in zip(some, replies, strict=True):
            if scores is WRONG_TYPE:
                scan.found["key"].append(key)
                continue
            lacking += [(key, i) for i, score in zip(ids, scores, strict=True) if score is None]
    # (a task a queue's set lacks: read again, with the set, as ``_unqueued`` does)
    unqueued = yield from _unqueued(scan, [(key, i) for key, i in lacking if key in scan.sets])
    lacking = [(key, i) for key, i in lacking if key not in scan.sets]
    # (a record lacked by several indexes, its task's and its pass's, is looked for once)
    asked = sorted({(scan.indexes[key][0], i) for key, i in lacking})
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(asked), _IDS_A_ROUND):
        pairs = asked[start : start + _IDS_A_ROUND]
        there = yield Batch(tuple(Cmd("HEXISTS", records, i) for records, i in pairs))
        stored.update(pair for pair, found in zip(pairs, there, strict=True) if int(found))
    out: dict[str, dict[str, int | None]] = {}
    for key, record_id in lacking:
        records = scan.indexes[key][0]
        if (records, record_id) in stored:
            out.setdefault(key, {})[record_id] = scan.created[records].get(record_id)
    for key, record_id in unqueued:
        out.setdefault(key, {})[record_id] = scan.created[scan.k.tasks].get(record_id)
    return out


def _unqueued(scan: _Scan, lacking: list[tuple[str, str]]) -> Operation[list[tuple[str, str]]]:
    """The tasks a queue's set of their status lacks (``lacking``: (the set, a task id the
    scan met with its status) that ZMSCORE found out of it), still out of it and still of its
    status and queue (ZSCORE, then HGET: a task claimed, reported, reaped or requeued after
    the scan read it is no damage), a thousand pairs a round trip. Such a task is never
    claimed (or reclaimed, promoted, requeued): claims read the sets, never the records; it
    is counted in its status by the counters still (a record put back by hand, a set's entry
    ZREM'ed, a restore of the sets older than the records)."""
    k = scan.k
    out: list[tuple[str, str]] = []
    for (key, task_id), score, raw in (
        yield from _paired(lacking, lambda e: (Cmd("ZSCORE", *e), Cmd("HGET", k.tasks, e[1])))
    ):
        if score is None and raw is not None and _of_set(raw) == scan.sets[key]:
            out.append((key, task_id))
    return out


def _of_set(raw: Any) -> tuple[str, str] | None:
    """The status and queue a stored task record names (None: it does not say, or cannot be
    read)."""
    try:
        record = loads(raw)
    except UNREADABLE:
        return None
    if not isinstance(record, dict):
        return None
    status, queue = record.get("status"), record.get("queue")
    return (status, queue) if isinstance(status, str) and isinstance(queue, str) else None


def _dangling(scan: _Scan) -> Operation[dict[str, list[str]]]:
    """Every entry of every index (those the scan met, the three of every record, and those
    of each pass, queue and shard the counters name: an index whose every record was
    deleted is met by none; and each queue's pending, delayed, leases and dead sets, which
    keep a task deleted by hand counted for ever) whose record is not stored: ZRANGE, a
    thousand entries a command, ``_rounds`` of them a round trip; those no record the scan
    met backs looked for again after (HEXISTS, and ZSCORE: a record stored after the scan
    read its hash, or retired with its entry meanwhile, is no damage). An index of a hash of
    another type is not read (its every entry would look dangling)."""
    k = scan.k
    held: dict[str, str] = {key: records for key, (records, _) in scan.indexes.items()}
    held.update({k.task_index: k.tasks, k.finding_index: k.findings})
    held[k.synthesis_index] = k.syntheses
    fields, passes = yield from past_wrong_type(
        (Cmd("HKEYS", k.counts), Cmd("HGETALL", k.pass_counts))
    )
    fields = [] if fields is WRONG_TYPE else fields
    for name in pass_names(None if passes is WRONG_TYPE else passes).values():
        held.setdefault(k.pass_tasks(name), k.tasks)
        held.setdefault(k.findings_by("pass", name), k.findings)
    queues = task_ops.queue_names(fields)
    for dimension, names in (("queue", queues), ("shard", task_ops.shard_names(fields))):
        for name in names:
            held.setdefault(k.findings_by(dimension, name), k.findings)
    for queue in queues:  # (its pending, delayed, leases and dead sets hold task ids)
        for status, set_of in SET_STATUSES.items():
            held.setdefault(set_of(k, queue), k.tasks)
            scan.sets.setdefault(set_of(k, queue), (status, queue))
    scan.records_of = held
    keys = sorted(key for key, records in held.items() if records not in scan.found["key"])
    sizes: list[Any] = []
    for start in range(0, len(keys), SCAN_COUNT):
        sizes += yield from past_wrong_type(
            tuple(Cmd("ZCARD", key) for key in keys[start : start + SCAN_COUNT])
        )
    pieces: list[tuple[str, int]] = []
    for key, size in zip(keys, sizes, strict=True):
        if size is WRONG_TYPE:
            scan.found["key"].append(key)
            continue
        pieces += [(key, start) for start in range(0, int(size), SCAN_COUNT)]
    maybe: list[tuple[str, str]] = []  # (index, an entry no record met backs)
    for some in _rounds(pieces, lambda _: SCAN_COUNT):
        replies = yield from past_wrong_type(
            tuple(Cmd("ZRANGE", key, start, start + SCAN_COUNT - 1) for key, start in some)
        )
        for (key, _), members in zip(some, replies, strict=True):
            if members is WRONG_TYPE:  # (a key made another type meanwhile)
                continue
            stored = scan.stored.get(held[key], set())
            maybe += [(key, i) for i in map(text, members) if i not in stored]
    out: dict[str, list[str]] = {}
    replies = yield from _paired(
        maybe, lambda entry: (Cmd("HEXISTS", held[entry[0]], entry[1]), Cmd("ZSCORE", *entry))
    )
    for (key, record_id), record, score in replies:
        if not int(record) and score is not None:
            out.setdefault(key, []).append(record_id)
    return out


def finding_lost(ctx: OpContext, task: Task | TaskCosts) -> Operation[str | None]:
    """The finding ``task`` completed with when its result is lost (``record_damage``'s
    ``findings_lost``, for one task): the task is completed naming a finding, that finding
    is no longer stored (deleted by hand), and no late report of the task (kept superseded:
    its work done again) holds its result. None otherwise. Given its ``TaskCosts``
    (``task_costs``, read already: ``swarm task show``), nothing is read; given the task,
    whether its finding is stored (one round trip, none for a task not completed), and only
    when it is not, its late reports (``task_costs``)."""
    if not isinstance(task, (Task, TaskCosts)):
        raise ValidationError(
            f"finding_lost takes a Task (get_task) or its TaskCosts (task_costs), not "
            f"{type(task).__name__}: read the task first"
        )
    if isinstance(task, Task):
        finding_id = _result_of(task)
        if finding_id is None:
            return None
        stored = yield Cmd("HEXISTS", ctx.keys.findings, finding_id)
        if int(stored):  # (stored, even damaged: `swarm findings FINDING_ID` says so)
            return None
        task = yield from task_costs(ctx, task.id)
    if task.finding is not None or task.superseded:
        return None
    return _result_of(task.task)


def _result_of(task: Task) -> str | None:
    """The finding that holds ``task``'s result: the one it completed with (None: it is not
    completed)."""
    return task.finding_id if TaskStatus(task.status) is TaskStatus.COMPLETED else None


def _lost_findings(scan: _Scan) -> Operation[dict[str, str]]:
    """The completed tasks whose finding the scan did not meet, and that still are and
    still lack it (HEXISTS both, a thousand pairs a round trip: a finding stored, or a task
    retired with its finding, after the scan read its hash is no damage): task id -> the
    finding id it names. A task some other stored finding is of is not lost: a late report
    of it (its work done again under its own id: the report is kept superseded, the task
    naming the finding lost still) holds its result (``finding_lost``: the rule for one
    task)."""
    k = scan.k
    if k.findings in scan.found["key"]:  # (no finding read: the key row says why)
        return {}
    stored = scan.stored.get(k.findings, set())
    maybe = sorted(
        (t, f) for t, f in scan.completed.items() if f not in stored and t not in scan.reported
    )
    replies = yield from _paired(
        maybe, lambda pair: (Cmd("HEXISTS", k.tasks, pair[0]), Cmd("HEXISTS", k.findings, pair[1]))
    )
    return {
        task_id: finding_id
        for (task_id, finding_id), task, finding in replies
        if int(task) and not int(finding)
    }


def _paired(
    items: list[tuple[str, str]], commands: Callable[[tuple[str, str]], tuple[Cmd, Cmd]]
) -> Operation[list[tuple[tuple[str, str], Any, Any]]]:
    """Each item with the replies of its two commands (``commands``), looked for again after
    the scan: ``SCAN_COUNT`` commands (half as many items) a round trip."""
    out: list[tuple[tuple[str, str], Any, Any]] = []
    for start in range(0, len(items), SCAN_COUNT // 2):
        some = items[start : start + SCAN_COUNT // 2]
        there = yield Batch(tuple(cmd for item in some for cmd in commands(item)))
        out += zip(some, there[::2], there[1::2], strict=True)
    return out


class _Scan:
    """The read of every record of ``record_damage``: what is damaged (``found``), the ids
    each index should hold (``indexes``: key -> (the hash of its records, the ids met)), the
    ids met of each hash of records (``stored``), the completed tasks' finding ids
    (``completed``), the chunks the manifests name (``chunks``: digest -> [(its stored
    length, OWNER|VERSION using it)]), each record's score in its indexes (``created``: hash
    -> id -> its ``created_at``, None when it holds none: ``_index_score``), the task of each
    finding not superseded (``reports``), the tasks any readable finding is of (``reported``),
    the hash of records of every index (``records_of``, set by ``_dangling``), and the status
    and queue of each queue's set (``sets``: a task of a status a set holds is met in its
    queue's set of it, as an index of it)."""

    def __init__(self, k: Keys) -> None:
        self.k = k
        self.found: dict[str, list[str]] = {kind: [] for kind in RECORD_KINDS}
        self.indexes: dict[str, tuple[str, set[str]]] = {}
        self.chunks: dict[str, list[tuple[int, str]]] = {}
        self.half_stored: set[str] = set()  # (see forgive_half_stored)
        self.stored: dict[str, set[str]] = {}  # the ids met, by hash of records
        self.completed: dict[str, str] = {}  # completed task id -> its finding's id
        self.created: dict[str, dict[str, int | None]] = {}
        self.reports: dict[str, str] = {}  # finding id (not superseded) -> its task's id
        self.reported: set[str] = set()  # the tasks any readable finding is of
        self.records_of: dict[str, str] = {}
        # a queue's pending, delayed, leases and dead sets: key -> (the status, the queue)
        self.sets: dict[str, tuple[str, str]] = {}

    def forgive_half_stored(self) -> None:
        """The first tries' records of half-stored reports (``HALF_STORED_FIELD``) taken out
        of what the indexes should hold: each stays in no index by design, its superseded
        copy indexed in its place."""
        for _, seen in self.indexes.values():
            seen -= self.half_stored

    def waiting_reports(self, lacking: dict[str, dict[str, int | None]]) -> dict[str, str]:
        """The reports stored half-way (finding id -> its task's id), taken out of what
        ``lacking`` says the findings' indexes lack: a finding not superseded, in no index
        (each index of it lacks it), whose task, stored, is not completed with it. Its
        report's first try stopped after storing it (a command its user's ACL refused: a
        script is not rolled back), and its retry completes the report only while the
        findings' index lacks it (lua/_report.lua): indexed by a repair, it would be taken
        for a report already done (its task left unsettled, or, settled meanwhile, listing
        two findings not superseded)."""
        k = self.k
        tasks = self.stored.get(k.tasks, set())
        waiting = {
            finding_id: task_id
            for finding_id in lacking.get(k.finding_index, {})
            if (task_id := self.reports.get(finding_id)) is not None
            and task_id in tasks
            and self.completed.get(task_id) != finding_id
        }
        findings_indexes = [
            key for key, (records, _) in self.indexes.items() if records == k.findings
        ]
        for key in findings_indexes:  # (one index holding it: an entry lost, no report waiting)
            seen, lacked = self.indexes[key][1], lacking.get(key, {})
            for finding_id in [f for f in waiting if f in seen and f not in lacked]:
                del waiting[finding_id]
        for key in findings_indexes:
            lacked = lacking.get(key, {})
            for finding_id in waiting:
                lacked.pop(finding_id, None)
            if key in lacking and not lacked:
                del lacking[key]
        return waiting

    def _met(self, key: str, records: str, record_id: str) -> None:
        self.indexes.setdefault(key, (records, set()))[1].add(record_id)
        self.stored.setdefault(records, set()).add(record_id)

    def run(self) -> Operation[None]:
        """HSCAN every hash of records side by side, a thousand of each per round trip."""
        k = self.k
        # (scan name -> hash, what to do with each field and value)
        scans: dict[str, tuple[str, Callable[[str, Any], None]]] = {
            "task": (k.tasks, self._task),
            "task data": (k.task_data, self._task_data),
            "finding": (k.findings, self._finding),
            "synthesis": (k.syntheses, self._synthesis),
            "agent": (k.agents, self._agent),
            "context": (k.contexts, self._pointer),
            "version": (k.context_manifests, self._version),
            "message": (k.messages, self._message),
            "cursor": (k.cursors, self._cursor),
        }
        cursors = dict.fromkeys(scans, "0")
        while cursors:
            scanning = list(cursors)
            replies = yield from past_wrong_type(
                tuple(
                    Cmd("HSCAN", scans[name][0], cursors[name], "COUNT", SCAN_COUNT)
                    for name in scanning
                )
            )
            for name, reply in zip(scanning, replies, strict=True):
                if reply is WRONG_TYPE:  # (the whole hash is another type: named, skipped)
                    self.found["key"].append(scans[name][0])
                    del cursors[name]
                    continue
                cursor, entries = reply
                take = scans[name][1]
                for field, raw in _hash_items(entries):
                    take(text(field), raw)
                cursors[name] = text(cursor)
                if cursors[name] == "0":
                    del cursors[name]

    def _unreadable(self, kind: str, record_id: str, decode: Callable[[], R]) -> R | None:
        try:
            return decode()
        except UNREADABLE:
            self.found[kind].append(record_id)
            return None

    def _task(self, task_id: str, raw: Any) -> None:
        k = self.k
        self._met(k.task_index, k.tasks, task_id)
        task = self._unreadable("task", task_id, lambda: task_from(raw, None, strict=True))
        self._created(k.tasks, task_id, None if task is None else task.created_at, raw)
        if task is None:
            return
        if task.pass_name is not None:
            self._met(k.pass_tasks(task.pass_name), k.tasks, task_id)
        set_of = SET_STATUSES.get(task.status.value)
        if set_of is not None:  # (claims, reaps and requeues read the set, never the record)
            self.sets[set_of(k, task.queue)] = (task.status.value, task.queue)
            self._met(set_of(k, task.queue), k.tasks, task_id)
        if task.status is TaskStatus.COMPLETED and task.finding_id:
            self.completed[task_id] = task.finding_id

    def _task_data(self, task_id: str, raw: Any) -> None:
        # a task's data is a record of its task too, which a claim leases and then cannot
        # hand over (named under the task's id)
        self._unreadable("task", task_id, lambda: loads(raw))

    def _finding(self, finding_id: str, raw: Any) -> None:
        k = self.k
        self._met(k.finding_index, k.findings, finding_id)
        finding = self._unreadable("finding", finding_id, lambda: finding_from(raw))
        self._created(k.findings, finding_id, None if finding is None else finding.created_at, raw)
        if finding is None:
            return
        if not finding.superseded and finding.task_id:
            self.reports[finding_id] = finding.task_id
        if finding.task_id:
            self.reported.add(finding.task_id)
        stands_for = loads(raw).get(HALF_STORED_FIELD)
        if isinstance(stands_for, str):
            self.half_stored.add(stands_for)
        # (as a report indexes it: lua/task_report.lua)
        for dimension, value in (
            ("queue", finding.queue), ("pass", finding.pass_name), ("shard", finding.shard)
        ):  # fmt: skip
            if value is not None:
                self._met(k.findings_by(dimension, value), k.findings, finding_id)

    def _synthesis(self, synthesis_id: str, raw: Any) -> None:
        self._met(self.k.synthesis_index, self.k.syntheses, synthesis_id)
        synthesis = self._unreadable("synthesis", synthesis_id, lambda: synthesis_from(raw))
        stamp = None if synthesis is None else synthesis.created_at
        self._created(self.k.syntheses, synthesis_id, stamp, raw)

    def _created(self, records: str, record_id: str, stamp: Any, raw: Any) -> None:
        """The score of a record in its indexes: its ``created_at`` as the typed read kept
        it, when a whole number (else, a default or a record not read, as ``_index_score``
        reads it from the stored JSON: rarely, a record written by hand)."""
        score = stamp if type(stamp) is int and stamp else _index_score(raw)
        self.created.setdefault(records, {})[record_id] = score

    def _agent(self, agent_id: str, raw: Any) -> None:
        self._unreadable("agent", agent_id, lambda: Agent.from_dict(agent_ops.agent_state(raw)))

    def _pointer(self, owner: str, raw: Any) -> None:
        m = self._unreadable("context", owner, lambda: parse_manifest(raw, owner))
        if m is not None:
            self._uses(m, f"{m.info.owner}|{m.version}")

    def _version(self, field: str, raw: Any) -> None:
        m = self._unreadable("version", field, lambda: parse_manifest(raw))
        if m is not None:
            self._uses(m, field)

    def _uses(self, m: Manifest, version: str) -> None:
        for part in m.parts:
            self.chunks.setdefault(part.digest, []).append((part.stored_len, version))

    def _message(self, message_id: str, raw: Any) -> None:
        if not message_ops.index_entry_ok(text(raw)):
            self.found["message"].append(message_id)

    def _cursor(self, field: str, raw: Any) -> None:
        if not message_ops.cursor_ok(field, text(raw)):
            self.found["cursor"].append(field)

    def check_chunks(self) -> Operation[None]:
        """Every chunk the manifests name against the stored length they give it (HSTRLEN: a
        missing chunk has none), a thousand per round trip; a chunk found short names it and
        the versions that use it."""
        digests = sorted(self.chunks)
        short: dict[str, list[str]] = {}  # digest -> the versions it is short for
        for start in range(0, len(digests), SCAN_COUNT):
            some = digests[start : start + SCAN_COUNT]
            lengths = yield from past_wrong_type(
                tuple(Cmd("HSTRLEN", self.k.chunk(d), "data") for d in some)
            )
            for digest, length in zip(some, lengths, strict=True):
                # (a chunk key of another type is a damaged chunk, and a key to DEL before
                # the repair, whose writes it would refuse: no length matches)
                stored = -1 if length is WRONG_TYPE else int(length)
                if length is WRONG_TYPE:
                    self.found["key"].append(self.k.chunk(digest))
                wrong = [version for size, version in self.chunks[digest] if size != stored]
                if wrong:
                    short[digest] = wrong
        # A version pruned meanwhile (its chunks collected after the manifests were read) is
        # no damage: those still kept are named (HEXISTS after HSTRLEN, as ``_lacking`` does).
        versions = sorted({v for wrong in short.values() for v in wrong})
        kept: set[str] = set()
        for start in range(0, len(versions), SCAN_COUNT):
            some = versions[start : start + SCAN_COUNT]
            there = yield Batch(tuple(Cmd("HEXISTS", self.k.context_manifests, v) for v in some))
            kept.update(v for v, found in zip(some, there, strict=True) if int(found))
        for digest, wrong in short.items():
            still = [v for v in wrong if v in kept]
            if still:
                self.found["chunk"].append(digest)
                self.found["version"] += still
