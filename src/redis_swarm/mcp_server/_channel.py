"""``swarm mcp --channel``: push what concerns a session's agent into a running Claude Code
session, as Claude Code channel events (its "Channels reference": an MCP server declares the
``claude/channel`` experimental capability and sends ``notifications/claude/channel`` with
``content`` and a ``meta`` of string attributes; each ``meta`` key becomes an attribute of the
``<channel>`` tag the model sees, and keys that are not letters, digits and underscores are
dropped by Claude Code).

What is pushed: a direct message to the agent, a broadcast from someone else, a synthesis
requested of it, and a claimable task in a watched queue (``--watch-queue``): posted,
released, requeued, a delayed task falling due or a lease ending unreported. The watcher of
each connection follows the swarm's event stream with the core's blocking read
(``AsyncSwarm.follow_events``: one ``XREAD BLOCK`` at a time, never a poll), so an event
reaches the session within milliseconds. Events that arrive together (a burst of tasks, a
flood of messages) are coalesced: one notification per kind and queue saying how many.

A task becomes claimable by time only when a script looks (claims do, for their queues); with
nobody claiming, the server process makes its watched queues' tasks claimable when their time
comes (``reap_due``: at the next due moment it returned, again after a delayed post, a retry
or a claim in them, every RECHECK_S at the least), and the events that makes are pushed as
any other.

A named session (its agent id given: ``--name``, SWARM_AGENT) keeps its inbox across restarts:
its watcher first pushes the unread messages already waiting when it starts (the oldest
``WAITING_READ`` at most), as the events that sent them, the way it pushes live ones (one
batch: a single message shown, several counted), and when more were waiting than that, one
notice more saying so (``read_inbox`` reads them, oldest first); then it follows the stream,
skipping the messages it just pushed.

A session watching queues is told, as its watcher starts, of the tasks already waiting in
them (a session started on a backlog would otherwise sit idle until someone posts): the
delayed tasks due by then made claimable first (``reap_due``), one notice per watched queue
holding pending tasks, saying how many (``waiting_tasks``), from the queues' counters read
after the newest event; the stream's task events up to that event are not told again.

A watcher rides out a lost Redis (logged once as it goes, once as it comes back; nothing
missed), and an error no retry fixes (a certificate refused, a user that may not read the
stream) too: logged once with what to fix, tried again only every ``AGAIN_AFTER_FIX_S``, so
that a fix made where the server runs resumes pushing without restarting the session
(``_follow``). The due check says its failures alike: once, then once when it works again.

Only handshake-era connections get events: Claude Code registers channel servers over stdio on
the initialize handshake; the 2026-07-28 era has no connection to push on, is never told of
the capability and is never sent an event.

A notice showing a message puts the sender's text on lines of its own, each indented
(``indented``, as the hooks do): the notice's own lines (its first, the data's, what it
says of the message's read state) begin at the margin, and no line of a body does, so no
body reads as another sender's notice. The names and ids a notice shows (the task, the queue,
the pass, the sender, the message's id and kind) come from the event, which anyone who may
write the stream may forge: each is shown as it is when it is a valid name, else quoted and
escaped on one line (``shown_name``), so none of them starts a line of its own either.

A message a notice shows whole (its text and data, each within ``BODY_CHARS``) has been shown,
as a read shows it, so the channel marks it read (``mark_read``), that the session's hooks and
``read_inbox`` do not show it again: once the session has received the notice, which it says
by answering a ping sent after it on the same ordered stream (the SDK drops a notification it
cannot write without a word, and a message marked read but never shown would be lost). A
notice that counts messages, cuts one, or asks for a synthesis (whose instructions it does not
carry) marks nothing. The read cursor is one position in the agent's messages, so it moves
only through the oldest unread messages that notices showed whole: one shown after an unread
one that was not stays unread with it (``read_inbox`` shows both).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .._client import AsyncSwarm
from .._codec import dumps
from .._config import Settings
from .._errors import SwarmError, needs_a_fix
from .._mcp_names import EVERY_TOOL_ROLE
from .._models import SYNTHESIS_REQUEST_KIND, Event, EventType, Message, event_order
from .._printable import BODY_INDENT, indented, shown_name
from .._validate import READ_DEFAULT
from ._budget import client_len, clip
from ._session import SessionRegistry, connection_of
from ._tools import SwarmTools, offers

__all__ = [
    "CAPABILITY",
    "METHOD",
    "Channel",
    "ChannelOnConnect",
    "Notice",
    "instructions",
    "more_waiting",
    "notices",
    "read_run",
    "waiting_tasks",
]

log = logging.getLogger("redis_swarm.mcp")

CAPABILITY = "claude/channel"
METHOD = "notifications/claude/channel"
# Events that may concern a session; everything else in the stream is not read at all.
WATCHED = (
    EventType.MESSAGE_SENT,
    EventType.SYNTHESIS_REQUESTED,
    EventType.TASK_POSTED,
    EventType.TASK_RELEASED,
    EventType.TASK_REQUEUED,
    EventType.TASK_DUE,
    EventType.TASK_EXPIRED,
    EventType.TASK_RETRIED,
    EventType.TASK_CLAIMED,
)
# Tasks these events put in a queue can be claimed at once (a delayed post cannot, nor a lease
# that expired into the dead letter: their status field says).
_CLAIMABLE = {
    EventType.TASK_POSTED,
    EventType.TASK_RELEASED,
    EventType.TASK_REQUEUED,
    EventType.TASK_DUE,
    EventType.TASK_EXPIRED,
}
# Events after which something of a queue falls due later (a delayed post, a retry after its
# backoff, a new lease): the due check runs again, to learn when.
_FALLS_DUE_LATER = {EventType.TASK_POSTED, EventType.TASK_RETRIED, EventType.TASK_CLAIMED}
# The longest pause between two due checks of the watched queues (what an older client or a
# missed event left to fall due is found within it); the shortest after events asked for one
# (a busy queue's claims ask all the time); and the shortest of all, for a check that left
# something due already (more than one script promotes).
RECHECK_S = 30.0
MIN_RECHECK_S = 0.2
AGAIN_S = 0.05
# How long a watcher waits after an event for the rest of its burst, before it notifies.
COALESCE_S = 0.05
BODY_CHARS = 2_000
# How long a session has to answer the ping that says it received a notice showing a message
# whole; one that does not answer in time leaves the message unread (shown again: never lost).
RECEIVED_S = 10.0
# How often the event stream is tried again while Redis cannot be reached (each try also
# waits out the client's own retries).
AGAIN_AFTER_OUTAGE_S = 1.0
# How often it is tried again after an error no retry fixes (``needs_a_fix``): seldom, as
# the dashboard's page looks again, yet a fix needs no restart of the session.
AGAIN_AFTER_FIX_S = 30.0
# How long the follow that says whether the stream can be read again, while it fails, waits.
PROBE_S = 0.05
# The unread messages a named session's watcher pushes as it starts (an inbox read's default).
WAITING_READ = READ_DEFAULT
_META_KEY = re.compile(r"[A-Za-z0-9_]+")
_STATE_SINCE = "redis_swarm.channel_since"
# The tools the notices name, read from their methods (a tool renamed is an error here, not a
# notice naming a tool that is gone); a notice names only the tools its session's role has.
_READ_INBOX = SwarmTools.read_inbox.__name__
_CLAIM_TASK = SwarmTools.claim_task.__name__
_LIST_FINDINGS = SwarmTools.list_findings.__name__
_SYNTHESIZE = SwarmTools.synthesize.__name__
_SEND_MESSAGE = SwarmTools.send_message.__name__
_REQUEST_SYNTHESIS = SwarmTools.request_synthesis.__name__


def instructions(queues: Sequence[str], role: str = EVERY_TOOL_ROLE) -> str:
    """What the server's instructions add for a channel session of ``role`` (Claude Code puts
    them in the model's system prompt)."""
    watched = f" and of claimable tasks in {', '.join(queues)}" if queues else ""
    claims = (
        f"{_CLAIM_TASK} claims it" if offers(role, _CLAIM_TASK) else "a worker's session claims it"
    )
    return (
        'Swarm events arrive as <channel source="swarm" kind="..."> tags: kind message or '
        f"broadcast (one shown whole is read; {_READ_INBOX} shows the others and marks them "
        f"read), {SYNTHESIS_REQUEST_KIND} (the pass "
        f"to synthesize), task ({claims}). You are told of messages to you{watched}."
    )


@dataclass(frozen=True)
class Notice:
    """One ``notifications/claude/channel``: what the model reads, and the tag's attributes."""

    content: str
    meta: dict[str, str] = field(default_factory=dict)
    # The id of the message this notice shows whole, if any: received, it has been shown.
    shows: str = ""

    def __post_init__(self) -> None:
        bad = [k for k in self.meta if not _META_KEY.fullmatch(k)]
        if bad:
            raise ValueError(f"channel meta keys must be letters, digits and '_': {bad}")

    @property
    def params(self) -> dict[str, Any]:
        return {"content": self.content, "meta": dict(self.meta)}


@dataclass
class _Group:
    kind: str
    events: list[Event]
    queue: str = ""


def _group_of(event: Event, agent: str, queues: Sequence[str]) -> tuple[str, str] | None:
    """(kind, queue) of an event that concerns ``agent``, else None."""
    f = event.fields
    if event.type == EventType.MESSAGE_SENT:
        if f.get("kind") == SYNTHESIS_REQUEST_KIND:
            return None  # its synthesis.requested event says it, once
        if f.get("to") == agent:
            return ("message", "")
        if f.get("to") == "*" and f.get("from") != agent:
            return ("broadcast", "")
        return None
    if event.type == EventType.SYNTHESIS_REQUESTED:
        return (SYNTHESIS_REQUEST_KIND, "") if f.get("shard") == agent else None
    if event.type in _CLAIMABLE and f.get("queue") in queues:
        if f.get("status", "pending") != "pending":
            return None  # posted delayed, or expired into the dead letter
        return ("task", f["queue"])
    return None


def _counted_in(event: Event, newest: tuple[int, int]) -> bool:
    """Whether ``event`` made a task claimable before the waiting tasks were counted (up to
    ``newest``, in stream order): that task was in the count told as the session started."""
    return event.type in _CLAIMABLE and event_order(event.id) <= newest


def _falls_due_later(event: Event, queues: Sequence[str]) -> bool:
    """Whether ``event`` leaves a task of ``queues`` to fall due later (a delayed post, a
    retry after its backoff, a lease that may end unreported): the due check must learn of
    it."""
    f = event.fields
    if event.type not in _FALLS_DUE_LATER or f.get("queue") not in queues:
        return False
    return event.type != EventType.TASK_POSTED or f.get("status", "pending") != "pending"


def _groups(events: Iterable[Event], agent: str, queues: Sequence[str]) -> list[_Group]:
    groups: dict[tuple[str, str], _Group] = {}
    for event in events:
        key = _group_of(event, agent, queues)
        if key is not None:
            groups.setdefault(key, _Group(key[0], [], key[1])).events.append(event)
    return list(groups.values())


def _shown(value: str, *, label: bool = False) -> str:
    """A name or id of an event as a notice shows it (``shown_name``), an empty one empty."""
    return shown_name(value, label=label) if value else ""


def _sender(fields: dict[str, str]) -> str:
    """Who sent the message an event tells of, as a notice shows it."""
    return _shown(fields.get("from", "")) or "someone"


def _senders(events: Sequence[Event]) -> str:
    names = list(dict.fromkeys(_sender(e.fields) for e in events))
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _data_text(message: Message) -> str:
    return dumps(message.data) if message.data else ""


def _whole(message: Message) -> bool:
    """Whether a notice shows all of ``message``: its text and its data each fit."""
    # (measured as ``clip`` cuts: one it cut is not shown whole)
    return client_len(message.body) <= BODY_CHARS and client_len(_data_text(message)) <= BODY_CHARS


def _single(group: _Group, bodies: dict[str, Message]) -> Message | None:
    """The message a message or broadcast notice shows (one alone, its text read), if any."""
    if group.kind not in ("message", "broadcast") or len(group.events) != 1:
        return None
    return bodies.get(group.events[0].fields.get("message", ""))


def read_run(unread: Iterable[Message], shown: Collection[str]) -> list[Message]:
    """The messages of ``unread`` (an agent's, oldest first) that are read once ``shown`` (ids
    of messages shown whole) have been: the run of them from the oldest. The read cursor is
    one position: moved past a message not shown whole, it would lose that one."""
    run = []
    for message in unread:
        if message.id not in shown:
            break
        run.append(message)
    return run


def _message_notice(group: _Group, bodies: dict[str, Message], read: Collection[str]) -> Notice:
    events = group.events
    what = "broadcast" if group.kind == "broadcast" else "message"
    if len(events) > 1:
        return Notice(
            f"{len(events)} new {what}s from {_senders(events)}: {_READ_INBOX} shows them.",
            {"kind": group.kind, "count": str(len(events))},
        )
    f = events[0].fields
    sender = _sender(f)
    message_id = f.get("message", "")
    meta = {"kind": group.kind, "message_id": _shown(message_id), "from": sender}
    message = _single(group, bodies)
    more = f"{_READ_INBOX} shows all of it"
    # (every line of the sender's text indented, the first too, since it begins a line: no
    # line of it reads as a notice's own line, nor as another notice)
    body = f":\n{BODY_INDENT}{indented(clip(message.body, BODY_CHARS, more))}" if message else ""
    if message and message.data:
        body += f"\ndata: {indented(clip(_data_text(message), BODY_CHARS, more))}"
    whole = message is not None and _whole(message)
    after = (
        f"Shown whole, so it is marked read ({_READ_INBOX} does not show it again)."
        if whole and message_id in read
        else f"{_READ_INBOX} shows it and marks it read."
    )
    kind = shown_name(f.get("kind", "text"))
    return Notice(
        f"New {what} {meta['message_id']} from {sender} ({kind}){body}\n{after}",
        {k: v for k, v in meta.items() if v},
        shows=message_id if whole else "",
    )


def _synthesis_steps(sender: str, role: str) -> str:
    """What a session of ``role`` is told to do when asked for a synthesis, in its tools."""
    if offers(role, _LIST_FINDINGS) and offers(role, _SYNTHESIZE):
        return (
            f": {_LIST_FINDINGS}(pass_name), then {_SYNTHESIZE}(pass_name, text, sources); "
            f"{_READ_INBOX} shows the instructions."
        )
    steps = [f"{_READ_INBOX} shows the instructions"]
    if offers(role, _LIST_FINDINGS):
        steps.append(f"{_LIST_FINDINGS}(pass_name) shows the findings")
    if offers(role, _REQUEST_SYNTHESIS):
        steps.append(f"{_REQUEST_SYNTHESIS}(shard=..., pass_name) asks a shard for it")
    if offers(role, _SEND_MESSAGE):
        steps.append(f"{_SEND_MESSAGE}(to={dumps(sender)}, body=...) answers {sender}")
    return (
        f", but the tools of this session (role {role}) cannot write a synthesis: a shard's "
        f"session does. {'; '.join(steps)}."
    )


def _synthesis_notice(group: _Group, role: str) -> list[Notice]:
    out = []
    for event in group.events:
        f = event.fields
        sender = _sender(f)
        meta = {"kind": group.kind, "message_id": _shown(f.get("message", "")), "from": sender,
                "pass_name": _shown(f.get("pass", ""), label=True)}  # fmt: skip
        out.append(
            Notice(
                f"{sender} asks you to synthesize the findings of {meta['pass_name'] or '?'}"
                + _synthesis_steps(sender, role),
                {k: v for k, v in meta.items() if v},
            )
        )
    return out


def _claim_said(queue: str, role: str) -> str:
    """How a session of ``role`` claims a task of ``queue``, ending a task notice."""
    if offers(role, _CLAIM_TASK):
        return f": {_CLAIM_TASK}(queue={dumps(queue)})."  # the call as JSON arguments read
    return f" (a worker's session claims it: this session's role, {role}, claims no tasks)."


def _task_notice(group: _Group, role: str) -> Notice:
    events, queue = group.events, shown_name(group.queue)
    claim = _claim_said(group.queue, role)
    if len(events) > 1:
        return Notice(
            f"{len(events)} tasks are claimable in queue {queue}{claim}",
            {"kind": "task", "queue": queue, "count": str(len(events))},
        )
    task = _shown(events[0].fields.get("task", ""))
    return Notice(
        f"Task {task} is claimable in queue {queue}{claim}",
        {"kind": "task", "task_id": task, "queue": queue},
    )


def waiting_tasks(pending: dict[str, int], role: str = EVERY_TOOL_ROLE) -> list[Notice]:
    """The notices a session's channel starts with for the tasks already waiting in its
    watched queues (``pending``: queue -> pending tasks): one per queue holding any, saying
    how many, not one per task (a backlog of thousands is one line)."""
    out = []
    for queue, count in pending.items():
        if count > 0:
            tasks = "1 task is" if count == 1 else f"{count} tasks are"
            out.append(
                Notice(
                    f"{tasks} waiting in queue {queue}{_claim_said(queue, role)}",
                    {"kind": "task", "queue": queue, "count": str(count), "waiting": "true"},
                )
            )
    return out


def more_waiting() -> Notice:
    """The notice after the waiting messages a named session's channel pushed as it started,
    when more than ``WAITING_READ`` were waiting: the rest are told of nowhere else."""
    return Notice(
        f"More unread messages are waiting than the {WAITING_READ} just told of: "
        f"{_READ_INBOX} shows them, oldest first (call it again while it says there are more).",
        {"kind": "message", "more": "true"},
    )


def notices(
    events: Iterable[Event],
    agent: str,
    queues: Sequence[str],
    bodies: dict[str, Message] | None = None,
    role: str = EVERY_TOOL_ROLE,
    shown: Collection[str] = (),
) -> list[Notice]:
    """The notifications a batch of events makes for ``agent``, a session of ``role`` (each
    names only the tools that role has): one per kind (and queue), saying how many when there
    are several; a synthesis request each. ``bodies`` (the agent's unread messages, id ->
    message, oldest first) lets a single message's notice show its text, and say whether that
    makes it read (see ``read_run``; ``shown``: the ids earlier notices showed whole)."""
    bodies = bodies or {}
    groups = _groups(events, agent, queues)
    whole = {m.id for m in (_single(g, bodies) for g in groups) if m is not None and _whole(m)}
    read = {m.id for m in read_run(bodies.values(), {*shown, *whole})}
    out: list[Notice] = []
    for group in groups:
        if group.kind == "task":
            out.append(_task_notice(group, role))
        elif group.kind == SYNTHESIS_REQUEST_KIND:
            out += _synthesis_notice(group, role)
        else:
            out.append(_message_notice(group, bodies, read))
    return out


class Channel:
    """The channel watchers of one server process: one per handshake-era connection, each
    following the event stream for its session's agent, in the server's task group."""

    def __init__(
        self, settings: Settings, queues: Sequence[str] = (), role: str = EVERY_TOOL_ROLE
    ) -> None:
        self.settings = settings
        self.queues = tuple(queues)
        self.role = role  # the server's: its sessions' tools are that role's
        self._task_group: anyio.abc.TaskGroup | None = None
        self._swarm: AsyncSwarm | None = None
        self._recheck: anyio.Event | None = None  # set: run the due check now

    @property
    def swarm(self) -> AsyncSwarm:
        # Made in the serving event loop (an asyncio client belongs to the loop it runs in).
        if self._swarm is None:
            self._swarm = AsyncSwarm(self.settings)
        return self._swarm

    def attach(self, task_group: anyio.abc.TaskGroup) -> None:
        """Where the watchers run: the server lifespan's task group."""
        self._task_group = task_group

    async def aclose(self) -> None:
        if self._swarm is not None:
            await self._swarm.aclose()
            self._swarm = None

    async def mark_start(self, connection: Connection) -> None:
        """At ``initialize``: the newest event, so that the watcher (started once the agent
        is registered) misses nothing sent after the client's handshake."""
        try:
            connection.state[_STATE_SINCE] = await self.swarm.last_event_id()
        except SwarmError as exc:  # the watcher follows from its own start instead
            log.warning("channel: could not read the event stream: %s", exc)

    def start(self, connection: Connection, agent: str, *, waiting: bool = False) -> None:
        """Watch for ``agent`` until the connection closes; with ``waiting`` (a named session,
        whose inbox outlived its last one), push the unread messages waiting first."""
        if self._task_group is None:
            log.warning("channel: no task group to watch in; no events will be pushed")
            return
        scope = anyio.CancelScope()
        since = connection.state.get(_STATE_SINCE)
        connection.exit_stack.callback(scope.cancel)
        self._task_group.start_soon(self._watch, scope, connection, agent, since, waiting)
        if self.queues and self._recheck is None:  # one due check per server process
            self._recheck = anyio.Event()
            self._task_group.start_soon(self._check_due)

    async def _check_due(self) -> None:
        """Make the watched queues' tasks claimable when their time comes, with nobody
        claiming; the events that makes (``task.due``, ``task.expired``) are pushed. A
        check that fails is tried again every ``RECHECK_S``, said once as it starts
        failing and once as it works again."""
        down: float | None = None  # when the checks began to fail (monotonic), while they do
        while True:
            recheck = self._recheck = anyio.Event()  # events from now on ask for the next
            try:
                due_s = await self.swarm.reap_due(self.queues)
            except SwarmError as exc:
                if down is None:
                    down = time.monotonic()
                    log.warning(
                        "channel: could not check the watched queues: %s; trying again every "
                        "%g s (said here when it works)", exc, RECHECK_S,
                    )  # fmt: skip
                due_s = None
            else:
                if down is not None:
                    log.warning(
                        "channel: the watched queues are checked again after %.0f s",
                        time.monotonic() - down,
                    )
                    down = None
            with anyio.move_on_after(RECHECK_S if due_s is None else min(RECHECK_S, due_s)):
                await recheck.wait()
                await anyio.sleep(MIN_RECHECK_S)
            await anyio.sleep(AGAIN_S)

    async def _watch(
        self,
        scope: anyio.CancelScope,
        connection: Connection,
        agent: str,
        since: str | None,
        waiting: bool,
    ) -> None:
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=math.inf)
        with scope:
            log.info("channel: pushing events for %s", agent)
            async with anyio.create_task_group() as tg, receive:
                tg.start_soon(self._follow, send, since, agent)  # (live events wait in the stream)
                backlog, more = await self._waiting(agent) if waiting else ([], False)
                shown: set[str] = set()  # unread messages received whole by the session
                if backlog:
                    await self._push(connection, agent, backlog, shown)
                if more:
                    await connection.notify(METHOD, more_waiting().params)
                # the tasks waiting now, counted: their events so far are not told again
                counted = await self._waiting_tasks(connection) if self.queues else None
                # a message sent as the session started is in both: pushed once
                pushed = {e.fields["message"] for e in backlog}
                async for first in receive:
                    await anyio.sleep(COALESCE_S)  # the rest of a burst arrives meanwhile
                    batch = [first]
                    while True:
                        try:
                            batch.append(receive.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    batch = [
                        e
                        for e in batch
                        if e.fields.get("message", "") not in pushed
                        and not (counted and _counted_in(e, counted))
                    ]
                    if batch:
                        await self._push(connection, agent, batch, shown)

    async def _waiting_tasks(self, connection: Connection) -> tuple[int, int] | None:
        """Tell the session of the tasks waiting in its watched queues (``waiting_tasks``),
        the delayed ones due by now among them. Returns the newest event (in stream order)
        the counts include: a task event up to it is not told again. None if they could not
        be read (the live events are all told then)."""
        try:
            await self.swarm.reap_due(self.queues)  # what is due now is counted as pending
            newest = await self.swarm.last_event_id()  # before the counters: none missed
            stats = await self.swarm.queue_stats()
        except SwarmError as exc:
            log.warning("channel: could not count the tasks waiting in %s: %s", self.queues, exc)
            return None
        pending = {q: stats.get(q, {}).get("pending", 0) for q in dict.fromkeys(self.queues)}
        for notice in waiting_tasks(pending, self.role):
            await connection.notify(METHOD, notice.params)
        return event_order(newest)

    async def _waiting(self, agent: str) -> tuple[list[Event], bool]:
        """The oldest ``WAITING_READ`` unread messages waiting for ``agent``, oldest first, as
        the events that sent them (a synthesis request's two): what its watcher would have
        pushed, had it run; and whether more wait after them."""
        try:
            unread = await self.swarm.inbox(agent, ack=False, limit=WAITING_READ)
        except SwarmError as exc:
            log.warning("channel: could not read the waiting messages of %s: %s", agent, exc)
            return [], False
        events: list[Event] = []
        for m in unread:
            sent = {"message": m.id, "to": m.to, "from": m.sender or "", "kind": m.kind}
            events.append(Event(m.seq, EventType.MESSAGE_SENT, m.created_at, sent))
            if m.kind == SYNTHESIS_REQUEST_KIND and m.to == agent:
                pass_name = (m.data or {}).get("pass_name")
                asked = {"shard": agent, "pass": str(pass_name or ""), "message": m.id,
                         "from": m.sender or ""}  # fmt: skip
                events.append(Event(m.seq, EventType.SYNTHESIS_REQUESTED, m.created_at, asked))
        return events, unread.more

    async def _follow(
        self, send: anyio.abc.ObjectSendStream[Event], since: str | None, agent: str
    ) -> None:
        """Feed the events the channel may push for ``agent``, from ``since``, riding out
        outages: a lost Redis is logged once, tried again every ``AGAIN_AFTER_OUTAGE_S``
        (each try waits out the client's own retries), and logged again once it answers;
        no event is missed (the follow goes on from the last one fed). An error no retry
        fixes (``needs_a_fix``) is logged once with what to fix (also when an outage
        turns into one) and tried again only every ``AGAIN_AFTER_FIX_S``: once it is fixed
        where the server runs, pushing resumes (said once), with no restart of the session.
        The session's tools go on throughout."""
        down: float | None = None  # when the stream failed (monotonic), while it fails
        stuck = False  # an error no retry fixes was said while it fails
        async with send:
            while True:
                try:
                    # While it fails, a short follow first: it is back once the stream can be
                    # read (a user may read its newest id yet not follow it).
                    probe = PROBE_S if down is not None else None
                    if probe is not None:
                        since = since or await self.swarm.last_event_id()
                    events = self.swarm.follow_events(
                        since, WATCHED, block_s=probe or 30, timeout_s=probe
                    )
                    async for event in events:
                        since = event.id
                        if self._recheck is not None and _falls_due_later(event, self.queues):
                            self._recheck.set()
                        await send.send(event)
                    if down is not None:
                        log.warning(
                            "channel: %s after %.0f s: following the event stream for %s "
                            "again", "fixed" if stuck else "Redis answers again",
                            time.monotonic() - down, agent,
                        )  # fmt: skip
                        down, stuck = None, False
                except SwarmError as exc:
                    no_retry_fixes = needs_a_fix(exc)
                    if no_retry_fixes and not stuck:
                        log.error(
                            "channel: cannot push events for %s: %s; no retry fixes that: "
                            "fix it where this server runs, and pushing resumes (tried again "
                            "every %g s; said here when it does)", agent, exc, AGAIN_AFTER_FIX_S,
                        )  # fmt: skip
                        stuck = True
                    elif down is None and not no_retry_fixes:
                        log.warning(
                            "channel: the event stream failed (%s); trying again until Redis "
                            "answers (said here when it does)", exc,
                        )  # fmt: skip
                    if down is None:
                        down = time.monotonic()
                    await anyio.sleep(AGAIN_AFTER_FIX_S if no_retry_fixes else AGAIN_AFTER_OUTAGE_S)

    async def _push(
        self, connection: Connection, agent: str, batch: list[Event], shown: set[str]
    ) -> None:
        """Notify the session of ``batch``; then mark read what that showed it (``read_run``
        of the unread messages, with ``shown``: what earlier notices showed whole, kept
        while unread)."""
        groups = _groups(batch, agent, self.queues)
        unread: list[Message] | None = None
        if any(g.kind in ("message", "broadcast") and len(g.events) == 1 for g in groups):
            try:
                unread = list(await self.swarm.inbox(agent, ack=False, limit=100))
            except SwarmError as exc:  # the notice goes out without the text
                log.info("channel: could not read the inbox of %s: %s", agent, exc)
        if unread is None:
            await self._notify(connection, notices(batch, agent, self.queues, role=self.role))
            return
        bodies = {m.id: m for m in unread}
        out = notices(batch, agent, self.queues, bodies, self.role, shown)
        await self._notify(connection, out)
        whole = {n.shows for n in out if n.shows}
        if whole and await _received(connection):
            shown |= whole
            run = read_run(unread, shown)
            if run:
                try:
                    await self.swarm.mark_read(agent, run[-1].seq)
                except SwarmError as exc:  # unread: read_inbox or the hooks show it again
                    log.warning("channel: could not mark read what %s was shown: %s", agent, exc)
        shown.intersection_update(bodies)  # read since, by whatever read it: forgotten

    @staticmethod
    async def _notify(connection: Connection, out: Iterable[Notice]) -> None:
        for notice in out:
            await connection.notify(METHOD, notice.params)


async def _received(connection: Connection) -> bool:
    """Whether the session has received the notices just sent: it answers a ping sent after
    them (one stream, in order). ``notify`` never says whether it wrote; the SDK drops what
    it cannot."""
    try:
        await connection.ping(opts={"timeout": RECEIVED_S})
    except MCPError as exc:  # (a timeout, a closed connection, a peer's error)
        log.info("channel: the session did not confirm a notice (%s): left unread", exc)
        return False
    return True


class ChannelOnConnect:
    """Server middleware: declare ``claude/channel`` in the handshake's reply, and start the
    session's watcher once its agent is registered (after ``RegisterOnConnect``)."""

    def __init__(self, channel: Channel, registry: SessionRegistry) -> None:
        self.channel = channel
        self.registry = registry

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        connection = connection_of(ctx)
        if ctx.method == "initialize" and connection is not None:
            await self.channel.mark_start(connection)
        result = await call_next(ctx)
        if ctx.method == "initialize" and isinstance(result, dict):
            capabilities = result.setdefault("capabilities", {})
            capabilities.setdefault("experimental", {})[CAPABILITY] = {}
        elif (
            ctx.method == "notifications/initialized"
            and connection is not None
            and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        ):
            try:
                session = await self.registry.for_request(ctx)
            except SwarmError as exc:
                log.warning("channel: no agent for this session, no events: %s", exc)
            else:
                self.channel.start(connection, session.agent_id, waiting=session.named)
        return result
