"""``durability="strict"``: a write returns only once it is durable.

How depends on the server, probed once per handle (``_ops.server.durability_plan``):

- AOF on with ``appendfsync always``: Redis fsyncs every write before it replies, so nothing
  more is needed (the embedded server runs this way under strict).
- AOF on, Redis >= 7.2: each write is followed, in the same round trip and on the same
  connection, by ``WAITAOF 1 0 T``, which returns once the write is fsynced to the local AOF.
- Replicas connected (and no local AOF to wait for): ``WAIT 1 T``, which returns once a
  replica has the write.
- A Redis Cluster: ``WAIT 1 T`` after the writes sent to each master, on the connection they
  went down (see ``_strict_cluster``); every master serving slots must have a replica.
- Otherwise strict cannot be honoured and the first write raises ConfigError saying how to
  fix the server (or to use ``durability="normal"``). When the server refuses ``CONFIG GET``
  (a managed service, an ACL user without it) but reports AOF on, the operator is trusted to
  have set ``appendfsync always``.

Reads are sent as they are. A write whose durability is not confirmed within ``WAIT_MS``
raises ConnectionFailed, like a lost reply: the write was applied, its durability is unknown
(retrying is safe: operations are idempotent, a claim aside).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _scripts
from ._config import Settings
from ._errors import ConfigError, ConnectionFailed
from ._protocol import WAKE_WAIT, Batch, Call, Cmd, Request, items_of

__all__ = [
    "ADMIN_LOGIN",
    "REPAIR_BY",
    "REPLICA_PROBE",
    "WAIT_MS",
    "Plan",
    "Repair",
    "choose",
    "cluster_plan",
    "confirm",
    "is_write",
    "not_durable",
    "redis_cli",
    "redis_cli_cluster",
    "redis_cli_login",
    "redis_cli_master_lookup",
    "redis_cli_of",
    "redis_cli_server",
    "repair_cli",
    "waited_ok",
    "wrap",
]

WAIT_MS = 5_000

# How many replicas a master has, asked of it when its INFO is refused (a worker of `swarm
# acl` may not read it: INFO lists every swarm's keys). Not ``WAIT 0``: that answers at once
# with the replicas whose last ack (sent once a second) covers this connection's writes, or
# the master's offset when it has none, so 0 for up to a second after anyone's write. A WAIT
# that blocks makes the master ask its replicas for an ack (REPLCONF GETACK), which an online
# replica answers in a round trip; it waits the whole WAIT_MS only where no replica would
# confirm a strict write within it either (the plan asks it only when nothing else works).
REPLICA_PROBE = ("WAIT", 1, WAIT_MS)

# Commands the operations send that never write (anything else is treated as a write); a
# subcommand sent as one name (as redis-py routes it on a cluster) is listed so.
_READ_COMMANDS = frozenset(
    {
        "CONFIG", "CONFIG GET", "EXISTS", "FUNCTION LIST", "GET", "HELLO", "HEXISTS", "HGET",
        "HGETALL", "HKEYS", "HLEN", "HMGET", "INFO", "LRANGE", "MGET", "PING", "SCAN", "SCARD",
        "SMEMBERS", "TIME", "XINFO", "XLEN", "XRANGE", "XREAD", "XREVRANGE", "ZCARD",
        "ZCOUNT", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZSCORE",
    }
)  # fmt: skip
# A claim's wait pops a wake token (BLPOP): losing one to a crash costs a waiter one more
# check, never data, so it is not worth a replica's round trip. The waits themselves are
# sent alone when the plan is probed without INFO (a worker user may not read it).
_NO_DURABILITY_NEEDED = frozenset({WAKE_WAIT, "WAIT", "WAITAOF"})


def _writes(item: Cmd | Call) -> bool:
    if isinstance(item, Call):
        return item.script not in _scripts.READ_ONLY_SCRIPTS  # (read from lua/ at first use)
    name = str(item.args[0]).upper()
    return name not in _READ_COMMANDS and name not in _NO_DURABILITY_NEEDED


def is_write(request: Request) -> bool:
    """True when the request may change data (unknown commands count as writes)."""
    return any(_writes(item) for item in items_of(request))


@dataclass(frozen=True)
class Plan:
    """How a strict handle makes a write durable on its server."""

    command: tuple[Any, ...] | None  # sent after each write; None: the server fsyncs anyway
    how: str  # what it relies on, for messages and ``swarm doctor``


def choose(info: Mapping[str, Any], appendfsync: str | None, where: str) -> Plan:
    """The plan for a server described by its INFO and ``CONFIG GET appendfsync`` (None
    when CONFIG is refused); raises ConfigError when strict cannot be honoured."""
    version_text = str(info.get("redis_version", "0.0"))
    try:
        version = tuple(int(part) for part in version_text.split(".")[:2])
    except ValueError:
        version = (0, 0)
    # None: the user may not read INFO and the server (< 7.2) has no other way to tell.
    aof_reply = info.get("aof_enabled", 0)
    aof = bool(int(aof_reply)) if aof_reply is not None else False
    replicas = int(info.get("connected_slaves", 0))
    if aof and appendfsync == "always":
        return Plan(None, "appendfsync always: the server fsyncs every write before replying")
    if aof and version >= (7, 2) and appendfsync != "no":
        return Plan(("WAITAOF", 1, 0, WAIT_MS), "WAITAOF: each write waits for the AOF fsync")
    if replicas > 0:
        return Plan(REPLICA_PROBE, "WAIT: each write waits for a replica to have it")
    if aof and appendfsync is None:
        return Plan(None, "appendonly yes (appendfsync unknown: CONFIG GET is refused)")
    if aof_reply is None:
        raise ConfigError(
            f"durability='strict' cannot be honoured at {where}: Redis {version_text} does not "
            "tell a user without INFO whether appendonly is on, and it has no connected "
            "replica. Allow the user +info (a worker of `swarm acl` is not: INFO lists every "
            "swarm's keys), add a replica (WAIT), or use Redis >= 7.2 (WAITAOF); else use "
            "durability='normal'"
        )
    if where.startswith("embedded:"):
        raise ConfigError(_embedded_not_strict(where, version_text, appendfsync))
    raise ConfigError(
        f"durability='strict' cannot be honoured by Redis {version_text} at {where}: "
        f"appendonly is {'yes' if aof else 'no'}, appendfsync is {appendfsync or 'unknown'}, "
        f"{replicas} replica(s). {_ways_to_strict(version, aof, appendfsync)}, or add a "
        "replica (WAIT); else use durability='normal'"
    )


def _ways_to_strict(version: tuple[int, ...], aof: bool, appendfsync: str | None) -> str:
    """The ways a server with no replica is made to honour strict, each with only the steps
    it still misses (a user told to turn on what is on doubts the rest): fsync on every
    write, or WAITAOF (Redis >= 7.2 with AOF on and fsyncing)."""
    every_write = [] if aof else ["CONFIG SET appendonly yes"]
    if appendfsync != "always":
        every_write.append("CONFIG SET appendfsync always")
    if not aof:
        what = "Turn AOF on" + (" with fsync on every write" if appendfsync != "always" else "")
    else:
        what = "Make AOF fsync every write"
    ways = [f"{what} ({'; '.join(every_write)})"]
    if version >= (7, 2):
        waitaof = [] if aof else ["CONFIG SET appendonly yes"]
        if appendfsync == "no":
            waitaof.append("CONFIG SET appendfsync everysec")
        if not aof:
            verb = "turn AOF on" + (" with fsync once a second" if waitaof[1:] else " alone")
        else:
            verb = "let AOF fsync once a second"
        if waitaof != every_write:  # (AOF off, fsync always: one step is both ways)
            ways.append(f"{verb} ({'; '.join(waitaof)}: WAITAOF then waits for each write's fsync)")
    elif appendfsync != "always":  # (else AOF on alone is the one step: no upgrade needed)
        needs = [] if aof else ["appendonly yes"]
        if appendfsync == "no":
            needs.append("appendfsync everysec")
        kept = f" with {' and '.join(needs)}" if needs else ", which waits for AOF as it is"
        ways.append(f"use Redis >= 7.2{kept} (WAITAOF)")
    return ", or ".join(ways)


def _embedded_not_strict(where: str, version_text: str, appendfsync: str | None) -> str:
    """Why an embedded server started without strict cannot honour it, and what works: a
    restart with the strict URL (it then runs with ``appendfsync always``), or CONFIG SET."""
    from ._embedded import EmbeddedServer, swarm_command  # (here: only an embedded URL's)

    home = Settings.from_url(where).home
    strict_up = f'SWARM_URL="embedded?durability=strict" {swarm_command(home, "up")}'
    return (
        f"durability='strict' cannot be honoured by the embedded server under {home}: it "
        f"was started without strict, so it runs with appendfsync {appendfsync or 'unknown'} "
        f"(and Redis {version_text} has no WAITAOF). Restart it strict, its data kept: "
        f"'{swarm_command(home, 'down')}', then '{strict_up}' (or, while it runs: redis-cli "
        f"-s {shlex.quote(str(EmbeddedServer(home).socket_path))} CONFIG SET appendfsync "
        "always); else use durability='normal'"
    )


_WAIT_ON_EACH_MASTER = Plan(
    REPLICA_PROBE, "cluster: the writes sent to each master wait for one of its replicas"
)


def cluster_plan(masters: Mapping[str, Mapping[str, Any]], where: str) -> Plan:
    """The plan on a Redis Cluster, from each master's ``INFO replication`` by address (its
    ``connected_slaves`` from ``REPLICA_PROBE`` where INFO is refused): WAIT on each master
    written, which needs every master to have a connected replica (its
    own count: fresher than the cluster's gossip). Raises ConfigError naming those without."""
    alone = sorted(a for a, info in masters.items() if int(info.get("connected_slaves", 0)) < 1)
    if alone or not masters:
        # A master whose INFO was refused (its count only, no "role"): the user is a worker
        # (the one role `swarm acl` withholds INFO from), which may not add a node.
        read = all("role" in info for info in masters.values())
        tool = redis_cli_of(where, may_run=read, cluster_tool=True)
        raise ConfigError(
            f"durability='strict' on the cluster at {where} waits for a replica of each master "
            f"written, but {', '.join(alone) or 'no master'} has no connected replica: add one "
            f"as an admin user ({tool}--cluster add-node "
            "NEW EXISTING --cluster-slave), or use durability='normal'"
        )
    return _WAIT_ON_EACH_MASTER


# The login of a redis-cli command the URL's own user may not run (a worker's, for a repair
# only an admin, or a shard, may make): an admin user, its name to be filled in.
ADMIN_LOGIN = "--user ADMIN --askpass "


def redis_cli_login(settings: Settings, *, may_run: bool = True) -> str:
    """The redis-cli options that log in as the user of ``settings``, followed by a space: its
    name and ``--askpass`` (which asks for the password: never written into a command), as
    docs/deployment.md's own commands do; "" for a URL with neither user nor password (the
    default user, no password). A user name that may be a password (``shown_user``: ``***``)
    is written ``USER``, to be filled in. ``may_run`` False: the caller learnt that this user
    may not run the command the words go with (a refusal it met, or its role's rights in
    ``_acl``), so they log in as an admin user instead (``ADMIN_LOGIN``): never words that
    can only be refused. The one place that decides whom a redis-cli command logs in as."""
    if not may_run:
        return ADMIN_LOGIN
    if not settings.username:
        return "--askpass " if settings.password else ""
    user = settings.shown_user
    return f"--user {'USER' if user == '***' else shlex.quote(user)} --askpass "


def redis_cli_cluster(settings: Settings, *, may_run: bool = True) -> str:
    """The start of a ``redis-cli --cluster`` command (add-node, fix, call) on the cluster of
    ``settings``, followed by a space: ``redis-cli``, the URL's TLS options (``--tls`` and
    its files: a node of a rediss cluster takes no plain connection), and the login
    (``redis_cli_login``); the nodes are the command's own arguments."""
    return f"redis-cli {_tls_options(settings)}{redis_cli_login(settings, may_run=may_run)}"


def redis_cli_server(settings: Settings, master: str | None = None) -> str:
    """The redis-cli options that reach the data server of ``settings``, followed by a space:
    ``-u URL`` on a redis:// or rediss:// URL (URL: the server's, to be filled in); ``-s
    PATH`` on a unix socket or the embedded server (redis-cli's ``-u`` refuses a unix:// URL:
    "Invalid URI scheme"); on a cluster ``-c`` and the URL's first node (``-c``: redis-cli
    follows the redirection to the node that serves the key); behind Sentinel the master,
    ``master`` (``host:port``, as the sentinels name it; None: ``-h MASTER -p PORT``, to be
    filled in); on a cluster with ``master`` given, that node alone (no ``-c``: a command
    for it, such as its CONFIG SET). ``-n DB`` past database 0, and the URL's TLS and its
    files, where ``-u`` does not carry them."""
    if settings.kind == "standalone":
        return "-u URL " + _tls_options(settings)
    if settings.kind in ("unix", "embedded"):
        path = settings.path
        if settings.kind == "embedded":
            from ._embedded import EmbeddedServer  # (here: only an embedded URL's)

            path = str(EmbeddedServer(settings.home).socket_path)
        return f"-s {shlex.quote(path or '')} " + _db_option(settings)
    if settings.kind == "cluster" and master is None:
        host, port = settings.nodes[0] if settings.nodes else (settings.host, settings.port)
        return f"-c -h {shlex.quote(host)} -p {port} " + _tls_options(settings)
    host, _, said = (master or "MASTER:PORT").rpartition(":")
    return f"-h {shlex.quote(host)} -p {said} " + _db_option(settings) + _tls_options(settings)


def _db_option(settings: Settings) -> str:
    return f"-n {settings.db} " if settings.db else ""


def _tls_options(settings: Settings) -> str:
    """redis-cli's TLS options for the URL's: ``--tls`` and the files it names (redis-cli
    checks the server's certificate unless told ``--insecure``, as ssl_cert_reqs=none)."""
    if not settings.ssl:
        return ""
    words = ["--tls"]
    for option, path in (
        ("--cacert", settings.ssl_ca_certs),
        ("--cert", settings.ssl_certfile),
        ("--key", settings.ssl_keyfile),
    ):
        if path:
            words += [option, shlex.quote(path)]
    if settings.ssl_cert_reqs == "none":
        words.append("--insecure")
    return " ".join(words) + " "


def redis_cli_master_lookup(settings: Settings) -> str:
    """The redis-cli command that asks the first sentinel of a Sentinel URL's ``settings``
    where the master is now (``host`` then ``port``): the sentinels are reached as the
    client reaches them, over the URL's TLS and with no login (no sentinel password is
    supported: ``_config``)."""
    host, port = settings.nodes[0] if settings.nodes else (settings.host, settings.port)
    return (
        f"redis-cli -h {shlex.quote(host)} -p {port} {_tls_options(settings)}SENTINEL "
        f"GET-MASTER-ADDR-BY-NAME {shlex.quote(settings.service_name or '')}"
    )


def redis_cli(settings: Settings, *, may_run: bool = True, master: str | None = None) -> str:
    """The start of a redis-cli command run on the data server of ``settings``, followed by a
    space: ``redis-cli``, the options that reach it (``redis_cli_server``), and those that
    log in (``redis_cli_login``: as an admin user where ``may_run`` is False)."""
    login = redis_cli_login(settings, may_run=may_run)
    return f"redis-cli {redis_cli_server(settings, master)}{login}"


def redis_cli_of(
    url: str, *, may_run: bool = True, master: str | None = None, cluster_tool: bool = False
) -> str:
    """``redis_cli`` of a URL as errors show it (password masked: never written, as
    ``--askpass`` asks for it), or ``redis_cli_cluster`` of it where ``cluster_tool``; one
    that does not parse: ``redis-cli`` and the login alone (as an admin user where
    ``may_run`` is False)."""
    try:
        settings = Settings.from_url(url)
    except (ConfigError, ValueError):
        return f"redis-cli {ADMIN_LOGIN if not may_run else ''}"
    if cluster_tool:
        return redis_cli_cluster(settings, may_run=may_run)
    return redis_cli(settings, may_run=may_run, master=master)


# Who repairs a record written around redis-swarm (an HDEL of a damaged record, a DEL of a
# damaged stream) when the URL's own user may not, or its role is not known: an admin or a
# shard user (a worker may delete no record): the words; the command logs in as ADMIN_LOGIN, the
# name to be filled in for ADMIN (``repair_cli``).
REPAIR_BY = "as an admin or shard user (its name for ADMIN)"


@dataclass(frozen=True)
class Repair:
    """A repair's redis-cli command, as ``repair_cli`` starts it."""

    cli: str  # the start of the command: redis-cli, the connection, the login; then a space
    by: str  # who runs it, for the words before the command: REPAIR_BY, or "" (the URL's user)


def repair_cli(
    settings: Settings, *, reads_info: bool | None = None, master: str | None = None
) -> Repair:
    """The one rule of who runs a repair command (an HDEL of a damaged record, a DEL of a
    damaged stream) on the data server of ``settings`` (``master``: as ``redis_cli_server``'s):
    the URL's own user where it may read INFO (``reads_info`` True: no worker, the one
    role `swarm acl` withholds INFO from, so one that may repair); else, a worker
    (``reads_info`` False) or a user whose role is not known (None), an admin or shard user
    (``ADMIN_LOGIN``), said so (``REPAIR_BY``)."""
    server = f"redis-cli {redis_cli_server(settings, master)}"
    if reads_info:
        return Repair(server + redis_cli_login(settings), "")
    return Repair(server + ADMIN_LOGIN, REPAIR_BY)


def waited_ok(plan: Plan, waited: Any) -> bool:
    """True when the reply of the plan's wait command confirms durability."""
    if plan.command is not None and plan.command[0] == "WAITAOF":
        return int(waited[0]) >= 1 if isinstance(waited, list | tuple) and waited else False
    return int(waited or 0) >= 1


def not_durable(plan: Plan, where: str) -> ConnectionFailed:
    """The error of a write applied whose durability was not confirmed in time: what was not
    confirmed, that the write may or may not be kept, and why that happens, the likeliest
    first (a failover first: that is when a WAIT times out on a healthy setup)."""
    if plan.command is not None and plan.command[0] == "WAITAOF":
        what = "it was fsynced to the AOF (WAITAOF)"
        causes = (
            "a slow or overloaded disk (its log says 'Asynchronous AOF fsync is taking too "
            "long'), or a full one; check the disk, then retry"
        )
    else:
        what = "a replica has it (WAIT)"
        causes = (
            "a failover in progress (a promoted master has no replica until one attaches to "
            "it: retry in a few seconds); a replica lagging or down (on the master, INFO "
            "replication: connected_slaves and each replica's lag; restart or resync it); a "
            "slow disk on the replica or the master (a replica that cannot keep up); retry "
            "once it is fixed"
        )
    return ConnectionFailed(
        f"the write was applied, but Redis at {where} did not confirm within "
        f"{WAIT_MS / 1000:g} s that {what}, as durability='strict' requires: it may or may not "
        "be kept if that server fails now. Retrying is safe (a retried claim takes another task: "
        "the first comes back when its lease ends). Likely causes, in order: " + causes,
        sent=True,  # (it ran: a claim's lease stands, its secrets prove it)
    )


def wrap(request: Request, plan: Plan) -> Batch:
    """The request followed by the plan's wait command, in one round trip on one
    connection (WAIT and WAITAOF wait for the writes of their own connection)."""
    assert plan.command is not None
    return Batch((*items_of(request), Cmd(*plan.command)))


def confirm(request: Request, replies: list[Any], plan: Plan, where: str) -> Any:
    """The request's own reply (or replies, for a Batch), once the wait's reply confirms
    durability; raises ConnectionFailed when it does not (the outcome of the write is then
    as unknown to the caller as after a lost reply)."""
    *own, waited = replies
    if not waited_ok(plan, waited):
        raise not_durable(plan, where)
    return own if isinstance(request, Batch) else own[0]
