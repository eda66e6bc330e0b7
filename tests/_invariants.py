"""A checker of the invariants a swarm's data must keep, whatever happened to it.

``check_swarm(client, swarm)`` reads every key of the swarm straight from Redis (not through
the library, so that a bug in the library cannot hide itself) and raises AssertionError
listing every broken invariant:

- the counters (``Keys.counts``, ``Keys.pass_counts``) agree with the statuses in the tasks
  hash; every pending, delayed, claimed (lease) and dead index entry points to a task in that
  state and queue, with the right score; every task in such a state is in its index, and no
  task is in two indexes; leases exist only for claimed tasks; a queue's due hint (a field
  ``due:...`` of ``Keys.counts``) is never after its first lease deadline or delayed task;
- the task index, task data, dedupe and pass indexes point to stored tasks;
- a completed task has exactly one current (not superseded) finding, the one it names; an
  open or dead task has none;
- every finding index points to stored findings of the right queue, pass and shard;
  syntheses cite stored findings (but those of a pass retired since, ``Keys.retired_passes``);
- a context's pointer, kept manifests and history agree; every chunk a kept version uses is
  stored and held by it; no chunk is held by nobody (no leak) unless ``chunk_leaks_ok``,
  and every token on a chunk that is not a kept version's is in gc's journal;
- agents, presence, cursors and inboxes agree;
- every event is of a known type;
- no key exists outside the key families of ``_keys.py`` (no orphan keys), and no key of
  another swarm or of no swarm at all exists unless ``foreign_ok``.

It returns a ``Summary`` of what it saw (tasks per status, findings, superseded findings,
events per type), which the chaos tests use for their own assertions and report.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

import redis

from redis_swarm._keys import Keys, label_id
from redis_swarm._models import EventType
from redis_swarm._ops.tasks import queue_names

__all__ = ["Summary", "check_swarm", "event_entries", "key_families"]

PRIO_SHIFT = 2**39
STATUSES = ("pending", "delayed", "claimed", "completed", "dead", "cancelled")
# The index of each status that has one (completed and cancelled tasks are in none).
_INDEXED = {"pending": "pending", "delayed": "delayed", "claimed": "leases", "dead": "dead"}
_NAME = r"[A-Za-z0-9._\-]+"
_HASH16 = r"[0-9a-f]{16}"
_EVENT_TYPES = frozenset(t.value for t in EventType)


@dataclass
class Summary:
    """What the checker saw."""

    tasks: Counter[str] = field(default_factory=Counter)  # status -> count
    findings: int = 0
    superseded: int = 0
    events: Counter[str] = field(default_factory=Counter)  # event type -> count
    keys: int = 0


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def key_families(swarm: str) -> list[re.Pattern[str]]:
    """A pattern per key builder of ``_keys.Keys``, derived from the builders themselves, so
    a key family added there is known here without a change."""
    keys = Keys(swarm)
    patterns: list[re.Pattern[str]] = []
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name in ("prefix", "swarm"):
            continue
        if isinstance(member, property):
            patterns.append(re.compile(re.escape(getattr(keys, name))))
            continue
        if not inspect.isfunction(member):
            continue
        params = list(inspect.signature(member).parameters)[1:]
        # Sentinels made of characters no pattern contains; placeholders survive re.escape.
        sentinels = [f"{'Q' * 60}{'QRSTUV'[i]}{'Q' * 3}" for i in range(len(params))]
        key = getattr(keys, name)(*sentinels)
        for s in sentinels:
            key = key.replace(label_id(s), "\x01").replace(s, "\x02").replace(s[:16], "\x02")
        regex = re.escape(key).replace("\x01", _HASH16).replace("\x02", _NAME)
        patterns.append(re.compile(regex))
    return patterns


def event_entries(client: redis.Redis, swarm: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of the swarm's event stream, oldest first, as str dicts."""
    out: list[tuple[str, dict[str, str]]] = []
    start = "-"
    while True:
        batch: list[tuple[Any, dict[Any, Any]]] = client.xrange(  # type: ignore[assignment]
            Keys(swarm).events, start, "+", count=10_000
        )
        if not batch:
            return out
        for entry_id, fields in batch:
            out.append((_s(entry_id), {_s(k): _s(v) for k, v in fields.items()}))
        start = "(" + out[-1][0]


def _zset(client: redis.Redis, key: str) -> dict[str, float]:
    pairs: list[tuple[Any, Any]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
    return {_s(m): float(score) for m, score in pairs}


def _hash(client: redis.Redis, key: str) -> dict[str, Any]:
    return {_s(k): v for k, v in client.hgetall(key).items()}


def check_swarm(
    client: redis.Redis,
    swarm: str = "test",
    *,
    versions_kept: int = 3,
    chunk_leaks_ok: bool = False,
    foreign_ok: bool = False,
    events: bool = True,
) -> Summary:
    """Check every invariant of ``swarm`` on the server behind ``client``; return a Summary.
    Raises AssertionError listing every problem found. Call it when the swarm is quiet."""
    problems: list[str] = []
    summary = Summary()
    k = Keys(swarm)

    # --- keys: every key belongs to a known family (no orphans)
    families = key_families(swarm)
    all_keys = sorted(_s(key) for key in client.scan_iter(count=1000))
    summary.keys = len(all_keys)
    chunk_keys: list[str] = []
    for key in all_keys:
        ours = key.startswith((k.prefix, f"rs:chunk:{{{swarm}."))
        if not ours:
            if not foreign_ok:
                problems.append(f"key {key!r} belongs to no family of swarm {swarm!r}")
            continue
        if not any(p.fullmatch(key) for p in families):
            problems.append(f"orphan key {key!r}: no key builder of _keys.py makes it")
        elif key.startswith("rs:chunk:"):
            chunk_keys.append(key)

    # --- tasks
    tasks: dict[str, dict[str, Any]] = {
        tid: json.loads(raw) for tid, raw in _hash(client, k.tasks).items()
    }
    queues = set(queue_names(client.hkeys(k.counts)))
    counts = {f: int(v) for f, v in _hash(client, k.counts).items()}
    pass_counts = {f: _s(v) for f, v in _hash(client, k.pass_counts).items()}
    by_queue: Counter[str] = Counter()
    by_pass: Counter[str] = Counter()
    seqs: Counter[int] = Counter()
    for tid, t in tasks.items():
        status = t.get("status")
        if t.get("id") != tid:
            problems.append(f"task {tid}: stored under another id ({t.get('id')!r})")
        if status not in STATUSES:
            problems.append(f"task {tid}: unknown status {status!r}")
            continue
        summary.tasks[status] += 1
        by_queue[f"{t['queue']}|{status}"] += 1
        if "parent" in t:
            by_queue[f"shard:{t['parent']}|{status}"] += 1
        seqs[int(t.get("seq", -1))] += 1
        if t["queue"] not in queues:
            problems.append(f"task {tid}: queue {t['queue']!r} is not among the counts' queues")
        if "pass_name" in t:
            pid = t.get("pass_id")
            if pid != label_id(t["pass_name"]):
                problems.append(f"task {tid}: pass_id {pid!r} is not the pass name's")
            by_pass[f"{pid}|{status}"] += 1
            if pass_counts.get(str(pid)) != t["pass_name"]:
                problems.append(f"task {tid}: pass_counts does not name pass {pid}")
        attempts = int(t.get("attempts", 0))
        for spent, limit in (("failures", "max_attempts"), ("abandons", "max_abandons")):
            n = int(t.get(spent, 0))
            most = t.get(limit)
            if not isinstance(most, int | float) or isinstance(most, bool) or not isfinite(most):
                # (every post writes both: a record without one was written around the scripts)
                problems.append(
                    f"task {tid}: no {limit} (every post writes one)"
                    if most is None
                    else f"task {tid}: {limit} {most!r} is not a finite number"
                )
                most = None
            if not 0 <= n <= attempts or (most is not None and n > int(most)):
                problems.append(
                    f"task {tid}: {spent} {n} outside 0..min(attempts {attempts}, {limit} {most})"
                )
        if status == "claimed":
            if not t.get("worker") or t.get("lease_deadline") is None or attempts < 1:
                problems.append(f"task {tid}: claimed without worker, deadline or attempt")
            elif t.get("claims", {}).get(str(attempts)) != t["worker"]:
                problems.append(f"task {tid}: token {attempts} was not issued to {t['worker']}")
        elif t.get("lease_deadline") is not None:
            problems.append(f"task {tid}: {status} but still has a lease deadline")
        if status == "dead" and not t.get("dead_reason"):
            problems.append(f"task {tid}: dead without a reason")
        if status == "completed" and (not t.get("finding_id") or not t.get("completed_at")):
            problems.append(f"task {tid}: completed without finding_id or completed_at")
    duplicates = sorted(seq for seq, n in seqs.items() if n > 1)
    if duplicates:
        problems.append(f"posting sequence numbers used twice: {duplicates[:10]}")
    if tasks and int(counts.get("#seq", 0)) < max(seqs):
        problems.append(f"#seq {counts.get('#seq')} is below the highest task seq {max(seqs)}")

    # a queue's due hint (not a counter) is never after its earliest lease deadline or due
    # delayed task: claims skip the scans until it comes
    for fieldname, value in counts.items():
        if not fieldname.startswith("due:"):
            continue
        delayed = fieldname.removeprefix("due:")
        for key in (delayed, delayed.removesuffix(":delayed") + ":leases"):
            first = client.zrange(key, 0, 0, withscores=True)
            if first and value > float(first[0][1]):
                problems.append(f"{fieldname} is {value}, after {key}'s first at {first[0][1]}")

    # counters agree with the statuses
    for fieldname, value in counts.items():
        if fieldname == "#seq" or fieldname.startswith("due:"):
            continue
        if value != by_queue.get(fieldname, 0):
            problems.append(
                f"counts[{fieldname!r}] is {value}, the tasks hash says "
                f"{by_queue.get(fieldname, 0)}"
            )
    for fieldname, n in by_queue.items():
        if fieldname not in counts:
            problems.append(f"counts has no {fieldname!r} field for {n} task(s)")
    for fieldname, raw in pass_counts.items():
        if "|" not in fieldname:
            continue
        if int(raw) != by_pass.get(fieldname, 0):
            problems.append(
                f"pass_counts[{fieldname!r}] is {raw}, the tasks hash says "
                f"{by_pass.get(fieldname, 0)}"
            )
    for fieldname, n in by_pass.items():
        if fieldname not in pass_counts:
            problems.append(f"pass_counts has no {fieldname!r} field for {n} task(s)")

    # indexes point to tasks in their state, and every such task is in exactly its index
    where: dict[str, list[str]] = {}
    for queue in sorted(queues):
        for index in ("pending", "delayed", "leases", "dead"):
            key = getattr(k, index)(queue)
            for tid, score in _zset(client, key).items():
                where.setdefault(tid, []).append(f"{queue}:{index}")
                held = tasks.get(tid)
                if held is None:
                    problems.append(f"{key} holds {tid}, which is not a stored task")
                    continue
                want = {v: s for s, v in _INDEXED.items()}[index]
                if held["status"] != want or held["queue"] != queue:
                    problems.append(
                        f"{key} holds {tid}, which is {held['status']} in queue {held['queue']}"
                    )
                elif index == "pending":
                    expect = -int(held["priority"]) * PRIO_SHIFT + int(held["seq"])
                    if score != expect:
                        problems.append(f"{tid}: pending score {score} is not {expect}")
                elif index == "leases" and score != float(held["lease_deadline"]):
                    problems.append(
                        f"{tid}: lease score {score} is not its deadline {held['lease_deadline']}"
                    )
                elif index == "delayed" and score != float(held.get("not_before", score)):
                    problems.append(f"{tid}: delayed score {score} is not its not_before")
    for tid, places in where.items():
        if len(places) > 1:
            problems.append(f"task {tid} is in several indexes: {', '.join(places)}")
    for tid, t in tasks.items():
        own = _INDEXED.get(t.get("status", ""))
        if own is not None and f"{t['queue']}:{own}" not in where.get(tid, []):
            problems.append(f"task {tid} is {t['status']} but not in its queue's {own} index")

    task_index = _zset(client, k.task_index)
    if set(task_index) != set(tasks):
        problems.append(
            f"task_index and tasks differ: {len(set(task_index) - set(tasks))} indexed but "
            f"not stored, {len(set(tasks) - set(task_index))} stored but not indexed"
        )
    for tid in _hash(client, k.task_data):
        if tid not in tasks:
            problems.append(f"task_data holds {tid}, which is not a stored task")
    for fieldname, raw in _hash(client, k.dedupe).items():
        target = tasks.get(_s(raw))
        if target is None or f"{target['queue']}|{target.get('dedupe_key')}" != fieldname:
            problems.append(f"dedupe {fieldname!r} points to {_s(raw)}, not its task")
    passes = {t["pass_name"] for t in tasks.values() if "pass_name" in t}
    for name in passes:
        members = set(_zset(client, k.pass_tasks(name)))
        want_ids = {tid for tid, t in tasks.items() if t.get("pass_name") == name}
        if members != want_ids:
            problems.append(f"the task index of pass {name!r} does not list its tasks")

    # --- findings
    findings = {fid: json.loads(raw) for fid, raw in _hash(client, k.findings).items()}
    summary.findings = len(findings)
    current: dict[str, list[str]] = {}
    for fid, f in findings.items():
        if f.get("id") != fid:
            problems.append(f"finding {fid}: stored under another id ({f.get('id')!r})")
        of = tasks.get(f.get("task_id", ""))
        if of is None:
            problems.append(f"finding {fid}: its task {f.get('task_id')!r} is not stored")
            continue
        if f.get("superseded"):
            summary.superseded += 1
        else:
            current.setdefault(of["id"], []).append(fid)
        for name, want_value in (
            ("queue", of["queue"]),
            ("pass_name", of.get("pass_name")),
            ("shard", of.get("parent")),
        ):
            if f.get(name) != want_value:
                problems.append(f"finding {fid}: {name} {f.get(name)!r} is not its task's")
    for tid, t in tasks.items():
        mine = current.get(tid, [])
        if t["status"] == "completed":
            if mine != [t.get("finding_id")]:
                problems.append(
                    f"task {tid} is completed by {t.get('finding_id')} but its current "
                    f"findings are {mine}"
                )
        elif mine:
            problems.append(f"task {tid} is {t['status']} but has current findings {mine}")
    if set(_zset(client, k.finding_index)) != set(findings):
        problems.append("finding_index does not list exactly the stored findings")
    dims: dict[str, dict[str, set[str]]] = {"queue": {}, "pass": {}, "shard": {}}
    for fid, f in findings.items():
        for dim, attr in (("queue", "queue"), ("pass", "pass_name"), ("shard", "shard")):
            if f.get(attr) is not None:
                dims[dim].setdefault(f[attr], set()).add(fid)
    for dim, groups in dims.items():
        for label, fids in groups.items():
            if set(_zset(client, k.findings_by(dim, label))) != fids:
                problems.append(f"findings_by {dim} {label!r} does not list its findings")
    for key in all_keys:
        if ":findings_by:" in key and key.startswith(k.prefix):
            dim, digest = key[len(k.prefix) :].split(":")[1:3]
            if not any(label_id(v) == digest for v in dims.get(dim, {})):
                problems.append(f"{key} indexes a {dim} that no finding has")
    syntheses = {sid: json.loads(raw) for sid, raw in _hash(client, k.syntheses).items()}
    if set(_zset(client, k.synthesis_index)) != set(syntheses):
        problems.append("synthesis_index does not list exactly the stored syntheses")
    # a synthesis of a retired pass (swarm retire) cites findings that went with it
    retired = {_s(name) for name in client.hkeys(k.retired_passes)}
    for sid, syn in syntheses.items():
        missing = [s for s in syn.get("sources", []) if s not in findings]
        if missing and syn.get("pass_name") not in retired:
            problems.append(f"synthesis {sid} cites missing findings {missing[:5]}")

    # --- contexts
    pointers = {o: _s(m) for o, m in _hash(client, k.contexts).items()}
    manifests = {f: _s(m) for f, m in _hash(client, k.context_manifests).items()}
    holders: dict[str, set[str]] = {}  # chunk key -> holder tokens of kept versions
    for owner, raw in pointers.items():
        version = json.loads(raw)["version"]
        if manifests.get(f"{owner}|{version}") != raw:
            problems.append(f"context {owner!r}: the pointer is not a kept manifest")
    owners = {f.split("|", 1)[0] for f in manifests} | set(pointers)
    for owner in owners:
        history = _zset(client, k.context_history(owner))
        kept = {f.split("|", 1)[1] for f in manifests if f.split("|", 1)[0] == owner}
        if set(history) != kept:
            problems.append(f"context {owner!r}: history {sorted(history)} != kept {kept}")
        if len(history) > versions_kept:
            problems.append(f"context {owner!r} keeps {len(history)} > {versions_kept}")
        if owner not in pointers:
            problems.append(f"context {owner!r} has kept versions but no current one")
    for fieldname, raw in manifests.items():
        m = json.loads(raw)
        for digest, stored_len, *_ in m["parts"]:
            ckey = k.chunk(digest)
            holders.setdefault(ckey, set()).add(m["holder"])
            data = client.hget(ckey, "data")
            if data is None:
                problems.append(f"context {fieldname!r}: chunk {digest[:12]} is missing")
            elif len(data) != int(stored_len):
                problems.append(f"context {fieldname!r}: chunk {digest[:12]} has a bad length")
            elif not client.hexists(ckey, f"h:{m['holder']}"):
                problems.append(f"context {fieldname!r}: chunk {digest[:12]} is not held by it")
    # the gc journal: every token that is not a kept version's, in flight or to release
    kept_tokens = {json.loads(raw)["holder"] for raw in manifests.values()}
    journal = {_s(t): json.loads(d) for t, d in _hash(client, k.chunk_holds).items()}
    publishing = set(_zset(client, k.holds_publishing))
    releasing = set(_zset(client, k.holds_releasing))
    if set(journal) != publishing | releasing or publishing & releasing:
        problems.append(
            f"gc journal: holds {sorted(journal)[:5]} are not exactly the publishing "
            f"{sorted(publishing)[:5]} and releasing {sorted(releasing)[:5]} tokens"
        )
    if kept_tokens & set(journal):
        problems.append(
            f"gc journal lists kept versions' tokens {sorted(kept_tokens & set(journal))}"
        )
    for ckey in chunk_keys:
        tokens = {_s(f)[2:] for f in client.hkeys(ckey) if _s(f).startswith("h:")}
        extra = tokens - holders.get(ckey, set())
        digest = ckey.rsplit(":", 1)[1]
        lost = {t for t in extra if digest not in journal.get(t, ())}
        if not tokens:
            problems.append(f"chunk {ckey} has no holder")
        elif lost:
            problems.append(f"chunk {ckey} is held by {sorted(lost)}, which gc cannot find")
        elif extra and not chunk_leaks_ok:
            problems.append(f"chunk {ckey} is held by {sorted(extra)}, no kept version's token")

    # --- agents, presence, cursors, inboxes
    agents = {a: json.loads(raw) for a, raw in _hash(client, k.agents).items()}
    presence = _zset(client, k.presence)
    if set(presence) != set(agents):
        problems.append(f"presence and agents differ: {sorted(set(presence) ^ set(agents))[:10]}")
    for aid, record in agents.items():
        if record.get("id") != aid:
            problems.append(f"agent {aid}: stored under another id")
    for fieldname in _hash(client, k.cursors):
        if fieldname.split("|", 1)[0] not in agents:
            problems.append(f"cursor {fieldname!r} of an agent that is not registered")
    inbox_prefix = k.inbox("")
    for key in all_keys:
        rest = key[len(k.prefix) :] if key.startswith(k.prefix) else ""
        if rest.startswith("q:") and rest.split(":")[1] not in queues:
            problems.append(f"{key} belongs to a queue that is not in the queues set")
        if rest.startswith("ctx:") and rest.split(":")[1] not in owners:
            problems.append(f"{key} belongs to an owner with no context")
        if rest.startswith("pass:") and not any(label_id(p) == rest.split(":")[1] for p in passes):
            problems.append(f"{key} indexes a pass that no task has")
    for key in all_keys:
        if key.startswith(inbox_prefix) and key[len(inbox_prefix) :] not in agents:
            problems.append(f"inbox {key} of an agent that is not registered")

    # --- events
    if events:
        for entry_id, fields in event_entries(client, swarm):
            etype = fields.get("type", "")
            summary.events[etype] += 1
            if etype not in _EVENT_TYPES:
                problems.append(f"event {entry_id} has unknown type {etype!r}")

    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise AssertionError(f"{len(problems)} invariant(s) broken:\n  {shown}{more}")
    return summary
