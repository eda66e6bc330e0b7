"""``revoke_user``: a Redis user deleted on every server that holds it, what ``swarm acl
--revoke`` does. The servers are those ``apply_role`` reaches (``_acl_nodes._on_every_node``),
each deletion saved as it saves a user; the deletion closes the user's connections there,
and what it cut besides (replication links, sentinels logged in as the user) is said with
what to update. It needs an admin user::

    from redis_swarm import Settings, revoke_user

    gone = revoke_user(Settings.from_url("redis://ops:PASSWORD@10.0.0.5:6379"), "legal-worker")
    gone.deleted  # node -> how the deletion is kept (the aclfile, redis.conf, in memory only)
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._acl_connections import _Connections, _listed, _sentinel_hosts
from ._acl_nodes import _connecting_user, _on_every_node, _Target, _unreached_replicas
from ._acl_persist import _BACK_AT_RESTART, _DELETED_IN_MEMORY, _persist
from ._client import Swarm
from ._config import Settings
from ._errors import NotFound, SwarmError, ValidationError

__all__ = ["RevokedUser", "revoke_user"]


@dataclass(frozen=True)
class RevokedUser:
    """What ``revoke_user`` did to ``user``: ``deleted``, the servers it was deleted on (node
    -> how the deletion is kept: the aclfile, redis.conf, or in memory only and what to do,
    as ``AppliedRole.persisted`` says it); ``absent``, the servers that had no such user;
    ``closed``, the connections of the user each deletion closed there (node -> how many:
    its clients' own); ``cut``, the replication links and sentinels logged in as the user,
    closed too (node -> which, and what to update: they log in as it again, refused);
    ``skipped``, the servers not reached, which still hold the user (node -> why): revoke
    again once they are back."""

    user: str
    deleted: Mapping[str, str] = field(default_factory=dict, hash=False)
    absent: tuple[str, ...] = ()
    closed: Mapping[str, int] = field(default_factory=dict, hash=False)
    cut: Mapping[str, str] = field(default_factory=dict, hash=False)
    skipped: Mapping[str, str] = field(default_factory=dict, hash=False)


def revoke_user(target: Settings | Swarm, user: str) -> RevokedUser:
    """Delete the Redis user ``user`` on every server of ``target`` that holds it, as
    ``apply_role`` reaches them (every node of a cluster, replicas included; the master and
    the replicas behind a Sentinel; with a plain URL, its one server, its replicas named in
    ``skipped``), each deletion saved as ``apply_role`` saves a user (ACL SAVE, else CONFIG
    REWRITE, which drops its ``user`` line from redis.conf; else said in memory only, and
    what to do). ACL DELUSER closes the user's connections there (a disabled user, ``ACL
    SETUSER u off``, keeps those logged in): counted in ``closed``, those of replication and
    the sentinels in ``cut`` (they log in as it again, refused). A later ``apply_role`` of
    the same name makes it anew (with a new password, generated or given). ``target``'s
    user must be an admin.

    Refused (``ValidationError``, before any server is asked): ``default`` (Redis's own user:
    turn it off instead, ``ACL SETUSER default off resetpass``) and the user ``target`` connects
    as (it would lock this very URL out: revoke it with another admin's URL). ``NotFound`` when
    no server reached holds the user (and none was skipped). Which servers are reached, and
    which are left out, is as for ``apply_role`` (``_on_every_node``): a master that cannot be
    reached, or any server that refuses the URL's user, fails the call before any server lost
    the user. Should a server fail once others lost it, the error (of its class) says on which
    servers the user is deleted, which ones still hold it, and to run the revoke again once that
    is fixed: a server without the user is passed over."""
    settings = target if isinstance(target, Settings) else target.settings
    if not user:
        raise ValidationError("name the user to revoke (--revoke USER)")
    if user == "default":
        raise ValidationError(
            "refusing to delete user 'default': it is Redis's own (a client that names no user "
            "logs in as it) and cannot be deleted. To shut it out, turn it off as an admin: "
            "ACL SETUSER default off resetpass, then ACL SAVE (off alone leaves it nopass: "
            "docs/security.md, 'Users per role')"
        )
    if user == _connecting_user(settings):
        raise ValidationError(
            f"refusing to revoke user {user!r}: it is the one the URL ({settings.url}) connects "
            "as, and would lock this URL out half way. Revoke it with the URL of another admin "
            "(make one first: 'swarm acl --role admin --user NAME --apply')"
        )
    sentinel_hosts = _sentinel_hosts(settings)
    deleted: dict[str, str] = {}
    absent: list[str] = []
    closed: dict[str, int] = {}
    cut: dict[str, str] = {}
    every: list[str] = []

    def reached(found: list[_Target]) -> None:
        every.extend(each.name for each in found)

    def delete(client: Any, node: str) -> None:
        # Listed before: ACL DELUSER closes them all (the caller's own connection is another
        # user's), replication links and sentinels too.
        before = _listed(client, user, sentinel_hosts)
        if not int(client.execute_command("ACL", "DELUSER", user)):
            absent.append(node)
            return
        deleted[node] = _DELETED_NOT_SAVED  # (until saved)
        deleted[node] = _persist(client, settings, deleting=True)
        if before is not None:
            closed[node] = len(before.clients)
            if before.replicas or before.sentinels:
                cut[node] = _cut(user, before)

    try:
        _, skipped = _on_every_node(settings, delete, before=reached, refusal_fails=True)
    except SwarmError as exc:
        if not deleted:
            raise
        partial = copy.copy(exc)
        partial.args = (_partly_revoked(exc, user, deleted, every, absent),)
        raise partial from exc
    skipped.update(_unreached_replicas(settings, revoking=_revoke_command(user)))
    if not deleted and not skipped:
        where = ", ".join(absent) or settings.url
        raise NotFound(
            f"no server has user {user!r} ({where}): nothing to revoke. Check the name (ACL "
            "USERS lists a server's users); a revoke that ran already leaves none"
        )
    return RevokedUser(user, deleted, tuple(absent), closed, cut, skipped)


# How a server keeps a deletion it had no time to save (it stopped answering meanwhile).
_DELETED_NOT_SAVED = (
    f"{_DELETED_IN_MEMORY} (deleted, but the server stopped answering before it was saved): "
    f"run ACL SAVE there once it answers (CONFIG REWRITE with no aclfile), {_BACK_AT_RESTART}"
)


def _partly_revoked(
    exc: SwarmError, user: str, deleted: Mapping[str, str], every: list[str], absent: list[str]
) -> str:
    """What a revoke that stopped half way says: the error, where the user is deleted, and
    where it is still held (every server reached but those), and how to finish."""
    held = [node for node in every if node not in deleted and node not in absent]
    still = ", ".join(held) if held else "the servers the error names"
    return (
        f"{exc}; user {user!r} was deleted on {', '.join(deleted)} before that, and is still "
        f"on {still}, where it logs in as before. Once that is fixed, finish it with the same "
        f"URL: {_revoke_command(user)} (revoke_user): a server without the user is passed "
        "over"
    )


def _revoke_command(user: str) -> str:
    """The command that revokes ``user``, as a shell takes it."""
    return f"swarm acl --revoke {shlex.quote(user)}"


def _cut(user: str, found: _Connections) -> str:
    """What a deletion of ``user`` cut besides its clients' connections: the replication
    links and sentinels logged in as it (``found``), which log in as it again, refused."""
    said = []
    if found.replicas:
        links = ", ".join(f"from {entry.get('addr')}" for entry in found.replicas)
        said.append(
            f"the replication link(s) {links} (masteruser {user!r}): set masteruser and "
            "masterauth to another user's on every server (CONFIG SET, then CONFIG REWRITE), "
            "or replication stays stopped"
        )
    if found.sentinels:
        names = ", ".join(str(entry.get("name")) for entry in found.sentinels)
        said.append(
            f"the sentinel connection(s) {names} (auth-user {user!r}): set another user on "
            "every sentinel (SENTINEL SET <master> auth-user, auth-pass), or they lose the "
            "servers"
        )
    return f"closed {'; and '.join(said)}"
