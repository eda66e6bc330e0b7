"""Operations on the server itself: liveness, time, what it is and how it keeps data (its
library: ``library``; its streams' health: ``_stream_health``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import _durability
from .._config import SENTINEL_DOCS, SENTINEL_URL, Settings, url_host
from .._errors import (
    ConfigError,
    ConnectionFailed,
    PermissionDenied,
    SwarmError,
)
from .._keys import swarm_key_patterns
from .._protocol import Cmd, OpContext, Operation
from .._replies import reply_fields
from ._stream_health import StreamCheck, check_streams
from .library import LibraryState, library_state

__all__ = [
    "MemoryFill",
    "ServerInfo",
    "durability_plan",
    "not_a_data_server",
    "ping",
    "read_only_replica",
    "replica_master",
    "sentinel_services",
    "server_info",
]

# The share of maxmemory above which ``swarm doctor`` warns that writes will soon be refused.
NEAR_FULL = 0.9
# Redis counts a write's own request against maxmemory before it takes it: the request is
# read whole into the client's query buffer (16 KB at a time), and a big argument is held
# twice at that moment (the argument, and a fresh buffer as large for the next one). Measured
# on Redis 7.0, from a client not yet connected: a post with 100 KB of data is refused with
# 160 KB left below maxmemory and taken with 250 KB, a small post refused with 30 KB left.
# The doctor reads INFO with its own connections open (some 40-90 KB, which a writer's
# connections would hold too): it fails when less is left than a write of WRITE_VOUCHED
# bytes (a 100 KB finding or task data) may need, saying such writes may be refused (a
# review measured 100 KB posts taken with 180-210 KB left), and that small ones are too
# below SMALL_WRITE_ROOM.
WRITE_VOUCHED = 100_000
SMALL_WRITE_ROOM = 32 * 1024
WRITE_ROOM = 2 * WRITE_VOUCHED + SMALL_WRITE_ROOM


@dataclass(frozen=True)
class MemoryFill:
    """How full the fullest node with a ``maxmemory`` is (on one server: the server). Redis
    refuses a write when ``counted``, the write's own request included, is above
    ``maxmemory`` and it cannot evict a key to make room: under ``noeviction``, or
    ``volatile-*`` with no key that has a time to live."""

    counted: int  # used_memory less what Redis does not count (replication and AOF buffers)
    maxmemory: int
    policy: str
    can_evict: bool  # a key the policy may drop is stored (allkeys-*, or volatile-* and a TTL)

    @property
    def left(self) -> int:
        """The bytes left below maxmemory (negative: above it)."""
        return self.maxmemory - self.counted

    @property
    def refuses_writes(self) -> bool:
        """Writes may be refused now: too little is left for a write of WRITE_VOUCHED bytes
        (``refuses_every_write``: small ones are too)."""
        return self.left < WRITE_ROOM and not self.can_evict

    @property
    def refuses_every_write(self) -> bool:
        return self.left < SMALL_WRITE_ROOM and not self.can_evict

    @property
    def share(self) -> float:
        return self.counted / self.maxmemory


def _refusal(fill: MemoryFill) -> tuple[str, str]:
    """What Redis does with writes while ``fill`` refuses them, as the warning says it and as
    the ``memory`` row does: every one above maxmemory, small ones too below
    ``SMALL_WRITE_ROOM``, else a big one may be refused."""
    if fill.counted > fill.maxmemory:
        return "refuses every write now", "refusing every write now"
    if fill.refuses_every_write:
        return "refuses writes now, small ones too", "refusing writes now, small ones too"
    return "may refuse writes now", "may refuse writes now"


def _memory_remedy() -> str:
    """What frees a full server, the order it works in (``swarm gc`` writes: it needs room)."""
    old = " and ".join(swarm_key_patterns("NAME"))
    return (
        "raise the limit (an admin: CONFIG SET maxmemory BYTES, and maxmemory in redis.conf "
        f"to keep it), or delete the keys of swarms no longer used ({old}); then 'swarm gc' "
        "frees the context chunks no kept version uses"
    )


def read_only_replica(where: str, master: str | None = None) -> str:
    """That the URL ``where`` names a read-only replica, which refuses every write, and where
    the master is (``master``: its address as the replica sees it, when known): said by
    ``swarm doctor``, by ``swarm up`` and by a write the replica refused."""
    at = (
        f" ({master}, as the replica sees it)"
        if master
        else " (INFO replication on the replica names it)"
    )
    return (
        f"Redis at {where} is a read-only replica: point the URL at the master{at}; behind "
        f"Sentinel, name the sentinels instead ({SENTINEL_URL}: it follows the master "
        f"through a failover; {SENTINEL_DOCS})"
    )


def not_a_data_server(where: str, services: list[str] | None = None) -> str:
    """That the URL ``where`` names a Redis Sentinel, which holds no data and answers none of
    the swarm's commands, and the URL that reaches the master it watches (``services``: the
    names it monitors, when known)."""
    try:
        settings = Settings.from_url(where)
        address = f"{url_host(settings.host)}:{settings.port}"
        tls = "s" if settings.ssl else ""
    except SwarmError:
        address, tls = "HOST:PORT", ""
    named = ", ".join(repr(name) for name in services or [])
    monitors = f" (it monitors {named})" if named else " (SENTINEL MASTERS on it lists the names)"
    return (
        f"Redis at {where} is a Redis Sentinel, not a data server: it holds no data and "
        f"answers none of the swarm's commands; use a redis{tls}+sentinel://{address}/SERVICE "
        f"URL, SERVICE the name of the master it monitors{monitors}, with the other "
        f"sentinels' addresses after a comma ({SENTINEL_DOCS})"
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
    # the swarm's function library on the server, against this install's (None: not read)
    library: LibraryState | None = None
    # the swarm's streams: the event log, the broadcasts, inboxes (None: not read)
    streams: StreamCheck | None = None
    # The URL names a read-only replica (INFO replication's role, or HELLO's): the
    # ``read_only_replica`` words, naming its master when INFO is visible. None: a master,
    # or behind a Sentinel or Cluster URL (the client finds the masters itself).
    replica_warning: str | None = None
    replica_of: str | None = None  # its master, as the replica sees it (None: not visible)
    # CONFIG GET save: its RDB snapshot rules ('': none; None: this user may not read them)
    save: str | None = None

    @property
    def replica_row(self) -> str | None:
        """The doctor's ``role`` row of a replica (None: not one)."""
        if self.replica_warning is None:
            return None
        master = self.replica_of or "not visible to this user"
        return f"read-only replica of {master}: every write is refused (see the warnings)"

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
    def persistence_warning(self) -> str | None:
        """That a restart of the server loses the whole swarm (no AOF and no RDB snapshot:
        appendonly no, save ''), and what to do; None when it keeps the swarm (AOF; RDB
        snapshots alone lose the writes since the last one: the persistence row says so), or
        that is not known (INFO or CONFIG GET refused to this user)."""
        if self.aof_enabled is not False or self.save != "":
            return None
        return (
            "the server keeps the swarm in memory only (appendonly no, save ''): a restart or "
            "a crash loses every task, lease, finding and message; as an admin, turn AOF on: "
            "redis-cli CONFIG SET appendonly yes, then CONFIG REWRITE (or appendonly yes in its "
            "redis.conf), as the embedded server runs: docs/deployment.md, 'A LAN'"
        )

    @property
    def memory_refusal(self) -> str | None:
        """Why the server refuses writes now for memory, and what to do; None when it does
        not (as far as INFO tells)."""
        fill = self.memory_fill
        if fill is None or not fill.refuses_writes:
            return None
        said = f"maxmemory-policy {fill.policy} frees none of it"
        if fill.counted > fill.maxmemory:
            where = (
                f"its memory in use ({fill.counted} bytes) is above maxmemory "
                f"({fill.maxmemory} bytes) and {said}"
            )
        else:
            where = (
                f"only {fill.left} bytes are left below maxmemory ({fill.counted} of "
                f"{fill.maxmemory} bytes in use; {said}), and Redis counts a write's own "
                "request against it before taking it (read whole, a big argument held "
                f"twice): a write of {WRITE_VOUCHED // 1000} KB (a finding, a task's data) "
                f"may need up to about {WRITE_ROOM // 1000} KB, and with under "
                f"{SMALL_WRITE_ROOM // 1024} KB left small writes are refused too"
            )
        return f"Redis {_refusal(fill)[0]}: {where}; {_memory_remedy()}"

    @property
    def memory_row(self) -> str | None:
        """The doctor's ``memory`` row while Redis refuses writes for memory, or is close
        to (None otherwise: the byte rows say enough)."""
        fill = self.memory_fill
        if fill is None:
            return None
        if fill.refuses_writes:
            room = (
                f"{-fill.left:,} bytes over maxmemory"
                if fill.left < 0
                else f"{fill.left:,} bytes left below maxmemory"
            )
            return f"{_refusal(fill)[1]}: {room} (see the warnings)"
        if self.memory_warning is not None:
            return f"{fill.share:.0%} of maxmemory: close to refusing writes (see the warnings)"
        return None

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
    """What the server is and how it keeps data (for ``swarm doctor``). It reads and never
    loads: no script call here may load the library (an admin's would replace another
    version's, and stop every machine that runs it: docs/deployment.md, 'Upgrading a
    fleet'), so the time is TIME's and the library is listed or probed (``library_state``)."""
    held = yield from library_state(ctx)
    try:
        reply: Any = yield Cmd("INFO")
    except PermissionDenied:  # HELLO still says the version and mode
        if ctx.settings.kind == "cluster":  # (HELLO has no key to route it by: version "?")
            hello: dict[str, str] = {"mode": "cluster"}
        else:
            hello = reply_fields((yield Cmd("HELLO")))
        if hello.get("mode") == "sentinel":
            raise ConfigError(not_a_data_server(ctx.settings.url)) from None
        now = yield from _server_time(None)
        return ServerInfo(
            version=hello.get("version", "?"),
            mode=hello.get("mode", "standalone"),
            executable=None,
            aof_enabled=None,
            appendfsync=None,
            used_memory=None,
            maxmemory=None,
            server_time_ms=now,
            info_readable=False,
            library=held,
            streams=(yield from check_streams(ctx, now)),
            replica_warning=_replica_warning(ctx.settings, hello.get("role"), None),
        )
    nodes = _per_node(reply)
    info = nodes[0] if nodes else {}
    if info.get("redis_mode") == "sentinel":
        raise ConfigError(not_a_data_server(ctx.settings.url, sentinel_services(info)))
    master = replica_master(info)
    server_time = yield from _server_time(info)
    fsync: str | None = None
    save: str | None = None
    try:
        # "CONFIG GET" as one name: that is how redis-py routes it on a cluster too.
        fsync = _config_value((yield Cmd("CONFIG GET", "appendfsync")))
        save = _config_value((yield Cmd("CONFIG GET", "save")))
    except PermissionDenied:  # CONFIG is refused to non-admin ACL users: it is optional
        fsync = save = None
    open_to = yield from _open_to(ctx.settings, str(info.get("redis_version", "0")))
    return ServerInfo(
        version=str(info.get("redis_version", "?")),
        mode=str(info.get("redis_mode", "standalone")),
        executable=info.get("executable"),
        aof_enabled=all(int(node.get("aof_enabled", 0)) for node in nodes),
        appendfsync=fsync,
        used_memory=sum(int(node.get("used_memory", 0)) for node in nodes),
        maxmemory=sum(int(node.get("maxmemory", 0)) for node in nodes),
        server_time_ms=server_time,
        maxmemory_policy=_riskiest_policy(nodes),
        memory_fill=_fullest(nodes),
        open_to=open_to,
        library=held,
        streams=(yield from check_streams(ctx, server_time)),
        replica_warning=_replica_warning(ctx.settings, info.get("role"), master),
        replica_of=master,
        save=save,
    )


def _replica_warning(settings: Settings, role: Any, master: str | None) -> str | None:
    """``ServerInfo.replica_warning``: the URL names a replica (``role``: INFO's "slave",
    HELLO's "replica"), not behind a Sentinel or Cluster URL."""
    if settings.kind in ("cluster", "sentinel") or str(role) not in ("slave", "replica"):
        return None
    return read_only_replica(settings.url, master)


def replica_master(info: Mapping[str, Any]) -> str | None:
    """The master a replica's INFO replication names (None: a master, or not said)."""
    host, port = info.get("master_host"), info.get("master_port")
    if info.get("role") != "slave" or host is None or port is None:
        return None
    return f"{url_host(str(host))}:{port}"


def sentinel_services(info: Mapping[str, Any]) -> list[str]:
    """The names of the masters a sentinel's INFO lists (master0:name=...,status=...)."""
    return [
        str(value["name"])
        for key, value in info.items()
        if key.startswith("master") and isinstance(value, dict) and "name" in value
    ]


def _server_time(info: dict[str, Any] | None) -> Operation[int]:
    """The server's clock, in milliseconds: TIME. Every role 'swarm acl' makes may run it (the
    worker rows of agents, status and sweep read it); a user made by hand without +time
    reads it from INFO's server_time_usec (``info``: the server's INFO, when this user may
    read it), else TIME's refusal is said (it names the roles that may). Not the ping
    script: a script's redis.call('TIME') is checked against the same ACL (refused alike, on
    Redis 6.2 and 7.0), and on 6.2 a script not cached would answer NOSCRIPT."""
    try:
        seconds, micros = yield Cmd("TIME")
    except PermissionDenied:
        said = (info or {}).get("server_time_usec")
        if said is None:
            raise
        return int(said) // 1000
    return int(seconds) * 1000 + int(micros) // 1000


def _open_to(settings: Settings, version: str) -> Operation[str | None]:
    """``ServerInfo.open_to``: asked only when the URL has no credentials (the server let it
    in: anyone gets in). A server the URL reaches over the network lets in whoever else
    reaches it so; one it reaches on loopback (TLS or not), only when it listens beyond
    (CONFIG GET bind and protected-mode, when this user may read them)."""
    if settings.username is not None or settings.password is not None:
        return None
    if settings.kind in ("embedded", "unix"):
        return None
    from .._net import is_loopback  # (here: server_info's only; a hook never asks it)

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
    if "connected_slaves" in info:
        return _durability.choose(info, fsync, where)
    # Probed without INFO: the replicas are asked only when the AOF cannot do (the probe
    # waits out its timeout on a server without a replica).
    try:
        return _durability.choose({**info, "connected_slaves": 0}, fsync, where)
    except ConfigError:
        replicas = yield Cmd(*_durability.REPLICA_PROBE)
    return _durability.choose({**info, "connected_slaves": int(replicas)}, fsync, where)


def _probe() -> Operation[dict[str, Any]]:
    """What ``_durability.choose`` reads from INFO but the replicas (``durability_plan`` asks
    them when needed), for a user that may not run it: the version (HELLO), and whether AOF
    is on (WAITAOF refuses to wait for a local fsync without it; Redis >= 7.2)."""
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
    return {"redis_version": version, "aof_enabled": aof}
