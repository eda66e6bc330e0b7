"""``swarm doctor``'s rows of what its read of every record found (``Swarm.record_damage``)
and of what ``--repair`` did (``Swarm.repair_indexes``): the damaged records and how to
repair each kind, the entries each index lacks or holds in vain, the completed tasks whose
finding is gone, and the reports stored half-way; each as the JSON report holds it and as
the human table says it. (No asyncio, no redis: ``swarm --help`` imports cli/_server.py.)
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._codec import counted, first_few
from .._models import RECORD_KINDS, REPAIR_COMMAND, IndexEntries
from .._printable import short_version, shown_name

if TYPE_CHECKING:
    from .._keys import Keys
    from .._models import RecordDamage

__all__ = [
    "FINDINGS_LOST",
    "LOST_FINDING_REDO",
    "NAMED",
    "ROWS",
    "corrupt_row",
    "damage_rows",
    "entries_row",
    "lost_finding_cleared",
    "repaired_and_left",
]


def corrupt_row(found: dict[str, Any], keys: Keys, cli: str) -> str:
    """The ``corrupt_records`` row: what is damaged, and how to repair each kind found;
    ``cli``: the start of the redis-cli commands it gives (``_durability.redis_cli``: the
    server's connection, and a login that may run them)."""
    if not found["checked"]:
        return f"not checked: {found['reason']}"
    named = [
        f"{kind} {_short_id(kind, record_id)}" for kind in RECORD_KINDS for record_id in found[kind]
    ]
    if not named:
        return "none"
    repairs = "; ".join(
        repair(keys, cli) for kinds, repair in _REPAIRS if any(found[kind] for kind in kinds)
    )
    return f"{len(named):,}: {first_few(named, 10)} (written around redis-swarm; {repairs})"


def _short_id(kind: str, record_id: str) -> str:
    """A damaged record's id as the row shows it: a version or chunk by its short hash; an
    id that is no printable one-line text (written around redis-swarm) quoted and escaped
    (``shown_name``)."""
    if kind == "chunk":
        return _id(short_version(record_id))
    if kind == "version":
        owner, _, version = record_id.rpartition("|")
        return _id(f"{owner}|{short_version(version)}")
    return _id(record_id)


def _id(record_id: str) -> str:
    """An id the report holds as a row names it (``shown_name``): anyone who may write a
    hash or an index of the swarm may have put any text there."""
    return shown_name(record_id, label=True)


# What the doctor's row says to do about each group of kinds of damaged records it names,
# from the keys and the start of a redis-cli command (``corrupt_row``'s ``cli``).
_REPAIRS: tuple[tuple[tuple[str, ...], Callable[[Keys, str], str]], ...] = (
    (
        ("task", "synthesis", "agent", "context"),
        lambda _, __: (
            "listings skip those records: rewrite or delete each from Redis (a deleted task's "
            f"or synthesis's index entries stay behind: {REPAIR_COMMAND} removes them)"
        ),
    ),
    (
        ("finding",),
        lambda keys, cli: (
            f"listings skip those findings: rewrite each, or delete it: {cli}HDEL "
            f"{shlex.quote(keys.findings)} ID; a deleted finding leaves its task completed "
            "with no result (the findings_lost row then names it: "
            f"{LOST_FINDING_REDO}) and its index entries behind ({REPAIR_COMMAND} "
            "removes them)"
        ),
    ),
    (
        ("version", "chunk"),
        lambda _, __: (
            "a read of those context versions is refused: publish each version's text "
            "again with repair, which sends every chunk anew: swarm context publish FILE --owner "
            "OWNER --repair (that makes it the owner's current version: for an older one, "
            "publish the current text again after it)"
        ),
    ),
    (
        ("message",),
        lambda keys, cli: (
            f"message_status cannot read those messages: {cli}HDEL "
            f"{shlex.quote(keys.messages)} ID of each (it then says the message is unknown)"
        ),
    ),
    (
        ("cursor",),
        lambda _, __: (
            "those agents' inbox reads are refused, each refusal naming the field's repair "
            "and what it costs (swarm msg inbox AGENT --peek says it)"
        ),
    ),
    (
        ("key",),
        lambda _, __: (
            "those keys hold another type than redis-swarm writes there, so whatever reads "
            "them fails: what they held is lost; as an admin, DEL each (redis-swarm makes it "
            "anew) after saving what it holds if you want it (TYPE, then DUMP)"
        ),
    ),
    (
        ("index",),
        lambda _, __: (
            "those indexes lack records, or hold entries of records no longer stored (the "
            f"index_entries row names them): {REPAIR_COMMAND} puts them right"
        ),
    ),
)


# The most ids a row names of one list (the rest counted).
NAMED = 10


def entries_row(entries: IndexEntries) -> dict[str, Any]:
    """One index's wrong entries as the report holds them: how many of each, the first
    ``NAMED`` ids, and the lacking ones whose record says no creation time."""
    lacking = sorted(entries.lacking)
    unscored = [i for i in lacking if entries.lacking[i] is None]
    return {
        "index": entries.index,
        "lacking_count": len(lacking),
        "lacking": lacking[:NAMED],
        "unscored_count": len(unscored),
        "unscored": unscored[:NAMED],
        "dangling_count": len(entries.dangling),
        "dangling": list(entries.dangling[:NAMED]),
    }


def repaired_and_left(
    repaired: tuple[IndexEntries, ...],
) -> tuple[list[IndexEntries], list[IndexEntries]]:
    """What ``Swarm.repair_indexes`` did to each index, and what it could not re-add (each
    index's records lacked at None: no creation time), apart: the ``indexes_repaired`` row
    says the first, the ``index_entries`` row the rest (under ``--quick``, the one check
    that names them)."""
    done: list[IndexEntries] = []
    left: list[IndexEntries] = []
    for entries in repaired:
        added: dict[str, int | None] = {}
        unscored: dict[str, int | None] = {}
        for record_id, score in entries.lacking.items():
            (unscored if score is None else added)[record_id] = score
        if added or entries.dangling:
            done.append(IndexEntries(entries.index, added, entries.dangling))
        if unscored:
            left.append(IndexEntries(entries.index, unscored))
    return done, left


def _few(ids: list[str], count: int) -> str:
    """The ids a report holds of a list of ``count``, the rest counted."""
    more = count - len(ids)
    return ", ".join(_id(i) for i in ids) + (f" and {more:,} more" if more > 0 else "")


def _index_entries(rows: list[dict[str, Any]]) -> str:
    """The ``index_entries`` row: the records each index lacks, its entries of records no
    longer stored, and the repair."""
    said: list[str] = []
    unscored: list[str] = []
    for row in rows:
        parts = []
        if row["lacking_count"]:
            parts.append(
                f"lacks {row['lacking_count']:,}: {_few(row['lacking'], row['lacking_count'])}"
            )
        if row["dangling_count"]:
            parts.append(
                f"holds {counted(row['dangling_count'], 'entry', 'entries')} whose record is "
                "no longer stored: "
                f"{_few(row['dangling'], row['dangling_count'])}"
            )
        said.append(f"{row['index']} {', and '.join(parts)}")
        if row["unscored_count"]:
            unscored.append(_few(row["unscored"], row["unscored_count"]))
    text = (
        f"{'; '.join(said)} (listings miss the records lacked and skip the other entries: "
        f"{REPAIR_COMMAND}, as a shard, coordinator or admin user, re-adds each record "
        "lacked at its creation time and removes the other entries"
    )
    if unscored:
        text += (
            f"; it cannot re-add {', '.join(unscored)}: the record holds no creation time "
            "(created_at): rewrite it first"
        )
    return text + ")"


def _repaired(rows: list[dict[str, Any]]) -> str:
    """The ``indexes_repaired`` row: what the repair re-added to and removed from each."""
    if not rows:
        return "nothing it could repair (any record an index still lacks is named above)"
    said = []
    for row in rows:
        parts = []
        if row["lacking_count"]:
            parts.append(f"re-added {_few(row['lacking'], row['lacking_count'])}")
        if row["dangling_count"]:
            parts.append(f"removed {_few(row['dangling'], row['dangling_count'])}")
        said.append(f"{row['index']}: {', '.join(parts)}")
    return "; ".join(said)


def _findings_lost(lost: dict[str, Any], keys: Keys, cli: str) -> str:
    """The ``findings_lost`` row: the completed tasks whose finding is no longer stored."""
    return (
        f"{_pairs_said(lost, 'tasks')} (completed, their finding no longer stored: deleted by "
        f"hand, their result is lost: {LOST_FINDING_REDO}. {lost_finding_cleared(keys, cli)})"
    )


def lost_finding_cleared(keys: Keys, cli: str, by: str = "") -> str:
    """How a completed task whose finding is lost stops being named (the ``findings_lost``
    row, ``swarm task show`` of such a task): once posted again, the old task stays.
    ``cli``: as ``corrupt_row``'s; ``by``: who runs its commands (``_durability.Repair``'s
    ``by``: "" for the URL's own user)."""
    return (
        "A task posted again is a new task: the old one stays named until it is gone: retire "
        "its pass once the pass is done with (swarm retire PASS removes its settled tasks and "
        f"findings, those redone too), or delete the old task{' ' + by if by else ''}: "
        f"{cli}HDEL {shlex.quote(keys.tasks)} ID, then {cli}HDEL "
        f"{shlex.quote(keys.task_data)} ID, then "
        f"{REPAIR_COMMAND} removes its index entries (its counters keep it completed). A late "
        "report of the old task itself, kept superseded, holds its result: it is named no more"
    )


def _pairs_said(row: dict[str, Any], listed: str) -> str:
    """A row of pairs (``_pairs_row``) as the human table says it: the count, then each of
    the first ``NAMED`` as its first id, the second in brackets (``task T (finding F)``)."""
    named = [
        f"{first} {_id(pair[first])} ({second} {_id(pair[second])})"
        for pair in row[listed]
        for first, second in [tuple(pair)]
    ]
    return f"{row['count']:,}: {_few(named, row['count'])}"


# The row naming the completed tasks whose finding is gone (``swarm task show`` of one names it).
FINDINGS_LOST = "findings_lost"
# What to do about a completed task whose finding is gone (the doctor's findings_lost row, its
# damaged-finding repair and ``swarm task show`` of such a task say it).
LOST_FINDING_REDO = (
    "post each task again to redo its work (swarm task show ID gives its queue, pass, description "
    "and data: swarm task post QUEUE DESCRIPTION --pass PASS --data DATA), or restore the finding "
    "under its id from a backup"
)


def damage_rows(report: dict[str, Any], damage: RecordDamage) -> None:
    """The rows of what ``record_damage`` found besides ``corrupt_records`` (each only when
    there is one): ``index_entries``, ``findings_lost`` and ``reports_half_stored``; the
    last two fail the doctor (``ok`` false: a task's result is lost, or a report waits for
    its retry), as the index damage does through ``corrupt_records``."""
    if damage.indexes:  # (named by the corrupt_records row too)
        report["index_entries"] = [entries_row(e) for e in damage.indexes]
    _pairs_row(report, FINDINGS_LOST, damage.lost_findings, "tasks", ("task", "finding"))
    _pairs_row(report, "reports_half_stored", damage.half_stored, "findings", ("finding", "task"))


def _pairs_row(
    report: dict[str, Any],
    row: str,
    pairs: dict[str, str],
    listed: str,
    names: tuple[str, str],
) -> None:
    """Row ``row`` of ``pairs`` (id -> the id it goes with), when there is one: their count
    and the first ``NAMED`` by id under ``listed``, each pair keyed by ``names``; it fails
    the doctor."""
    if not pairs:
        return
    ordered = sorted(pairs.items())
    report[row] = {
        "count": len(ordered),
        listed: [dict(zip(names, pair, strict=True)) for pair in ordered[:NAMED]],
    }
    report["ok"] = False


def _half_stored(waiting: dict[str, Any], keys: Keys, cli: str) -> str:
    """The ``reports_half_stored`` row: the reports whose first try stopped half-way."""
    return (
        f"{_pairs_said(waiting, 'findings')} (each a report whose first try "
        "stopped half-way, refused a command by its user's ACL: its finding stored, listed "
        "nowhere, its task not completed with it; retry the report with the same finding id "
        "and finding (swarm task report T --finding-id ID ..., or from the program that made "
        "it: Swarm.report(..., finding_id=ID)), which completes the task, or keeps the "
        "finding superseded when the task was settled since (a worker user made by an older "
        "redis-swarm gets the rights it lacked when `swarm acl --apply` is run for it "
        "again); if no retry will come, "
        f"delete the finding: {cli}HDEL {shlex.quote(keys.findings)} ID (listed "
        f"nowhere, it leaves nothing behind). {REPAIR_COMMAND} leaves them to their retry)"
    )


# The human renderer of each row of this module (the corrupt_records row: ``corrupt_row``).
ROWS: dict[str, Callable[[Any, Keys, str], str]] = {
    "indexes_repaired": lambda rows, _, __: _repaired(rows),
    "index_entries": lambda rows, _, __: _index_entries(rows),
    FINDINGS_LOST: _findings_lost,
    "reports_half_stored": _half_stored,
}
