"""Who is calling: one registered agent per MCP session, and the leases it holds.

A session registers as an agent when its client connects (role from ``--role``, client name
from the ``initialize`` request), heartbeats while it is connected, and on close releases the
tasks it still holds. Then an agent whose id was made up here leaves (deregisters: nobody can
come back as it); one whose id was given (``--name``, or SWARM_AGENT) stays registered and is
marked stale at once, its inbox kept, so that its next start reads what it was sent meanwhile.
The record names the server that registered it last (``server_identity``: host and pid, which
the hooks of the session check to name its MCP tools); registering builds on the record as
stored (the core's ``join``: the hooks' keys kept, a SessionStart at the same instant never
written over), a rejoin after a sweep names the server again, and of two servers under one id
the one closing ends the agent only if the record names it (the other says so again at its
next heartbeat when the record names no server). A server with a given id serves one session
under it at a time: a second one is refused while the first is open (``_take_name``), never
registered under another id its client would not be told.
The lease token of each claimed task stays here, so a worker names only the task id and cannot
lose its token (on stdio it is also kept in the machine's token store, where the hooks of the
same agent find it: ``_lease_tokens``); so do the findings of the last tasks it reported (a
worker's task, a shard's question), so that a second report or answer of one is told what
happened to the first.

MCP has two protocol eras. On the handshake era (every client today: Claude Code, Codex,
Gemini CLI, the Inspector) a session is the connection, and its teardown is the connection's
exit stack. On the 2026-07-28 era every request stands alone: there is no connection to hang
a session on, so requests share one session per client name, closed when the server stops
or once it has gone unused (no request in flight, none ended) for as long as the SDK lets an
idle HTTP session live. Closed so, its agent is marked stale, not deregistered: its inbox waits,
and the next request under the name joins as the same agent again (``_idle_ids``).

A server serves at most ``max_sessions`` sessions at once (both eras: over HTTP each one is an
agent heartbeating in the swarm's registry). A new one past it, as it registers, makes room by
closing the session unused the longest among those unused for ``MIN_IDLE_TO_MAKE_ROOM_S`` at
least that hold no lease, serve no request and (over HTTP) keep no stream open (``_room``):
Claude Code never ends its sessions, so each `claude -p` leaves one behind for the idle time.
Refused, before it registers, only when none can go. The agent of a session closed so is
marked stale when someone may come back as it (a 2026-era client name, a given id) or when its
inbox holds a direct message unread; a handshake-era agent with a made-up id leaves, as when
the SDK ends its session idle (nobody ever comes back as it).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.streamable_http_manager import DEFAULT_SESSION_IDLE_TIMEOUT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .. import _lease_tokens as tokens
from .. import _mcp_names
from .._client import Swarm
from .._config import Settings
from .._errors import (
    AlreadyCompleted,
    Conflict,
    ConnectionFailed,
    LeaseLost,
    NotFound,
    SwarmError,
    Timeout,
)
from .._models import STALE_AFTER_S, Agent, Inbox, Task
from . import DEFAULT_MAX_SESSIONS
from ._roles import AGENT_ROLES

# A waiting call's slice (a claim's, a pass's): how soon a cancellation or the server's
# leaving ends its wait, and with it the worker thread that waits.
_SLICE_S = 1.0

__all__ = [
    "ANSWER",
    "MIN_IDLE_TO_MAKE_ROOM_S",
    "NO_SERVER",
    "REMEMBERED_REPORTS",
    "REPORT",
    "AgentSession",
    "Lease",
    "RegisterOnConnect",
    "SessionRegistry",
    "Settling",
    "connection_of",
    "name_held",
    "names_a_server",
    "refuse_held_name",
    "server_identity",
    "sessions_full",
]

log = logging.getLogger("redis_swarm.mcp")

T = TypeVar("T")

_STATE_KEY = "redis_swarm.session"

# How long a closing session waits for its heartbeat on its way: a server that does not answer
# holds one for the client's whole retry window (tens of seconds), which would eat the budget
# of a shutdown (close_all has 5 s on a signal) before any lease went back. One that lands
# later is undone by the loop (``_undo_late_beat``).
BEAT_WAIT_S = 1.0

# How many client names a server remembers the agent of, once their 2026-era session closed
# for idleness (``SessionRegistry._idle_ids``), oldest forgotten first: a name that comes back
# joins as the same agent, its inbox intact; one forgotten gets a new agent, as before.
REMEMBERED_CLIENTS = 10_000

# How long a session must have gone unused before it is closed to make room for a new one.
# Claude Code does not recover from a session the server closed: it keeps sending the dead
# session id after the 404 (a known upstream bug) until it is restarted. So room is made only
# from sessions clearly left behind (a finished `claude -p`, a `claude mcp list`), never from
# one whose user only paused for a minute: past the bound a new session is refused instead.
MIN_IDLE_TO_MAKE_ROOM_S = 5 * 60

# How many reported tasks (and answered questions) a session remembers, oldest forgotten first:
# an agent reports again the task it just did, not one of a thousand ago, and a session that
# lives for days stays small.
REMEMBERED_REPORTS = 1000


@dataclass(frozen=True)
class Settling:
    """How a session settles a task it holds with a finding (a worker reports its task, a
    shard answers its question), in the words an agent is told when it tries again."""

    noun: str  # what is settled: "task"
    done: str  # what it became: "completed"
    act: str  # the finding that settles it: "report"
    acted: str  # "reported": this session reported it
    then: str  # what to do instead of settling it again
    unheld: str  # what to do when this session holds no lease on it

    def again(self, task_id: str, finding_id: str) -> AlreadyCompleted:
        """This session settled ``task_id`` (as ``finding_id``) already: nothing is stored."""
        return AlreadyCompleted(
            f"{self.noun} {task_id} was already {self.done}: this session {self.acted} it "
            f"({finding_id}); {self.then}",
            finding_id=finding_id,
        )

    def late(self, task_id: str, finding_id: str) -> AlreadyCompleted:
        """``task_id`` was settled before this session's finding arrived, which the core kept
        as superseded (``finding_id``)."""
        return AlreadyCompleted(
            f"{self.noun} {task_id} was already settled (another {self.act} came first, or it "
            f"was cancelled); your {self.act} was kept as superseded ({finding_id}), nothing "
            f"is lost: {self.then}",
            finding_id=finding_id,
        )


REPORT = Settling(
    "task", "completed", "report", "reported",
    "do not report, renew or fail it again, claim the next task with claim_task",
    "claim a task with claim_task and use the task id it returns; if this MCP server "
    "restarted since your claim, pass the token that claim_task returned",
)  # fmt: skip
ANSWER = Settling(
    "question", "answered", "answer", "answered",
    "do not answer it again, take the next question with next_question",
    "take a question with next_question and answer the question_id it returns (a "
    "question taken before this MCP server restarted is asked again once its lease ends)",
)  # fmt: skip


@dataclass
class Lease:
    """A task this session claimed and has not settled yet."""

    token: str
    queue: str
    parent: str | None


@dataclass
class AgentSession:
    """One connected agent: its id, and what it holds and has read."""

    agent_id: str
    role: str
    client: str
    model: str | None = None
    leases: dict[str, Lease] = field(default_factory=dict)
    # owner -> the context version this agent last read: the lineage a finding records.
    read_versions: dict[str, str] = field(default_factory=dict)
    # task id -> how this session settled it and the finding it stored (kept, or kept
    # superseded), oldest first: a task reported (or a question answered) twice is refused
    # here, before a duplicate finding is stored.
    reported: OrderedDict[str, tuple[Settling, str]] = field(default_factory=OrderedDict)
    closed: bool = False
    # Its agent kept at close, marked stale, as a named one's: closed for idleness
    # (``stale``), or a direct message sent to it waited unread (``close``'s ``if_read``).
    kept: bool = False
    # Its id was given (--name, SWARM_AGENT): someone comes back as it, so it stays
    # registered when the session closes, its inbox kept for its next start.
    named: bool = False
    # Where its lease tokens are also kept for the hooks of the same agent (the machine's
    # token store, ``_lease_tokens``); None: here only (HTTP: the agents are elsewhere).
    token_store: Settings | None = None
    # Held while a heartbeat of its agent is on its way: its close waits one out, so that
    # none lands after the agent is marked stale (it would read alive again).
    beating: anyio.Lock = field(default_factory=anyio.Lock, repr=False, compare=False)
    # When a request last asked for it or ended (the registry's ``clock``): a 2026-era session,
    # which no connection ends, is closed once unused for the registry's ``idle_s``; when
    # the server is full, the one unused the longest makes room.
    used: float = field(default_factory=time.monotonic)
    # What its requests are counted under (``SessionRegistry._key``): its client's name on
    # the 2026 era, its connection on the handshake era.
    key: object = None
    # Its HTTP session's id (handshake era over HTTP): ended with it when it makes room.
    http_id: str | None = None
    # When the event stream (GET) its client kept open last closed: a client that listens is
    # gone, or dropped it (a restart that opens a new session without its session id). Its
    # fixed id may then be taken over at once (``_take_name``) rather than after minutes
    # unused, unless a request came since (the client is still at work: ``gone_since_stream``).
    stream_closed_at: float | None = None

    def gone_since_stream(self) -> bool:
        """Whether its client closed its event stream and sent nothing since."""
        return self.stream_closed_at is not None and self.stream_closed_at >= self.used

    def hold(self, task: Task) -> None:
        """The session claimed ``task``: it keeps the lease (and stores its token)."""
        assert task.token is not None  # a claimed task carries its lease's token
        self.leases[task.id] = Lease(task.token, task.queue, task.parent)
        if self.token_store is not None:
            store, token = self.token_store, task.token
            _keep_tokens(lambda: tokens.remember(store, self.agent_id, task.id, token))

    def let_go(self, task_id: str, *, forget: bool = True) -> None:
        """The session's lease on ``task_id`` is over (settled, released, lost). ``forget``
        false: its token stays kept on the machine, a lease lost while its task is open
        (the hooks' late report takes it; they drop it once the task is settled:
        ``_lease_tokens.outlived``)."""
        lease = self.leases.pop(task_id, None)
        if forget and lease is not None and self.token_store is not None:
            store = self.token_store
            _keep_tokens(lambda: tokens.forget_task(store, task_id, lease.token))

    def report_done(self, task_id: str, finding_id: str, how: Settling) -> None:
        """The session settled ``task_id`` (``how``) as ``finding_id``: its lease is over."""
        self.let_go(task_id)
        self.reported[task_id] = (how, finding_id)
        self.reported.move_to_end(task_id)
        while len(self.reported) > REMEMBERED_REPORTS:
            self.reported.popitem(last=False)

    def token(self, task_id: str, given: str | None = None, how: Settling = REPORT) -> str:
        """The lease token for ``task_id``: the session's own, else the one the agent passed.

        A task this session has settled is refused even with a token: its lease is over, and
        settling it again would only store a superseded duplicate."""
        settled = self.reported.get(task_id)
        if settled is not None:
            how, finding_id = settled
            raise how.again(task_id, finding_id)
        lease = self.leases.get(task_id)
        if lease is not None:
            return lease.token
        if given is not None:
            return given
        raise LeaseLost(f"this session holds no lease on {how.noun} {task_id}: {how.unheld}")

    def context_owner(self, owner: str | None) -> str:
        """The context an agent means when it names none: its task's shard, else its own."""
        if owner:
            return owner
        parents = {lease.parent for lease in self.leases.values() if lease.parent}
        return parents.pop() if len(parents) == 1 else self.agent_id


def _keep_tokens(change: Callable[[], None]) -> None:
    """A change to the token store: never a tool's error (the session keeps its own copy of
    every token; only the hooks' renewal and report of its leases miss one not stored)."""
    try:
        change()
    except OSError as exc:
        log.warning("lease tokens not kept for the hooks: %s", exc)


def _why(exc: SwarmError) -> str:
    """Why a closing session could not tell Redis, for the server's log: an outage by its
    first clause ("cannot reach Redis at URL"; the rest says how to start Redis and run a
    command again, and no close is tried again), anything else as the core says it."""
    said = str(exc)
    return said.partition(": ")[0] if isinstance(exc, ConnectionFailed) else said


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:40] or "client"


def _client_name(rctx: ServerRequestContext[Any, Any]) -> str:
    params = rctx.session.client_params
    return params.client_info.name if params is not None else "unknown"


def sessions_full(max_sessions: int) -> str:
    """Why a new session is refused (a tool's error on the 2026 era, the HTTP 503 of the
    handshake era's ``initialize``): the bound, why none made room, and what frees a place."""
    return (
        f"this MCP server has {max_sessions} sessions open, as many as it serves at once, and "
        "none can make room (each holds a task's lease, is serving a request, keeps a stream "
        f"open or was used in the last {MIN_IDLE_TO_MAKE_ROOM_S // 60} minutes): try again "
        "later, or restart the server with a higher --max-sessions"
    )


def server_identity() -> dict[str, Any]:
    """The metadata that names this server among the sessions of one agent id: its host and
    pid (the hooks check that this process runs; a session closing ends the agent only while
    its record still says them)."""
    return {_mcp_names.SERVER_HOST: socket.gethostname(), _mcp_names.SERVER_PID: os.getpid()}


# What a record naming no server says (``mark_stale``'s ``session``: keys it must not have).
NO_SERVER: dict[str, Any] = dict.fromkeys(_mcp_names.SERVER_KEYS)


def names_a_server(agent: Agent) -> bool:
    """Whether the agent's record names a server (as ``server_identity`` does)."""
    metadata = agent.metadata or {}
    return all(metadata.get(key) is not None for key in _mcp_names.SERVER_KEYS)


def _server_of(agent: Agent) -> tuple[Any, ...]:
    """The server the agent's record names (``server_identity``'s values; Nones: none)."""
    metadata = agent.metadata or {}
    return tuple(metadata.get(key) for key in _mcp_names.SERVER_KEYS)


def name_held(existing: Agent | None, role: str, before: Agent | None) -> str | None:
    """Why a session of ``role`` (the role it registers as) may not start under the id of
    ``existing`` (the record as stored now, None: not registered), else None: a live agent of
    another role that an MCP server registered and serves (its record names the server:
    ``names_a_server``) holds the id, and taking it would make that server's agent this
    role's, and mark it gone when this session ends. A restart of the same role takes its own
    name back; a record the hooks alone wrote (naming no server) is the session's own, its
    role the server's; a server that closed (``mark_stale`` dropped its name, ``left_at``)
    or went silent for ``STALE_AFTER_S`` holds nothing.

    ``before``: the agent as read with its liveness (``get_agent``) just before ``existing``
    was (``join``, which reads no clock): its ``alive`` stands while the record is still of
    the same server and life; a record another server wrote since was just registered,
    alive. ``join`` stores only the record it was given to ``revise``, so two servers of
    two roles starting at once cannot both take the id: the second reads the first's."""
    if existing is None or existing.role == role or not names_a_server(existing):
        return None
    left, seen = existing.left_at, existing.last_seen
    if left is not None and (seen is None or seen <= left):
        return None  # (its session ended: ``mark_stale``)
    same = (
        before is not None
        and _server_of(before) == _server_of(existing)
        and before.registered_at == existing.registered_at
    )
    if same and not (before is not None and before.alive):
        return None
    host, pid = _server_of(existing)
    return (
        f"agent {existing.id} is live as role {existing.role}, served by another MCP server "
        f"(pid {pid} on {host}): a {role} session under the same name would take it over, "
        f"and mark it gone when it ends. Start this server with another --name (or "
        f"SWARM_AGENT) for the {role}, or stop that server first: one of role "
        f"{existing.role} started again takes its own name back; one killed reads stale "
        f"{STALE_AFTER_S:.0f} s after its last heartbeat ('swarm agents deregister "
        f"{existing.id}' frees the name at once)"
    )


def refuse_held_name(swarm: Swarm, name: str, role: str) -> None:
    """Refuse (``Conflict``: ``name_held``) to start a server of ``role`` (its ``--role``)
    under ``name`` while a live agent of another role served by an MCP server holds it: said
    at the start, before any client connects. (Each session checks again as it registers,
    atomically: ``SessionRegistry._open``.)"""
    try:
        agent = swarm.get_agent(name)
    except NotFound:
        return
    why = name_held(agent, _mcp_names.agent_role(role), agent)
    if why is not None:
        raise Conflict(why)


def connection_of(rctx: ServerRequestContext[Any, Any]) -> Connection | None:
    """The client's ``Connection``: the one object that lives exactly as long as the client's
    connection, with the SDK's per-connection ``state`` and teardown ``exit_stack``.

    The one reach-in into the SDK left here, because its public API has no way to it: the
    SDK's own notes say per-connection cleanup "belongs on ``connection.exit_stack``", and its
    ``mcp.server.context.Context`` has a public ``connection`` property, but ``MCPServer``
    hands tools and middleware a ``ServerRequestContext`` whose per-request ``ServerSession``
    keeps the connection private (mcp 2.x). ``test_sessions_are_agents_that_leave_on_close``
    fails if this stops finding it; replace it with the public property once MCPServer builds
    that Context.
    """
    connection = getattr(rctx.session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


class SessionRegistry:
    """Every live session of one server process, and the agent each registered."""

    def __init__(
        self,
        swarm: Swarm,
        *,
        role: str = _mcp_names.EVERY_TOOL_ROLE,
        name: str | None = None,
        model: str | None = None,
        transport: str = "stdio",
        keep_tokens: bool = False,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        idle_s: float = DEFAULT_SESSION_IDLE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if role not in AGENT_ROLES:
            raise ValueError(f"role must be one of {', '.join(AGENT_ROLES)}, not {role!r}")
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, not {max_sessions}")
        self.swarm = swarm
        self.role = role
        self.name = name
        self.model = model
        self.transport = transport
        self.max_sessions = max_sessions
        # How long a 2026-era session (shared by a client name) lives unused: as long as the
        # SDK keeps an idle HTTP session of the handshake era.
        self.idle_s = idle_s
        # What idleness is measured with (a test's fake clock: nobody waits 30 minutes).
        self.clock = clock
        # Requests in flight, by session key (``_key``): a session serving one is in use,
        # however long the request runs (a wait_for_pass, an ask: up to days).
        self._busy: Counter[object] = Counter()
        # Client name -> the agent its 2026-era session had when it closed for idleness.
        self._idle_ids: OrderedDict[str, str] = OrderedDict()
        # Set by the HTTP face (``_http.SessionsFull``): whether an HTTP session has a request
        # or a GET stream open, and how to end one (its agent's session made room).
        self.http_busy: Callable[[str], bool] = lambda _http_id: False
        self.end_http: Callable[[str], Awaitable[None]] | None = None
        # Keep lease tokens in the machine's token store too (the CLI's stdio server: the
        # agent's hooks run on this machine), under the swarm handle's home.
        self.token_store = swarm.settings if keep_tokens else None
        self._live: dict[str, AgentSession] = {}
        self._shared: dict[str, AgentSession] = {}
        self._lock = anyio.Lock()
        self._inbox_locks: dict[str, anyio.Lock] = {}  # (``reading_inbox``)
        # Set when the client closed stdin: waiting claims end instead of holding the exit.
        self.leaving = threading.Event()

    @property
    def agent_role(self) -> str:
        return _mcp_names.agent_role(self.role)

    @property
    def live(self) -> list[AgentSession]:
        return list(self._live.values())

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call on a worker thread (the event loop keeps serving). A
        cancelled request still waits for it: a write must not happen unseen."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    async def claim(
        self, queue: str | list[str], *, worker: str, lease_s: int | None, wait_s: float
    ) -> Task | None:
        """A claim that may wait, on a worker thread. It waits in slices of a second, so that
        a cancelled request (``notifications/cancelled``) or the server's leaving ends it
        soon: the client never sees a task claimed then, so one taken anyway (the claim and
        the cancellation crossing) is released, no failure counted."""
        lock = threading.Lock()
        taken: list[Task] = []
        abandoned = threading.Event()

        def take() -> Task | None:
            deadline = time.monotonic() + wait_s
            while True:
                left = max(0.0, deadline - time.monotonic())
                task = self.swarm.claim(
                    queue, worker=worker, lease_s=lease_s, wait_s=min(left, _SLICE_S)
                )
                with lock:
                    if task is not None and not (abandoned.is_set() or self.leaving.is_set()):
                        taken.append(task)
                        return task
                if task is not None:
                    self.swarm.release(task.id, task.token)
                    return None
                if left <= _SLICE_S or abandoned.is_set() or self.leaving.is_set():
                    return None

        try:
            return await anyio.to_thread.run_sync(take, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            with lock:
                abandoned.set()
                lost = list(taken)
            with anyio.CancelScope(shield=True):
                for task in lost:
                    await self.give_back(task)
            raise

    async def wait(
        self, *, pass_name: str | None, queue: str | None, timeout_s: float
    ) -> dict[str, int]:
        """The core's wait for a pass (or a queue) to settle, on a worker thread, in slices of
        a second as a waiting claim's: a cancelled request or the server's leaving ends the
        thread within a slice, not at the timeout. Raises Timeout as the core's does."""
        abandoned = threading.Event()

        def wait() -> dict[str, int]:
            deadline = time.monotonic() + timeout_s
            while True:
                left = max(0.0, deadline - time.monotonic())
                try:
                    return self.swarm.wait(
                        pass_name=pass_name, queue=queue, timeout_s=min(left, _SLICE_S)
                    )
                except Timeout:
                    if left <= _SLICE_S or abandoned.is_set() or self.leaving.is_set():
                        raise

        try:
            return await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            abandoned.set()
            raise

    @asynccontextmanager
    async def reading_inbox(self, agent: str) -> AsyncIterator[None]:
        """One read_inbox of ``agent`` at a time on this server: an acknowledged read takes
        the batch of the one before it as read, so a call made while a cancelled one gives
        its batch back (``take_inbox``) would take that batch for good. (The channel's and
        the hooks' peeks take nothing.)"""
        lock = self._inbox_locks.setdefault(agent, anyio.Lock())
        async with lock:
            yield

    async def take_inbox(self, agent: str, limit: int) -> Inbox:
        """The acknowledged read of ``agent``'s inbox, on a worker thread. A cancelled
        request still waits for it (as ``call``), then gives its batch back
        (``give_back_inbox``): the client never sees those messages, so the next read
        returns them."""
        taken: list[Inbox] = []

        def take() -> Inbox:
            inbox = self.swarm.inbox(agent, ack=True, limit=limit)
            taken.append(inbox)
            return inbox

        try:
            inbox = await anyio.to_thread.run_sync(take)
            # (the thread's wait is shielded: a cancellation that came meanwhile is raised
            # here, not at the SDK's next checkpoint, after the answer was made and dropped)
            await anyio.lowlevel.checkpoint_if_cancelled()
            return inbox
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                for inbox in taken:
                    if inbox.read_id is not None:
                        await self._give_back_read(agent, inbox.read_id)
            raise

    async def _give_back_read(self, agent: str, read_id: str) -> None:
        try:
            await anyio.to_thread.run_sync(self.swarm.give_back_inbox, agent, read_id)
        except SwarmError as exc:  # (they stay read: get_message shows them by id)
            log.warning("could not give back the inbox read of %s cancelled: %s", agent, exc)

    async def give_back(self, task: Task) -> None:
        """Release a task claimed for a request that was cancelled before its answer."""
        try:
            await anyio.to_thread.run_sync(self.swarm.release, task.id, task.token)
        except SwarmError as exc:  # its lease already ended: nothing held
            log.info("could not release %s after a cancelled claim: %s", task.id, exc)

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking core call that changes nothing on a worker thread; a cancelled
        request (``notifications/cancelled``) stops waiting for it at once."""
        call = functools.partial(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)

    @staticmethod
    def _key(rctx: ServerRequestContext[Any, Any]) -> object:
        """What the session of this request is kept and counted under: its connection on the
        handshake era, its client's name on the 2026 era."""
        connection = connection_of(rctx)
        if connection is not None and rctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return connection
        return _client_name(rctx)

    def _session_of(self, key: object) -> AgentSession | None:
        if isinstance(key, Connection):
            found = key.state.get(_STATE_KEY)
        else:
            found = self._shared.get(str(key))
        return found if isinstance(found, AgentSession) and not found.closed else None

    async def for_request(self, rctx: ServerRequestContext[Any, Any]) -> AgentSession:
        """The session of the client that sent this request, registered on first use."""
        client = _client_name(rctx)
        key = self._key(rctx)
        async with self._lock:
            session = self._session_of(key)
            if session is None:
                session = await self._open(client, key)
                if isinstance(key, Connection):
                    session.http_id = key.session_id
                    key.state[_STATE_KEY] = session
                    key.exit_stack.push_async_callback(self.close, session)
                else:
                    self._shared[client] = session
            session.used = self.clock()
            return session

    @asynccontextmanager
    async def serving(self, rctx: ServerRequestContext[Any, Any]) -> AsyncIterator[None]:
        """While a request is served: its session (opened during it or not) is in use, and
        counts as used from the moment it ends, not only from when it began."""
        key = self._key(rctx)
        self._busy[key] += 1
        try:
            yield
        finally:
            self._busy[key] -= 1
            if not self._busy[key]:
                del self._busy[key]
            session = self._session_of(key)
            if session is not None:
                session.used = self.clock()

    def http_stream_closed(self, http_id: str) -> None:
        """The HTTP face: the event stream (GET) of the HTTP session ``http_id`` closed."""
        for session in self._live.values():
            if session.http_id == http_id:
                session.stream_closed_at = self.clock()

    def _can_go(self, session: AgentSession) -> bool:
        """Whether closing the session takes nothing from a client at work: it holds no lease
        (a worker between its claim and its report may well be silent long; its lease's end
        lets the task go), serves no request and keeps no HTTP stream open."""
        if session.leases or self._busy[session.key]:
            return False
        return session.http_id is None or not self.http_busy(session.http_id)

    async def close_unused(self) -> None:
        """Close the 2026-era sessions that have been unused for ``idle_s`` (no request in
        flight, none ended since) and can go (``_can_go``), as the SDK ends a handshake-era
        session left idle: else every client name ever seen would keep an agent heartbeating
        until the server stops. Its agent is marked stale, not deregistered, and a request
        under the name afterwards joins as the same agent, its inbox intact."""
        async with self._lock:  # (no request takes one of them meanwhile)
            now = self.clock()
            for session in list(self._shared.values()):
                if self._can_go(session) and now - session.used >= self.idle_s:
                    log.info("agent %s unused for %.0f s: closing its session",
                             session.agent_id, now - session.used)  # fmt: skip
                    await self._close_idle(session)

    async def has_room(self) -> bool:
        """Whether a new session would have a place, closing nothing: the HTTP face asks before
        an ``initialize``, to refuse it with 503 when not. Room is made only when a session
        registers (``_open``, after ``initialized``): a client that only probes the server
        (an ``initialize``, never ``initialized``) closes nobody's session."""
        async with self._lock:
            return len(self._live) < self.max_sessions or self._unused_longest() is not None

    def _unused_longest(self) -> AgentSession | None:
        """The session to close to make room: unused the longest among those that can go
        (``_can_go``) and have been unused for ``MIN_IDLE_TO_MAKE_ROOM_S`` at least."""
        now = self.clock()
        idle = [
            s
            for s in self._live.values()
            if now - s.used >= MIN_IDLE_TO_MAKE_ROOM_S and self._can_go(s)
        ]
        return min(idle, key=lambda s: s.used, default=None)

    async def _room(self) -> bool:
        if len(self._live) < self.max_sessions:
            return True
        oldest = self._unused_longest()
        if oldest is None:
            return False
        log.info("%d sessions open: closing the one unused the longest (agent %s) to make room",
                 len(self._live), oldest.agent_id)  # fmt: skip
        await self._close_idle(oldest)
        return True

    async def _close_idle(self, session: AgentSession) -> None:
        """Close a session nobody is using, and its HTTP session. Its agent is marked stale,
        not deregistered, when someone may come back as it: a 2026-era client name (joins as
        the same agent next time, its inbox intact) or a given id (``named``). A handshake-era
        session's made-up id is never taken again, so its agent leaves, as it does when the
        SDK ends the session idle, unless a direct message sent to it waits unread (the core's
        ``deregister_if_read`` looks as it removes it, so that none sent meanwhile is lost):
        then it stays, stale, for someone to read its inbox (``swarm agents sweep`` removes
        it). Broadcasts do not count: every agent has them, and none is lost when an agent
        nobody comes back as leaves."""
        shared = self._shared.get(session.client) is session
        if shared:
            del self._shared[session.client]
            self._idle_ids[session.client] = session.agent_id
            self._idle_ids.move_to_end(session.client)
            while len(self._idle_ids) > REMEMBERED_CLIENTS:
                self._idle_ids.popitem(last=False)
        await self.close(session, stale=shared, if_read=True)
        if session.http_id is not None and self.end_http is not None:
            await self.end_http(session.http_id)

    def _profile(
        self, client: str, role: str, model: str | None, **more: Any
    ) -> Callable[[Agent | None], dict[str, Any]]:
        """How a session of this server registers its agent (the core's ``join``), built on
        the record as stored: a given id may be the hooks' too, whose keys are kept (and a
        SessionStart hook registering it at the same instant is built on, not written over).
        Its metadata says who runs it: ``via`` mcp, the transport, and ``server_identity``."""

        def profile(existing: Agent | None) -> dict[str, Any]:
            metadata = dict(existing.metadata or {}) if existing is not None else {}
            metadata.pop("rejoined", None)  # (a start is no rejoin: ``more`` says when it is)
            metadata |= {"client": client, "via": "mcp", "transport": self.transport}
            metadata |= server_identity() | more
            return {"role": role, "model": model, "metadata": metadata}

        return profile

    async def _take_name(self, holder: AgentSession) -> None:
        """A new session under this server's fixed id (``--name``) while ``holder`` has it:
        one id is one agent, with one set of leases, inbox and reads, so the new one is
        refused, not given another id its client is never told. A holder left behind (it can
        go, ``_can_go``: no lease, no request in flight, no stream open) is closed instead, as
        it would be to make room: at once when its client had kept an event stream open and
        that stream closed (the client is gone: a restarted client reconnecting without its
        session id, say), else once it has been unused for ``MIN_IDLE_TO_MAKE_ROOM_S`` (a
        client that never listens, as a finished `claude -p`, which never ends its session,
        cannot be told from one between two calls)."""
        unused = self.clock() - holder.used
        gone = holder.gone_since_stream()
        if self._can_go(holder) and (gone or unused >= MIN_IDLE_TO_MAKE_ROOM_S):
            why = "its client's event stream closed, nothing sent since" if gone else "unused"
            log.info("agent %s: closing its session (%s, unused for %.0f s) for a new one "
                     "under the id", holder.agent_id, why, unused)  # fmt: skip
            await self._close_idle(holder)
            return
        raise Conflict(
            f"agent id {holder.agent_id} (this MCP server's --name) is held by another open "
            f"session (client {holder.client}): one id is one agent, so a second session "
            "under it is refused. Close that session (it is let go, holding no task and "
            "serving no call, once its client's event stream has closed with nothing sent "
            f"since, or once unused for {MIN_IDLE_TO_MAKE_ROOM_S // 60} minutes), or start "
            "this server without --name "
            "(each session gets an id of its own), or start another server with another "
            "--name for this client"
        )

    async def _open(self, client: str, key: object = None) -> AgentSession:
        name = self.name
        if name is not None and name in self._live:  # (before room: the error it is)
            await self._take_name(self._live[name])
        if not await self._room():
            raise Conflict(sessions_full(self.max_sessions))
        # (a 2026-era client name, kept under its name, may have had an agent already)
        again = self._idle_ids.pop(client, None) if key == client else None
        if again is not None and again in self._live:
            again = None  # (the fixed name's, taken since by a session of another client)
        agent_id = name or again or f"{_slug(client)}-{self.agent_role}-{os.urandom(3).hex()}"
        profile = self._profile(client, self.agent_role, self.model)
        if name is not None:  # (a made-up id is no other server's)
            profile = await self._unless_held(name, profile)
        agent = await self.call(self.swarm.join, agent_id, profile)
        session = AgentSession(
            agent.id,
            self.agent_role,
            client,
            self.model,
            named=name is not None,
            # (a made-up id is no hook's: its tokens would be kept for nobody, and left behind
            # by a server that crashed)
            token_store=self.token_store if name is not None else None,
            used=self.clock(),
            key=key,
        )
        self._live[agent.id] = session
        log.info("agent %s registered (role %s, client %s)", agent.id, session.role, client)
        return session

    async def _unless_held(
        self, name: str, profile: Callable[[Agent | None], dict[str, Any]]
    ) -> Callable[[Agent | None], dict[str, Any]]:
        """``profile`` refusing (``Conflict``) to register ``name`` while a live agent of
        another role holds it (``name_held``): decided in ``join`` on the record it stores
        over, with the liveness read just before."""
        try:
            before: Agent | None = await self.call(self.swarm.get_agent, name)
        except NotFound:
            before = None

        def unless_held(existing: Agent | None) -> dict[str, Any]:
            why = name_held(existing, self.agent_role, before)
            if why is not None:
                raise Conflict(why)
            return profile(existing)

        return unless_held

    async def close(
        self, session: AgentSession, *, stale: bool = False, if_read: bool = False
    ) -> None:
        """Release the tasks the session still holds (back to their queues at once, no attempt
        used), then deregister its agent if its id was made up here. An agent whose id was
        given (``named``) stays registered, marked stale at once (``mark_stale``), and its
        inbox (unread messages and all) waits for the next start under that id; a sweep
        (``swarm agents sweep``) or ``swarm agents deregister`` removes it for good. Marked
        only while its record names this server (``server_identity``, dropped from it then):
        a second server under the id that registered it since runs on, alive; one that
        registered it before says so again at its next heartbeat (``_beat``).

        This runs when the client closes its session or the server stops cleanly; a client or
        server that crashed leaves its leases to expire as before. ``stale``: it closes unused
        (``_close_idle``) and someone may come back as it: marked stale, as a named one.
        ``if_read``: its agent deregisters only if no direct message waits unread for it
        (looked for by the removal itself), else it stays as a named one does, its inbox kept.
        """
        if session.closed:
            return
        session.closed, session.kept = True, session.named or stale
        self._live.pop(session.agent_id, None)
        # A heartbeat of the server's loop on its way now would land after what follows: after
        # mark_stale it makes the agent read alive again, after deregister it rejoins it.
        # Waited out here, for so long (``closed`` keeps the next one away; one slower than
        # that is undone by the loop when it lands).
        with anyio.move_on_after(BEAT_WAIT_S):
            async with session.beating:
                pass
        for task_id, lease in list(session.leases.items()):
            forget = True
            try:
                await self.call(self.swarm.release, task_id, lease.token)
            except SwarmError as exc:  # settled meanwhile, or lost: nothing is held any more
                log.info("task %s not released: %s", task_id, exc)
                # (a lease that moved on, or an outage: its token may still report it)
                forget = not isinstance(exc, (LeaseLost, ConnectionFailed))
            else:
                log.info("task %s released by %s", task_id, session.agent_id)
            session.let_go(task_id, forget=forget)
        if not session.kept:
            try:
                if if_read:
                    left = await self.call(self.swarm.deregister_if_read, session.agent_id)
                else:
                    await self.call(self.swarm.deregister, session.agent_id)
                    left = True
            except SwarmError as exc:
                log.warning("agent %s not deregistered (%s): it goes stale as its heartbeats "
                            "stop, 'swarm agents sweep' removes it", session.agent_id,
                            _why(exc))  # fmt: skip
                return
            if left:
                log.info("agent %s left", session.agent_id)
                return
            session.kept = True  # (a message sent to it waits unread: kept, as a named one)
        # Gone now, not alive until its last heartbeat is a minute old, and on no task
        # (views would else show it on one it gave back); but only while the record still
        # names this server: another server under the id registered since runs on.
        try:
            ended = await self.call(
                self.swarm.mark_stale, session.agent_id, session=server_identity()
            )
        except SwarmError as exc:  # it goes stale as its heartbeats stop, as before
            log.warning("agent %s stays registered, its inbox kept; not marked stale now (%s): "
                        "it reads stale once its heartbeats are missed",
                        session.agent_id, _why(exc))  # fmt: skip
            return
        if not ended:
            log.info("agent %s left alive: another server registered it since",
                     session.agent_id)  # fmt: skip
            return
        if session.named or stale:
            log.info("agent %s stays registered (stale), its inbox kept for its next start",
                     session.agent_id)  # fmt: skip
        else:  # (a made-up id, which no start takes again: kept for what waits unread)
            log.info("agent %s stays registered (stale): a direct message waits unread for "
                     "it ('swarm msg inbox %s' reads it; 'swarm agents sweep' removes the "
                     "agent, dropping what is unread)",
                     session.agent_id, session.agent_id)  # fmt: skip

    async def close_all(self) -> None:
        # Under the registration lock: an agent whose registration is still on its way to
        # Redis is closed too, once registered. Without it a client that signals right after
        # its handshake (Claude Code's `claude mcp list` sends SIGINT tens of milliseconds
        # after `initialized`) found nothing to close, and the exit that follows either cut
        # the registration off or left its agent registered until it went stale.
        async with self._lock:
            for session in self.live:
                await self.close(session)
            self._shared.clear()

    async def heartbeat_forever(self, interval_s: float) -> None:
        """Keep every live agent's presence fresh while its client is connected."""
        while True:
            await anyio.sleep(interval_s)
            await self.close_unused()
            for session in self.live:
                async with session.beating:
                    beat = not session.closed  # (closed while this round ran: not present)
                    if beat:
                        await self._beat(session)
                    if beat and session.closed:  # (closed while it was on its way, unwaited)
                        await self._undo_late_beat(session)

    async def _undo_late_beat(self, session: AgentSession) -> None:
        """A heartbeat that landed after its session closed said the agent was alive: a named
        one is marked stale again (unless another server registered it since: the record
        then names that one, which runs), one whose id was made up here leaves again, unless
        a direct message sent to it since waits unread (then it goes stale, as its heartbeats
        have stopped)."""
        leave: Callable[[str], object] = (
            functools.partial(self.swarm.mark_stale, session=NO_SERVER)
            if session.kept
            else self.swarm.deregister_if_read
        )
        try:
            await self.call(leave, session.agent_id)
        except SwarmError as exc:  # (gone meanwhile; or the server away: it goes stale)
            log.info("agent %s: a late heartbeat not undone: %s", session.agent_id, exc)

    async def _beat(self, session: AgentSession) -> None:
        current = next(iter(session.leases), "")  # "" clears it
        try:
            agent = await self.call(self.swarm.heartbeat, session.agent_id, current_task=current)
        except NotFound:
            if current and await self._task_gone(session, current):
                return
            # Swept as stale (a suspended laptop): join again under the same id.
            await self._rejoin(session)
        except SwarmError as exc:
            log.warning("heartbeat of %s failed: %s", session.agent_id, exc)
        else:
            if session.named and not names_a_server(agent):
                # Registered since by someone who named no server (the hooks after a sweep),
                # or the server it named closed (another server of the agent, which dropped
                # its own identity): this one runs, and says so again.
                await self._rejoin(session)

    async def _task_gone(self, session: AgentSession, task_id: str) -> bool:
        """Whether the heartbeat naming ``task_id`` was refused for the task, not the agent:
        a task the session held that no longer exists (cancelled, then retired) is let go,
        and the agent marked present with no task; False when the agent is unknown (swept),
        for the caller to rejoin (rejoining on every beat would never end)."""
        try:
            await self.call(self.swarm.heartbeat, session.agent_id, current_task="")
        except NotFound:
            return False
        except SwarmError as exc:
            log.warning("heartbeat of %s failed: %s", session.agent_id, exc)
            return True
        try:  # (registered again between the two beats, the agent was the one unknown)
            await self.call(self.swarm.get_task, task_id)
        except NotFound:
            log.warning("task %s of %s no longer exists: let go", task_id, session.agent_id)
            session.let_go(task_id)
        except SwarmError as exc:
            log.warning("task %s of %s could not be read: %s", task_id, session.agent_id, exc)
        return True

    async def _rejoin(self, session: AgentSession) -> None:
        """Register the session's agent again, as it was at its start (its server's identity
        with it: the hooks tell a session its MCP tools by it)."""
        if session.closed:  # (its session ended while the heartbeat was on its way)
            return
        profile = self._profile(session.client, session.role, session.model, rejoined=True)
        try:
            await self.call(self.swarm.join, session.agent_id, profile)
        except SwarmError as exc:
            log.warning("agent %s could not rejoin: %s", session.agent_id, exc)


class RegisterOnConnect:
    """Server middleware: register the agent as soon as the client finishes the handshake,
    and count each tool call as its session's request in flight (``serving``)."""

    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "tools/call":  # (the requests that use a session: its in-use time)
            async with self.registry.serving(ctx):
                return await call_next(ctx)
        result = await call_next(ctx)
        if ctx.method == "notifications/initialized":
            try:
                await self.registry.for_request(ctx)
            except SwarmError as exc:
                # Not fatal: the first tool call tries again and reports the error to the agent.
                log.warning("could not register the agent on connect: %s", exc)
        return result
