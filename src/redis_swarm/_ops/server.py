"""Operations on the server itself: liveness, time, what it is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .. import _durability
from .._config import Settings
from .._errors import ConnectionFailed, PermissionDenied, SwarmError
from .._keys import swarm_key_patterns
from .._net import is_loopback
from .._protocol import Call, Cmd, OpContext, Operation
from .._replies import reply_fields

__all__ = ["MemoryFill", "ServerInfo", "durability_plan", "ping", "server_info"]

# The share of maxmemory above which ``swarm doctor`` warns that writes will soon be refused.
NEAR_FULL = 0.9


@dataclass(frozen=True)
class MemoryFill:
    """How full the fullest node with a ``maxmemory`` is (on one server: the server). Redis
    refuses a write when ``counted`` is above ``maxmemory`` and it cannot evict a key to make
    room: under ``noeviction``, or ``volatile-*`` with no key that has a time to live."""

    counted: int  # used_memory less what Redis does not count (replication and AOF buffers)
    maxmemory: int
    policy: str
    can_evict: bool  # a key the policy may drop is stored (allkeys-*, or volatile-* and a TTL)

    @property
    def refuses_writes(self) -> bool:
        return self.counted > self.maxmemory and not self.can_evict

    @property
    def share(self) -> float:
        return self.counted / self.maxmemory


def _memory_remedy() -> str:
    """What frees a full server, the order it works in (``swarm gc`` writes: it needs room)."""
    old = " and ".join(swarm_key_patterns("NAME"))
    return (
        "raise the limit (an admin: CONFIG SET maxmemory BYTES, and maxmemory in redis.conf "
        f"to keep it), or delete the keys of swarms no longer used ({old}); then 'swarm gc' "
        "frees the context chunks no kept version uses"
    )


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
    # the fullest node with a maxmemory (None: no limit set, or INFO not visible)
    memory_fill: MemoryFill | None = None
    # How others reach a server that let this URL in with no user and no password (its
    # default user is 'on nopass': so it lets anyone in): over the network, as the URL does,
    # or on the addresses it listens on beyond loopback. None: the URL has credentials, the
    # server is on this machine only (embedded, a unix socket, loopback), or it does not say.
    open_to: str | None = None

    @property
    def open_access_warning(self) -> str | None:
        """That anyone who reaches the server gets in without a password, and what to do;
        None when that is not known to be so (``open_to``)."""
        if self.open_to is None:
            return None
        return (
            f"the server lets anyone in without a password: this URL names no user and it let "
            f"it in (its default user is 'on nopass'), and {self.open_to}; make a user per role "
            "with 'swarm acl --apply' (an admin first), put them in the URLs, then turn the "
            "default user off (ACL SETUSER default off resetpass, then ACL SAVE): "
            "docs/security.md, 'Users per role'"
        )

    @property
    def memory_refusal(self) -> str | None:
        """Why the server refuses every write now for memory, and what to do; None when it
        does not (as far as INFO tells)."""
        fill = self.memory_fill
        if fill is None or not fill.refuses_writes:
            return None
        return (
            f"Redis refuses every write now: its memory in use ({fill.counted} bytes) is above "
            f"maxmemory ({fill.maxmemory} bytes) and maxmemory-policy {fill.policy} frees "
            f"none of it; {_memory_remedy()}"
        )

    @property
    def memory_warning(self) -> str | None:
        """That the server is close to refusing writes for memory, and what to do; None when
        it is not (or refuses them already: ``memory_refusal``, or evicts any key to make room:
        ``eviction_risk``)."""
        fill = self.memory_fill
        if fill is None or fill.refuses_writes or fill.policy.startswith("allkeys-"):
            return None
        if fill.share < NEAR_FULL:
            return None
        when = " once no key with a time to live is left" if fill.can_evict else ""
        return (
            f"Redis uses {fill.share:.0%} of its maxmemory ({fill.counted} of {fill.maxmemory} "
            f"bytes; maxmemory-policy {fill.policy}): above it, it refuses writes{when}; "
            f"{_memory_remedy()}"
        )

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
            hello: dict[str, str] = {"mode": "cluster"}
        else:
            hello = reply_fields((yield Cmd("HELLO")))
        server_time = yield Call("ping", (), (0,))
        return ServerInfo(
            version=hello.get("version", "?"),
            mode=hello.get("mode", "standalone"),
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
    open_to = yield from _open_to(ctx.settings, str(info.get("redis_version", "0")))
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
        memory_fill=_fullest(nodes),
        open_to=open_to,
    )


def _open_to(settings: Settings, version: str) -> Operation[str | None]:
    """``ServerInfo.open_to``: asked only when the URL has no credentials (the server let it
    in: anyone gets in). A server the URL reaches over the network lets in whoever else
    reaches it so; one it reaches on loopback (TLS or not), only when it listens beyond
    (CONFIG GET bind and protected-mode, when this user may read them)."""
    if settings.username is not None or settings.password is not None:
        return None
    if settings.kind in ("embedded", "unix"):
        return None
    hosts = [host for host, _ in settings.nodes] or [settings.host]
    if not all(is_loopback(host) for host in hosts):
        return f"this URL reaches it over the network ({', '.join(hosts)}): so can others there"
    try:
        bind = _config_value((yield Cmd("CONFIG GET", "bind"))) or ""
        protected = _config_value((yield Cmd("CONFIG GET", "protected-mode")))
    except ConnectionFailed:
        raise
    except SwarmError:  # a default user without CONFIG, or CONFIG renamed: it is unknown
        return None
    addresses = [address.lstrip("-") for address in bind.split()]
    wide = [address for address in addresses if not is_loopback(address)]
    if not addresses:  # no bind: every address
        wide = ["every address"]
    # Protected mode refuses clients off loopback to a default user without a password;
    # before Redis 7 it applies only while no bind address is set.
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    shielded = protected == "yes" and (major >= 7 or not addresses)
    if not wide or shielded:
        return None
    shown = bind or "''"
    return (
        f"it listens beyond this machine, on {', '.join(wide)} (bind {shown}, "
        f"protected-mode {protected})"
    )


def _fullest(nodes: list[dict[str, Any]]) -> MemoryFill | None:
    """The fill of the fullest master with a maxmemory (a replica takes no writes); one that
    refuses writes first (a fuller one may evict to make room)."""
    fills = [
        MemoryFill(
            counted=int(node.get("used_memory", 0)) - int(node.get("mem_not_counted_for_evict", 0)),
            maxmemory=int(node["maxmemory"]),
            policy=policy,
            can_evict=policy.startswith("allkeys-")
            or (policy.startswith("volatile-") and _expiring(node) > 0),
        )
        for node in nodes
        if int(node.get("maxmemory", 0)) > 0 and node.get("role", "master") == "master"
        for policy in [str(node.get("maxmemory_policy", "noeviction"))]
    ]
    return max(fills, key=lambda fill: (fill.refuses_writes, fill.share), default=None)


def _expiring(node: dict[str, Any]) -> int:
    """How many keys of the node have a time to live (INFO keyspace: db0:keys=..,expires=..)."""
    return sum(
        int(value.get("expires", 0))
        for key, value in node.items()
        if key.startswith("db") and isinstance(value, dict)
    )


def _riskiest_policy(nodes: list[dict[str, Any]]) -> str | None:
    """The maxmemory-policy of the nodes: the first that evicts any key, else the first."""
    policies = [str(node["maxmemory_policy"]) for node in nodes if "maxmemory_policy" in node]
    risky = [p for p in policies if p.startswith("allkeys-")]
    if risky:
        return risky[0]
    return policies[0] if policies else None


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
    version = reply_fields((yield Cmd("HELLO"))).get("version", "0.0")
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
