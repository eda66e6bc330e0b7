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
from ._translate import translate

__all__ = ["AppliedRole", "apply_role", "apply_user", "server_version"]

T = TypeVar("T")


@dataclass(frozen=True)
class AppliedRole:
    """What ``apply_role`` made: ``user``, its ACL SETUSER (``user.password`` is the one to give
    the agents, shown once when ``user.generated``); ``version``, the Redis version its rules
    are for; ``persisted``, how each server that now holds it keeps it (node -> how: the
    aclfile, redis.conf, or memory only), empty on a dry run."""

    user: AclUser
    version: Version
    persisted: Mapping[str, str] = field(default_factory=dict, hash=False)

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
    run ACL SETUSER, ``ValidationError`` for a bad role, name or password."""
    settings = target if isinstance(target, Settings) else target.settings
    if version is None:
        embedded = dry_run and settings.kind == "embedded"
        version = _binary_version() if embedded else server_version(settings)
    spec = acl_user(role, settings.swarm if swarm is None else swarm, user, password, version)
    if dry_run:
        return AppliedRole(spec, version)
    handle = None if isinstance(target, Settings) else target
    return AppliedRole(spec, version, _apply(settings, spec, handle))


def apply_user(settings: Settings, spec: AclUser) -> list[dict[str, str]]:
    """Run ``spec`` (an ``acl_user`` built already) as ``apply_role`` does, and return how
    each node persisted it (``AppliedRole.applied``)."""
    return _applied(_apply(settings, spec, None))


def server_version(settings: Settings) -> Version:
    """The oldest Redis version among the servers that must hold a user (INFO, else HELLO
    for a user that may not read INFO)."""
    return min(parse_version(text) for text in _on_every_node(settings, _version_text).values())


def _applied(persisted: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"node": node, "persisted": how} for node, how in persisted.items()]


def _binary_version() -> Version:
    """The version of the redis-server binary the embedded server runs (not started)."""

    return parse_version(find_redis_server().version)


def _apply(settings: Settings, spec: AclUser, handle: Swarm | None) -> dict[str, str]:
    """The ACL SETUSER on every node, persisted; then the library loaded through ``handle``
    (or a handle of its own)."""

    def setuser(client: Any) -> str:
        client.execute_command(*spec.command)
        return _persist(client)

    done = _on_every_node(settings, setuser)
    # The user runs the swarm's scripts as the functions of its library: load it (or replace
    # an older one) now, as 'swarm up' does, since a worker may not load it.
    if handle is not None:
        handle.load_functions()
    else:
        from ._client import Swarm

        with Swarm(settings) as opened:
            opened.load_functions()
    return done


def _on_every_node(settings: Settings, fn: Callable[[Any], T]) -> dict[str, T]:
    """``fn(client)`` on every server that must hold the user, by node name; redis-py errors
    arrive translated (one line saying what to do)."""

    done: dict[str, T] = {}
    try:
        for name, target in _targets(settings):
            client: Any = sync_client(target)
            try:
                done[name] = fn(client)
            finally:
                client.close()
    except SwarmError:
        raise
    except (redis.RedisError, OSError) as exc:
        raise translate(exc, settings.url) from None
    return done


def _version_text(client: Any) -> str:
    """INFO server's redis_version; HELLO's version for a user that may not read INFO."""
    try:
        return str(client.execute_command("INFO", "server")["redis_version"])
    except redis.exceptions.NoPermissionError:
        reply = client.execute_command("HELLO")
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    version = reply.get(b"version", reply.get("version", b""))
    return version.decode() if isinstance(version, bytes) else str(version)


def _targets(settings: Settings) -> list[tuple[str, Settings]]:
    """Every server that must hold the user (ACLs are per node), as direct settings."""
    if settings.kind not in ("cluster", "sentinel"):
        return [(settings.url, settings)]

    client: Any = sync_client(settings)
    try:
        if settings.kind == "cluster":
            # Every node the cluster knows, replicas included, as CLUSTER NODES lists them.
            addresses = _cluster_nodes(client)
        else:
            addresses = [client.connection_pool.get_master_address(), *_replicas(client)]
    finally:
        client.close()
    return [(f"{host}:{port}", _direct(settings, host, port)) for host, port in addresses]


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


def _replicas(client: Any) -> list[tuple[str, int]]:
    """The replicas (up) the sentinels list for the service of ``client`` (a Sentinel URL's),
    asked through its own sentinels: with the URL's TLS options, as it asks for the master.
    (A Sentinel made without them was refused by TLS sentinels, which redis-py takes for no
    replica: the user went to the master alone, and was missing after a failover.)"""
    pool = client.connection_pool
    found = pool.sentinel_manager.discover_slaves(pool.service_name)
    return [(str(host), int(port)) for host, port in found]


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
