"""``swarm up``, ``swarm down``, ``swarm doctor``: the server the swarm lives on.

On Sentinel and on a Cluster, ``swarm doctor`` also asks the deployment itself what shape it is
in (``_sentinel_state``, ``_cluster_state``): the sentinels named in the URL, or each node of
the cluster, on a connection of its own (as ``swarm acl --apply`` reaches every node), since
the swarm's client talks to the master (or routes by key) and cannot address them.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis
from rich.markup import escape
from rich.table import Table

from .._client import Swarm
from .._config import Settings
from .._connect import sync_client
from .._embedded import Binary, EmbeddedServer, find_redis_server, same_file
from .._errors import ConnectionFailed, PermissionDenied, SwarmError
from .._models import RECORD_KINDS, iso
from .._translate import translate
from ._app import EXIT_ERROR, App, json_option, main, pass_app

T = TypeVar("T")


def _embedded(app: App) -> EmbeddedServer:
    settings = app.settings
    return EmbeddedServer(settings.home, durability=settings.durability)


@main.command(short_help="Start the embedded server (idempotent) and print its URL.")
@json_option
@pass_app
def up(app: App) -> None:
    """Start the embedded server (idempotent), load the swarm's function library on it (run
    it as an admin user: workers may not load it), and print the URL other processes use."""
    settings = app.settings
    if settings.kind != "embedded":
        latency = app.swarm.ping()
        data = {"url": settings.url, "started": False, "ping_ms": round(latency, 3)}
        data["functions"] = app.swarm.load_functions()
        app.emit(data, lambda: click.echo(settings.url))
        return
    server = _embedded(app)
    was_running = server.is_running()
    server.ensure_running(say=None)  # "started" is this command's own output
    data = {
        "url": server.url,
        "started": not was_running,
        "pid": server.pid(),
        "home": str(server.home),
        # False: the server has no Functions (Redis 6.2): scripts run by EVALSHA
        "functions": app.swarm.load_functions(),
    }
    app.emit(data, lambda: click.echo(server.url))


@main.command(short_help="Stop the embedded server cleanly (its data is kept).")
@json_option
@pass_app
def down(app: App) -> None:
    """Stop the embedded server cleanly; its data is kept for the next start."""
    if app.settings.kind != "embedded":
        raise SwarmError(
            f"'swarm down' stops only the embedded server; {app.settings.url} is not one"
        )
    stopped = _embedded(app).stop()
    app.emit(
        {"stopped": stopped},
        lambda: click.echo("stopped" if stopped else "the embedded server was not running"),
    )


def _persistence(aof_enabled: bool | None, fsync: str | None) -> str:
    if aof_enabled is None:
        return f"unknown ({NOT_VISIBLE})"
    if not aof_enabled:
        return "none (no AOF)"
    return f"aof {fsync}" if fsync else FSYNC_UNKNOWN


def _choice(chosen: Binary, running: str | None) -> str:
    """Which redis-server the embedded default runs, and why (the running one may be older)."""
    text = f"{chosen.path} ({chosen.version}): {chosen.reason}"
    if running and not same_file(running, chosen.path):
        text += f"; the running server is {running}: 'swarm down' then 'swarm up' to switch"
    return text


def _binary(settings: Settings, reported: str | None) -> tuple[str | None, str | None]:
    """The server's binary, and a note when it is not the path Redis reports. Redis reports
    its working directory joined to the name it was started by: a server started as
    ``redis-server`` from PATH names a file in the folder it was started in, which does
    not exist. On this machine, that is said, with the redis-server PATH finds."""
    if not reported or not settings.is_local or os.path.exists(reported):
        return reported, None
    found = shutil.which(os.path.basename(reported))
    if found is None:
        return f"{reported} (as Redis reports it: no such file on this machine)", None
    return found, (
        f"Redis reports {reported}, which does not exist (its working directory and the "
        f"name it was started by): {found} is the first {os.path.basename(reported)} on PATH"
    )


# What doctor says where the user may not read something (INFO, CONFIG GET).
NOT_VISIBLE = "not visible to this user: it may not run INFO"
FSYNC_UNKNOWN = "aof, fsync policy unknown (this user may not run CONFIG GET)"


def _tls(settings: Settings) -> tuple[str, str | None]:
    """The TLS row, and a warning when the server is not verified."""
    if not settings.ssl:
        return "off", None
    if settings.ssl_cert_reqs == "none":
        return "on, certificate not verified (ssl_cert_reqs=none)", (
            "ssl_cert_reqs=none: the server's certificate and host name are not checked, so "
            "anyone in the middle can pretend to be the server (the traffic is still "
            "encrypted); use it only to diagnose, then drop it from the URL (and give "
            "ssl_ca_certs=CA.crt if the server's CA is a private one)"
        )
    if settings.ssl_cert_reqs == "optional":
        return "on, host name not checked (ssl_cert_reqs=optional)", (
            "ssl_cert_reqs=optional: the server's host name is not checked, so any server "
            "with a certificate from a trusted CA can pretend to be this one; drop it from "
            "the URL to verify the host name too"
        )
    return "on, certificate and host name verified", None


def _no_access(swarm: Swarm, settings: Settings) -> str | None:
    """Why this user cannot work on this swarm (None: it can), from a harmless read of the
    swarm's event log (every role reads it): a user made for another swarm gets NOPERM."""
    try:
        swarm.last_event_id()
    except PermissionDenied:
        user = settings.username or "default"
        return (
            f"the Redis user {user!r} may not read the keys of swarm {settings.swarm!r}, so "
            "every command on it fails (PermissionDenied): check --swarm / SWARM_NAME (a "
            "user made by 'swarm acl' works on the one swarm it was made for), or make a "
            f"user for this one: swarm acl --swarm {settings.swarm} --role ROLE --user NAME"
        )
    return None


def _corrupt(found: dict[str, Any]) -> str:
    if not found["checked"]:
        return f"not checked: {found['reason']}"
    named = [f"{kind} {record_id}" for kind in RECORD_KINDS for record_id in found[kind]]
    if not named:
        return "none"
    shown = ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")
    return (
        f"{len(named)}: {shown} (written around redis-swarm; listings skip them: rewrite "
        "or delete each from Redis)"
    )


def _not_checked(reason: str) -> dict[str, Any]:
    """``corrupt_records`` when it could not be read: the same keys, empty, and why."""
    return {**{kind: [] for kind in RECORD_KINDS}, "checked": False, "reason": reason}


def _shown(value: object, missing: str) -> str:
    """A row's value; None: ``missing`` says why (hidden from this user, not said by the
    server, or not read)."""
    return missing if value is None else str(value)


# --- Sentinel and Cluster: the deployment as it sees itself

CLUSTER_SLOTS = 16384
# The flags by which a sentinel says a server is down (or that it cannot reach it).
_DOWN = ("s_down", "o_down", "disconnected")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _map(reply: Any) -> dict[str, Any]:
    """A map reply (or RESP2's flat list) with str keys; values as they came."""
    if isinstance(reply, list | tuple):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    return {_text(k): v for k, v in reply.items()} if isinstance(reply, dict) else {}


def _fields(reply: Any) -> dict[str, str]:
    """A reply of fields (a map, RESP2's flat list, or INFO-style ``k:v`` lines) with str
    keys and values."""
    if isinstance(reply, bytes | str):
        lines = (line.partition(":") for line in _text(reply).splitlines())
        return {k.strip(): v.strip() for k, sep, v in lines if sep}
    return {k: _text(v) for k, v in _map(reply).items()}


def _number(value: str | None) -> int:
    return int(value) if value and value.lstrip("-").isdigit() else 0


def _address(client: Any) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host')}:{kwargs.get('port')}"


def _sentinel_view(sentinel: Any, service: str) -> dict[str, Any]:
    """What one sentinel says of ``service``: its master, the sentinels and replicas it knows,
    and whether a failover could be agreed now (SENTINEL CKQUORUM)."""
    master = _fields(sentinel.execute_command("SENTINEL", "MASTER", service))
    replicas = [_fields(r) for r in sentinel.execute_command("SENTINEL", "REPLICAS", service)]
    try:
        failover, failover_ok = (
            _text(sentinel.execute_command("SENTINEL", "CKQUORUM", service)),
            True,
        )
    except redis.ResponseError as exc:  # NOQUORUM, NOMAJORITY: the reason, in its words
        failover, failover_ok = str(exc), False
    up = [r for r in replicas if not any(flag in r.get("flags", "") for flag in _DOWN)]
    return {
        "master": f"{master.get('ip')}:{master.get('port')}",
        "flags": master.get("flags", ""),
        "quorum": _number(master.get("quorum")),
        "sentinels": 1 + _number(master.get("num-other-sentinels")),
        "replicas": len(replicas),
        "replicas_up": len(up),
        "failover": failover,
        "failover_ok": failover_ok,
    }


def _sentinel_state(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """The Sentinel deployment of the URL as its sentinels see it (the master they name, how
    many sentinels and replicas they know, whether they can agree a failover), and what is
    wrong with it (warnings: the swarm works now, but a failover may not)."""
    service = settings.service_name or ""
    warnings: list[str] = []
    views: dict[str, dict[str, Any]] = {}
    client: Any = sync_client(settings)
    try:
        for sentinel in client.connection_pool.sentinel_manager.sentinels:
            where = _address(sentinel)
            try:
                views[where] = _sentinel_view(sentinel, service)
            except redis.ResponseError as exc:  # "No such master with that name"
                warnings.append(
                    f"sentinel {where} does not watch {service!r} ({exc}): check the service "
                    "name in the URL, or make it watch the master (SENTINEL MONITOR)"
                )
            except (redis.RedisError, OSError) as exc:
                warnings.append(
                    f"sentinel {where} of the URL does not answer ({exc}): start it again, "
                    "or take it out of the URL"
                )
    finally:
        client.close()
    state: dict[str, Any] = {
        "service": service,
        "answering": len(views),
        "in_url": len(settings.nodes),
    }
    if not views:
        return state, warnings
    named = {view["master"] for view in views.values()}
    if len(named) > 1:
        told = ", ".join(f"{where} names {view['master']}" for where, view in views.items())
        warnings.append(
            f"the sentinels name different masters of {service!r} ({told}): a failover is "
            "under way, or they do not reach each other; run swarm doctor again in a few "
            "seconds, and if it lasts check that every sentinel reaches the others"
        )
    view = next(iter(views.values()))
    known = max(v["sentinels"] for v in views.values())
    state.update(
        master=view["master"],
        sentinels=known,
        quorum=view["quorum"],
        replicas=view["replicas"],
        replicas_up=view["replicas_up"],
        failover=view["failover"],
    )
    down = [flag for flag in view["flags"].split(",") if flag in _DOWN]
    if down:
        warnings.append(
            f"the sentinels see the master {view['master']} as down ({','.join(down)}): a "
            "failover should follow; if none does, see the warnings on the replicas and "
            "the quorum"
        )
    if view["replicas_up"] == 0:
        host, _, port = view["master"].rpartition(":")
        warnings.append(
            f"no replica of {service!r} is up ({view['replicas']} known to the sentinels): "
            "a failover has nowhere to go, and the swarm's data lives on one server; start "
            f"a replica (replicaof {host} {port}) and check that the sentinels list it "
            f"(SENTINEL REPLICAS {service})"
        )
    if known < view["quorum"]:
        warnings.append(
            f"{known} sentinel(s) watch {service!r} and its quorum is {view['quorum']}: they "
            "can never agree that the master failed; start more sentinels, or lower the "
            f"quorum (SENTINEL SET {service} quorum {known})"
        )
    elif not view["failover_ok"]:
        warnings.append(f"a failover of {service!r} could not be agreed now: {view['failover']}")
    elif known < 3:
        warnings.append(
            f"only {known} sentinel(s) watch {service!r}: with one of them lost, the rest "
            "may not make a majority, and no failover can happen; run at least 3, on "
            "separate machines"
        )
    return state, warnings


def _on_node(settings: Settings, host: str, port: int, ask: Callable[[Any], T]) -> T:
    """``ask(client)`` on one node of a cluster, on a connection of its own (one attempt: a
    node down must not hold the doctor through the cluster URL's retries)."""
    direct = settings.replace(kind="standalone", host=host, port=port, nodes=(), retries=0)
    client: Any = sync_client(direct)
    try:
        return ask(client)
    finally:
        client.close()


def _flat(bounds: Any) -> list[int]:
    """Slot bounds, flat: [start, end, start, end...] (redis-py may pair them)."""
    out: list[int] = []
    for item in bounds or []:
        out += [int(x) for x in item] if isinstance(item, list | tuple) else [int(item)]
    return out


class _Layout:
    """Who serves what, as one node of the cluster says: the slots each master serves, and
    every node (address -> role, health) with the master it belongs to."""

    def __init__(self) -> None:
        self.served: dict[str, int] = {}
        self.nodes: dict[str, tuple[str, str]] = {}
        self.replicas: dict[str, list[str]] = {}  # master -> its replicas

    def add(self, view: _Layout, where: str) -> None:
        """What node ``where`` says (``view``), added: the nodes and replicas this one did
        not know, and ``where``'s own role. A cluster learns its layout by gossip: a node
        may not know yet whose replica another is, but each knows its own master."""
        for node, role in view.nodes.items():
            if node == where or node not in self.nodes:
                self.nodes[node] = role
        for master, replicas in view.replicas.items():
            mine = self.replicas.setdefault(master, [])
            mine += [r for r in replicas if r not in mine]

    @classmethod
    def read(cls, client: Any, tls: bool) -> _Layout:
        """CLUSTER SHARDS (Redis 7, any role may run it); before, CLUSTER SLOTS, which
        lists only the replicas ready to serve reads, and no node's health."""
        try:
            shards = client.execute_command("CLUSTER", "SHARDS")
        except redis.ResponseError:  # Redis 6.2
            return cls._from_slots(client.execute_command("CLUSTER", "SLOTS"))
        layout = cls()
        for shard in shards:
            fields = _map(shard)
            bounds = _flat(fields.get("slots"))
            count = sum(
                end - start + 1 for start, end in zip(bounds[::2], bounds[1::2], strict=False)
            )
            nodes = [_map(node) for node in fields.get("nodes") or []]
            master = ""
            for node in sorted(nodes, key=lambda n: _text(n.get("role")) != "master"):
                host = _text(node.get("endpoint") or "?")
                host = _text(node.get("ip")) if host in ("", "?") else host
                port = node.get("tls-port") if tls and node.get("tls-port") else node.get("port")
                where, role = f"{host}:{_text(port)}", _text(node.get("role"))
                layout.nodes[where] = (role, _text(node.get("health")))
                if role == "master":
                    master = where
                    layout.replicas.setdefault(where, [])
                    if count:
                        layout.served[where] = layout.served.get(where, 0) + count
                elif master:
                    layout.replicas[master].append(where)
        return layout

    @classmethod
    def _from_slots(cls, slots: Any) -> _Layout:
        layout = cls()
        for entry in slots or []:
            start, end, *nodes = entry
            master, *replicas = (f"{_text(n[0])}:{n[1]}" for n in nodes)
            layout.served[master] = layout.served.get(master, 0) + int(end) - int(start) + 1
            layout.nodes[master] = ("master", "online")
            mine = layout.replicas.setdefault(master, [])
            for replica in replicas:
                layout.nodes[replica] = ("replica", "online")
                if replica not in mine:
                    mine.append(replica)
        return layout


def _cluster_node(client: Any, tls: bool) -> tuple[str, dict[str, str] | None, _Layout]:
    """One node: the version it runs (HELLO: every user may send it), its CLUSTER INFO
    (None: refused to this user, as to every role but an admin), and its layout."""
    version = _fields(client.execute_command("HELLO")).get("version", "?")
    try:
        info: dict[str, str] | None = _fields(client.execute_command("CLUSTER", "INFO"))
    except redis.exceptions.NoPermissionError:
        info = None
    return version, info, _Layout.read(client, tls)


def _cluster_layout(settings: Settings) -> _Layout:
    """The layout as the first node of the URL that answers says it (ConnectionFailed, or
    what the last said, when none does)."""
    error: BaseException | None = None
    for host, port in settings.nodes:
        try:
            return _on_node(settings, host, port, lambda c: _Layout.read(c, settings.ssl))
        except (redis.RedisError, OSError) as exc:
            error = exc
    raise translate(error or ConnectionError("no node in the URL"), settings.url)


def _cluster_state(settings: Settings) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """The cluster as its nodes see it (cluster_state, the slots assigned and ok, the masters
    and replicas), what is wrong with it (warnings), and the version each node runs."""
    layout = _cluster_layout(settings)
    warnings: list[str] = []
    versions: dict[str, str] = {}
    infos: dict[str, dict[str, str] | None] = {}
    for where in sorted(layout.nodes):
        host, _, port = where.rpartition(":")
        try:
            versions[where], infos[where], view = _on_node(
                settings, host, int(port), lambda c: _cluster_node(c, settings.ssl)
            )
            layout.add(view, where)
        except (redis.RedisError, OSError) as exc:
            warnings.append(
                f"cluster node {where} does not answer ({exc}): a replica of it takes its "
                "slots over if it has one; start it again"
            )
    replicas = [w for w, (role, _) in layout.nodes.items() if role != "master"]
    # Up: it answers, and is not failed. (The health other nodes give a replica lags: one
    # whose replication offset has not reached them by gossip yet is "loading" to them.)
    online = {w for w, (_, health) in layout.nodes.items() if health != "failed"}
    online &= set(versions)
    state: dict[str, Any] = {
        "state": None,
        "slots_assigned": sum(layout.served.values()),
        "slots_ok": None,
        "masters": len(layout.served),
        "replicas": len(replicas),
        "replicas_up": len(online.intersection(replicas)),
        "nodes": len(layout.nodes),
        "answering": len(versions),
    }
    readable = [info for info in infos.values() if info is not None]
    if readable:
        failing = [w for w, i in infos.items() if i is not None and i.get("cluster_state") != "ok"]
        first = readable[0]
        state.update(
            state="fail" if failing else "ok",
            slots_assigned=_number(first.get("cluster_slots_assigned")),
            slots_ok=_number(first.get("cluster_slots_ok")),
        )
        if failing:
            warnings.append(
                f"cluster_state is fail on {', '.join(failing)}: those nodes refuse every "
                "command (CLUSTERDOWN); CLUSTER INFO and CLUSTER NODES there say which slots "
                "or nodes failed"
            )
        bad = _number(first.get("cluster_slots_fail")) + _number(first.get("cluster_slots_pfail"))
        if bad:
            warnings.append(
                f"{bad} slot(s) are served by a node that is failing (cluster_slots_fail, "
                "_pfail): their keys are refused until its replica takes over or it is back"
            )
    elif infos:
        state["state"] = state["slots_ok"] = "not visible to this user: it may not run CLUSTER INFO"
    if state["slots_assigned"] < CLUSTER_SLOTS:
        warnings.append(
            f"only {state['slots_assigned']} of {CLUSTER_SLOTS} slots are assigned: the "
            "swarms whose keys hash to the others are refused; assign them "
            "(redis-cli --cluster fix HOST:PORT)"
        )
    for master in sorted(layout.served):
        if not online.intersection(layout.replicas.get(master, [])):
            known = len(layout.replicas.get(master, []))
            warnings.append(
                f"master {master} has no replica online ({known} known): if it fails, its "
                "slots (and the swarms on them) are down until it is back; add one "
                f"(redis-cli --cluster add-node NEW:PORT {master} --cluster-slave)"
            )
    if len(set(versions.values())) > 1:
        told = ", ".join(f"{v} on {w}" for w, v in sorted(versions.items()))
        warnings.append(
            f"the nodes run different Redis versions ({told}): finish the upgrade; until "
            "then a command of the newer version may fail on the older nodes"
        )
    return state, warnings, versions


def _topology_line(key: str, state: dict[str, Any]) -> str:
    """The sentinel or cluster row of the human report, in one line."""
    if key == "sentinel":
        if "master" not in state:
            return f"service {state['service']}: no sentinel of the URL answered"
        return (
            f"master {state['master']} (service {state['service']}); {state['sentinels']} "
            f"sentinel(s), quorum {state['quorum']}, {state['answering']} of "
            f"{state['in_url']} in the URL answering; {state['replicas']} replica(s), "
            f"{state['replicas_up']} up; failover: {state['failover']}"
        )
    shown = state["state"] or "unknown (no node answered)"
    slots_ok = state["slots_ok"]
    ok_part = f", {slots_ok} ok" if isinstance(slots_ok, int) else ""
    return (
        f"{shown}; {state['slots_assigned']} of {CLUSTER_SLOTS} slots assigned{ok_part}; "
        f"{state['masters']} master(s), {state['replicas']} replica(s), "
        f"{state['replicas_up']} up; "
        f"{state['answering']} of {state['nodes']} nodes answering"
    )


@main.command(short_help="Check the server, its settings and the swarm's records.")
@json_option
@pass_app
def doctor(app: App) -> None:
    """Check the server: binary, version, URL, persistence, memory, PING latency, and the
    swarm's records: how many are stored unreadable (listings skip them). On Sentinel, the
    master the sentinels name, how many sentinels and replicas they know, and whether they
    can agree a failover; on a Cluster, its state, slots, masters and replicas."""
    settings = app.settings
    if settings.kind != "cluster":
        _doctor(app, app.swarm, None)
        return
    # First, node by node: a cluster that is failing would hold every check below in the
    # retries of the cluster URL (they ride out a failover: over a minute), then fail it.
    cluster = _cluster_state(settings)
    if not _failing(cluster[0]):
        _doctor(app, app.swarm, cluster)
        return
    with Swarm(settings.replace(retries=FAILING_RETRIES)) as brief:
        _doctor(app, brief, cluster)


_Cluster = tuple[dict[str, Any], list[str], dict[str, str]]
# The retries of the checks on a failing cluster: what fails is said in seconds. (With none,
# redis-py gives up connecting at the first startup node that does not answer.)
FAILING_RETRIES = 2


def _failing(state: dict[str, Any]) -> bool:
    """A cluster that refuses some of its keys now: a node says cluster_state fail, slots
    are served by no node (unassigned) or by one failing (fewer ok than assigned), or a
    master that serves slots does not answer: the nodes answering, less the replicas up,
    are fewer than those masters. A replica down refuses no key, nor does a master without
    slots (one a failover replaced): they are warned of, not failed. (A master without
    slots that answers can hide one with slots that does not, until the nodes see it
    failing: its slots are then no longer ok.)"""
    slots_ok = state["slots_ok"]
    return bool(
        state["state"] == "fail"
        or state["slots_assigned"] < CLUSTER_SLOTS
        or (isinstance(slots_ok, int) and slots_ok < state["slots_assigned"])
        or state["answering"] - state["replicas_up"] < state["masters"]
    )


def _doctor(app: App, swarm: Swarm, cluster: _Cluster | None) -> None:
    """The doctor's checks with ``swarm`` (``cluster``: the cluster's state, read first)."""
    settings = app.settings
    user = settings.username or "default"
    report: dict[str, Any] = {
        "url": settings.url,
        "swarm": settings.swarm,
        "user": user,
        "kind": settings.kind,
    }
    warnings: list[str] = [] if cluster is None else list(cluster[1])  # (read first)
    failing = cluster is not None and _failing(cluster[0])
    chosen = find_redis_server() if settings.kind == "embedded" else None
    # First: an unreachable server fails here (a failing cluster: its nodes said why).
    info = _unless_failing(swarm.server_info, failing, warnings, "INFO was not read")
    latency: float | None = None
    try:
        latency = min(swarm.ping() for _ in range(5))
    except ConnectionFailed as exc:  # reachable, yet refuses PING: it cannot write (MISCONF)
        warnings.append(str(exc))
    except SwarmError as exc:
        if not failing:
            raise
        warnings.append(str(exc))
    tls, tls_warning = _tls(settings)
    binary, binary_note = _binary(settings, info.executable if info else None)
    version = info.version if info else "?"
    topology: dict[str, Any] | None = None
    if settings.kind == "sentinel":
        topology, found = _sentinel_state(settings)
        warnings += found
    elif cluster is not None:
        topology, _, versions = cluster
        if version == "?":  # INFO refused: the cluster client has no node to send HELLO to
            version = ", ".join(sorted(set(versions.values()))) or "?"
    report.update(
        ok=not failing,
        version=None if version == "?" else version,
        mode=info.mode if info else "cluster",
        tls=tls,
        binary=binary or (chosen.path if chosen else None),
    )
    if topology is not None:
        report[settings.kind] = topology
    if binary_note is not None:
        report["binary_note"] = binary_note
    report.update(
        persistence=_persistence(info.aof_enabled, info.appendfsync) if info else None,
        used_memory_bytes=info.used_memory if info else None,
        maxmemory_bytes=info.maxmemory if info else None,
        maxmemory_policy=info.maxmemory_policy if info else None,
        durability=_durability(swarm, failing),
        ping_ms=None if latency is None else round(latency, 3),
        server_time=iso(info.server_time_ms) if info else None,
    )
    if latency is None:
        report["ok"] = False
    if chosen is not None:
        report["pid"] = _embedded(app).pid()
        report["binary_choice"] = _choice(chosen, binary)
    if tls_warning is not None:
        warnings.append(tls_warning)
    if info is not None and info.eviction_risk is not None:
        warnings.append(info.eviction_risk)
        report["ok"] = report["ok"] and not info.maxmemory  # (a limit set: records can go now)
    report["corrupt_records"] = _records(swarm, settings, warnings, failing)
    if report["corrupt_records"].get("denied"):
        del report["corrupt_records"]["denied"]
        report["ok"] = False
    if warnings:
        report["warnings"] = warnings
    if info is None:
        missing = "not read (see the warnings)"
    elif info.info_readable:
        missing = "unknown (the server does not say)"
    else:
        missing = NOT_VISIBLE

    def human() -> None:
        table = Table(show_header=False, box=None)
        for key, value in report.items():
            if key == "warnings":
                continue
            if key == "corrupt_records":
                shown = _corrupt(value)
            elif key in ("sentinel", "cluster"):
                shown = _topology_line(key, value)
            else:
                shown = _shown(value, missing)
            table.add_row(f"[bold]{key}[/]", escape(shown))
        app.out.print(table)
        for warning in warnings:
            app.out.print(f"[yellow]warning:[/] {escape(warning)}")

    app.emit(report, human)
    if not report["ok"]:
        sys.exit(EXIT_ERROR)


def _unless_failing(
    read: Callable[[], T], failing: bool, warnings: list[str], what: str
) -> T | None:
    """``read()``; on a failing cluster, None when it fails (``what`` and why, warned)."""
    try:
        return read()
    except SwarmError as exc:
        if not failing:
            raise
        warnings.append(f"{what}: {exc}")
        return None


def _durability(swarm: Swarm, failing: bool) -> str:
    try:
        return swarm.durability()
    except SwarmError as exc:  # strict, probed on a failing cluster: say why it is not known
        if not failing:
            raise
        return f"not checked: {exc}"


def _records(
    swarm: Swarm, settings: Settings, warnings: list[str], failing: bool
) -> dict[str, Any]:
    """``corrupt_records``, after the check that this user may read the swarm at all (its
    warning added; ``denied`` set when it may not). On a failing cluster, a read that fails
    leaves them not checked, saying why."""
    user = settings.username or "default"
    try:
        no_access = _no_access(swarm, settings)
        if no_access is not None:
            warnings.append(no_access)
            return {
                **_not_checked(f"{user!r} may not read swarm {settings.swarm!r}"),
                "denied": True,
            }
        try:
            return {**swarm.corrupt_records(), "checked": True}
        except PermissionDenied as exc:  # a role without HSCAN: the rest of the check stands
            return _not_checked(str(exc))
    except SwarmError as exc:
        if not failing:
            raise
        return _not_checked(f"the swarm's keys could not be read: {exc}")
