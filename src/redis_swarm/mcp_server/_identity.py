"""Which MCP server an agent's record names (``server_identity``: its host and pid, which the
hooks check to name a session's MCP tools and a closing session checks before it ends the
agent), and the cross-role refusal of a name another server's live agent holds
(``name_held``: at a server's start, ``refuse_held_name``; as each session registers, and as
it rejoins after a sweep, in the core's ``join``).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from .. import _mcp_names
from .._client import Swarm
from .._errors import Conflict, NotFound
from .._models import STALE_AFTER_S, Agent

__all__ = [
    "NO_SERVER",
    "NameHeld",
    "name_held",
    "names_a_server",
    "refuse_held_name",
    "server_identity",
]


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


class NameHeld(Conflict):
    """A name another server's live agent of another role holds (``name_held``): refused
    to a server's start, a session's registering and its rejoin after a sweep."""


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
        f"(pid {pid} on {host}): {_a(role)} session under the same name would take it over, "
        f"and mark it gone when it ends. Start this server with another --name (or "
        f"SWARM_AGENT) for the {role}, or stop that server first: one of role "
        f"{existing.role} started again takes its own name back; one killed reads stale "
        f"{STALE_AFTER_S:.0f} s after its last heartbeat ('swarm agents deregister "
        f"{existing.id}' frees the name at once)"
    )


def _a(word: str) -> str:
    """``word``, a role a session registers as, after its indefinite article: "an agent",
    "a worker", "a shard", "a coordinator" (the article by its first letter: enough for
    the roles there are, each said as written)."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def refuse_held_name(swarm: Swarm, name: str, role: str) -> None:
    """Refuse (``Conflict``: ``name_held``) to start a server of ``role`` (its ``--role``)
    under ``name`` while a live agent of another role served by an MCP server holds it: said
    at the start, before any client connects. (Each session checks again as it registers,
    atomically: ``SessionRegistry._open``, and as it rejoins after a sweep: ``_rejoin``.)"""
    try:
        agent = swarm.get_agent(name)
    except NotFound:
        return
    why = name_held(agent, _mcp_names.agent_role(role), agent)
    if why is not None:
        raise NameHeld(why)
