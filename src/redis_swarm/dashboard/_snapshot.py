"""The state of a swarm in one read: what the web page, ``/api/status`` and ``swarm watch`` show.

Assembled here and nowhere else, from core operations only (the listings, and
``_ops.views`` for the newest-first reads), never from keys, so the dashboard, its API and the
terminal view cannot disagree. Every part is bounded: the newest findings,
syntheses and dead letters, the versions each context owner keeps, one line per queue and
pass, so a snapshot costs a few round trips whatever the number of tasks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .._client import AsyncSwarm
from .._errors import NotFound
from .._models import Agent, ContextInfo, Finding, Record, Synthesis, Task, now_ms
from .._ops import views

__all__ = ["PassProgress", "Snapshot", "snapshot"]

# Statuses after which a task needs no more work: what a pass's progress bar counts as done.
SETTLED = ("completed", "dead", "cancelled")


@dataclass(frozen=True)
class PassProgress(Record):
    """One pass: task counts by status, and how much of it is settled."""

    name: str
    counts: dict[str, int]
    total: int
    settled: int

    @property
    def fraction(self) -> float:
        return self.settled / self.total if self.total else 0.0


@dataclass(frozen=True)
class Snapshot(Record):
    """Everything one screen of the dashboard shows, at one moment."""

    swarm: str
    at: int
    # The newest event already reflected here: follow the stream from it to stay current.
    last_event_id: str
    agents: tuple[Agent, ...]
    queues: dict[str, dict[str, int]]
    passes: tuple[PassProgress, ...]
    findings: tuple[Finding, ...]
    syntheses: tuple[Synthesis, ...]
    dead: tuple[Task, ...]
    contexts: tuple[ContextInfo, ...]
    totals: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for item, progress in zip(out["passes"], self.passes, strict=True):
            item["fraction"] = round(progress.fraction, 4)
        return out


async def snapshot(
    swarm: AsyncSwarm,
    *,
    findings: int = 50,
    syntheses: int = 20,
    dead: int = 50,
    stale_after_s: float = 60.0,
) -> Snapshot:
    """Read the swarm's current state (the newest ``findings``, ``syntheses``, ``dead``)."""
    # One read (views.view) takes the newest event id first: anything that happens while the
    # rest is read is then replayed to a follower starting from it, so no change is missed
    # (at worst one is seen twice, and every view is idempotent).
    # views.view is an operation like any other, driven by the shell's runner; it has no
    # method on Swarm because only the live views need it.
    view = await swarm._run(
        views.view(swarm._ctx, findings=findings, syntheses=syntheses, dead=dead)
    )
    agents, queues, owners = await asyncio.gather(
        swarm.agents(stale_after_s=stale_after_s),
        swarm.queue_stats(),
        swarm.contexts(),
    )
    versions = await asyncio.gather(*(_versions(swarm, c.owner) for c in owners))
    return Snapshot(
        swarm=swarm.name,
        at=now_ms(),
        last_event_id=view.last_event_id,
        agents=tuple(sorted(agents, key=_agent_order)),
        queues=dict(sorted(queues.items())),
        passes=tuple(_progress(name, counts) for name, counts in view.passes.items()),
        findings=view.findings,
        syntheses=view.syntheses,
        dead=view.dead,
        contexts=tuple(info for owner in versions for info in owner),
        totals=_totals(agents, queues),
    )


async def _versions(swarm: AsyncSwarm, owner: str) -> list[ContextInfo]:
    try:
        return await swarm.context_versions(owner)
    except NotFound:  # gone since it was listed: nothing to show, not an error
        return []


def _progress(name: str, counts: dict[str, int]) -> PassProgress:
    counts = {status: int(n) for status, n in counts.items() if status != "total"}
    total = sum(counts.values())
    settled = sum(counts.get(status, 0) for status in SETTLED)
    return PassProgress(name=name, counts=counts, total=total, settled=settled)


def _agent_order(agent: Agent) -> tuple[bool, str, str]:
    # Live agents first, then by role and id: the list does not jump around between reads.
    return (not agent.alive, agent.role, agent.id)


def _totals(agents: list[Agent], queues: dict[str, dict[str, int]]) -> dict[str, int]:
    totals = {"agents": len(agents), "alive": sum(1 for a in agents if a.alive)}
    for counts in queues.values():
        for status, n in counts.items():
            totals[status] = totals.get(status, 0) + int(n)
    return totals
