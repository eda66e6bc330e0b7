"""What a Sentinel or Cluster deployment says of itself: ``topology(settings)``.

The swarm's client talks to the master (or routes by key) and cannot address the sentinels or
the nodes one by one, so this asks them on connections of its own (as ``swarm acl --apply``
reaches every node): the sentinels named in the URL (``SENTINEL MASTER``, ``REPLICAS``,
``CKQUORUM``), or each node of the cluster (``HELLO``, ``CLUSTER INFO``, ``CLUSTER SHARDS``,
or ``CLUSTER SLOTS`` before Redis 7). It judges what they say: the warnings (what to do about
each problem) and whether a cluster refuses some of its keys now (``failing``). ``swarm
doctor`` renders it; a program may call it as well::

    from redis_swarm import Settings, topology

    found = topology(Settings.from_url("redis+cluster://10.0.0.5:7000"))
    if found.failing:
        print("\\n".join(found.warnings))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from ._codec import counted
from ._config import Kind, Settings
from ._connect import sync_client
from ._durability import redis_cli_cluster
from ._replies import cluster_shards, reply_fields, reply_map, text
from ._sentinel import address_of, note_unanswered, unanswered_lately
from ._translate import translate

__all__ = ["ClusterView", "SentinelView", "Topology", "topology"]

T = TypeVar("T")

CLUSTER_SLOTS = 16384
# What ``state`` and ``slots_ok`` say where the user may not run CLUSTER INFO (every role but
# an admin).
CLUSTER_INFO_NOT_VISIBLE = "not visible to this user: it may not run CLUSTER INFO"
# What ``replica_links`` says where the user may not read a replica's INFO replication (a
# worker): whether each replica follows its master was not checked.
REPLICA_LINKS_NOT_VISIBLE = (
    "not checked: this user may not run INFO on the replicas (an admin's doctor checks it)"
)
# What ``replica_default_logins`` says where the user may not read what the check needs (every
# role but an admin): whether each replica logs in to its master as a default user that is
# off there was not checked.
REPLICA_LOGINS_NOT_VISIBLE = (
    "not checked: this user may not run ACL GETUSER on the master or CONFIG GET on the "
    "replicas (an admin's doctor checks it)"
)
# The flags by which a sentinel says it cannot reach a server, the most telling first:
# o_down (the sentinels agree: a master's), s_down (no valid reply within its
# down-after-milliseconds), disconnected (its link is down now: the server stopped, say, less
# than down-after-milliseconds ago). Sentinel fails over to no replica so flagged, and one it
# cannot reach this machine most likely cannot either: not up, for swarm doctor's count and
# for swarm acl --apply (``sentinel_down``).
SENTINEL_DOWN = ("o_down", "s_down", "disconnected")
# A node's health in CLUSTER SHARDS when the cluster agrees it failed.
_FAIL = "fail"
# SENTINEL CKQUORUM's refusals: too few sentinels usable for the quorum, or for a majority of
# all those configured (a failover needs both).
_NO_FAILOVER = ("NOQUORUM", "NOMAJORITY")


@dataclass(frozen=True)
class SentinelView:
    """A Sentinel deployment as the sentinels of the URL see it. ``master`` and the fields
    after it are None when no sentinel answered (``answering`` 0)."""

    service: str
    answering: int  # sentinels of the URL that answered about the service
    in_url: int  # sentinels the URL names
    master: str | None = None  # host:port, as the first sentinel that answered names it
    sentinels: int | None = None  # how many watch the service (the most any one knows)
    quorum: int | None = None
    replicas: int | None = None  # known to the sentinels
    replicas_up: int | None = None
    failover: str | None = None  # SENTINEL CKQUORUM's answer, in its words
    failover_ok: bool | None = None  # whether CKQUORUM said a failover could be agreed
    # replicas the sentinels reach whose link to the master is not ok (SENTINEL REPLICAS'
    # master-link-status: the replica's own INFO, as the sentinels read it): not counted in
    # ``replicas_up`` (no fresh copy of the master's data to take over with)
    unlinked: tuple[str, ...] = ()
    # replicas that follow the master logged in as its default user, which is off there (a
    # warning names each: their next login is refused); a str: not checked, and why
    # (``REPLICA_LOGINS_NOT_VISIBLE``)
    default_logins: tuple[str, ...] | str = ()

    @property
    def failover_said(self) -> str | None:
        """``failover`` as ``swarm doctor`` says it (its row and JSON): CKQUORUM's OK counts
        only the sentinels; with no replica up a failover would have nothing to promote, so
        that is said beside it, never a bare OK."""
        if self.failover_ok and self.replicas_up == 0:
            return f"the sentinels agree ({self.failover}), but no replica is up to take over"
        return self.failover

    @property
    def failover_blocked(self) -> bool:
        """Whether the sentinels said no failover can be agreed now (CKQUORUM's NOQUORUM or
        NOMAJORITY: too few of them are up): a master lost now would not be replaced, so
        ``swarm doctor`` fails. (A CKQUORUM this user may not run says nothing of it.)"""
        return self.failover is not None and self.failover.startswith(_NO_FAILOVER)

    def to_dict(self) -> dict[str, Any]:
        """The ``sentinel`` object of ``swarm doctor --json``."""
        out: dict[str, Any] = {
            "service": self.service,
            "answering": self.answering,
            "in_url": self.in_url,
        }
        if self.master is not None:
            out.update(
                master=self.master,
                sentinels=self.sentinels,
                quorum=self.quorum,
                replicas=self.replicas,
                replicas_up=self.replicas_up,
                failover=self.failover_said,
                replica_links_down=list(self.unlinked),
                replica_default_logins=(
                    self.default_logins
                    if isinstance(self.default_logins, str)
                    else list(self.default_logins)
                ),
            )
        return out


@dataclass(frozen=True)
class ClusterView:
    """A cluster as its nodes see it. ``state`` (``"ok"`` or ``"fail"``: fail when any node
    says so) and ``slots_ok`` come from CLUSTER INFO: None when no node answered, or when
    every node that did refused it to this user (``info_visible`` False). ``masters`` counts
    the masters that serve slots; ``failed`` names the masters the cluster marked failed that
    serve none (a failover gave their slots to a replica): counted in ``nodes``, never as
    masters. ``versions``: the Redis version each node that answered runs (address ->
    version)."""

    state: str | None
    slots_assigned: int
    slots_ok: int | None
    masters: int
    replicas: int
    replicas_up: int
    nodes: int
    answering: int
    info_visible: bool = True
    failed: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict, hash=False)
    # nodes that answer but refuse this URL's user (missing there: ACLs are per node);
    # counted in ``answering``
    refusing: tuple[str, ...] = ()
    # replicas that answer but do not follow their master (INFO replication's
    # master_link_status down while the master answers, or never up since the replica
    # started): counted in ``answering``, not in ``replicas_up`` (no fresh copy to take the
    # slots over with); None: their INFO was refused to this user
    unlinked: tuple[str, ...] | None = ()
    # replicas that follow their master logged in as its default user, which is off there (a
    # warning names each: their next login is refused); a str: not checked, and why
    # (``REPLICA_LOGINS_NOT_VISIBLE``), as ``SentinelView.default_logins``
    default_logins: tuple[str, ...] | str = ()

    @property
    def failing(self) -> bool:
        """Whether the cluster refuses some of its keys now: a node says cluster_state fail,
        slots are served by no node (unassigned) or by one failing (fewer ok than assigned),
        or a master that serves slots does not answer: the nodes answering, less the
        replicas up, are fewer than those masters. A replica down refuses no key, nor does a
        master without slots (one a failover replaced): they are warned of, not failed. (A
        master without slots that answers can hide one with slots that does not, until the
        nodes see it failing: its slots are then no longer ok.)"""
        return bool(
            self.state == _FAIL
            or self.slots_assigned < CLUSTER_SLOTS
            or (self.slots_ok is not None and self.slots_ok < self.slots_assigned)
            or self.answering - self.replicas_up - len(self.unlinked or ()) < self.masters
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``cluster`` object of ``swarm doctor --json``."""
        hidden = None if self.info_visible else CLUSTER_INFO_NOT_VISIBLE
        return {
            "state": self.state if self.info_visible else hidden,
            "slots_assigned": self.slots_assigned,
            "slots_ok": self.slots_ok if self.info_visible else hidden,
            "masters": self.masters,
            "replicas": self.replicas,
            "replicas_up": self.replicas_up,
            "nodes": self.nodes,
            "answering": self.answering,
            "replica_links_down": (
                REPLICA_LINKS_NOT_VISIBLE if self.unlinked is None else list(self.unlinked)
            ),
            "replica_default_logins": (
                self.default_logins
                if isinstance(self.default_logins, str)
                else list(self.default_logins)
            ),
        }


@dataclass(frozen=True)
class Topology:
    """What the deployment of a URL says of itself: ``sentinel`` (a Sentinel URL) or
    ``cluster`` (a Cluster URL), None for the other kinds; ``warnings``, each saying what to
    do; ``failing``: the cluster refuses some of its keys now (never for Sentinel: its
    warnings are of a failover that may not happen, the swarm works now)."""

    kind: Kind
    sentinel: SentinelView | None = None
    cluster: ClusterView | None = None
    warnings: tuple[str, ...] = ()

    @property
    def failing(self) -> bool:
        return self.cluster is not None and self.cluster.failing

    @property
    def view(self) -> SentinelView | ClusterView | None:
        """The sentinel or the cluster view, whichever the URL has."""
        return self.sentinel if self.sentinel is not None else self.cluster


def topology(settings: Settings) -> Topology:
    """Ask the deployment of ``settings`` what shape it is in. A Sentinel URL: each sentinel
    it names (one that does not answer is a warning); a Cluster URL: the first node of the
    URL that answers for the layout, then every node on a connection of its own, one attempt
    each (a node down must not hold the caller through the URL's failover retries). Any other
    URL: nothing to ask. Raises ``ConnectionFailed`` when no node of a Cluster URL answers."""
    if settings.kind == "sentinel":
        view, warnings = _sentinel_state(settings)
        return Topology(settings.kind, sentinel=view, warnings=tuple(warnings))
    if settings.kind == "cluster":
        cluster, warnings = _cluster_state(settings)
        return Topology(settings.kind, cluster=cluster, warnings=tuple(warnings))
    return Topology(settings.kind)


# --- replies


SILENT_SAID_FOR_S = 10.0


def _sentinel_silent(where: str, met: str) -> str:
    return (
        f"sentinel {where} of the URL does not answer ({met}): start it again (taking it "
        "out of the URL only stops this client asking it: a failover still needs a majority "
        "of all the sentinels configured)"
    )


def sentinel_down(fields: Mapping[str, str]) -> list[str]:
    """The ``SENTINEL_DOWN`` flags (in its order) of a server as a sentinel lists it
    (SENTINEL MASTER's or REPLICAS' fields, ``reply_fields``): [] for one up."""
    flags = fields.get("flags", "").split(",")
    return [flag for flag in SENTINEL_DOWN if flag in flags]


def direct_settings(settings: Settings, host: str, port: int) -> Settings:
    """The settings of one server found through ``settings`` (a node of a cluster, a master
    or replica behind sentinels): a connection of its own to it, one attempt (a server down
    must not hold the caller through the URL's retries, up to a minute on a cluster or
    Sentinel URL, for a failover)."""
    return settings.replace(kind="standalone", host=host, port=port, nodes=(), retries=0)


def sentinel_replicas(sentinel: Any, service: str) -> list[dict[str, str]]:
    """The replicas of ``service`` as ``sentinel`` lists them (SENTINEL REPLICAS), each its
    fields (ip, port, flags...)."""
    return [reply_fields(r) for r in sentinel.execute_command("SENTINEL", "REPLICAS", service)]


def _number(value: str | None) -> int:
    return int(value) if value and value.lstrip("-").isdigit() else 0


# --- Sentinel


def _sentinel_view(sentinel: Any, service: str) -> dict[str, Any]:
    """What one sentinel says of ``service``: its master, the sentinels and replicas it knows,
    and whether a failover could be agreed now (SENTINEL CKQUORUM)."""
    master = reply_fields(sentinel.execute_command("SENTINEL", "MASTER", service))
    replicas = sentinel_replicas(sentinel, service)
    try:
        failover, failover_ok = (
            text(sentinel.execute_command("SENTINEL", "CKQUORUM", service)),
            True,
        )
    except redis.exceptions.NoPermissionError as exc:
        failover = f"not checked: the sentinel's default user may not run SENTINEL CKQUORUM ({exc})"
        failover_ok = False
    except redis.ResponseError as exc:  # NOQUORUM, NOMAJORITY: the reason, in its words
        failover, failover_ok = str(exc), False
    reached = [r for r in replicas if not sentinel_down(r)]
    # A replica whose link is down while the master is up lost it for a reason of its own
    # (most often a login its master refuses); with the master down, every link is down and
    # a failover is the way out (the master's warning says it).
    down = sentinel_down(master)
    unlinked = [] if down else [r for r in reached if sentinel_unlinked(r)]
    return {
        "master": f"{master.get('ip')}:{master.get('port')}",
        "down": down,
        "quorum": _number(master.get("quorum")),
        "sentinels": 1 + _number(master.get("num-other-sentinels")),
        "replicas": len(replicas),
        "replicas_up": len(reached) - len(unlinked),
        "unlinked": {f"{r.get('ip')}:{r.get('port')}": r for r in unlinked},
        "linked": [
            f"{r.get('ip')}:{r.get('port')}" for r in ([] if down else reached) if r not in unlinked
        ],
        "failover": failover,
        "failover_ok": failover_ok,
    }


def _sentinel_state(settings: Settings) -> tuple[SentinelView, list[str]]:
    """The Sentinel deployment of the URL as its sentinels see it (the master they name, how
    many sentinels and replicas they know, whether they can agree a failover), and what is
    wrong with it (warnings: the swarm works now, but a failover may not)."""
    service = settings.service_name or ""
    warnings: list[str] = []
    views: dict[str, dict[str, Any]] = {}
    client: Any = sync_client(settings)
    try:
        for sentinel in client.connection_pool.sentinel_manager.sentinels:
            where = address_of(sentinel)
            # One that did not answer this client's lookup moments ago is not asked again (it
            # would hold the doctor a socket timeout more); one of longer ago is.
            lately = unanswered_lately(sentinel, within_s=SILENT_SAID_FOR_S)
            if lately is not None:
                warnings.append(_sentinel_silent(where, lately))
                continue
            try:
                views[where] = _sentinel_view(sentinel, service)
            except redis.exceptions.NoPermissionError as exc:
                warnings.append(
                    f"sentinel {where} refuses its default user (the one this client uses) "
                    f"its view of {service!r} ({exc}): allow +sentinel|master +sentinel|replicas "
                    "+sentinel|ckquorum to that user in the sentinel's ACL"
                )
            except redis.ResponseError as exc:  # "No such master with that name"
                warnings.append(
                    f"sentinel {where} does not watch {service!r} ({exc}): check the service "
                    "name in the URL, or make it watch the master (SENTINEL MONITOR)"
                )
            except (redis.RedisError, OSError) as exc:
                note_unanswered(sentinel, exc)
                warnings.append(_sentinel_silent(where, str(exc)))
    finally:
        client.close()
    if not views:
        return SentinelView(service, 0, len(settings.nodes)), warnings
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
    logins, refused_next = _default_logins(settings, view)
    state = SentinelView(
        service=service,
        answering=len(views),
        in_url=len(settings.nodes),
        master=view["master"],
        sentinels=known,
        quorum=view["quorum"],
        replicas=view["replicas"],
        replicas_up=view["replicas_up"],
        failover=view["failover"],
        failover_ok=view["failover_ok"],
        unlinked=tuple(sorted(view["unlinked"])),
        default_logins=logins,
    )
    warnings += refused_next
    for where, fields in sorted(view["unlinked"].items()):
        warnings.append(_link_down("sentinel", where, view["master"], _sentinel_down_for(fields)))
    if view["down"]:
        warnings.append(
            f"the sentinels see the master {view['master']} as down ({','.join(view['down'])}): a "
            "failover should follow; if none does, see the warnings on the replicas and "
            "the quorum"
        )
    if view["replicas_up"] == 0 and not view["unlinked"]:  # (those are warned of above)
        host, _, port = view["master"].rpartition(":")
        warnings.append(
            f"no replica of {service!r} is up ({view['replicas']} known to the sentinels): "
            "a failover has nowhere to go, and the swarm's data lives on one server; start "
            f"a replica (replicaof {host} {port}) and check that the sentinels list it "
            f"(SENTINEL REPLICAS {service})"
        )
    if known < view["quorum"]:
        warnings.append(
            f"{service!r} is watched by {counted(known, 'sentinel')} and its quorum is "
            f"{view['quorum']}: they "
            "can never agree that the master failed; start more sentinels, or lower the "
            f"quorum (SENTINEL SET {service} quorum {known})"
        )
    elif state.failover_blocked:
        warnings.append(
            f"a failover of {service!r} cannot be agreed now ({view['failover']}): if its "
            "master fails, no replica takes over and the swarm stops; start the stopped "
            "sentinels again: a failover needs the quorum and a majority of all the "
            f"sentinels configured ({known} known), which taking one out of the URL does "
            "not change"
        )
    elif not view["failover_ok"]:
        warnings.append(f"a failover of {service!r} could not be agreed now: {view['failover']}")
    elif known < 3:
        warnings.append(
            f"{service!r} is watched by only {counted(known, 'sentinel')}: with one of them lost, "
            "the rest may not make a majority, and no failover can happen; run at least 3, on "
            "separate machines"
        )
    return state, warnings


# What ``replica_default_logins`` says behind Sentinel when the sentinels see the master as
# down: its ACL, which the check reads, cannot be asked.
MASTER_DOWN_NOT_CHECKED = "not checked: the sentinels see the master as down"


def _default_logins(
    settings: Settings, view: Mapping[str, Any]
) -> tuple[tuple[str, ...] | str, list[str]]:
    """The replicas that follow the master of ``view`` (``_sentinel_view``'s: its ``linked``
    replicas, their link up as the sentinels list them) logged in as its default user while
    it is off there, and the warning on each (the cluster check's words, ``_default_login``):
    their next login is refused. Read on connections of their own (one attempt each), the
    master's ACL GETUSER default first (the replicas only when it is off). Not checked, and
    why (a str): the master down (``MASTER_DOWN_NOT_CHECKED``) or not answering; a user
    that may not run it or the replicas' CONFIG GET masteruser (every role but an admin:
    ``REPLICA_LOGINS_NOT_VISIBLE``); a replica that does not answer is named as not checked,
    the others' answer said beside it (their warnings given all the same)."""
    master: str = view["master"]
    if view.get("down"):
        return MASTER_DOWN_NOT_CHECKED, []
    linked: list[str] = view.get("linked") or []
    if not linked:
        return (), []
    try:
        host, _, port = master.rpartition(":")
        if not _on_node(settings, host, int(port), _default_off):
            return (), []
    except redis.exceptions.NoPermissionError:
        return REPLICA_LOGINS_NOT_VISIBLE, []
    except (redis.RedisError, OSError) as exc:
        return f"not checked: asking the master {master} failed ({exc})", []
    users: dict[str, str] = {}
    unasked: list[str] = []
    for asking in linked:
        host, _, port = asking.rpartition(":")
        try:
            users[asking] = _on_node(settings, host, int(port), _masteruser)
        except redis.exceptions.NoPermissionError:
            return REPLICA_LOGINS_NOT_VISIBLE, []
        except (redis.RedisError, OSError) as exc:
            unasked.append(f"{asking} (asking it failed: {exc})")
    found = sorted(where for where, user in users.items() if _as_default(user))
    warnings = [_default_login("sentinel", w, master, users[w]) for w in found]
    if not unasked:
        return tuple(found), warnings
    said = f"not checked on {'; '.join(unasked)}"
    if users:
        others = f"{', '.join(found)} (see the warnings)" if found else "none"
        said += f"; of the others, logged in as the default user: {others}"
    return said, warnings


# --- Cluster


def _on_node(settings: Settings, host: str, port: int, ask: Callable[[Any], T]) -> T:
    """``ask(client)`` on one data server of the URL (``host:port``: a node of a cluster, a
    master or replica behind Sentinel), on a connection of its own (one attempt: a server
    down must not hold the caller through the URL's retries)."""
    client: Any = sync_client(direct_settings(settings, host, port))
    try:
        return ask(client)
    finally:
        client.close()


class _Layout:
    """Who serves what, as one node of the cluster says: the slots each master serves, and
    every node (address -> role, health, id) with the master it belongs to."""

    def __init__(self) -> None:
        self.served: dict[str, int] = {}
        self.nodes: dict[str, tuple[str, str]] = {}
        self.replicas: dict[str, list[str]] = {}  # master -> its replicas
        self.ids: dict[str, str] = {}  # address -> node id (CLUSTER SHARDS gives it)

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
        for node, node_id in view.ids.items():
            self.ids.setdefault(node, node_id)

    def failed(self) -> list[str]:
        """The masters the cluster marked failed that serve no slots: each one a failover
        replaced (its replica took its slots), left in the cluster's list of nodes."""
        return sorted(
            where
            for where, (role, health) in self.nodes.items()
            if role == "master" and health == _FAIL and where not in self.served
        )

    @classmethod
    def read(cls, client: Any, tls: bool) -> _Layout:
        """CLUSTER SHARDS (Redis 7, any role may run it); before, CLUSTER SLOTS, which
        lists only the replicas ready to serve reads, and no node's health."""
        try:
            shards = client.execute_command("CLUSTER", "SHARDS")
        except redis.ResponseError:  # Redis 6.2
            return cls.from_slots(client.execute_command("CLUSTER", "SLOTS"))
        return cls.from_shards(shards, tls)

    @classmethod
    def from_shards(cls, shards: Any, tls: bool) -> _Layout:
        """The layout in a CLUSTER SHARDS reply. A shard's slots are served by its master
        that has not failed: since Redis 7.2 a shard keeps the master a failover replaced
        (role master, health fail) beside the replica that took over, and before, that
        master is a shard of its own without slots. It serves nothing, either way."""
        layout = cls()
        for bounds, shard_nodes in cluster_shards(shards):
            count = sum(
                end - start + 1 for start, end in zip(bounds[::2], bounds[1::2], strict=False)
            )
            nodes: list[tuple[str, str, str]] = []  # (address, role, health)
            for node in shard_nodes:
                where = node.address(tls)
                nodes.append((where, node.role, node.health))
                if node.id:
                    layout.ids[where] = node.id
            masters = [(where, health) for where, role, health in nodes if role == "master"]
            serving = next((w for w, health in masters if health != _FAIL), None)
            serving = serving or (masters[0][0] if masters else "")  # failed, slots still its
            for where, role, health in nodes:
                layout.nodes[where] = (role, health)
                if role == "master":
                    layout.replicas.setdefault(where, [])
                elif serving:  # (a shard may list a replica before its master)
                    layout.replicas.setdefault(serving, []).append(where)
            if serving and count:
                layout.served[serving] = layout.served.get(serving, 0) + count
        return layout

    @classmethod
    def from_slots(cls, slots: Any) -> _Layout:
        """The layout in a CLUSTER SLOTS reply (Redis 6.2)."""
        layout = cls()
        for entry in slots or []:
            start, end, *nodes = entry
            master, *replicas = (f"{text(n[0])}:{n[1]}" for n in nodes)
            layout.served[master] = layout.served.get(master, 0) + int(end) - int(start) + 1
            layout.nodes[master] = ("master", "online")
            mine = layout.replicas.setdefault(master, [])
            for replica in replicas:
                layout.nodes[replica] = ("replica", "online")
                if replica not in mine:
                    mine.append(replica)
        return layout


# What one node says (``_cluster_node``).
_NodeSaid = tuple[str, dict[str, str] | None, _Layout, dict[str, str] | None]


def _cluster_node(client: Any, tls: bool) -> _NodeSaid:
    """One node: the version it runs (HELLO: every user may send it), its CLUSTER INFO
    (None: refused to this user, as to every role but an admin), its layout, and its INFO
    replication (None: refused, as to a worker): on a replica, whether its link to its
    master is up."""
    version = reply_fields(client.execute_command("HELLO")).get("version", "?")
    try:
        info: dict[str, str] | None = reply_fields(client.execute_command("CLUSTER", "INFO"))
    except redis.exceptions.NoPermissionError:
        info = None
    layout = _Layout.read(client, tls)
    try:
        said = client.execute_command("INFO", "replication")
    except redis.exceptions.NoPermissionError:
        return version, info, layout, None
    replication = reply_fields(said)
    # Who its replication logs in as (a replica), and whether its default user is off (a
    # master: replicas logged in as it are refused at their next login). Left out where
    # this user may not ask: the check then says it was not checked (``_cluster_state``).
    with contextlib.suppress(redis.exceptions.NoPermissionError):
        replication[_MASTERUSER] = _masteruser(client)
    with contextlib.suppress(redis.exceptions.NoPermissionError):
        replication[_DEFAULT_OFF] = "1" if _default_off(client) else ""
    return version, info, layout, replication


# The keys under which ``_cluster_node`` adds, to a node's INFO replication, its replication
# user (CONFIG GET masteruser) and whether its default user is off.
_MASTERUSER, _DEFAULT_OFF = "replication_user", "default_user_off"


def _masteruser(client: Any) -> str:
    """The user a replica's replication logs in to its master as (CONFIG GET masteruser:
    "" when unset, the default user). Raises NoPermissionError for a user that may not ask
    (every role but an admin)."""
    said = reply_map(client.execute_command("CONFIG", "GET", "masteruser"))
    return text(said.get("masteruser", ""))


def _default_off(client: Any) -> bool:
    """Whether the default user is off on the server of ``client`` (ACL GETUSER default):
    replicas that log in to it as that user are refused at their next login. Raises
    NoPermissionError for a user that may not ask (every role but an admin)."""
    flags = reply_map(client.execute_command("ACL", "GETUSER", "default")).get("flags") or []
    return "off" in {text(f) for f in flags}


def _as_default(masteruser: str | None) -> bool:
    """Whether a replica whose masteruser is ``masteruser`` (None: not known) logs in to its
    master as the default user: none set, or that one named."""
    return masteruser in ("", "default")


def _default_login(kind: Kind, where: str, master: str, masteruser: str) -> str:
    """The warning on replica ``where`` (of a cluster or behind Sentinel: ``kind``) that
    follows ``master`` logged in as the default user (``masteruser``: none, or ``default``),
    which is off there now: its next login is refused."""
    noun = _REPLICA_OF[kind][0]
    how = "it has no masteruser" if not masteruser else f"its masteruser is {masteruser}"
    return (
        f"{noun} {where} follows its master {master} logged in as the default user "
        f"({how}), which is off on {master} now: its next login there (a "
        "restart of either, a link lost) is refused (NOAUTH), and it stops following; give "
        "every node masteruser and masterauth for the replication user, and save them, as "
        "an admin user (CONFIG SET, then CONFIG REWRITE: docs/security.md, 'Users per role')"
    )


# The words of the warning on a replica that does not follow its master that depend on who
# would promote it (``_link_down``): what it is called, what it lacks a fresh copy of, and
# what that costs when its master fails.
_REPLICA_OF: dict[Kind, tuple[str, str, str]] = {
    "cluster": (
        "cluster replica",
        "that master's slots",
        "cannot take them over if the master fails (the cluster stays down then)",
    ),
    "sentinel": (
        "replica",
        "the master's data",
        "the sentinels cannot fail over to it if the master fails (they skip a replica whose "
        "link has been down long: with no other, the swarm stops until the master is back)",
    ),
}


def _link_down(kind: Kind, where: str, master: str, how_long: str) -> str:
    """The warning on replica ``where`` (of a cluster or behind Sentinel: ``kind``) whose
    link to its master (which answers) is down, ``how_long`` said."""
    return f"{_REPLICA_OF[kind][0]} {where} {_not_following(kind, where, master, how_long)}"


def _not_following(kind: Kind, where: str, master: str, how_long: str) -> str:
    """``_link_down`` past the replica's name: from "does not follow its master"."""
    _, copy, cost = _REPLICA_OF[kind]
    return (
        f"does not follow its master {master} (master_link_status:"
        f"down on {where}, {how_long}): it has no fresh copy of {copy}, and {cost}. Most "
        "often the replica cannot log in to its master (NOAUTH or WRONGPASS in its log: the "
        "default user is off, and it has no masteruser/masterauth): give every node "
        "masteruser and masterauth for the replication user, and save them, as an admin "
        "user (CONFIG SET, then CONFIG REWRITE: docs/security.md, 'Users per role'); else its "
        "log says why"
    )


def sentinel_unlinked(fields: Mapping[str, str]) -> bool:
    """Whether a replica, as a sentinel lists it (SENTINEL REPLICAS' fields), does not follow
    its master: its master-link-status (the replica's own INFO, as the sentinels read it) is
    not ok. (With its master down too, every link is down: its master's warning says it.)"""
    return fields.get("master-link-status", "ok") != "ok"


def sentinel_link_down(where: str, master: str, fields: Mapping[str, str]) -> str:
    """``_link_down``'s words on replica ``where`` behind Sentinel, past its name (from "does
    not follow its master ``master``"), how long from its SENTINEL REPLICAS ``fields``."""
    return _not_following("sentinel", where, master, _sentinel_down_for(fields))


def _sentinel_down_for(fields: Mapping[str, str]) -> str:
    """How long a replica's link is down, from its SENTINEL REPLICAS ``fields``."""
    return _down_for(_number(fields.get("master-link-down-time")) // 1000)


def _down_for(seconds: int) -> str:
    """How long a replica's link is down, from its master_link_down_since_seconds (-1:
    never up since the replica started)."""
    return "never up since it started" if seconds < 0 else f"down for {seconds} s"


def _cluster_link_down(where: str, replication: Mapping[str, str]) -> str:
    """The warning on cluster replica ``where`` whose link to its master (which answers) is
    down: syncing (its INFO replication says so), or not following it."""
    master = f"{replication.get('master_host', '?')}:{replication.get('master_port', '?')}"
    if replication.get("master_sync_in_progress") == "1":  # (it logged in: a transfer)
        return (
            f"cluster replica {where} is syncing from its master {master} (its "
            "master_link_status is down until the sync is done): until then it has no fresh "
            "copy of that master's slots and cannot take them over; run swarm doctor again "
            "in a minute (a sync that never ends: the replica's log says why)"
        )
    since = _number(replication.get("master_link_down_since_seconds"))
    return _link_down("cluster", where, master, _down_for(since))


def _cluster_layout(settings: Settings) -> tuple[_Layout, str]:
    """The layout as the first node of the URL that answers says it, and that node's
    ``host:port`` (ConnectionFailed, or what the last said, when none answers)."""
    error: BaseException | None = None
    for host, port in settings.nodes:
        try:
            layout = _on_node(settings, host, port, lambda c: _Layout.read(c, settings.ssl))
            return layout, f"{host}:{port}"
        except (redis.RedisError, OSError) as exc:
            error = exc
    raise translate(error or ConnectionError("no node in the URL"), settings.url)


def _cluster_state(settings: Settings) -> tuple[ClusterView, list[str]]:
    """The cluster as its nodes see it (cluster_state, the slots assigned and ok, the masters
    and replicas, the version each node runs), and what is wrong with it (warnings)."""
    layout, answered = _cluster_layout(settings)
    warnings: list[str] = []
    versions: dict[str, str] = {}
    refusing: list[str] = []
    infos: dict[str, dict[str, str] | None] = {}
    links: dict[str, dict[str, str] | None] = {}  # INFO replication of each node that answers
    silent: list[tuple[str, str]] = []  # nodes that do not answer, and what was met
    forgotten: list[str] = []  # failed masters that do not answer: to be forgotten
    failed = layout.failed()
    for where in sorted(layout.nodes):
        host, _, port = where.rpartition(":")
        try:
            versions[where], infos[where], seen, links[where] = _on_node(
                settings, host, int(port), lambda c: _cluster_node(c, settings.ssl)
            )
            layout.add(seen, where)
        except _REFUSED as exc:  # it answers: the user is not let in there
            refusing.append(where)
            warnings.append(_refuses(where, settings, exc))
        except (redis.RedisError, OSError) as exc:
            if where in failed:  # a master a failover replaced: not one to wait for
                forgotten.append(where)
            else:
                silent.append((where, str(exc)))
    # Of the swarm's roles only an admin may run CLUSTER INFO, and the repairs below
    # (CLUSTER FORGET, add-node, fix): every other role is an allowlist of its operations'
    # commands (_acl), which hold neither. Where no node let it, they log in as an admin.
    # (``cli``: the start of those --cluster commands, with the URL's TLS options)
    cli = redis_cli_cluster(settings, may_run=any(i is not None for i in infos.values()))
    warnings += [_forget(w, layout.ids.get(w), answered, settings, cli) for w in forgotten]
    failed = [where for where in failed if where not in versions]
    replicas = [w for w, (role, _) in layout.nodes.items() if role != "master"]
    # Up: it answers, and is not failed. (The health other nodes give a replica lags: one
    # whose replication offset has not reached them by gossip yet is "loading" to them.)
    online = {w for w, (_, health) in layout.nodes.items() if health != _FAIL}
    online &= set(versions) | set(refusing)
    # ... and follows its master: a replica whose link is down has no fresh copy to take the
    # slots over with. Its master answers: the link is down for a reason of its own (a
    # replica that cannot log in); its master does not: down with it, and it takes over
    # unless its link never came up since it started.
    unlinked: list[str] = []
    stale: set[str] = set()  # replicas that cannot take over a master that does not answer
    # The replicas logged in to their master as its default user, off there; not checked
    # where this user may not read what that needs (INFO, CONFIG GET, ACL GETUSER: refused
    # to every role but an admin, ``_cluster_node``).
    as_default: list[str] = []
    logins_hidden = any(w in links and links[w] is None for w in replicas)
    for where in sorted(w for w in replicas if links.get(w)):
        said = links[where] or {}
        masters = {f"{said.get('master_host')}:{said.get('master_port')}"}
        masters |= {m for m, mine in layout.replicas.items() if where in mine}
        if said.get("role") != "slave":
            continue
        if said.get("master_link_status", "up") == "up":
            asked = [links[m] for m in sorted(masters) if m in links]
            if _MASTERUSER not in said or any(m is None or _DEFAULT_OFF not in m for m in asked):
                logins_hidden = True
                continue
            off = [m for m in sorted(masters) if (links.get(m) or {}).get(_DEFAULT_OFF)]
            if _as_default(said.get(_MASTERUSER)) and off:
                as_default.append(where)
                warnings.append(_default_login("cluster", where, off[0], said[_MASTERUSER]))
            continue
        if masters.intersection(versions) or masters.intersection(refusing):
            unlinked.append(where)
            warnings.append(_cluster_link_down(where, said))
        elif _number(said.get("master_link_down_since_seconds")) < 0:
            stale.add(where)
    online -= set(unlinked) | stale
    unlinked = sorted(set(unlinked) | stale)
    for where, met in silent:
        mine = layout.replicas.get(where, [])
        if online.intersection(mine) or not mine:
            warnings.append(
                f"cluster node {where} does not answer ({met}): a replica of it takes its "
                "slots over if it has one; start it again"
            )
        else:
            warnings.append(
                f"cluster node {where} does not answer ({met}), and no replica of it can take "
                f"its slots over ({', '.join(mine)}: down, or not following it: see the "
                "warnings on them): its slots stay down until it is back; start it again"
            )
    state: str | None = None
    slots_assigned = sum(layout.served.values())
    slots_ok: int | None = None
    readable = [info for info in infos.values() if info is not None]
    if readable:
        failing = [w for w, i in infos.items() if i is not None and i.get("cluster_state") != "ok"]
        first = readable[0]
        state = _FAIL if failing else "ok"
        slots_assigned = _number(first.get("cluster_slots_assigned"))
        slots_ok = _number(first.get("cluster_slots_ok"))
        if failing:
            warnings.append(
                f"cluster_state is fail on {', '.join(failing)}: those nodes refuse every "
                "command (CLUSTERDOWN); CLUSTER INFO and CLUSTER NODES there say which slots "
                "or nodes failed"
            )
        bad = _number(first.get("cluster_slots_fail")) + _number(first.get("cluster_slots_pfail"))
        if bad:
            warnings.append(
                f"a node that is failing serves {counted(bad, 'slot')} (cluster_slots_fail, "
                "_pfail): their keys are refused until its replica takes over or it is back"
            )
    if slots_assigned < CLUSTER_SLOTS:
        warnings.append(
            f"only {slots_assigned} of {CLUSTER_SLOTS} slots are assigned: the "
            "swarms whose keys hash to the others are refused; assign them as an admin "
            f"user ({cli}--cluster fix {answered})"
        )
    for master in sorted(layout.served):
        mine = layout.replicas.get(master, [])
        if not online.intersection(mine) and not set(unlinked).intersection(mine):
            known = len(layout.replicas.get(master, []))
            warnings.append(
                f"master {master} has no replica online ({known} known): if it fails, its "
                "slots (and the swarms on them) are down until it is back; add one as an "
                f"admin user ({cli}--cluster add-node NEW:PORT {master} "
                "--cluster-slave)"
            )
    if len(set(versions.values())) > 1:
        told = ", ".join(f"{v} on {w}" for w, v in sorted(versions.items()))
        warnings.append(
            f"the nodes run different Redis versions ({told}): finish the upgrade; until "
            "then a command of the newer version may fail on the older nodes"
        )
    view = ClusterView(
        state=state,
        slots_assigned=slots_assigned,
        slots_ok=slots_ok,
        masters=len(layout.served),
        replicas=len(replicas),
        replicas_up=len(online.intersection(replicas)),
        nodes=len(layout.nodes),
        answering=len(versions) + len(refusing),
        info_visible=bool(readable) or not infos,
        failed=tuple(failed),
        versions=versions,
        refusing=tuple(refusing),
        unlinked=None if any(links.get(w, {}) is None for w in replicas) else tuple(unlinked),
        default_logins=REPLICA_LOGINS_NOT_VISIBLE if logins_hidden else tuple(as_default),
    )
    return view, warnings


# What a node that refuses the URL's credentials raises (it answered: it is up).
_REFUSED = (redis.AuthenticationError, redis.exceptions.AuthenticationWrongNumberOfArgsError)


def _refuses(where: str, settings: Settings, exc: BaseException) -> str:
    """The warning on a node that answers but refuses the URL's user: the other nodes let
    it in (the layout was read with it), so it is most likely missing there."""
    user = settings.shown_user
    return (
        f"cluster node {where} answers but refuses the user {user!r} ({exc}), which other "
        "nodes let in: the user is most likely missing there (ACLs are per node: a node "
        "added later, as with redis-cli --cluster add-node, has none of the users made "
        "before), or has another password; the swarms whose keys that node serves are "
        "refused to this user. Run 'swarm acl --apply' for it again as an admin (with its "
        "password, --password-stdin, to keep it): it makes the user on every node and saves "
        "it there with ACL SAVE (docs/deployment.md, 'Resharding')"
    )


def _forget(
    where: str, node_id: str | None, alive: str, settings: Settings, cli: str | None = None
) -> str:
    """The warning on a master a failover replaced (``where``, failed, serving no slots),
    with the command that makes every node forget it (through ``alive``, a node that
    answers), started with ``cli`` (None: as the URL's user, ``redis_cli_cluster``: its TLS
    options too)."""
    cli = redis_cli_cluster(settings) if cli is None else cli
    return (
        f"cluster node {where} failed and serves no slots (a failover gave them to its "
        "replica), yet the cluster still lists it: start it again, and it rejoins as a "
        "replica, or, as an admin user, make every node forget it: "
        f"{cli}--cluster call {alive} CLUSTER FORGET {node_id or 'NODE-ID'}"
    )
