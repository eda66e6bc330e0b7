"""The state of a swarm in one read: what the web page, ``/api/status`` and ``swarm watch`` show.

The swarm's status (``Swarm.status``, the one every face shows), the newest records
(``Swarm.recent``) and the versions each context owner keeps, from public operations only,
so the dashboard, its API and the terminal view cannot disagree with ``swarm status``.
Every part is bounded, so a snapshot costs a few round trips whatever the number of tasks.

Asked with ``settled`` (the page's and ``/api/status``'s ``SETTLED_SHOWN``), it holds the
queues, passes and queues of questions as ``swarm status`` lists them (``bounded``, the one
rule): every one with open work and the last ``settled`` settled ones, with ``not_shown``
counting the rest; a swarm run daily for a year holds a thousand settled passes, and sending
and drawing them all on every change buried today's. Asked with ``stale`` (``STALE_SHOWN``),
its agents are the ``LIVE_SHOWN`` live ones and the ``stale`` stale ones seen last
(``bounded_agents``), as ``swarm watch`` draws them: 2,000 live agents sent on every poll
were 568 KB. ``not_shown["agents"]`` counts those left out, live and stale; ``totals`` still
counts them all (``totals["alive"]`` every live one: those of them left out are the rest).
Asked with ``owners`` (``OWNERS_SHOWN``), its contexts are those of the owners that published
last (``bounded_owners``), as MCP's ``swarm_status`` and ``swarm status`` list them, and only
their versions are read: a call per owner, and a swarm of 2,000 shards made 2,000 calls on
every refresh. ``not_shown["contexts"]`` counts the owners left out.

Its findings are as the page and ``swarm watch`` show them (``shown_finding``): without their
``details`` and ``extra`` (but its ``kind``), which neither shows and which can be 250 KB a
finding: 60 of them made each read of the page 12.5 MB. ``swarm findings ID`` and
``/api/findings`` give a finding whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

from .._client import AsyncSwarm
from .._codec import Record, now_ms
from .._context_records import ContextInfo
from .._errors import NotFound
from .._keys import is_ask_queue
from .._models import ANSWER_KIND, STALE_AFTER_S, Agent, Finding, PassProgress, Synthesis, Task
from .._printable import bounded_agents, bounded_owners, bounded_passes, bounded_queues

__all__ = ["CALLS_AT_ONCE", "PassProgress", "Snapshot", "shown_finding", "snapshot"]

# The most Redis calls one snapshot makes at once (its contexts' versions, read side by side):
# each holds one of the handle's connections while it runs, and a swarm with hundreds of
# owners would otherwise take hundreds at once. The dashboard sizes its requests to it.
CALLS_AT_ONCE = 4

# The lists a snapshot bounds, as named in its ``not_shown``.
_LISTS = ("queues", "passes", "questions", "agents", "contexts")


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
    # The ids of the records among the newest that are stored unreadable (left out above).
    corrupt: tuple[str, ...] = ()
    # Ask and answer: the queues of questions (ask.OWNER, assist) and the newest answers.
    questions: dict[str, dict[str, int]] = field(default_factory=dict)
    answers: tuple[Finding, ...] = ()
    # The most settled queues, passes and queues of questions listed (None: every one), and
    # how many settled ones of each are left out (``bounded``); how many agents, live and
    # stale (``bounded_agents``); and how many context owners (``bounded_owners``).
    settled_shown: int | None = None
    not_shown: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_LISTS, 0))


async def snapshot(
    swarm: AsyncSwarm,
    *,
    findings: int = 50,
    syntheses: int = 20,
    dead: int = 50,
    stale_after_s: float = STALE_AFTER_S,
    settled: int | None = None,
    stale: int | None = None,
    owners: int | None = None,
) -> Snapshot:
    """Read the swarm's current state (the newest ``findings``, ``syntheses``, ``dead``):
    every queue and pass with open work and the last ``settled`` settled ones (None: all);
    the ``LIVE_SHOWN`` live agents and the ``stale`` stale ones seen last (None: every
    agent); the versions of the ``owners`` context owners that published last (None: of
    every owner)."""
    # The status reads the newest event id first, and everything else is read after it:
    # anything that happens meanwhile is then replayed to a follower starting from that id,
    # so no change is missed (at worst one is seen twice, and every view is idempotent).
    status = await swarm.status(stale_after_s=stale_after_s)
    # In natural order (day-2 before day-10), as people count: the page draws them in this
    # order, the terminal view too, and the newest of a daily pipeline comes last.
    queue_rows, hidden_queues = bounded_queues(status.queues, settled)
    pass_rows, hidden_passes = bounded_passes(status.passes, settled)
    asks = {q: c for q, c in status.queues.items() if is_ask_queue(q)}
    question_rows, hidden_questions = bounded_queues(asks, settled)
    agent_rows, hidden_agents = bounded_agents(status.roster, stale)
    owner_rows, hidden_owners = bounded_owners(status.contexts, owners)
    recent = await swarm.recent(findings=findings, syntheses=syntheses, dead=dead)
    at_once = asyncio.Semaphore(CALLS_AT_ONCE)
    versions = await asyncio.gather(*(_versions(swarm, c.owner, at_once) for c in owner_rows))
    return Snapshot(
        swarm=status.swarm,
        at=now_ms(),
        last_event_id=status.last_event_id,
        # each agent with its task, the one the core decides (agents(): said, else held)
        agents=tuple(agent_rows),
        queues=dict(queue_rows),
        passes=tuple(pass_rows),
        findings=tuple(shown_finding(f) for f in recent.findings),
        syntheses=recent.syntheses,
        dead=recent.dead,
        contexts=tuple(info for owner in versions for info in owner),
        # Every queue and pass, shown or not: the page's header counts them all.
        totals={
            "agents": status.agents.total,
            "alive": status.agents.alive,
            **status.totals,
            "queues": len(status.queues),
            "passes": len(status.passes),
            "passes_settled": sum(1 for p in status.passes if p.total and p.settled == p.total),
        },
        corrupt=recent.corrupt,
        questions=dict(question_rows),
        answers=tuple(
            shown_finding(f) for f in recent.findings if f.extra.get("kind") == ANSWER_KIND
        ),
        settled_shown=settled,
        not_shown=dict(
            zip(
                _LISTS,
                (hidden_queues, hidden_passes, hidden_questions, hidden_agents, hidden_owners),
                strict=True,
            )
        ),
    )


def shown_finding(finding: Finding) -> Finding:
    """``finding`` as a snapshot holds it: its ``details`` left out (None) and of its
    ``extra`` only its ``kind`` (an answer's: a short name, else left out too), what the
    page and ``swarm watch`` show of it."""
    kind = finding.extra.get("kind")
    extra = {"kind": kind} if isinstance(kind, str) and len(kind) <= 64 else {}
    return dataclasses.replace(finding, details=None, extra=extra)


async def _versions(swarm: AsyncSwarm, owner: str, at_once: asyncio.Semaphore) -> list[ContextInfo]:
    try:
        async with at_once:
            return await swarm.context_versions(owner)
    except NotFound:  # gone since it was listed: nothing to show, not an error
        return []
