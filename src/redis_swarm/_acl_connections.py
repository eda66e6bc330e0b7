"""A user's connections on one server, sorted: its clients' own, which ``apply_role``'s
``kill_connections`` (and ``revoke_user``) close, and the replication links and sentinels
that log in as it, which are spared and named with what to update (``_spared``): closed,
they would log in again with the old password, refused, and replication or failover would
stop. A password is checked at login only, so these are what a rotation leaves logged in.
"""

from __future__ import annotations

import contextlib
import re
import socket
from dataclasses import dataclass
from typing import Any

import redis

from ._acl import AclUser, password_hash
from ._config import Settings

# The client types (CLIENT LIST TYPE) of the connections --kill-connections closes: a
# process's own, its subscriptions included. Not 'replica' or 'master': replication links.
_CLOSED_TYPES = ("normal", "pubsub")
# The name a sentinel gives its connections to a server (sentinel.c: the first 8 characters
# of its id, then 'cmd' or 'pubsub'): they log in as its auth-user.
_SENTINEL_NAME = re.compile(r"sentinel-[0-9a-f]{8}-(?:cmd|pubsub)")


def _sentinel_hosts(settings: Settings) -> frozenset[str]:
    """The addresses the sentinels of a ``redis+sentinel://`` URL may connect from (its
    hosts, and what each resolves to); none for another kind of URL, which has no sentinels
    to spare."""
    if settings.kind != "sentinel":
        return frozenset()
    found: set[str] = set()
    for host, port in settings.nodes:
        found.add(host)
        with contextlib.suppress(OSError):
            found.update(str(info[4][0]) for info in socket.getaddrinfo(host, port))
    return frozenset(found)


@dataclass(frozen=True)
class _Connections:
    """The connections of a user on one server, as ``_connections_of`` sorts them (CLIENT
    LIST entries): ``clients``, its clients' own (TYPE normal or pubsub, the caller's left
    out), which ``kill_connections`` closes; ``replicas``, the replication links that log in
    as it (TYPE replica: masteruser); ``sentinels``, the sentinels' connections (auth-user)."""

    clients: list[dict[str, str]]
    replicas: list[dict[str, str]]
    sentinels: list[dict[str, str]]


def _connections_of(client: Any, user: str, sentinel_hosts: frozenset[str]) -> _Connections:
    """The connections of ``user`` on the server of ``client`` (not ``client``'s own, which
    the URL's user may be), sorted (``_Connections``): the one place that tells a sentinel's
    or a replica's from a client's, for the kill and for the warning of an apply without it.
    A connection named like a sentinel's is one only when it comes from one of
    ``sentinel_hosts`` (the URL's sentinels, for an admin user: a sentinel's user needs
    rights no other role has): a name is the client's to choose, and one holding a leaked
    password could dodge the kill by taking one."""
    own = str(client.client_id())
    clients: list[dict[str, str]] = []
    sentinels: list[dict[str, str]] = []
    for kind in _CLOSED_TYPES:
        for entry in client.client_list(_type=kind):
            if entry.get("user") != user or str(entry.get("id")) == own:
                continue
            name, host = str(entry.get("name", "")), str(entry.get("addr", "")).rpartition(":")[0]
            if _SENTINEL_NAME.fullmatch(name) and host.strip("[]") in sentinel_hosts:
                sentinels.append(entry)
            else:
                clients.append(entry)
    replicas = [entry for entry in client.client_list(_type="replica") if entry.get("user") == user]
    return _Connections(clients, replicas, sentinels)


# What an apply does to the password of its user on one server (``_password_was``): none
# there (no such user, or one with no password: nobody logged in with one); kept (the one
# applied was its only one already); changed (it had another, or took any: nopass), so what
# logs in with that one is refused from its next connection on; unknown (it would not say).
PASSWORD_NEW = "new"
PASSWORD_KEPT = "kept"
PASSWORD_CHANGED = "changed"
PASSWORD_UNKNOWN = "unknown"


def _password_was(client: Any, spec: AclUser) -> str:
    """What applying ``spec`` does to the password of its user on the server of ``client``
    (``PASSWORD_NEW``, ``_KEPT``, ``_CHANGED``, ``_UNKNOWN``), told by ACL GETUSER: the
    SHA-256 of each of its passwords, and ``nopass``, compared with the one ``spec`` sets.
    Kept: applying it refuses no login, and the replication links and sentinels logged in as
    the user have nothing to update (``_spared``). Changed: a user that had another password
    too (what logs in with that one is refused from now on), or took any. Unknown when the
    server will not say (NOPERM, ACL renamed away): the links are named as for a change."""
    if spec.password is None:
        return PASSWORD_UNKNOWN
    try:
        found = client.acl_getuser(spec.user)
    except redis.exceptions.ResponseError:
        return PASSWORD_UNKNOWN
    if not found:
        return PASSWORD_NEW
    had = list(found.get("passwords", ()))
    if "nopass" in found.get("flags", ()):
        return PASSWORD_CHANGED
    if had == [password_hash(spec.password)]:
        return PASSWORD_KEPT
    return PASSWORD_CHANGED if had else PASSWORD_NEW


def _listed(client: Any, user: str, sentinel_hosts: frozenset[str]) -> _Connections | None:
    """``_connections_of`` for the warning of an apply without ``kill_connections``; None
    when the server refuses CLIENT LIST or CLIENT ID (NOPERM: the URL's user may not run
    them; an unknown command: renamed away, as hardened servers do): the warning is then
    not given, and the apply, which did not ask to close anything, goes on."""
    try:
        return _connections_of(client, user, sentinel_hosts)
    except redis.exceptions.ResponseError:
        return None


def _kill_connections(client: Any, user: str, sentinel_hosts: frozenset[str]) -> tuple[int, str]:
    """Close the connections of ``user`` on the server of ``client`` (its clients', of TYPE
    normal or pubsub: ``_connections_of``), once the user has its new password there: how
    many, and what was left open (``_spared``, "" for nothing): the sentinels' connections
    and the replication links that log in as the user. Closed, they would log in again with
    the password their configuration holds, the old one, and be refused: replication, or
    the sentinels' watch, would stop. Each is closed by its ID (CLIENT KILL ID: a filter
    every Redis >= 6.2 has); one that logged in between the listing and the kill did so with
    the new password."""
    found = _connections_of(client, user, sentinel_hosts)
    count = sum(int(client.client_kill_filter(_id=entry["id"])) for entry in found.clients)
    return count, _spared(user, found, killed=True)


def _spared(user: str, found: _Connections, *, killed: bool) -> str:
    """What is left logged in as ``user`` with the password it had (``found``'s replication
    links and sentinels) and what to do: update masterauth and the sentinels' auth-pass to
    the new password, or the next reconnection is refused. ``killed``: the other connections
    were closed (``_kill_connections``): close these too once updated, as a name is the
    client's to choose. "" when there are none."""
    said = []
    if found.replicas:
        links = ", ".join(
            f"from {entry.get('addr')} (id {entry.get('id')})" for entry in found.replicas
        )
        said.append(
            f"the replication link(s) {links}, replicas logging in as user {user!r} "
            "(masteruser): set masterauth to the new password on every server (CONFIG SET "
            "masterauth, then CONFIG REWRITE; a failover makes any of them a replica), or "
            "replication stops at the link's next reconnection (WRONGPASS)"
        )
    if found.sentinels:
        names = ", ".join(
            f"{entry.get('name')} from {entry.get('addr')} (id {entry.get('id')})"
            for entry in found.sentinels
        )
        said.append(
            f"the sentinel connection(s) {names}, sentinels logging in as user {user!r} "
            "(sentinel auth-user): set the new password on every sentinel (SENTINEL SET "
            "<master> auth-pass), or they lose the servers at their next reconnection and fail "
            "the master over or mark it down"
        )
    if not said:
        return ""
    if not killed:
        # (a password is checked at login only: they stay in until they reconnect)
        return f"open, logged in before the new password was set: {'; and '.join(said)}"
    return (
        f"kept open {'; and '.join(said)}. Then close these too (CLIENT KILL ID ID): they "
        "logged in before the rotation, and a connection's name is its client's to choose "
        "(one named like a sentinel's that comes from no sentinel's address is no sentinel)"
    )
