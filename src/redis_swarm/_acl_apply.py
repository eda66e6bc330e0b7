"""``apply_role``: an ACL user of a role (``_acl.acl_user``) made on the servers, what ``swarm
acl --apply`` does. ACLs are per node, so it runs the ACL SETUSER on every server that must
hold the user (every node of a cluster, replicas included; the master and the replicas behind
a Sentinel), persists it where the server allows, and loads the swarm's Functions library (a
worker may not load it). It needs an admin user::

    from redis_swarm import Settings, apply_role

    made = apply_role(Settings.from_url("redis://ops:PASSWORD@10.0.0.5:6379"), "worker",
                      "legal-worker", swarm="legal")
    made.user.password  # generated (none was given): give it to the agents, once
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from ._acl import AclUser, Version, acl_user, parse_version
from ._acl_connections import (
    PASSWORD_CHANGED,
    PASSWORD_KEPT,
    PASSWORD_NEW,
    PASSWORD_UNKNOWN,
    _kill_connections,
    _listed,
    _password_was,
    _sentinel_hosts,
    _spared,
)
from ._acl_nodes import _connecting_user, _on_every_node, _Target, _unreached_replicas
from ._acl_persist import _SET_NOT_SAVED, _persist
from ._client import Swarm
from ._config import Settings
from ._embedded import find_redis_server
from ._errors import ConfigError, PartlyApplied, SwarmError, ValidationError
from ._models import ACL_ROLES
from ._replies import reply_fields

__all__ = [
    "PASSWORD_CHANGED",
    "PASSWORD_KEPT",
    "PASSWORD_NEW",
    "PASSWORD_UNKNOWN",
    "AppliedRole",
    "apply_role",
    "password_change_said",
]


@dataclass(frozen=True)
class AppliedRole:
    """What ``apply_role`` made: ``user``, its ACL SETUSER (``user.password`` is the one to give
    the agents, shown once when ``user.generated``); ``version``, the Redis version its rules
    are for; ``persisted``, how each server that now holds it keeps it (node -> how: the
    aclfile, redis.conf, or memory only), empty on a dry run; ``skipped``, the servers left
    without the user (node -> why): the replicas the sentinels report down, or up but not
    following their master (its master-link-status not ok while it is up), the cluster nodes
    without hash slots CLUSTER NODES flags ``fail``, ``noaddr`` or ``handshake``, and the
    replicas (or cluster nodes without hash slots) that did not answer within the connect
    timeout, ``fail?`` ones included; with a plain URL (one server), the replicas its
    server lists (INFO replication), which such a URL does not reach (``_unreached_replicas``:
    apply through the sentinels, or with a URL of each). A server that answers but refuses
    the URL's user is not skipped: the apply fails (``_refused_login``). Apply the role
    again once they are back: a failover to one locks the role's agents out.
    ``url_user``: the user is the one the URL connects as, whose password there is now
    ``user.password`` (its own rotation). ``closed``: with
    ``kill_connections``, the connections of the user each server closed (node -> how
    many), once it held the new password; ``spared``: with it or not, the connections of
    the user left open there that replication or the sentinels log in with (node -> which,
    and what to update before their next reconnection, which the old password fails:
    ``_spared``); without ``kill_connections``, none where the password applied is the
    only one the user had there already (``_password_was``: nothing breaks). ``passwords``:
    what the apply did to the user's password on each server that now holds it (node ->
    ``PASSWORD_NEW``, ``PASSWORD_KEPT``, ``PASSWORD_CHANGED`` or ``PASSWORD_UNKNOWN``, told by
    ACL GETUSER before: the SHA-256 of its passwords against the one applied), summed up by
    ``password_change``: a changed one refuses the agents that connect with the old one at
    their next connection, which a typo in a password typed to keep it does silently."""

    user: AclUser
    version: Version
    persisted: Mapping[str, str] = field(default_factory=dict, hash=False)
    skipped: Mapping[str, str] = field(default_factory=dict, hash=False)
    url_user: bool = False
    closed: Mapping[str, int] = field(default_factory=dict, hash=False)
    spared: Mapping[str, str] = field(default_factory=dict, hash=False)
    passwords: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def password_change(self) -> str | None:
        """What the apply did to the user's password, over every server that now holds it:
        ``PASSWORD_CHANGED`` when any had another one (or none required: nopass), else
        ``PASSWORD_UNKNOWN`` when any would not say, else ``PASSWORD_KEPT`` when any had
        this one alone (a server that had no such user gave it the same), else
        ``PASSWORD_NEW``; None when nothing was applied (a dry run)."""
        found = set(self.passwords.values())
        for status in (PASSWORD_CHANGED, PASSWORD_UNKNOWN, PASSWORD_KEPT, PASSWORD_NEW):
            if status in found:
                return status
        return None

    @property
    def applied(self) -> list[dict[str, str]]:
        """``persisted`` as ``swarm acl --json`` gives it (``applied``)."""
        return _applied(self.persisted)


def apply_role(
    target: Settings | Swarm,
    role: str,
    user: str,
    password: str | None = None,
    *,
    swarm: str | None = None,
    version: Version | None = None,
    dry_run: bool = False,
    demote_self: bool = False,
    kill_connections: bool = False,
) -> AppliedRole:
    """Make ``user`` a ``role`` of ``swarm`` (default: the one of ``target``) on the servers of
    ``target`` (a ``Settings``, or an open ``Swarm`` whose connection loads the library): the
    ACL SETUSER of ``acl_user`` on every server that must hold it (every node of a cluster,
    replicas included; the master and the replicas behind a Sentinel), persisted where the
    server allows (ACL SAVE, else CONFIG REWRITE), then the swarm's Functions library loaded
    (a worker may not load it). ``target``'s user must be an admin. Applying again replaces
    the user's rights and password. With no ``password``, a strong one is generated.

    The rules are for the oldest Redis version the servers run. ``dry_run``: build the rules
    and apply nothing, for ``version`` (major, minor) when given (else the servers are asked
    their version; the embedded server is not started for that: the version of its binary is
    read). An apply asks the servers, and refuses a ``version`` they do not run
    (``ValidationError``): rules for another version are refused by ACL SETUSER (newer
    commands) or weaker than the servers allow (before 7.0, a worker has no selectors). What
    ``swarm acl`` runs, ``--apply`` or not. Errors arrive as ``SwarmError`` (one line saying
    what to do): ``PermissionDenied`` when the user may not run ACL SETUSER,
    ``ValidationError`` for a bad role, name or password or a version the servers do not
    run, ``ConfigError`` when a server refuses a rule (ACL SETUSER: a command it lacks).

    ``user`` may be the user ``target`` connects as: applied as an admin, its password is
    rotated (``url_user`` is set: connect with ``user.password`` from now on; the library
    is loaded before any server gets the user, while the old password still works; an open
    ``Swarm`` given keeps its open connections only). Any other role would take from it the
    admin rights this call needs (with no other admin, the way in): refused with
    ``ValidationError`` unless ``demote_self``. The URL's own user is applied on every server
    or none: a server that would be skipped (below) fails the call with ``ConnectionFailed``
    before any server got it (one left with the old password would lock the new one out
    after a failover to it); on the embedded server it is refused (``ValidationError``: the
    home reaches its server as that user, with no password). Should anything fail once a
    server holds the user, ``PartlyApplied`` says so and carries what was made (the password
    among it); for the URL's own user, calling again with that ``password`` finishes it: a
    server that refuses the URL's password is tried with the one given.

    A server of a cluster or Sentinel that cannot be reached is left out and named in
    ``skipped`` when it is a replica (or a cluster node without hash slots): one the sentinels
    or the cluster report down is not tried; the others are, once, each given the connect
    timeout to answer a PING (not the URL's retries, which ride out a failover for up to a
    minute); the ACL SETUSER and its persisting then get the URL's socket timeout. Tried too
    are the cluster nodes only the node asked finds silent (``fail?``) and the failed ones
    that still hold hash slots: this machine may reach them. A master that cannot be reached
    (one that holds hash slots, the master behind the sentinels) fails the call with
    ``ConnectionFailed`` naming it, before any server got the user: the clients are sent to
    it, and the swarm's library could not be loaded there. A server that answers with a
    problem (its TLS certificate refused, its data still loading) fails the call with it. So
    does any server that refuses the URL's user (ACLs are not replicated: a replica or node
    added later lacks the admin unless given the aclfile): ``PermissionDenied`` naming it and
    the step (copy the aclfile there, or create the admin there), before any server got the
    user. A replica skipped keeps the user as it was; one that is up but lacks the admin
    would be as dangerous (a failover to it locks the role's agents out), and it is fixed in
    a minute, so it stops the call rather than being skipped (docs/deployment.md, "Adding a
    replica"). With a plain URL (``redis://``, ``rediss://``, ``unix://``: one server), the
    replicas of its server are not reached: they are named in ``skipped``, saying how to
    include them (``_unreached_replicas``). Behind Sentinel, a replica up whose link to its
    master (up) is down, as the sentinels list it, is skipped as well, saying why in swarm
    doctor's words: it is not counted up (it has no fresh copy of the master's data, the
    swarm's library included, and most often cannot log in there); fix its link, then call
    again.

    ``kill_connections``: once a server holds (and saved) the user, its connections there
    are closed (``closed``; this call's own is spared): Redis checks a password at login only,
    so a connection opened with a leaked password stays logged in after its rotation. Every
    process of the user must then log in again, with the new password. Closed are its
    clients' connections (CLIENT LIST TYPE normal and pubsub) only: replication links (TYPE
    replica, master) that log in as the user (masteruser) are not, nor are the sentinels'
    (named ``sentinel-ID-cmd`` / ``-pubsub``, sentinel auth-user): closed, they would log in
    again with the old password, refused, and replication or failover would stop. Those
    are named in ``spared``, with what to update (masterauth, sentinel auth-pass): without
    ``kill_connections`` too, as they are what a rotation breaks at their next reconnection
    (found as the kill finds them, before the new password is set; not when the URL's user
    may not run CLIENT LIST; nor, without ``kill_connections``, where the password applied
    is the only one the user had there already, ACL GETUSER says: no login changes)."""
    settings = target if isinstance(target, Settings) else target.settings
    refuse_early(settings, role, user, dry_run=dry_run, demote_self=demote_self)
    own = user == _connecting_user(settings)
    # The URL's own user given its new password: a server that refuses the URL's is tried
    # with it, so that a rotation half done (some servers hold the new password, some the
    # old) is finished by applying again (_partly_applied says how).
    fallback = password if own and password != settings.password else None
    silent: dict[str, str] = {}
    if not dry_run:
        # An apply's rules are the servers' own: rules for a newer version name commands they
        # refuse (ACL SETUSER fails), for an older one leave a worker without its selectors.
        given = version
        version, silent = _oldest_version(settings, fallback, refusal_fails=True)
        if given is not None and given != version:
            raise _version_differs(given, version)
    elif version is None:
        if settings.kind == "embedded":
            version = _binary_version()
        else:
            version, silent = _oldest_version(settings, fallback)
    spec = acl_user(role, settings.swarm if swarm is None else swarm, user, password, version)
    if dry_run:
        return AppliedRole(spec, version, url_user=own)
    handle = None if isinstance(target, Settings) else target
    done: dict[str, str] = {}
    closed: dict[str, int] | None = {} if kill_connections else None
    spared: dict[str, str] = {}
    passwords: dict[str, str] = {}
    try:
        skipped = _apply(
            settings,
            spec,
            handle,
            done,
            silent,
            own=own,
            fallback=fallback,
            closed=closed,
            spared=spared,
            passwords=passwords,
        )
    except SwarmError as exc:
        if not done:
            raise  # (no server got the user: nothing changed)
        made = AppliedRole(
            spec,
            version,
            dict(done),
            url_user=own,
            closed=dict(closed or {}),
            spared=spared,
            passwords=passwords,
        )
        raise PartlyApplied(_partly_applied(exc, made), made=made) from exc
    return AppliedRole(
        spec,
        version,
        done,
        skipped,
        url_user=own,
        closed=closed or {},
        spared=spared,
        passwords=passwords,
    )


def password_change_said(made: AppliedRole) -> str | None:
    """What the apply ``made`` did to its user's password, for a person: changed (the agents
    that connect with the old one are refused at their next connection), kept, or not known;
    None for a new user and for a dry run."""
    user = made.user.user
    change = made.password_change
    if change == PASSWORD_CHANGED:
        where = [node for node, was in made.passwords.items() if was == PASSWORD_CHANGED]
        on = "" if len(where) == len(made.passwords) else f" (on {', '.join(where)})"
        return (
            f"the password of {user} changed{on}: agents that connect as {user} with the old "
            "one will be refused at their next connection (those connected now stay in until "
            "then): give them the new one, or apply again with the old one to keep it"
        )
    if change == PASSWORD_KEPT:
        return f"the password of {user} was kept: its agents connect with it as before"
    if change == PASSWORD_UNKNOWN:
        return (
            f"whether the password of {user} changed is not known: the URL's user may not "
            "read it (ACL GETUSER); agents that connect with another one than this will be "
            "refused at their next connection"
        )
    return None


def _version_differs(given: Version, servers: Version) -> ValidationError:
    """The refusal of an apply given a version its servers do not run."""
    return ValidationError(
        f"the rules were asked for Redis {given[0]}.{given[1]}, but the servers run "
        f"{servers[0]}.{servers[1]} (the oldest of them): an apply builds them for the "
        "servers' own version, which it asks them. Leave --redis-version (version=) out; it "
        "is for printing the rules of another server without --apply"
    )


def _setuser_refused(exc: redis.ResponseError, node: str, spec: AclUser) -> ConfigError:
    """What an ACL SETUSER a server refused says: a rule it does not know, most likely."""
    version = "" if spec.version is None else f" {spec.version[0]}.{spec.version[1]}"
    return ConfigError(
        f"{node} refused the rules of user {spec.user!r} ({exc}): they were built for the "
        f"Redis{version} the servers said they run, and a server of another version or a "
        "Redis-compatible one may not know every command they name. Check the node's "
        "version ('swarm doctor'), then run the apply again; if it is refused again, report "
        "a bug with this message"
    )


def refuse_early(
    settings: Settings, role: str, user: str, *, dry_run: bool, demote_self: bool
) -> None:
    """The refusals of ``apply_role`` that need no server and no password, for a caller to
    make before it asks for one (``swarm acl --password-stdin``: a typed password is not
    wasted): the embedded server's own user given a password (``_embedded_self``), the
    URL's own user made a role below admin without ``demote_self`` (``_self_demotion``)."""
    if dry_run or user != _connecting_user(settings):
        return
    if settings.kind == "embedded":
        raise _embedded_self(settings, user)
    # (a role that is none is refused by ``acl_user``, saying which ones are)
    if role in ACL_ROLES and role != "admin" and not demote_self:
        raise _self_demotion(settings, user, role)


def _embedded_self(settings: Settings, user: str) -> ValidationError:
    """The refusal to set the password of the embedded server's own user (``default``): the
    home reaches its server as that user with no password, and an embedded URL cannot carry
    one, so every later command of the home ('swarm status', 'swarm down' too) would be
    refused, the server left running."""
    return ValidationError(
        f"refusing to set the password of user {user!r} on the embedded server of "
        f"{settings.home}: it is the user the home reaches its server as, with no password (an "
        "embedded URL cannot carry one), so every later command of this home, 'swarm status' "
        "and 'swarm down' included, would be refused. The embedded server listens on a unix "
        "socket of the home only; to reach it with a password, make a named admin ('swarm "
        "acl --role admin --user NAME --apply') and connect as that user"
    )


def _self_demotion(settings: Settings, user: str, role: str) -> ValidationError:
    """The refusal to make the URL's own user a role below admin: it would lose the rights to
    manage users (ACL SETUSER, ACL SAVE) with them, and with no other admin (the default user
    off) the only way back is editing the aclfile and restarting Redis."""
    return ValidationError(
        f"refusing to make user {user!r}, the one the URL ({settings.url}) connects as, a "
        f"{role}: it would lose the admin rights this needs (managing users, saving "
        "them), and with no other admin the way back is editing the aclfile and restarting "
        "Redis. Make another admin first ('swarm acl --role admin --user NAME --apply') and "
        "run this with that admin's URL; or, if another admin can still manage users, pass "
        "--demote-self (demote_self=True)"
    )


def _partly_applied(exc: SwarmError, made: AppliedRole) -> str:
    """What ``PartlyApplied`` says: the error, the servers that got the user already, and
    that its password there is the one ``made`` holds."""
    where = ", ".join(made.persisted)
    spec = made.user
    if made.url_user:
        # Some servers take the new password, the others the URL's: neither URL reaches them
        # all, and a failover to one of the others locks the new one out. The apply tries a
        # server that refuses the URL's password with the one given: the way to finish.
        again = f"swarm acl --role {spec.role} --user {spec.user}"
        if spec.role != "admin":
            again += f" --swarm {spec.swarm} --demote-self"
        return (
            f"{exc}; user {spec.user!r}, the one the URL connects as, was set on {where} "
            "before that, with a new password (shown with the user); the other servers still "
            "take the URL's. Once that is fixed, finish it with the URL as it is and the new "
            f"password on standard input: {again} --password-stdin --apply (apply_role with "
            "password=): a server that refuses the URL's password is reached with the new one"
        )
    return (
        f"{exc}; user {spec.user!r} was set on {where} before that, with a new password: "
        "give the password out (it is shown with the user), and once that is fixed apply "
        "again with the same password to keep it"
    )


def _oldest_version(
    settings: Settings, fallback: str | None = None, *, refusal_fails: bool = False
) -> tuple[Version, dict[str, str]]:
    """The oldest Redis version among the servers that must hold a user (INFO, else HELLO
    for a user that may not read INFO), and the servers left out (node -> why): those that
    did not answer are not asked again by the apply that follows (each would cost the
    connect timeout). ``fallback``: the password tried where the URL's is refused;
    ``refusal_fails``: a replica that refuses the URL's user fails the call (an apply, not a
    dry run: ``_on_every_node``)."""
    versions, skipped = _on_every_node(
        settings,
        lambda client, _: _version_text(client),
        fallback=fallback,
        refusal_fails=refusal_fails,
    )
    return min(parse_version(text) for text in versions.values()), skipped


def _applied(persisted: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"node": node, "persisted": how} for node, how in persisted.items()]


def _binary_version() -> Version:
    """The version of the redis-server binary the embedded server runs (not started)."""

    return parse_version(find_redis_server().version)


def _apply(
    settings: Settings,
    spec: AclUser,
    handle: Swarm | None,
    done: dict[str, str],
    silent: Mapping[str, str] | None = None,
    *,
    own: bool = False,
    fallback: str | None = None,
    closed: dict[str, int] | None = None,
    spared: dict[str, str] | None = None,
    passwords: dict[str, str] | None = None,
) -> dict[str, str]:
    """The library loaded through ``handle`` (or a handle of its own), then the ACL SETUSER
    on every node, persisted (into ``done``: node -> how, filled as it goes, so that a
    failure half way still knows who holds the user), and the servers skipped (node -> why;
    ``silent``: found not answering already). ``own``: the user is the URL's, on every
    server or none (``_on_every_node``'s ``whole``); ``fallback``: its new password, tried
    on a server that refuses the URL's; ``closed``: given, the user's connections on each
    server are closed once it is saved there (node -> how many, filled as it goes), those
    of replication and the sentinels left open (into ``spared``: ``_kill_connections``);
    ``passwords``: what it did to the user's password on each server (``_password_was``),
    filled once the server holds the user."""

    def load(reached: list[_Target]) -> None:
        # The user runs the swarm's scripts as the functions of its library: load it (or
        # replace an older one), as 'swarm up' does, since a worker may not load it. Before
        # any ACL SETUSER, while the URL's password is the one that logs in: the user may be
        # the URL's own, whose password that rotates (a new connection would be refused).
        if any(target.fell_back for target in reached):
            # (a rotation half done: a master may take the new password only, which no one
            # client of the URL has: each master loaded on its own, as it logged in)
            for target in reached:
                if target.serves:
                    with Swarm(target.settings) as opened:
                        opened.load_functions()
        elif handle is not None:
            handle.load_functions()
        else:
            with Swarm(settings) as opened:
                opened.load_functions()

    # Where a sentinel's connection may come from: the sentinels of the URL, for an admin
    # user (the only role a sentinel's auth-user can be); none otherwise.
    sentinel_hosts = _sentinel_hosts(settings) if spec.role == "admin" else frozenset()

    def setuser(client: Any, node: str) -> str:
        # Without a kill, the replication links and sentinels logged in as the user are
        # listed before its new password is set: those are the ones that will log in again
        # with the old one (a kill lists them after, as it closes the rest, and names what
        # it kept open whatever the password). None when the password is the only one the
        # user logs in with there already: no login changes, nothing breaks.
        was = _password_was(client, spec)
        before = (
            _listed(client, spec.user, sentinel_hosts)
            if closed is None and was != PASSWORD_KEPT
            else None
        )
        try:
            client.execute_command(*spec.command)
        except redis.ResponseError as exc:
            if "ACL SETUSER" not in str(exc):
                raise
            raise _setuser_refused(exc, node, spec) from None
        done[node] = _SET_NOT_SAVED  # (until saved: should its saving fail, it holds the user)
        if passwords is not None:
            passwords[node] = was
        # (on the same connection, logged in already: a new one would need the new password)
        how = _persist(client, settings)
        done[node] = how  # (saved: should the kill fail, it is said as saved)
        if closed is not None:
            closed[node], kept = _kill_connections(client, spec.user, sentinel_hosts)
        else:
            kept = _spared(spec.user, before, killed=False) if before else ""
        if kept and spared is not None:
            spared[node] = kept
        return how

    applied = _on_every_node(
        settings,
        setuser,
        silent,
        before=load,
        done=done,
        fallback=fallback,
        whole=own,
        refusal_fails=True,
    )
    return {**applied[1], **_unreached_replicas(settings)}


def _version_text(client: Any) -> str:
    """INFO server's redis_version; HELLO's version for a user that may not read INFO."""
    try:
        return str(client.execute_command("INFO", "server")["redis_version"])
    except redis.exceptions.NoPermissionError:
        return reply_fields(client.execute_command("HELLO")).get("version", "")
