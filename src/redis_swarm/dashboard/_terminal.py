"""The snapshot drawn for a terminal with rich: what ``swarm watch`` shows."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .._codec import byte_size
from .._models import PassProgress
from .._printable import (
    OWNERS_SHOWN,
    SETTLED_SHOWN,
    STALE_SHOWN,
    agents_not_shown,
    bounded_agents,
    bounded_owners,
    bounded_passes,
    bounded_queues,
    not_shown,
    one_line,
    printable,
    short_version,
)
from ._snapshot import Snapshot

__all__ = ["render"]

# Drawn in this order, left to right, with these colours (the page uses the same ones).
_STATUS_STYLE = {
    "completed": "green",
    "dead": "red",
    "cancelled": "grey50",
    "claimed": "blue",
    "delayed": "yellow",
    "pending": "grey70",
}
_BLOCK, _SHADE = "█", "░"
# The task totals the header shows, as the page's (every settled kind: a cancelled task is
# no dead one, and would otherwise be counted nowhere).
_TOTALS = ("pending", "claimed", "completed", "dead", "cancelled")


# The command whose view this is: the lines saying what it left out name its --all.
COMMAND = "swarm watch"


# The agents table's columns beside the names: a state (alive, stale), an age (59m ago, as
# most are), and the specialization, which takes what is left of the line (kept this wide
# at least: its heading's width); 2 spaces between columns.
_STATE_SEEN = len("stale") + len("59m ago")
_SPECIALIZATION_LEAST = len("specialization")
_AGENT_COLUMNS = 7
# No name is cut shorter than this (a line narrower than the table's least is squeezed, as
# rich squeezes it).
_NAME_LEAST = 8


def _fitted(snap: Snapshot, width: int) -> Snapshot:
    """``snap`` as ``render`` draws it on a line of ``width`` columns: when the agents' names
    (their id, role, model and task) are too long for the line together, the longest are cut
    (ending in "…") to the widest length that fits, so that every other column stays
    readable; rich, given a row wider than the line, squeezed every column alike: one agent
    named with 64 characters left a letter to the others. A worker's name in the findings
    and answers is cut to a quarter of the line. Only what is drawn is cut: --json, and the
    snapshot ``swarm watch`` compares, keep every name whole."""
    heads = ("agent", "role", "model", "task")
    named = [(a.id, a.role, a.model or "-", a.current_task or "-") for a in snap.agents]
    widths = [max([len(head), *(len(row[i]) for row in named)]) for i, head in enumerate(heads)]
    room = width - 2 * (_AGENT_COLUMNS - 1) - _STATE_SEEN - _SPECIALIZATION_LEAST
    most = max(widths, default=0)
    while most > _NAME_LEAST and sum(min(w, most) for w in widths) > room:
        most -= 1

    def cut(value: str, most: int) -> str:
        return value if len(value) <= most else value[: most - 1] + "…"

    def cut_or_none(value: str | None, most: int) -> str | None:
        return None if value is None else cut(value, most)

    agents = tuple(
        replace(
            a,
            id=cut(a.id, most),
            role=cut(a.role, most),
            model=cut_or_none(a.model, most),
            current_task=cut_or_none(a.current_task, most),
        )
        for a in snap.agents
    )
    quarter = max(_NAME_LEAST, width // 4)
    findings, answers = (
        tuple(replace(f, worker=cut_or_none(f.worker, quarter)) for f in found)
        for found in (snap.findings, snap.answers)
    )
    return replace(snap, agents=agents, findings=findings, answers=answers)


def render(
    snap: Snapshot,
    *,
    width: int = 100,
    findings: int = 8,
    settled: int | None = SETTLED_SHOWN,
    stale: int | None = STALE_SHOWN,
    owners: int | None = OWNERS_SHOWN,
) -> RenderableType:
    """Everything in the snapshot, newest first, fitted to ``width`` columns: every queue
    and pass with open work, and the last ``settled`` settled ones (None: all); the
    ``LIVE_SHOWN`` live agents and the ``stale`` stale ones seen last (None: every agent);
    the contexts of the ``owners`` owners that published last (None: every owner's)."""
    snap = _fitted(snap, width)
    # Redrawn on every change: a year of daily passes drawn whole took over a second a frame
    # and pushed today's off the screen (bounded, and a line says how many are left out).
    queue_rows, hidden_queues = bounded_queues(snap.queues, settled)
    pass_rows, hidden_passes = bounded_passes(snap.passes, settled)
    queues = _queues(queue_rows)
    passes = _passes(pass_rows, 20 if width < 100 else 30)
    if width >= 100:
        top = Table.grid(padding=(0, 4))
        top.add_row(queues, passes)
        head: list[RenderableType] = [top]
    else:
        head = [queues, Text(), passes]
    # A snapshot read bounded already left some out (``snapshot(settled=...)``): count those too.
    hidden_queues += snap.not_shown.get("queues", 0)
    hidden_passes += snap.not_shown.get("passes", 0)
    hidden = not_shown(hidden_queues, hidden_passes, COMMAND)
    if hidden:
        head.append(Text(hidden, style="dim"))
    sections = [
        _agents(snap, stale),
        *_questions(snap),
        _findings(snap, findings),
        _syntheses(snap),
        _dead(snap),
        _contexts(snap, owners),
    ]
    body: list[RenderableType] = []
    for section in sections:
        body += [Text(), section]
    return Group(_header(snap), Text(), *head, *body)


def _ago(snap: Snapshot, ms: int | None) -> str:
    if not ms:
        return "-"
    s = max(0, (snap.at - ms) // 1000)
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m ago"
    if s < 86400:
        return f"{s // 3600}h ago"
    return f"{s // 86400}d ago"


def _row(table: Table, *cells: RenderableType) -> None:
    """A row of stored text: plain (never rich markup), its control characters escaped."""
    table.add_row(*(Text(printable(c)) if isinstance(c, str) else c for c in cells))


def _table(title: str, *columns: str, expand: bool = False) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=None,
        header_style="dim",
        expand=expand,
        pad_edge=False,
        padding=(0, 2, 0, 0),
    )
    for column in columns:
        numeric = column in (
            "pending",
            "claimed",
            "done",
            "dead",
            "cancelled",
            "size",
            "tokens",
            "tries",
            "open",
            "answered",
        )
        table.add_column(
            column,
            justify="right" if numeric else "left",
            overflow="ellipsis",
            no_wrap=True,
            # free text takes what is left of the line, and is cut there
            ratio=1 if column in ("summary", "text", "reason", "specialization") else None,
        )
    return table


def _empty(title: str, text: str) -> RenderableType:
    return Group(Text(title, style="bold"), Text(text, style="dim italic"))


def _header(snap: Snapshot) -> RenderableType:
    t = snap.totals
    line = Text()
    line.append("redis-swarm ", style="bold red")
    line.append(snap.swarm, style="bold")
    line.append(f"   agents {t.get('alive', 0)}/{t.get('agents', 0)} alive", style="dim")
    for status in _TOTALS:
        line.append("   ")
        line.append(f"{t.get(status, 0)} {status}", style=_STATUS_STYLE[status])
    return line


class _Bar:
    """A pass's progress ``width`` cells wide: a run of blocks per status in its colour, or,
    on a console without colour (a pipe, NO_COLOR), full blocks for the settled part and a
    light shade for the rest: blocks of every status alike would read as done at any
    fraction."""

    def __init__(self, progress: PassProgress, width: int) -> None:
        self.progress = progress
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._plain() if console.no_color or console.color_system is None else self._colour()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)

    def _colour(self) -> Text:
        counts, total, width = self.progress.counts, self.progress.total, self.width
        bar = Text()
        used = 0
        for status, style in _STATUS_STYLE.items():
            n = counts.get(status, 0)
            if not n or not total:
                continue
            cells = max(1, round(width * n / total))
            cells = min(cells, width - used)
            bar.append(_BLOCK * cells, style=style)
            used += cells
        bar.append(_SHADE * (width - used), style="grey30")
        return bar

    def _plain(self) -> Text:
        p, width = self.progress, self.width
        if not p.settled:
            done = 0
        elif p.settled == p.total:
            done = width
        else:  # some settled: a block at least, the full bar never
            done = min(width - 1, max(1, round(width * p.fraction)))
        return Text(_BLOCK * done + _SHADE * (width - done))


def _queues(rows: list[tuple[str, dict[str, int]]]) -> RenderableType:
    if not rows:  # (not "yet": a swarm whose every task was retired lists no queue either)
        return _empty("Queues", "no queue with tasks")
    table = _table("Queues", "queue", "pending", "claimed", "done", "dead", "cancelled")
    for name, c in rows:
        pending = str(c.get("pending", 0)) + (f" +{c['delayed']}" if c.get("delayed") else "")
        done, cancelled = str(c.get("completed", 0)), str(c.get("cancelled", 0))
        _row(table, name, pending, str(c.get("claimed", 0)), done, _dead_n(c), cancelled)
    return table


def _dead_n(counts: dict[str, int]) -> Text:
    n = counts.get("dead", 0)
    return Text(str(n), style="red" if n else "")


def _passes(rows: list[PassProgress], bar_width: int) -> RenderableType:
    if not rows:  # (nor a pass: a retired pass's counters go with it)
        return _empty("Passes", "no pass with tasks")
    table = _table("Passes", "pass", "progress", "settled")
    for p in rows:
        _row(
            table,
            p.name,
            _Bar(p, bar_width),
            f"{p.settled}/{p.total} {round(100 * p.fraction)}%",
        )
    return table


def _agents(snap: Snapshot, stale: int | None) -> RenderableType:
    if not snap.agents:
        return _empty("Agents", "no agent yet")
    # Redrawn every second or so: 600 stale agents drawn whole buried the live ones, and
    # 2,000 live ones took seconds a frame (``bounded_agents``: the live seen last too).
    rows, hidden = bounded_agents(snap.agents, stale)
    columns = ("agent", "role", "specialization", "model", "state", "seen", "task")
    table = _table("Agents", *columns, expand=True)
    for a in rows:
        state = Text("alive", style="green") if a.alive else Text("stale", style="red")
        _row(
            table,
            a.id,
            a.role,
            a.specialization or "-",
            a.model or "-",
            state,
            _ago(snap, a.last_seen),
            a.current_task or "-",
        )
    # A snapshot read bounded already left some out (``snapshot(stale=...)``): count those too
    # (how many of them are live: the totals count every live agent).
    alive = snap.totals.get("alive", sum(1 for a in snap.agents if a.alive))
    line = agents_not_shown(rows, hidden + snap.not_shown.get("agents", 0), alive, COMMAND)
    return table if line is None else Group(table, Text(line, style="dim"))


def _findings(snap: Snapshot, limit: int) -> RenderableType:
    if not snap.findings:
        return _empty("Findings", "no finding")
    title = f"Findings (newest {min(limit, len(snap.findings))})"
    table = _table(title, "summary", "worker", "sources", "when", expand=True)
    for f in snap.findings[:limit]:
        sources = (f.sources[0] if f.sources else "-") + (
            f" +{len(f.sources) - 1}" if len(f.sources) > 1 else ""
        )
        _row(table, f.summary, f.worker or "-", sources, _ago(snap, f.created_at))
    return table


def _questions(snap: Snapshot) -> list[RenderableType]:
    """Questions asked (swarm ask) and who answered: shown once a question was asked."""
    if not snap.questions:
        return []
    table = _table("Questions", "asked of", "open", "answered", "dead")
    for queue, c in snap.questions.items():
        waiting = c.get("pending", 0) + c.get("delayed", 0) + c.get("claimed", 0)
        _row(table, queue, str(waiting), str(c.get("completed", 0)), _dead_n(c))
    if not snap.answers:
        return [table]
    answers = _table("Answers (newest)", "summary", "answered by", "queue", "when", expand=True)
    for f in snap.answers[:5]:
        _row(answers, f.summary, f.worker or "-", f.queue or "-", _ago(snap, f.created_at))
    return [table, Text(), answers]


def _syntheses(snap: Snapshot) -> RenderableType:
    if not snap.syntheses:
        return _empty("Syntheses", "no synthesis")
    table = _table("Syntheses", "pass", "shard", "text", "cites", "when", expand=True)
    for s in snap.syntheses[:5]:
        text = one_line(s.text)
        _row(table, s.pass_name, s.shard, text, str(len(s.sources)), _ago(snap, s.created_at))
    return table


def _dead(snap: Snapshot) -> RenderableType:
    if not snap.dead:
        return _empty("Dead letters", "none")
    # "failed/abandoned": failures of max_attempts, abandoned leases of max_abandons
    table = _table("Dead letters", "task", "queue", "fail/aband", "reason", expand=True)
    for t in snap.dead[:10]:
        reason = t.dead_reason or t.last_error or "-"
        spent = f"{t.failures}/{t.max_attempts} {t.abandons}/{t.max_abandons}"
        _row(table, t.id, t.queue, spent, Text(printable(reason), style="red"))
    return table


def _contexts(snap: Snapshot, owners: int | None) -> RenderableType:
    if not snap.contexts:
        return _empty("Contexts", "no context yet")
    # An owner's versions come newest first: its first is its current one, when it published.
    current = {c.owner: c for c in reversed(snap.contexts)}
    # 2,000 shards were 2,000 owners drawn on every change (``bounded_owners``).
    kept, hidden = bounded_owners(list(current.values()), owners)
    shown = {c.owner for c in kept}
    table = _table("Contexts", "owner", "version", "size", "tokens", "published")
    seen: set[str] = set()
    for c in (c for c in snap.contexts if c.owner in shown):
        is_current = c.owner not in seen
        seen.add(c.owner)
        version = Text(short_version(c.version))
        if is_current:
            version.append(" current", style="cyan")
        _row(
            table,
            c.owner,
            version,
            byte_size(c.size_bytes),
            f"~{c.tokens_est:,}",
            _ago(snap, c.created_at),
        )
    # A snapshot read bounded already left some out (``snapshot(owners=...)``): count those too.
    line = not_shown(0, 0, COMMAND, owners=hidden + snap.not_shown.get("contexts", 0))
    return table if line is None else Group(table, Text(line, style="dim"))
