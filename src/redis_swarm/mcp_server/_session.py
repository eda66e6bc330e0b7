"""Who is calling: one registered agent per MCP session, and the leases it holds.

A session registers as an agent when its client connects (role from ``--role``, client name
from the ``initialize`` request), heartbeats while it is connected (and before each tool call
that acts as its agent: ``present``, which registers it again at once after a sweep), and on
close releases the tasks it claimed and still holds (one it held again as it opened, its
token found kept on this machine, is left leased, as found). Then an agent whose id was made
up here leaves (deregisters: nobody can come back as it); one whose id was given (``--name``,
or SWARM_AGENT) stays registered and is marked stale at once, its inbox kept, so that its
next start reads what it was sent meanwhile.
The record names the server that registered it last (``server_identity``: host and pid, which
the hooks of the session check to name its MCP tools); registering builds on the record as
stored (the core's ``join``: the hooks' keys kept, a SessionStart at the same instant never
written over), a rejoin after a sweep names the server again, and of two servers under one id
the one closing ends the agent only if the record names it (the other says so again at its
next heartbeat when the record names no server). A server with a given id serves one session
under it at a time: a second one is refused while the first is open (``_take_name``), never
registered under another id its client would not be told.
What a session holds (its leases and their tokens, its reads, its reports) is
``_agent_session``'s; the server's identity in the record and the cross-role name refusal,
``_identity``'s; the core's calls made off the event loop, ``_calls``'.

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
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.streamable_http_manager import DEFAULT_SESSION_IDLE_TIMEOUT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .. import MAX_PAGE, _mcp_names
from .. import _lease_tokens as tokens
from .._client import Swarm
from .._errors import Conflict, ConnectionFailed, LeaseLost, NotFound, SwarmError
from .._models import Agent, Task
from . import DEFAULT_MAX_SESSIONS
from ._agent_session import AgentSession, Lease
from ._calls import CoreCalls
from ._identity import NO_SERVER, NameHeld, name_held, names_a_server, server_identity
from ._roles import AGENT_ROLES

__all__ = [
    "MIN_IDLE_TO_MAKE_ROOM_S",
    "RegisterOnConnect",
    "SessionRegistry",
    "connection_of",
    "sessions_full",
]

log = logging.getLogger("redis_swarm.mcp")

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


class SessionRegistry(CoreCalls):
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
        super().__init__(swarm)
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
        # Where work that outlives a tool call runs (a question's lease kept renewed while
        # its session holds it): the server lifespan's task group (``attach``); what was
        # asked to run before it attached waits for it.
        self._background: anyio.abc.TaskGroup | None = None
        self._waiting: list[tuple[Callable[..., Coroutine[Any, Any, None]], tuple[Any, ...]]]
        self._waiting = []
        # What a session does with a lease it holds again as it opens (its token kept on
        # this machine: ``_held_again``): the tools set it (a question's is kept renewed).
        self.held_again: Callable[[AgentSession, Task], None] = lambda _session, _task: None

    def attach(self, task_group: anyio.abc.TaskGroup) -> None:
        """Where background work runs: the server lifespan's task group, cancelled when the
        server stops (before ``close_all`` releases what its sessions still hold). What was
        asked to run before (``in_background``) starts now."""
        self._background = task_group
        waiting, self._waiting = self._waiting, []
        for fn, args in waiting:
            task_group.start_soon(fn, *args)

    def in_background(self, fn: Callable[..., Coroutine[Any, Any, None]], /, *args: Any) -> None:
        """Run ``fn(*args)`` in the server's lifespan (``attach``), beyond the tool call that
        starts it: now, or once the lifespan runs (never, for a registry used without its
        server). ``fn`` must end by itself once its work is over, and never raise."""
        if self._background is None:
            self._waiting.append((fn, args))
            return
        self._background.start_soon(fn, *args)

    @property
    def agent_role(self) -> str:
        return _mcp_names.agent_role(self.role)

    @property
    def live(self) -> list[AgentSession]:
        return list(self._live.values())

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
            if session.displaced is not None:
                raise Conflict(session.displaced)
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
        await self._held_again(session)
        return session

    async def _held_again(self, session: AgentSession) -> None:
        """A named session (its id given: its tokens are kept on this machine,
        ``token_store``) holds again the leases whose tokens it finds kept there: a server
        killed (SIGKILL, a crash) and started again under its ``--name`` would else not know
        the task its agent still holds, and ``report_finding`` would ask for a token. Only a
        lease its agent holds now, of the attempt the token proves (``ATTEMPT.SECRET``), is
        taken; the hooks' claims of the same agent (their tokens kept there too) become the
        session's as well, as the hooks already tell the session to settle them with its
        tools. Each is handed to ``held_again`` (a question's lease is kept renewed as one
        next_question hands out). None is this process's claim (``Lease.found``): the
        session's close leaves each leased, its token kept, so that a server started only to
        be looked at (``claude mcp list``, an Inspector call) takes no task from the process
        that claimed it. A failure to read them is logged: the session starts all the
        same."""
        store = session.token_store
        if store is None:
            return
        kept = {t: k for t, k in tokens.known(store, session.agent_id).items()
                if tokens.is_task_id(t)}  # fmt: skip
        if not kept:
            return
        ids = list(kept)[:MAX_PAGE]
        try:
            page = await self.call(self.swarm.leases_of, session.agent_id, ids, newest_leases=0)
        except SwarmError as exc:
            log.warning("agent %s: the leases kept on this machine not read (%s): its tools "
                        "take their tokens when given", session.agent_id, exc)  # fmt: skip
            return
        for task in page.items:
            token = kept[task.id]
            if token.startswith(f"{task.attempts}."):
                session.leases[task.id] = Lease(token, task.queue, task.parent, found=True)
                self.held_again(session, task)
        if session.leases:
            log.info("agent %s holds %s again (their tokens kept on this machine)",
                     session.agent_id, ", ".join(session.leases))  # fmt: skip

    async def _unless_held(
        self, name: str, profile: Callable[[Agent | None], dict[str, Any]]
    ) -> Callable[[Agent | None], dict[str, Any]]:
        """``profile`` refusing (``NameHeld``) to register ``name`` while a live agent of
        another role holds it (``name_held``): decided in ``join`` on the record it stores
        over, with the liveness read just before."""
        try:
            before: Agent | None = await self.call(self.swarm.get_agent, name)
        except NotFound:
            before = None

        def unless_held(existing: Agent | None) -> dict[str, Any]:
            why = name_held(existing, self.agent_role, before)
            if why is not None:
                raise NameHeld(why)
            return profile(existing)

        return unless_held

    async def close(
        self, session: AgentSession, *, stale: bool = False, if_read: bool = False
    ) -> None:
        """Release the tasks the session claimed and still holds (back to their queues at
        once, no attempt used; one it held again as it opened, ``Lease.found``, is left
        leased, its token kept, as found), then deregister its agent if its id was made up
        here. An agent whose id was given (``named``) stays registered, marked stale at once
        (``mark_stale``), and its inbox (unread messages and all) waits for the next start
        under that id; a sweep (``swarm agents sweep``) or ``swarm agents deregister``
        removes it for good. Marked
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
            if lease.found:  # (another process's claim: not this one's to give back)
                session.let_go(task_id, forget=False)
                log.info("task %s left leased to %s, its token kept: held again as the "
                         "session opened, not claimed by it",
                         task_id, session.agent_id)  # fmt: skip
                continue
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
                await self.beat(session)

    async def beat(self, session: AgentSession) -> None:
        """One heartbeat of the session's agent (the loop's, or a tool's: ``present``): its
        presence made fresh, and the agent registered again if a sweep removed it (or if the
        record names no server, for a given id: ``_beat``). One at a time per session; none
        once it closed, and one that landed after it closed undone."""
        async with session.beating:
            beat = not session.closed  # (closed meanwhile: not present)
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
        if session.displaced is not None:  # (another server's agent: not this one's to beat)
            return
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

    async def present(self, session: AgentSession) -> None:
        """Before a tool acts as the session's agent (any tool that changes something: it
        sends, reads its inbox, posts, claims, reports, asks, publishes as that agent): a
        heartbeat now (``beat``; a tool call is a sign of life), so that an agent a sweep
        removed while the session was quiet (a suspended laptop), or ``swarm agents
        deregister`` removed, is registered again, once, as at its start, before the call
        acts. Else, until the loop's next heartbeat, a message would go out from an agent the
        swarm does not know, a task be posted by a parent gone, a claim register a bare
        worker in its place (no metadata naming this server). Raises Conflict when the
        rejoin was refused (the id is another server's live agent's now: ``displaced``); a
        heartbeat that failed otherwise (the server away) is left to the tool's own call,
        which says its error."""
        await self.beat(session)
        if session.displaced is not None:
            raise Conflict(session.displaced)

    async def _rejoin(self, session: AgentSession) -> bool:
        """Register the session's agent again, as it was at its start (its server's identity
        with it: the hooks tell a session its MCP tools by it). A given id is refused as at
        the start (``_unless_held``): another server's live agent of another role may have
        taken it since the heartbeat found it gone, and is not taken over (said in the log,
        and to the session's tool calls; it beats no more: ``displaced``)."""
        if session.closed:  # (its session ended while the heartbeat was on its way)
            return False
        profile = self._profile(session.client, session.role, session.model, rejoined=True)
        try:
            if session.named:  # (a made-up id is no other server's)
                profile = await self._unless_held(session.agent_id, profile)
            await self.call(self.swarm.join, session.agent_id, profile)
        except NameHeld as exc:  # (refused by ``_unless_held``: the id is another's now)
            session.displaced = str(exc)
            log.warning("agent %s could not rejoin: %s", session.agent_id, exc)
        except SwarmError as exc:
            log.warning("agent %s could not rejoin: %s", session.agent_id, exc)
        else:
            return True
        return False


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
