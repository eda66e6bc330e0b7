"""Operations on the server itself: liveness, time, what it is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .. import _durability
from .._errors import ConnectionFailed, PermissionDenied, SwarmError
from .._protocol import Call, Cmd, OpContext, Operation
from ._bus import text

__all__ = ["ServerInfo", "durability_plan", "ping", "server_info"]


def ping(ctx: OpContext) -> Operation[float]:
    """Round-trip time of one PING, in milliseconds."""
    start = time.perf_counter()
    yield Cmd("PING")
    return (time.perf_counter() - start) * 1000


@dataclass(frozen=True)
class ServerInfo:
    """What ``swarm doctor`` shows. ``None``: the user may not read it (a worker may not run
    INFO, which lists every swarm's key counts, and ``info_readable`` is then False; nobody
    but an admin may run CONFIG GET), or the server does not say. ``version`` is then HELLO's;
    "?" on a cluster, where the client routes a command by its keys and HELLO has none
    (``swarm doctor`` asks each node on a connection of its own)."""

    version: str
    mode: str
    executable: str | None
    aof_enabled: bool | None
    appendfsync: str | None
    used_memory: int | None
    maxmemory: int | None
    server_time_ms: int
    # maxmemory-policy (of the node whose policy risks most, on a cluster)
    maxmemory_policy: str | None = None
    info_readable: bool = True  # False: INFO is refused to this user (HELLO said the rest)

    @property
    def eviction_risk(self) -> str | None:
        """What Redis may do to the swarm's records when its memory is full, and what to
        change; None when it never drops one (noeviction, or a policy that only evicts keys
        with a time to live: the swarm's records have none)."""
        policy = self.maxmemory_policy
        if policy is None or not policy.startswith("allkeys-"):
            return None
        if not self.maxmemory:
            return (
                f"maxmemory-policy is {policy}: harmless while maxmemory is 0, but once a "
                "limit is set Redis drops any key at it, the swarm's tasks, leases and "
                "findings included; set maxmemory-policy noeviction"
            )
        return (
            f"maxmemory-policy is {policy}: when Redis reaches maxmemory it drops any key, "
            "the swarm's tasks, leases and findings included, without a word; set "
            "maxmemory-policy noeviction (writes are then refused with an error instead) "
            "or give the swarm a Redis of its own"
        )


def server_info(ctx: OpContext) -> Operation[ServerInfo]:
    """What the server is and how it keeps data (for ``swarm doctor``)."""
    try:
        reply: Any = yield Cmd("INFO")
    except PermissionDenied:  # HELLO still says the version and mode
        if ctx.settings.kind == "cluster":  # (HELLO has no key to route it by: version "?")
            hello: dict[str, Any] = {"mode": "cluster"}
        else:
            hello = _pairs((yield Cmd("HELLO")))
        server_time = yield Call("ping", (), (0,))
        return ServerInfo(
            version=str(hello.get("version", "?")),
            mode=str(hello.get("mode", "standalone")),
            executable=None,
            aof_enabled=None,
            appendfsync=None,
            used_memory=None,
            maxmemory=None,
            server_time_ms=int(server_time),
            info_readable=False,
        )
    nodes = _per_node(reply)
    info = nodes[0] if nodes else {}
    server_time = yield Call("ping", (), (0,))
    fsync: str | None = None
    try:
        # "CONFIG GET" as one name: that is how redis-py routes it on a cluster too.
        fsync = _config_value((yield Cmd("CONFIG GET", "appendfsync")))
    except PermissionDenied:  # CONFIG is refused to non-admin ACL users: it is optional
        fsync = None
    return ServerInfo(
        version=str(info.get("redis_version", "?")),
        mode=str(info.get("redis_mode", "standalone")),
        executable=info.get("executable"),
        aof_enabled=all(int(node.get("aof_enabled", 0)) for node in nodes),
        appendfsync=fsync,
        used_memory=sum(int(node.get("used_memory", 0)) for node in nodes),
        maxmemory=sum(int(node.get("maxmemory", 0)) for node in nodes),
        server_time_ms=int(server_time),
        maxmemory_policy=_riskiest_policy(nodes),
    )


def _riskiest_policy(nodes: list[dict[str, Any]]) -> str | None:
    """The maxmemory-policy of the nodes: the first that evicts any key, else the first."""
    policies = [str(node["maxmemory_policy"]) for node in nodes if "maxmemory_policy" in node]
    risky = [p for p in policies if p.startswith("allkeys-")]
    if risky:
        return risky[0]
    return policies[0] if policies else None


def _pairs(reply: Any) -> dict[str, Any]:
    """HELLO's reply (a map, or a flat list in RESP2) with str keys and values."""
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    if not isinstance(reply, dict):
        return {}
    return {text(k): text(v) if isinstance(v, bytes) else v for k, v in reply.items()}


def _per_node(reply: Any) -> list[dict[str, Any]]:
    """INFO of one server, or of every node of a cluster ({"host:port": {...}}): the nodes."""
    if not isinstance(reply, dict):
        return []
    if reply and all(isinstance(value, dict) for value in reply.values()):
        return list(reply.values())
    return [reply]


def _config_value(reply: Any) -> str | None:
    if isinstance(reply, dict):
        value = next(iter(reply.values()), None)
        if isinstance(value, dict):  # one reply per cluster node
            return _config_value(value)
    elif isinstance(reply, list) and len(reply) >= 2:
        value = reply[1]
    else:
        return None
    return value.decode() if isinstance(value, bytes) else value


def durability_plan(ctx: OpContext) -> Operation[_durability.Plan]:
    """How writes are made durable under ``durability="strict"`` on this server (see
    ``_durability``); raises ConfigError when they cannot be."""
    where = ctx.settings.url
    # (a cluster's plan is probed master by master by its shell: see _strict_cluster)
    try:
        info: dict[str, Any] = yield Cmd("INFO")
    except PermissionDenied:  # a worker (INFO lists every swarm's keys): ask around it
        info = yield from _probe()
    fsync: str | None = None
    try:
        fsync = _config_value((yield Cmd("CONFIG", "GET", "appendfsync")))
    except ConnectionFailed:
        raise
    except SwarmError:  # refused to this user, or renamed by a managed service
        fsync = None
    return _durability.choose(info, fsync, where)


def _probe() -> Operation[dict[str, Any]]:
    """What ``_durability.choose`` reads from INFO, for a user that may not run it: the
    version (HELLO), whether AOF is on (WAITAOF refuses to wait for a local fsync without it;
    Redis >= 7.2), and the replicas (WAIT 0 answers at once with how many acknowledge)."""
    version = str(_pairs((yield Cmd("HELLO"))).get("version", "0.0"))
    aof: int | None = None  # before 7.2 nothing but INFO tells
    if tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) >= (7, 2):
        try:
            yield Cmd("WAITAOF", 1, 0, 1)
            aof = 1
        except ConnectionFailed:
            raise
        except SwarmError:  # "WAITAOF cannot be used when ... appendonly is disabled"
            aof = 0
    replicas = yield Cmd("WAIT", 0, 1)
    return {"redis_version": version, "aof_enabled": aof, "connected_slaves": int(replicas)}
