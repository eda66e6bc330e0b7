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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from ._acl import AclUser, Version, acl_user, parse_version
from ._client import Swarm
from ._config import Settings
from ._connect import sync_client
from ._embedded import find_redis_server
from ._errors import SwarmError
from ._replies import reply_fields
from ._translate import translate

__all__ = ["AppliedRole", "apply_role", "apply_user", "server_version"]

T = TypeVar("T")


@dataclass(frozen=True)
class AppliedRole:
    """What ``apply_role`` made: ``user``, its ACL SETUSER (``user.password`` is the one to give
    the agents, shown once when ``user.generated``); ``version``, the Redis version its rules
    are for; ``persisted``, how each server that now holds it keeps it (node -> how: the
    aclfile, redis.conf, or memory only), empty on a dry run; ``skipped``, the replicas the
    sentinels report down, which were left without the user (node -> why): apply the role
    again once they are back, or a failover to one locks the role's agents out."""

    user: AclUser
    version: Version
    persisted: Mapping[str, str] = field(default_factory=dict, hash=False)
    skipped: Mapping[str, str] = field(default_factory=dict, hash=False)

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
) -> AppliedRole:
    """Make ``user`` a ``role`` of ``swarm`` (default: the one of ``target``) on the servers of
    ``target`` (a ``Settings``, or an open ``Swarm`` whose connection loads the library): the
    ACL SETUSER of ``acl_user`` on every server that must hold it (every node of a cluster,
    replicas included; the master and the replicas behind a Sentinel), persisted where the
    server allows (ACL SAVE, else CONFIG REWRITE), then the swarm's Functions library loaded
    (a worker may not load it). ``target``'s user must be an admin. Applying again replaces
    the user's rights and password. With no ``password``, a strong one is generated.

    The rules are for ``version`` (major, minor), by default the oldest Redis version the
    servers run. ``dry_run``: build the rules and apply nothing (the servers are still asked
    their version, unless given; the embedded server is not started for that: the version of
    its binary is read). What ``swarm acl`` runs, ``--apply`` or not. Errors arrive as
    ``SwarmError`` (one line saying what to do): ``PermissionDenied`` when the user may not
    run ACL SETUSER, ``ValidationError`` for a bad role, name or password. A replica the
    sentinels report down cannot be reached: it is left out and named in ``skipped``."""
    settings = target if isinstance(target, Settings) else target.settings
    if version is None:
        embedded = dry_run and settings.kind == "embedded"
        version = _binary_version() if embedded else server_version(settings)
    spec = acl_user(role, settings.swarm if swarm is None else swarm, user, password, version)
    if dry_run:
        return AppliedRole(spec, version)
    handle = None if isinstance(target, Settings) else target
    persisted, skipped = _apply(settings, spec, handle)
    return AppliedRole(spec, version, persisted, skipped)


def apply_user(settings: Settings, spec: AclUser) -> list[dict[str, str]]:
    """Run ``spec`` (an ``acl_user`` built already) as ``apply_role`` does, and return how
    each node persisted it (``AppliedRole.applied``)."""
    return _applied(_apply(settings, spec, None)[0])


def server_version(settings: Settings) -> Version:
    """The oldest Redis version among the servers that must hold a user (INFO, else HELLO
    for a user that may not read INFO)."""
    versions, _ = _on_every_node(settings, _version_text)
    return min(parse_version(text) for text in versions.values())


def _applied(persisted: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"node": node, "persisted": how} for node, how in persisted.items()]


def _binary_version() -> Version:
    """The version of the redis-server binary the embedded server runs (not started)."""

    return parse_version(find_redis_server().version)


def _apply(
    settings: Settings, spec: AclUser, handle: Swarm | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The ACL SETUSER on every node, persisted (node -> how), and the replicas skipped (node
    -> why); then the library loaded through ``handle`` (or a handle of its own)."""

    def setuser(client: Any) -> str:
        client.execute_command(*spec.command)
        return _persist(client)

    done, skipped = _on_every_node(settings, setuser)
    # The user runs the swarm's scripts as the functions of its library: load it (or replace
    # an older one) now, as 'swarm up' does, since a worker may not load it.
    if handle is not None:
        handle.load_functions()
    else:
        from ._client import Swarm

        with Swarm(settings) as opened:
            opened.load_functions()
    return done, skipped


def _on_every_node(
    settings: Settings, fn: Callable[[Any], T]
) -> tuple[dict[str, T], dict[str, str]]:
    """``fn(client)`` on every server that must hold the user, by node name, and the replicas
    left out as down (node -> why); redis-py errors arrive translated (one line saying what
    to do)."""

    done: dict[str, T] = {}
    try:
        targets, skipped = _targets(settings)
        for name, target in targets:
            client: Any = sync_client(target)
            try:
                done[name] = fn(client)
            finally:
                client.close()
    except SwarmError:
        raise
    except (redis.RedisError, OSError) as exc:
        raise translate(exc, settings.url) from None
    return done, skipped


def _version_text(client: Any) -> str:
    """INFO server's redis_version; HELLO's version for a user that may not read INFO."""
    try:
        return str(client.execute_command("INFO", "server")["redis_version"])
    except redis.exceptions.NoPermissionError:
        return reply_fields(client.execute_command("HELLO")).get("version", "")


def _targets(settings: Settings) -> tuple[list[tuple[str, Settings]], dict[str, str]]:
    """Every server that must hold the user (ACLs are per node), as direct settings, and the
    replicas left out because the sentinels report them down (node -> why)."""
    if settings.kind not in ("cluster", "sentinel"):
        return [(settings.url, settings)], {}

    client: Any = sync_client(settings)
    skipped: dict[str, str] = {}
    try:
        if settings.kind == "cluster":
            # Every node the cluster knows, replicas included, as CLUSTER NODES lists them.
            addresses = _cluster_nodes(client)
        else:
            replicas, skipped = _replicas(client)
            addresses = [client.connection_pool.get_master_address(), *replicas]
    finally:
        client.close()
    targets = [(_node(host, port), _direct(settings, host, port)) for host, port in addresses]
    return targets, skipped


def _cluster_nodes(client: Any) -> list[tuple[str, int]]:
    """host, port of every healthy node in CLUSTER NODES (redis-py parses it to a dict)."""
    reply = client.execute_command("CLUSTER NODES", target_nodes=client.get_default_node())
    nodes = []
    for address, node in dict(reply).items():
        flags = set(str(node.get("flags", "")).split(","))
        if {"fail", "noaddr", "handshake"} & flags:
            continue
        host, _, port = str(address).split("@", 1)[0].rpartition(":")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def _replicas(client: Any) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """The replicas up that the sentinels list for the service of ``client`` (a Sentinel
    URL's), and those they report down (node -> why: they cannot be reached, and must be told
    to the user, who applies again once they are back). Asked through the URL's own sentinels:
    with its TLS options, as it asks for the master. (A Sentinel made without them was refused
    by TLS sentinels, which redis-py takes for no replica: the user went to the master alone,
    and was missing after a failover.) As redis-py's ``discover_slaves``: the first sentinel
    that answers with a replica up says which are up; else the first that answers, none."""
    pool = client.connection_pool
    answered: list[dict[str, Any]] | None = None
    for sentinel in pool.sentinel_manager.sentinels:
        try:
            listed = list(sentinel.sentinel_slaves(pool.service_name))
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            continue
        if answered is None:
            answered = listed  # (should no sentinel see one up, the first says which are down)
        if any(not _down_flags(entry) for entry in listed):
            answered = listed
            break
    up: list[tuple[str, int]] = []
    skipped: dict[str, str] = {}
    for entry in answered or []:
        host, port = str(entry["ip"]), int(entry["port"])
        down = _down_flags(entry)
        if down:
            skipped[_node(host, port)] = f"the sentinels report it down ({', '.join(down)})"
        else:
            up.append((host, port))
    return up, skipped


def _down_flags(entry: Mapping[str, Any]) -> list[str]:
    """The flags for which redis-py's ``filter_slaves`` leaves a replica out."""
    return [flag for flag, key in (("s_down", "is_sdown"), ("o_down", "is_odown")) if entry[key]]


def _node(host: str, port: int) -> str:
    return f"{host}:{port}"


def _direct(settings: Settings, host: str, port: int) -> Settings:
    return settings.replace(kind="standalone", host=host, port=port, nodes=())


def _persist(client: Any) -> str:
    """ACL SAVE (aclfile), else CONFIG REWRITE (redis.conf), else say it is memory only."""
    try:
        client.execute_command("ACL", "SAVE")
    except redis.ResponseError:
        pass
    else:
        return "saved to the aclfile"
    try:
        client.execute_command("CONFIG", "REWRITE")
    except redis.ResponseError:
        return (
            "in memory only (the server has no aclfile or config file): "
            "add the line to its aclfile or redis.conf, or it is lost at restart"
        )
    return "saved to redis.conf (CONFIG REWRITE)"
