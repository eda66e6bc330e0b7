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

import contextlib
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import redis

from ._acl import AclUser, Version, acl_user, parse_version, password_hash
from ._client import Swarm
from ._config import Settings
from ._connect import sync_client
from ._embedded import EmbeddedServer, find_redis_server, swarm_command
from ._errors import (
    AUTHENTICATION_FAILED,
    ConfigError,
    ConnectionFailed,
    PartlyApplied,
    PermissionDenied,
    SwarmError,
    ValidationError,
)
from ._models import ACL_ROLES
from ._replies import cluster_shards, reply_fields
from ._topology import direct_settings, sentinel_down, sentinel_replicas
from ._translate import causes, may_have_reached, translate, why_no_answer

__all__ = ["AppliedRole", "apply_role"]

T = TypeVar("T")


@dataclass(frozen=True)
class AppliedRole:
    """What ``apply_role`` made: ``user``, its ACL SETUSER (``user.password`` is the one to give
    the agents, shown once when ``user.generated``); ``version``, the Redis version its rules
    are for; ``persisted``, how each server that now holds it keeps it (node -> how: the
    aclfile, redis.conf, or memory only), empty on a dry run; ``skipped``, the servers left
    without the user (node -> why): the replicas the sentinels report down, the cluster nodes
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
    only one the user had there already (``_keeps_its_password``: nothing breaks)."""

    user: AclUser
    version: Version
    persisted: Mapping[str, str] = field(default_factory=dict, hash=False)
    skipped: Mapping[str, str] = field(default_factory=dict, hash=False)
    url_user: bool = False
    closed: Mapping[str, int] = field(default_factory=dict, hash=False)
    spared: Mapping[str, str] = field(default_factory=dict, hash=False)

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
    include them (``_unreached_replicas``).

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
        )
    except SwarmError as exc:
        if not done:
            raise  # (no server got the user: nothing changed)
        made = AppliedRole(
            spec, version, dict(done), url_user=own, closed=dict(closed or {}), spared=spared
        )
        raise PartlyApplied(_partly_applied(exc, made), made=made) from exc
    return AppliedRole(
        spec, version, done, skipped, url_user=own, closed=closed or {}, spared=spared
    )


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


def _connecting_user(settings: Settings) -> str:
    """The Redis user ``settings`` connects as: the URL's, else ``default`` (a URL with a
    password alone, or none, logs in as it)."""
    return settings.username or "default"


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
) -> dict[str, str]:
    """The library loaded through ``handle`` (or a handle of its own), then the ACL SETUSER
    on every node, persisted (into ``done``: node -> how, filled as it goes, so that a
    failure half way still knows who holds the user), and the servers skipped (node -> why;
    ``silent``: found not answering already). ``own``: the user is the URL's, on every
    server or none (``_on_every_node``'s ``whole``); ``fallback``: its new password, tried
    on a server that refuses the URL's; ``closed``: given, the user's connections on each
    server are closed once it is saved there (node -> how many, filled as it goes), those
    of replication and the sentinels left open (into ``spared``: ``_kill_connections``)."""

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
        before = (
            _listed(client, spec.user, sentinel_hosts)
            if closed is None and not _keeps_its_password(client, spec)
            else None
        )
        try:
            client.execute_command(*spec.command)
        except redis.ResponseError as exc:
            if "ACL SETUSER" not in str(exc):
                raise
            raise _setuser_refused(exc, node, spec) from None
        done[node] = _SET_NOT_SAVED  # (until saved: should its saving fail, it holds the user)
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


def _unreached_replicas(settings: Settings) -> dict[str, str]:
    """The replicas of the server of a plain URL (INFO replication: replica -> why), which
    the apply did not reach: such a URL names one server, and ACLs are not replicated, so
    each lacks the user (a failover to it, or a client sent to it, would be refused). None
    for a cluster or Sentinel URL (their replicas are found and applied), for the embedded
    server, and when the server will not say (NOPERM, no answer: the user is applied
    already; this is only a warning)."""
    if settings.kind in ("cluster", "sentinel", "embedded"):
        return {}
    client: Any = sync_client(settings)
    try:
        info = client.info("replication")
    except (redis.RedisError, OSError):
        return {}
    finally:
        client.close()
    found: dict[str, str] = {}
    for key, entry in info.items():
        if not (re.fullmatch(r"slave\d+", str(key)) and isinstance(entry, dict)):
            continue
        name = _node(str(entry.get("ip", "")), int(entry.get("port") or 0))
        found[name] = (
            f"a replica of {settings.url}, not reached: that URL names one server, and ACLs "
            "are not replicated. To include the replicas, apply through the sentinels that "
            "watch them (a redis+sentinel:// URL), or run this command again with a URL "
            f"naming {name} (the same user and password)"
        )
    return found


# What a server that does not answer raises: refused, reset or timed out (some are answers,
# or configuration problems, though: see _did_not_answer).
_NO_ANSWER = (redis.ConnectionError, redis.TimeoutError, OSError)


def _on_every_node(
    settings: Settings,
    fn: Callable[[Any, str], T],
    silent: Mapping[str, str] | None = None,
    *,
    before: Callable[[list[_Target]], object] | None = None,
    done: dict[str, T] | None = None,
    fallback: str | None = None,
    whole: bool = False,
    refusal_fails: bool = False,
) -> tuple[dict[str, T], dict[str, str]]:
    """``fn(client, node)`` on every server that must hold the user, by node name (into
    ``done`` when given, as each returns), and the servers left out (node -> why: reported down, or
    not answering; ``silent``: found not answering already, not tried again). Every server is
    reached (``_probe``) before ``fn`` runs anywhere, so that a master that cannot be reached
    fails the call before any server got the user; ``before(reached)`` runs then, once.
    ``fallback``: a password tried on a server that refuses the URL's (``_logged_in``).
    ``whole``: no server may be left out (the user is the URL's own, whose password a server
    left out would keep: ``_not_everywhere``): one that would be fails the call, before
    ``fn`` runs anywhere when found then, else once ``fn`` failed there. A server found that
    refuses the URL's user fails the call (``_refused_login``, before ``fn`` runs anywhere)
    when it is a master or ``refusal_fails`` (an apply: the replica is up, and lacks the
    admin, which a copy of the aclfile fixes at once); a replica (a cluster node without
    hash slots) is left out otherwise (a dry run's version check), saying why. redis-py
    errors arrive translated (one line saying what to do)."""

    done = {} if done is None else done
    reached: list[_Target] = []
    try:
        targets, skipped = _targets(settings, fallback)
        for target in targets:
            if silent and target.name in silent:
                skipped[target.name] = silent[target.name]
                continue
            try:
                reached.append(_logged_in(target, fallback))
            except redis.AuthenticationError:
                if not target.found:
                    raise  # (the URL's own server: translated below, as for any client)
                admitted = [other.name for other in reached]
                if target.serves or refusal_fails:
                    raise _refused_login(settings, target, admitted, fallback) from None
                skipped[target.name] = _refusal(settings, target, admitted, fallback)
            except _NO_ANSWER as exc:
                skipped[target.name] = _did_not_answer(settings, target, exc, applied=[])
        if whole and skipped:
            raise _not_everywhere(settings, skipped, applied=[])
        if before is not None:
            before(reached)
        for target in reached:
            client: Any = sync_client(target.settings)
            try:
                done[target.name] = fn(client, target.name)
            except _NO_ANSWER as exc:  # (it stopped answering since its PING)
                others = [name for name in done if name != target.name]
                why = _did_not_answer(settings, target, exc, others, applying=True)
                if target.name not in done:  # (else it holds the user, unsaved: said there)
                    if whole:
                        raise _not_everywhere(
                            settings, {target.name: why}, others, sent=may_have_reached(exc)
                        ) from None
                    skipped[target.name] = why
            finally:
                client.close()
    except SwarmError:
        raise
    except (redis.RedisError, OSError) as exc:
        if isinstance(exc, redis.AuthenticationError) and _names_its_user(settings):
            raise _url_user_refused(settings) from None
        raise translate(exc, settings.url) from None
    return done, skipped


# What a refused login may mean: Redis answers a user it does not have as it answers a wrong
# password (WRONGPASS, by design: a login tells no one which users exist).
_UNKNOWN_OR_WRONG = "the user does not exist or its password is wrong (Redis answers both alike)"


def _names_its_user(settings: Settings) -> bool:
    """The URL names the user it logs in as, and its own server refused it as ``translate``
    would say without naming a node: not a cluster URL (whose client names the node that
    refused, and says what that means: ``_refusal`` for the nodes this module finds)."""
    return settings.username is not None and settings.kind != "cluster"


def _url_user_refused(settings: Settings) -> PermissionDenied:
    """The URL's own server refused its user (``_names_its_user``): for the user that does
    not exist there as for a wrong password, and the way to make it (a ``swarm acl`` that
    applies needs an admin: made so, with an admin's URL)."""
    who = _connecting_user(settings)
    return PermissionDenied(
        f"{AUTHENTICATION_FAILED} on {settings.url}: it refused user {who!r} with the URL's "
        f"password: {_UNKNOWN_OR_WRONG}. Check the user name and password in the URL (a '%' "
        "in the password is written %25); to make the user, run 'SWARM_URL=ADMIN_URL swarm "
        f"acl --role admin --user {who} --password-stdin --apply' with the URL of an admin of "
        "that server in SWARM_URL (exported, or read from a file: a --url shows its password "
        "in ps and the shell's history) and the URL's password on standard input, then run "
        "this command again"
    )


def _logged_in(target: _Target, fallback: str | None) -> _Target:
    """``target`` once it answered a PING (``_probe``; the URL's own server is not probed: its
    retries ride out an outage), logged in; with ``fallback`` given, one that refuses the
    URL's password is tried with that one, and returned with it (``fell_back``). Raises what
    the server raised (with both passwords refused, the URL's refusal)."""
    if fallback is None:
        if target.found:
            _probe(target.settings)
        return target
    try:
        _probe(target.settings)
    except redis.AuthenticationError as refused:
        other = replace(target, settings=target.settings.replace(password=fallback))
        try:
            _probe(other.settings)
        except redis.AuthenticationError:
            raise refused from None
        return replace(other, fell_back=True)
    return target


def _refused_login(
    settings: Settings, target: _Target, admitted: list[str], fallback: str | None
) -> PermissionDenied:
    """A server found through the URL (a replica or the master behind the sentinels, a node
    of the cluster) refused the URL's user and password (and ``fallback``): said of that
    server, not of the URL, whose credentials ``admitted`` (the servers that took them
    before) did let in (``_refusal``). Raised before any server got the user, by every
    apply (a dry run skips a replica that refuses)."""
    if settings.kind == "cluster":
        what = "cluster node" + (" holding hash slots" if target.serves else "")
    else:
        what = "the master behind the sentinels" if target.serves else "replica"
    return PermissionDenied(
        f"{AUTHENTICATION_FAILED} on {what} {target.name} of {settings.url}: "
        f"{_refusal(settings, target, admitted, fallback)}; then run this command again. "
        "Nothing was applied"
    )


def _refusal(settings: Settings, target: _Target, admitted: list[str], fallback: str | None) -> str:
    """Why ``target`` refused the URL's user, and what to do: what ``_refused_login`` says.
    ACLs are per server and not replicated: a replica or node
    added since the admin was made has none of the users, unless given a copy of the
    aclfile."""
    who = _connecting_user(settings)
    tried = "the URL's password" + (" and the new one given" if fallback else "")
    if admitted:
        why = (
            f"{', '.join(admitted)} let that user in with it, so user {who!r} is most likely "
            f"missing on {target.name} (or has another password there)"
        )
    else:
        why = (
            f"on {target.name} {_UNKNOWN_OR_WRONG}: check the user name and password in the "
            f"URL; if they are right, the user is missing on {target.name} (or has another "
            "password there)"
        )
    return (
        f"it refused user {who!r} with {tried}; {why}. ACLs are per server and not "
        f"replicated: a server added since the user was made has none of its users. Create "
        f"user {who!r} on {target.name} with the same password and rights (as an admin of "
        "it: ACL SETUSER, then ACL SAVE), or copy the aclfile of a server that has it to it "
        "and run ACL LOAD there (docs/deployment.md: give a new replica the aclfile before it "
        "starts)"
    )


def _not_everywhere(
    settings: Settings, left_out: Mapping[str, str], applied: list[str], *, sent: bool = False
) -> ConnectionFailed:
    """The URL's own user (its password rotating) cannot be applied on every server: it is
    not applied at all (or, should a server fail once others hold it, ``PartlyApplied`` says
    how to finish). A server left without it would keep the old password, no one URL would
    reach every server any more, and a failover to that one would lock the new password
    out, the one way in, and a later apply with it. ``sent``: the user was sent to the
    server that failed (it may hold it). Retryable: only servers that did not answer are
    left out (one that failed with what no retry fixes fails the call with its own error,
    ``_did_not_answer``)."""
    why = "; ".join(f"{node} {reason}" for node, reason in left_out.items())
    done = f"it was applied on {', '.join(applied)} only" if applied else "nothing was applied"
    return ConnectionFailed(
        f"cannot rotate the password of user {_connecting_user(settings)!r}, the one the URL "
        f"connects as, on every server: {why}; {done}, as a server left out would keep the "
        "old password (no one URL would reach every server, and a failover to it would lock "
        "the new one out): bring it back, then run this command again",
        sent=sent,
    )


def _probe(settings: Settings) -> None:
    """A PING to the server of ``settings`` (a found one, ``direct_settings``: tried once, a
    server that does not answer left out, ``_did_not_answer``), its reply given the connect
    timeout too: a server that takes connections and never answers is left out that
    soon. Only the PING: an ACL SETUSER, ACL SAVE or CONFIG REWRITE (an fsync on a busy disk)
    gets the URL's socket timeout, so that one that succeeded is not taken for a server that
    did not answer."""
    timeout = min(settings.socket_timeout, settings.connect_timeout)
    client: Any = sync_client(settings.replace(socket_timeout=timeout))
    try:
        client.ping()
    except redis.ResponseError:
        pass  # it answers (its user may not run PING: a dry run's may be any)
    finally:
        client.close()


def _did_not_answer(
    settings: Settings,
    target: _Target,
    exc: BaseException,
    applied: list[str],
    *,
    applying: bool = False,
) -> str:
    """Why ``target``, which raised ``exc``, is left out. Raised instead: ``exc`` when the
    server answered (a wrong password) or is the URL's own (its retries have ridden out an
    outage, and there is nothing to leave it out of); the translated ``exc`` when it answered
    with a problem to fix (``_answered_with_a_problem``) or failed with one no retry fixes
    (``ConnectionFailed.retryable`` False: a certificate file of the URL gone); and
    ``_master_unreachable`` for a master (``sent`` when ``applying``: ``exc`` came from the
    apply itself, not the PING before it, and may have reached it)."""
    if not target.found or isinstance(exc, redis.AuthenticationError):
        raise exc
    translated = translate(exc, target.settings.url)
    if _answered_with_a_problem(exc) or (
        isinstance(translated, ConnectionFailed) and not translated.retryable
    ):
        raise translated from None
    why = f"did not answer ({why_no_answer(str(exc))})"
    if target.flagged:
        why += f", and {target.flagged}"
    if target.serves:
        sent = applying and may_have_reached(exc)
        raise _master_unreachable(settings, target.name, why, applied, sent=sent) from None
    return why


def _answered_with_a_problem(exc: BaseException) -> bool:
    """True for the connection errors of a server that is there: one still loading its data
    (LOADING: apply again in a moment), one whose TLS failed (a certificate that does not name
    the host the node is dialled by, a CA that did not sign it, a client certificate refused).
    The configuration is to fix, or the moment to wait: not a server to leave out."""
    return isinstance(exc, redis.BusyLoadingError) or any(
        isinstance(item, ssl.SSLError) for item in causes(exc)
    )


def _master_unreachable(
    settings: Settings, node: str, why: str, applied: list[str], *, sent: bool = False
) -> ConnectionFailed:
    """A master that cannot be reached: the apply fails (a replica is skipped instead). The
    role's clients are sent to it, and the swarm's library, loaded on every master before the
    users, would wait out the URL's retries for it and fail: the user must wait for it.
    ``sent``: the user was sent to it (it may hold it). Retryable: it is down, flagged so or
    not answering (``_did_not_answer`` raises what no retry fixes as itself)."""
    if settings.kind == "cluster":
        what, failover = "a master holding hash slots", "the cluster fails it over to a replica"
        failover += " (its cluster-node-timeout after it stopped answering)"
    else:
        what, failover = "the master behind the sentinels", "the sentinels fail it over"
    done = f"it was applied on {', '.join(applied)} only" if applied else "nothing was applied"
    return ConnectionFailed(
        f"cannot apply the user on {node}, {what}: {why}; {done}, as every master must hold it "
        f"and the swarm's library: bring {node} back, or wait until {failover}, then run this "
        "command again",
        sent=sent,
    )


def _version_text(client: Any) -> str:
    """INFO server's redis_version; HELLO's version for a user that may not read INFO."""
    try:
        return str(client.execute_command("INFO", "server")["redis_version"])
    except redis.exceptions.NoPermissionError:
        return reply_fields(client.execute_command("HELLO")).get("version", "")


@dataclass(frozen=True)
class _Target:
    """A server that must hold the user: its node name and settings (direct), whether it is a
    master (``serves``: one holding hash slots, the master behind the sentinels), and whether
    it was ``found`` by asking the cluster or the sentinels (then tried once, briefly: see
    ``_probe``) rather than named by the URL; ``flagged``: why CLUSTER NODES flags it down,
    for one tried all the same (``_tried_though_flagged``); ``fell_back``: it refused the
    URL's password and took the fallback one, which its ``settings`` now hold (``_logged_in``)."""

    name: str
    settings: Settings
    serves: bool
    found: bool = True
    flagged: str = ""
    fell_back: bool = False


def _targets(
    settings: Settings, fallback: str | None = None
) -> tuple[list[_Target], dict[str, str]]:
    """Every server that must hold the user (ACLs are per node), and those left out because
    the sentinels or the cluster report them down (node -> why). A cluster's node that
    refuses the URL's password is asked with ``fallback``, when given; the targets have the
    URL's all the same (``_logged_in`` tries each)."""
    if settings.kind not in ("cluster", "sentinel"):
        return [_Target(settings.url, settings, serves=True, found=False)], {}
    try:
        return _found_targets(settings, settings)
    except (redis.RedisError, OSError) as exc:
        # (the cluster client wraps the refusal of every node it asked: see what caused it)
        refused = any(isinstance(item, redis.AuthenticationError) for item in causes(exc))
        if fallback is None or not refused:
            raise
    return _found_targets(settings, settings.replace(password=fallback))


def _found_targets(settings: Settings, asking: Settings) -> tuple[list[_Target], dict[str, str]]:
    """``_targets`` of a cluster or Sentinel URL, asked with the settings ``asking``."""
    client: Any = sync_client(asking)
    try:
        if settings.kind == "cluster":
            # Every node the cluster knows, replicas included, as CLUSTER NODES lists them.
            up, skipped = _cluster_nodes(settings, client)
        else:
            replicas, skipped = _replicas(client)
            master = client.connection_pool.get_master_address()
            up = [(*master, True, ""), *((host, port, False, why) for host, port, why in replicas)]
    finally:
        client.close()
    targets = [
        _Target(_node(host, port), direct_settings(settings, host, port), serves, flagged=flagged)
        for host, port, serves, flagged in up
    ]
    return targets, skipped


# The CLUSTER NODES flags of a node that cannot be reached, and what each says, the first
# that a node has told: 'fail?' is PFAIL (the node asked has not heard from it within the
# cluster-node-timeout; not failed until most masters agree), 'handshake' a node joining.
_CLUSTER_DOWN = {
    "handshake": "it is still joining the cluster",
    "noaddr": "the cluster knows no address for it",
    "fail": "the cluster reports it failed",
    "fail?": "the cluster reports it not answering, not failed yet",
}


def _tried_though_flagged(down: list[str], serves: bool) -> bool:
    """Whether a node flagged ``down`` is tried all the same. 'fail?' is the opinion of the
    node asked alone (a network problem between the two, say): this machine may reach it. A
    failed node that still holds hash slots (no replica took them over) may be back (the
    cluster clears the flag once it answers and twice its cluster-node-timeout has passed
    since it failed), and its slots' clients are sent to it. Others flagged 'fail'
    (replicas, a master a failover replaced) are not: most masters report them down. Nor
    are nodes without an address, or joining: there is nothing to dial, or no member yet."""
    if "noaddr" in down or "handshake" in down:
        return False
    return "fail?" in down or serves


def _cluster_nodes(
    settings: Settings, client: Any
) -> tuple[list[tuple[str, int, bool, str]], dict[str, str]]:
    """host (the one it is dialled by: ``_dialled_host``), port, whether it holds hash slots
    and why it is flagged down ("" when it is not) of every node in CLUSTER NODES (redis-py
    parses it to a dict) to try, and those its flags say cannot be reached (node -> why).
    One of those that holds slots fails the apply (``_master_unreachable``): left out, its
    slots' clients would be refused."""
    asked = client.get_default_node()
    nodes = dict(client.execute_command("CLUSTER NODES", target_nodes=asked))
    named = any(node.get("hostname") for node in nodes.values())
    endpoints = _preferred_endpoints(client, asked) if named else {}
    up: list[tuple[str, int, bool, str]] = []
    skipped: dict[str, str] = {}
    for address, node in nodes.items():
        flags = str(node.get("flags", "")).split(",")
        ip, _, port = str(address).split("@", 1)[0].rpartition(":")
        host = _dialled_host(ip.strip("[]"), node, flags, endpoints, asked.host)
        serves = bool(node.get("slots"))
        down = [flag for flag in _CLUSTER_DOWN if flag in flags]
        why = f"{_CLUSTER_DOWN[down[0]]} ({', '.join(down)})" if down else ""
        if not down or _tried_though_flagged(down, serves):
            up.append((host, int(port), serves, why))
            continue
        # (a node with no address is shown as ':0': named by its id instead)
        name = _node(host, int(port)) if host and int(port) else f"node {node.get('node_id')}"
        if serves:
            raise _master_unreachable(settings, name, why, applied=[])
        skipped[name] = why
    return up, skipped


def _preferred_endpoints(client: Any, asked: Any) -> dict[str, str]:
    """Node id -> the endpoint CLUSTER SHARDS (Redis 7+, as host names are) gives for it:
    the one its clients dial, as the node ``asked`` picks it by its
    cluster-preferred-endpoint-type (CLUSTER SLOTS, which redis-py reads, gives the same)."""
    reply = client.execute_command("CLUSTER SHARDS", target_nodes=asked)
    return {node.id: node.endpoint for _, nodes in cluster_shards(reply) for node in nodes}


def _dialled_host(
    ip: str,
    node: Mapping[str, Any],
    flags: list[str],
    endpoints: Mapping[str, str],
    asked_host: str,
) -> str:
    """The host a node of CLUSTER NODES is dialled by, as redis-py's cluster client reaches
    it: the host name it announces (cluster-announce-hostname, shown ``IP:PORT@BUS,NAME``)
    when the cluster prefers host names (``endpoints``; a TLS certificate may name the host
    alone), else its IP. The node asked that has met no other knows no IP of its own
    (``:PORT``): it is dialled by the host it was reached at, as redis-py does with the
    empty host CLUSTER SLOTS gives for it."""
    hostname = str(node.get("hostname") or "")
    if hostname and endpoints.get(str(node.get("node_id"))) == hostname:
        return hostname
    if not ip and "myself" in flags:
        return str(asked_host)
    return ip


def _replicas(client: Any) -> tuple[list[tuple[str, int, str]], dict[str, str]]:
    """The replicas to try that the sentinels list for the service of ``client`` (a Sentinel
    URL's), each with why it is flagged ("" for none), and those they report down (node ->
    why: they cannot be reached, and must be told to the user, who applies again once they
    are back). Asked through the URL's own sentinels:
    with its TLS options, as it asks for the master. (A Sentinel made without them was refused
    by TLS sentinels, which redis-py takes for no replica: the user went to the master alone,
    and was missing after a failover.) As redis-py's ``discover_slaves``: the first sentinel
    that answers with a replica up says which are up; else the first that answers, none.
    Down is as swarm doctor counts it (``sentinel_down``); but one flagged ``disconnected``
    alone is tried all the same, as the cluster's ``fail?`` is (``_tried_though_flagged``):
    it is the sentinel's link that is down, redialled at once (a busy machine drops one that
    is slow to answer a PING), and this machine may reach the replica; if it does not, it is
    left out saying both."""
    pool = client.connection_pool
    answered: list[dict[str, str]] | None = None
    for sentinel in pool.sentinel_manager.sentinels:
        try:
            listed = sentinel_replicas(sentinel, pool.service_name)
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            continue
        if answered is None:
            answered = listed  # (should no sentinel see one up, the first says which are down)
        if any(not sentinel_down(entry) for entry in listed):
            answered = listed
            break
    up: list[tuple[str, int, str]] = []
    skipped: dict[str, str] = {}
    for entry in answered or []:
        host, port = entry.get("ip", ""), int(entry.get("port") or 0)
        down = sentinel_down(entry)
        if down == ["disconnected"]:
            up.append((host, port, "the sentinels' link to it is down (disconnected)"))
        elif down:
            # The most telling flag: a replica s_down is disconnected now and then as well (the
            # sentinel drops a link that does not answer, and dials again), which adds nothing.
            skipped[_node(host, port)] = f"the sentinels report it down ({down[0]})"
        else:
            up.append((host, port, ""))
    return up, skipped


def _node(host: str, port: int) -> str:
    return f"{host}:{port}"


# What the server answers an ACL SAVE when it has no aclfile ("This Redis instance is not
# configured to use an ACL file...") and a CONFIG REWRITE when it has no redis.conf ("The
# server is running without a config file"): the way to keep a user that is not there.
_NO_ACLFILE = "not configured to use an acl file"
_NO_CONFIG_FILE = "without a config file"
# What an ACL SAVE that succeeded says, before the aclfile's path when known (_saved_to).
_SAVED = "saved to the aclfile"
# The end of every 'in memory only' said: what it costs, and the way out.
_LOST_AT_RESTART = "or it is lost at restart"
_IN_MEMORY = ("in memory only", _LOST_AT_RESTART)
# The same of a user deleted (``revoke_user``): its line in the aclfile or redis.conf stays.
_DELETED = "deleted"
_DELETED_IN_MEMORY = "deleted in memory only"
_BACK_AT_RESTART = "or the user is back at restart (its line is still in the file)"
# How a server keeps the user when it stopped answering between its ACL SETUSER and saving it.
_SET_NOT_SAVED = (
    "in memory only (set, but the server stopped answering before it was saved): run ACL "
    f"SAVE there once it answers, {_LOST_AT_RESTART}"
)


def _persist(client: Any, settings: Settings, *, deleting: bool = False) -> str:
    """ACL SAVE (aclfile, named: ``_saved_to``), else CONFIG REWRITE (redis.conf), else say it
    is memory only and why: no such file (the embedded server of ``settings`` started
    without an aclfile: ``_embedded_without_aclfile``), the URL's user may not save (NOPERM:
    whether the server has an aclfile is not known then, so redis.conf is not tried: users
    written there are not read when it has one), or the server's error. ``deleting``: what
    is kept is a user's deletion (``revoke_user``): CONFIG REWRITE drops its ``user`` line
    from redis.conf, and a server with neither file restarts without it."""
    who = _connecting_user(settings)
    memory, lost = (_DELETED_IN_MEMORY, _BACK_AT_RESTART) if deleting else _IN_MEMORY
    try:
        client.execute_command("ACL", "SAVE")
    except redis.exceptions.NoPermissionError:
        run = "ACL SAVE (or CONFIG REWRITE, with no aclfile)"
        return _not_saved(who, "ACL SAVE", run, deleting=deleting)
    except redis.ResponseError as exc:
        if _NO_ACLFILE not in str(exc).lower():
            return f"{memory} (ACL SAVE failed: {exc}): fix it and run ACL SAVE, {lost}"
        if settings.kind == "embedded":
            if deleting:
                return f"{_DELETED} (the embedded server has no aclfile: it stops without it)"
            return _embedded_without_aclfile(settings)
    else:
        return _saved_to(client, settings)
    try:
        client.execute_command("CONFIG", "REWRITE")
    except redis.exceptions.NoPermissionError:
        refused = "CONFIG REWRITE (the server has no aclfile)"
        return _not_saved(who, refused, "CONFIG REWRITE", deleting=deleting)
    except redis.ResponseError as exc:
        if _NO_CONFIG_FILE not in str(exc).lower():
            return f"{memory} (CONFIG REWRITE failed: {exc}): fix it and run CONFIG REWRITE, " + (
                lost
            )
        if deleting:  # (its users were all made at run time: none is read at a restart)
            return f"{_DELETED} (the server has no aclfile or config file: it restarts without it)"
        return (
            "in memory only (the server has no aclfile or config file): "
            f"add the line to its aclfile or redis.conf, {_LOST_AT_RESTART}"
        )
    return "saved to redis.conf (CONFIG REWRITE)"


def _saved_to(client: Any, settings: Settings) -> str:
    """What an ACL SAVE that succeeded says: the aclfile, named. The embedded server's is its
    home's (``EmbeddedServer.aclfile``); another server is asked (CONFIG GET aclfile), and
    when the URL's user may not (NOPERM) or it does not say, the words go without a path."""
    if settings.kind == "embedded":
        return f"{_SAVED} {EmbeddedServer(settings.home).aclfile}"
    try:
        reply = client.config_get("aclfile")
    except redis.RedisError:
        return _SAVED
    # (its one entry: keyed b"aclfile" or "aclfile", as the client decodes)
    path = next(iter(reply.values()), None) if isinstance(reply, dict) else None
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    return f"{_SAVED} {path}" if path else _SAVED


def _embedded_without_aclfile(settings: Settings) -> str:
    """What persisting says on an embedded server started without an aclfile (by a version
    before it had one: ``EmbeddedServer`` starts it with ``--aclfile`` since): no file of it
    can be edited (swarm starts it), but a restart gives it one."""
    home = settings.home
    return (
        "in memory only (the embedded server was started by an older version, without an "
        "aclfile): the users made on it last until it stops. Run "
        f"'{swarm_command(home, 'down')}' then '{swarm_command(home, 'up')}' to restart it "
        f"with an aclfile ({EmbeddedServer(home).aclfile}), then make the users again: those "
        "made after that are kept"
    )


def _not_saved(who: str, refused: str, run: str, *, deleting: bool = False) -> str:
    """What persisting says when the URL's user ``who`` may not run ``refused`` (NOPERM):
    not that the server has no file to keep it in, which it may well have."""
    memory, lost = (_DELETED_IN_MEMORY, _BACK_AT_RESTART) if deleting else _IN_MEMORY
    return (
        f"{memory} (user {who!r} may not run {refused}: NOPERM): have an admin run {run} "
        f"there, {lost}"
    )


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


def _keeps_its_password(client: Any, spec: AclUser) -> bool:
    """Whether the password ``spec`` sets is already the only one its user logs in with on
    the server of ``client`` (ACL GETUSER: the SHA-256 of each of its passwords, and no
    ``nopass``): applying it then refuses no login, and the replication links and sentinels
    logged in as the user have nothing to update (``_spared``): an apply without a kill
    names them only when it changes a login. False for a new user, for one with another
    password too (what logs in with that one is refused from now on), and when the server
    will not say (NOPERM, ACL renamed away): they are then named as for a change."""
    if spec.password is None:
        return False
    try:
        found = client.acl_getuser(spec.user)
    except redis.exceptions.ResponseError:
        return False
    if not found or "nopass" in found.get("flags", ()):
        return False
    return list(found.get("passwords", ())) == [password_hash(spec.password)]


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
