"""The reads behind the live views (dashboard, ``swarm watch``) that the listings lack.

The listings page forward, oldest first, which is right for processing everything; a view
wants the opposite, the newest few, and the names of the passes. ``view`` reads them
newest first straight from the indexes, in two or three round trips whatever the size of
the swarm, and reads the newest event id first, so that a follower starting from it misses
nothing that happened while the rest was read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._models import Finding, Synthesis, Task, loads
from .._protocol import Batch, Cmd, OpContext, Operation

__all__ = ["View", "view"]

MAX_VIEW = 500


@dataclass(frozen=True)
class View:
    last_event_id: str
    passes: dict[str, dict[str, int]]
    findings: tuple[Finding, ...]
    syntheses: tuple[Synthesis, ...]
    dead: tuple[Task, ...]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bounded(value: int) -> int:
    return max(1, min(int(value), MAX_VIEW))


def view(
    ctx: OpContext, *, findings: int = 50, syntheses: int = 20, dead: int = 50
) -> Operation[View]:
    """The newest event id, every pass with its counts, and the newest ``findings``,
    ``syntheses`` and dead-lettered tasks (newest first; each count 1 to 500)."""
    k = ctx.keys
    n_findings, n_syntheses, n_dead = _bounded(findings), _bounded(syntheses), _bounded(dead)
    first = yield Batch(
        (
            Cmd("XREVRANGE", k.events, "+", "-", "COUNT", 1),
            Cmd("HGETALL", k.pass_counts),
            Cmd("ZREVRANGE", k.finding_index, 0, n_findings - 1),
            Cmd("ZREVRANGE", k.synthesis_index, 0, n_syntheses - 1),
            Cmd("SMEMBERS", k.queues),
        )
    )
    newest, pass_counts, finding_ids, synthesis_ids, queues = first
    queue_names = sorted(_text(q) for q in queues)
    finding_ids = [_text(i) for i in finding_ids]
    synthesis_ids = [_text(i) for i in synthesis_ids]

    second: list[Cmd] = []
    if finding_ids:
        second.append(Cmd("HMGET", k.findings, *finding_ids))
    if synthesis_ids:
        second.append(Cmd("HMGET", k.syntheses, *synthesis_ids))
    second += [Cmd("ZREVRANGE", k.dead(q), 0, n_dead - 1, "WITHSCORES") for q in queue_names]
    replies = list((yield Batch(tuple(second)))) if second else []
    found = replies.pop(0) if finding_ids else []
    made = replies.pop(0) if synthesis_ids else []

    # The newest dead letters across queues, by time of death.
    deaths: list[tuple[float, str]] = []
    for reply in replies:
        deaths += [(float(score), _text(member)) for member, score in _pairs(reply)]
    deaths.sort(reverse=True)
    dead_ids = [task_id for _, task_id in deaths[:n_dead]]
    dead_tasks: list[Any] = []
    if dead_ids:
        dead_tasks = yield Cmd("HMGET", k.tasks, *dead_ids)

    return View(
        # "0-0" (before the first event) when there is none yet: always a cursor to follow.
        last_event_id=_text(newest[0][0]) if newest else "0-0",
        passes=_passes(pass_counts),
        findings=tuple(Finding.from_dict(loads(raw)) for raw in found if raw),
        syntheses=tuple(Synthesis.from_dict(loads(raw)) for raw in made if raw),
        dead=tuple(_task(raw) for raw in dead_tasks if raw),
    )


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """ZRANGE ... WITHSCORES, as RESP2 (flat) or RESP3 (pairs) parsed it."""
    if reply and isinstance(reply[0], (list, tuple)):
        return [(member, score) for member, score in reply]
    return list(zip(reply[::2], reply[1::2], strict=True))


def _task(raw: Any) -> Task:
    state: dict[str, Any] = loads(raw)
    state["data"] = None  # a view never shows payloads
    return Task.from_dict(state)


def _passes(raw: Any) -> dict[str, dict[str, int]]:
    """``pass-id -> name`` and ``pass-id|status -> count`` fields, as {name: {status: n}}."""
    names: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for field, value in dict(raw or {}).items():
        key = _text(field)
        pid, sep, status = key.partition("|")
        if sep:
            counts.setdefault(pid, {})[status] = int(value)
        else:
            names[pid] = _text(value)
    return {names[pid]: counts.get(pid, {}) for pid in sorted(names, key=lambda p: names[p])}
