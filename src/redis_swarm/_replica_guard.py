"""Whether a master with replicas refuses writes when cut off from them, and whether it
refuses every write now for want of them: ``replica_guard(settings)``, for ``swarm doctor``.

Redis replicates asynchronously, and a master does not know it was demoted until Sentinel tells
it, seconds after the sentinels promoted another (at their next look at it). Meanwhile the
clients still connected to it (a pool's open connections) keep writing there, while those that
asked the sentinels again write to the new master: two masters, and what the old one took is
dropped when it becomes a replica of the new one (acknowledged findings lost, claims unknown to
the new master, tasks run twice). ``min-replicas-to-write N`` narrows that window: a master
with fewer than N replicas that acknowledged within ``min-replicas-max-lag`` seconds refuses
writes (NOREPLICAS). It closes it only when N is the number of replicas: a promoted replica
leaves its old master at once, but the others stay good replicas of it until Sentinel
reconfigures them (at its next INFO of each, about a second; never, in a partition that keeps
one with the old master), and what the old master takes meanwhile they drop on their full
sync with the new one. Its cost: a master with fewer good replicas than N refuses every write,
``swarm up``'s load of the library included (docs/deployment.md, "Sentinel").

On a Redis Cluster, ``cluster_guard(settings)`` reads it on every master (a connection of its
own to each): a master cut off from the rest of the cluster stops taking writes by itself only
once ``cluster-node-timeout`` has passed, while the other side promotes its replica after
that same timeout; what it took meanwhile is dropped when it rejoins as a replica. With
``min-replicas-max-lag`` below that timeout it refuses them sooner. (``CLUSTER FAILOVER``
pauses the old master's clients until its replica caught up: a planned switchover loses
nothing.) Not asked of the embedded server (no replica reaches its socket).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from ._codec import counted
from ._config import SENTINEL_DOCS, Settings
from ._connect import sync_client
from ._durability import ADMIN_LOGIN, redis_cli
from ._replies import text
from ._translate import translate

__all__ = ["ClusterGuard", "ReplicaGuard", "cluster_guard", "replica_guard"]

# The two lines docs/deployment.md's Sentinel recipe sets on every server of the set.
GUARD_LINES = "min-replicas-to-write 1 and min-replicas-max-lag 10"
# What the row says where this user may not run CONFIG GET (every role but an admin).
GUARD_UNKNOWN = "unknown (this user may not run CONFIG GET)"
# Where the recipe, its window and its cost are told (on Sentinel; on a Cluster).
CLUSTER_GUARD_DOCS = "docs/deployment.md, 'Redis Cluster'"
# INFO replication's count of good replicas (connected, acknowledging within
# min-replicas-max-lag seconds): listed only while the check is on (both settings above 0),
# under this name (read so on Redis 6.2 and 7.0).
_GOOD_FIELD = "min_slaves_good_slaves"
# What the two lines leave open, what closes it, and the cost (the warning of a check that is
# off).
_WINDOW = (
    "That narrows the window, it does not close it: in a switchover the promoted replica "
    "leaves the old master at once, but its other replicas stay good replicas of it until "
    "Sentinel reconfigures them (about a second; as long as a partition keeps one with the "
    "old master), and what the old master takes meanwhile is dropped too (with "
    "durability=strict as well: its WAIT 1 is met by such a replica). Only "
    "min-replicas-to-write equal to the number of replicas closes it, at the cost that any "
    "replica down stops every write (with one replica and 1: a master whose only replica is "
    "down refuses writes)"
)


@dataclass(frozen=True)
class ReplicaGuard:
    """``min-replicas-to-write`` of a master with replicas, of one that has it set, or of one
    behind Sentinel. None: not known (``replicas``, ``good``: this user may not run INFO, or,
    ``good``, the check is off; ``to_write``, ``max_lag``: nor CONFIG GET)."""

    where: str  # the URL, as shown
    replicas: int | None  # connected now
    to_write: int | None
    max_lag: int | None
    good: int | None = None  # good replicas now, as INFO counts them while the check is on
    # The start of the redis-cli command that lowers the setting on this master, as an admin
    # user (``redis_cli``: CONFIG SET is no other role's); its connection to be filled in
    # where not known.
    admin_cli: str = "redis-cli " + ADMIN_LOGIN

    @property
    def off(self) -> bool:
        """The master takes writes however many replicas it has: min-replicas-to-write 0, or
        a max lag of 0, which turns the check off too."""
        return self.to_write == 0 or self.max_lag == 0

    @property
    def refusing(self) -> bool:
        """The master refuses every write now (NOREPLICAS): fewer good replicas than it
        needs. INFO lists the count only while the check is on, so a count of 0 says so even
        where CONFIG GET is refused."""
        if self.good is None:
            return False
        if self.to_write is None:
            return self.good == 0
        return self.good < self.to_write

    @property
    def row(self) -> str:
        """The doctor's ``min_replicas_to_write`` row."""
        if self.refusing:
            needed = "at least 1" if self.to_write is None else str(self.to_write)
            return (
                f"refusing writes now ({counted(self.good or 0, 'good replica')}, {needed} "
                "needed; see the warnings)"
            )
        if self.to_write is None:
            return GUARD_UNKNOWN
        if self.to_write == 0:
            return "0: a master cut off from its replicas still takes writes (see the warnings)"
        if self.max_lag == 0:
            return (
                f"{self.to_write}, max lag 0 s: off (a max lag of 0 turns the check off: a "
                "master cut off from its replicas still takes writes; see the warnings)"
            )
        return (
            f"{self.to_write}, max lag {self.max_lag} s: a master with fewer replicas in reach "
            "refuses writes"
        )

    @property
    def warning(self) -> str | None:
        """What to do: while the master refuses every write, bring a replica back or lower
        the setting; while the check is off, the risk and the two lines to set. None
        otherwise (set and met, or not known)."""
        if self.refusing:
            return self._refusal
        if not self.off:
            return None
        has = "" if self.replicas is None else f" ({counted(self.replicas, 'replica')} connected)"
        what = (
            "min-replicas-to-write is 0"
            if self.to_write == 0
            else "min-replicas-max-lag is 0 (which turns min-replicas-to-write off)"
        )
        return (
            f"{what} on the master of {self.where}{has}: in a failover, a planned SENTINEL "
            "FAILOVER included, the old master goes on taking the writes of the clients still "
            "connected to it until Sentinel makes it a replica, seconds later, and then drops "
            "them (acknowledged findings lost, tasks run twice). Set "
            f"{GUARD_LINES} on every server of the set (in redis.conf, and CONFIG SET now): a "
            f"master cut off from its replicas then refuses writes. {_WINDOW} ({SENTINEL_DOCS})"
        )

    @property
    def _refusal(self) -> str:
        """The warning of a master that refuses every write now."""
        good = counted(self.good or 0, "good replica")
        needed = (
            "its min-replicas-to-write (at least 1; this user may not run CONFIG GET to say "
            "how many)"
            if self.to_write is None
            else f"the {self.to_write} of its min-replicas-to-write"
        )
        lag = "" if self.max_lag is None else f" {self.max_lag} s"
        lower = (
            "CONFIG SET min-replicas-to-write N"
            if self.to_write is None
            else f"CONFIG SET min-replicas-to-write {self.good or 0}"
        )
        return (
            f"the master of {self.where} refuses every write now (NOREPLICAS): it has {good} "
            f"(connected and acknowledging within min-replicas-max-lag{lag}), fewer than "
            f"{needed}. No task can be posted, claimed or reported, and 'swarm up' cannot "
            "load the function library. Bring a replica back (INFO replication on the "
            "master lists those connected; a replica's own INFO replication says whether its "
            "link is up), or, to take writes with fewer, an admin user lowers the setting: "
            f"{self.admin_cli}{lower}, and the same in redis.conf, at the cost of writes a "
            f"failover may lose ({SENTINEL_DOCS})"
        )


def replica_guard(settings: Settings) -> ReplicaGuard | None:
    """The guard of the master ``settings`` reaches, on a connection of its own: for a
    Sentinel URL always; for a plain one when INFO shows a master with connected replicas,
    or with min-replicas-to-write set (with no replica it refuses every write). None
    otherwise (a cluster: ``cluster_guard``; the embedded server, a replica, a master alone
    with the check off, or one whose INFO this user may not read outside Sentinel)."""
    if settings.kind in ("cluster", "embedded"):
        return None
    client: Any = sync_client(settings)
    try:
        master = None  # (behind Sentinel: the master it names, which the command reaches)
        if settings.kind == "sentinel":
            host, port = client.connection_pool.get_master_address()
            master = f"{host}:{port}"
        cli = redis_cli(settings, may_run=False, master=master)
        return _read(client, settings.url, always=settings.kind == "sentinel", cli=cli)
    except redis.RedisError as exc:
        raise translate(exc, settings.url) from exc
    finally:
        client.close()


def _read(client: Any, where: str, *, always: bool, cli: str) -> ReplicaGuard | None:
    """The guard of the server ``client`` reaches (``where``; ``cli``: the start of an admin
    user's redis-cli command there); None for a replica, and unless ``always``, for a master
    alone with the check off or whose INFO is refused."""
    replicas: int | None = None
    good: int | None = None
    try:
        replication = client.info("replication")
    except redis.exceptions.NoPermissionError:  # a worker: INFO lists every swarm's keys
        if not always:
            return None
    else:
        if text(replication.get("role", "")) != "master":
            return None
        replicas = int(replication.get("connected_slaves", 0))
        if _GOOD_FIELD in replication:
            good = int(replication[_GOOD_FIELD])
    # The settings first: a master alone that requires a replica refuses every write.
    to_write, max_lag = _configured(client)
    required = bool(to_write) and bool(max_lag)
    if not always and not replicas and not required and good is None:
        return None
    return ReplicaGuard(where, replicas, to_write, max_lag, good, cli)


@dataclass(frozen=True)
class ClusterGuard:
    """``min-replicas-to-write`` on each master of a cluster: address -> its guard, or why
    it was not read; ``node_timeout_ms``: cluster-node-timeout (None: not known)."""

    masters: Mapping[str, ReplicaGuard | str]
    node_timeout_ms: int | None = None

    @property
    def _known(self) -> dict[str, ReplicaGuard]:
        return {where: g for where, g in self.masters.items() if isinstance(g, ReplicaGuard)}

    @property
    def off(self) -> list[str]:
        """The masters that take writes however many replicas they have."""
        return sorted(where for where, guard in self._known.items() if guard.off)

    @property
    def refusing(self) -> list[ReplicaGuard]:
        """The masters that refuse every write now, for want of good replicas."""
        return [guard for _, guard in sorted(self._known.items()) if guard.refusing]

    @property
    def row(self) -> str:
        """The doctor's ``min_replicas_to_write`` row: each master's setting."""
        read = self._known
        if read and all(g.to_write is None and not g.refusing for g in read.values()):
            said = [GUARD_UNKNOWN]  # (said once, not per master)
        else:
            said = [f"{where}: {_short(guard)}" for where, guard in sorted(read.items())]
        said += [
            f"{where}: not read ({why})"
            for where, why in sorted(self.masters.items())
            if isinstance(why, str)
        ]
        return "; ".join(said) or "no master answered"

    @property
    def max_lag(self) -> int:
        """The min-replicas-max-lag to set: 10 s, or less than cluster-node-timeout (the
        master must refuse writes before the other side promotes its replica)."""
        if self.node_timeout_ms is None:
            return 10
        return max(1, min(10, self.node_timeout_ms // 1000 - 1))

    @property
    def warnings(self) -> list[str]:
        """What to do: for each master that refuses every write now, bring a replica back
        or lower the setting; for the masters with the check off, the risk and the lines."""
        said = [guard.warning for guard in self.refusing if guard.warning is not None]
        off = self.off
        if not off:
            return said
        timeout = (
            "cluster-node-timeout"
            if self.node_timeout_ms is None
            else f"cluster-node-timeout ({self.node_timeout_ms} ms here)"
        )
        lines = f"min-replicas-to-write 1 and min-replicas-max-lag {self.max_lag}"
        said.append(
            f"min-replicas-to-write is 0 on {counted(len(off), 'master')} of the cluster "
            f"({', '.join(off)}): a master cut off from the rest of the cluster (a partition) "
            f"goes on taking writes until {timeout} has passed, while the other side "
            "promotes its replica; what it took meanwhile is dropped when it rejoins as a "
            "replica (acknowledged findings lost, tasks run twice). Set "
            f"{lines} on every node, masters and replicas (in redis.conf, and CONFIG SET "
            "now; min-replicas-max-lag in seconds, below cluster-node-timeout): a master cut "
            "off from its replica then refuses writes before the replica is promoted. The "
            "cost: a master whose replica is down (or further behind than the lag) refuses "
            f"every write to its slots until one is back ({CLUSTER_GUARD_DOCS})"
        )
        return said


def _short(guard: ReplicaGuard) -> str:
    """One master's setting, in the cluster row."""
    if guard.refusing:
        return guard.row
    if guard.to_write is None:
        return "unknown"
    if guard.off:
        return f"{guard.to_write}, max lag {guard.max_lag} s: off"
    return f"{guard.to_write}, max lag {guard.max_lag} s"


def cluster_guard(settings: Settings) -> ClusterGuard | None:
    """The guard of every master of the cluster of ``settings`` (a cluster URL), each read on
    a connection of its own (one attempt: a master down is said, and does not hold the
    others); None for another kind of URL."""
    if settings.kind != "cluster":
        return None
    from ._topology import direct_settings  # (the cluster's nodes: redis-py's cluster client)

    cluster: Any = sync_client(settings)
    try:
        primaries = [(node.host, int(node.port)) for node in cluster.get_primaries()]
    except redis.RedisError as exc:
        raise translate(exc, settings.url) from exc
    finally:
        cluster.close()
    masters: dict[str, ReplicaGuard | str] = {}
    timeout: int | None = None
    for host, port in primaries:
        where = f"{host}:{port}"
        client: Any = sync_client(direct_settings(settings, host, port))
        try:
            cli = redis_cli(settings, may_run=False, master=where)
            guard = _read(client, where, always=True, cli=cli)
            if guard is not None:
                masters[where] = guard
            timeout = timeout if timeout is not None else _node_timeout(client)
        except (redis.RedisError, OSError) as exc:
            masters[where] = str(translate(exc, where))
        finally:
            client.close()
    return ClusterGuard(masters, timeout)


def _node_timeout(client: Any) -> int | None:
    """cluster-node-timeout, in milliseconds (None: CONFIG GET refused)."""
    try:
        config = client.config_get("cluster-node-timeout")
    except (redis.exceptions.NoPermissionError, redis.ResponseError):
        return None
    value = {text(name): text(value) for name, value in config.items()}.get("cluster-node-timeout")
    return int(value) if value is not None else None


def _configured(client: Any) -> tuple[int | None, int | None]:
    """min-replicas-to-write and min-replicas-max-lag (None, None: CONFIG GET refused)."""
    try:
        config = client.config_get("min-replicas-*")
    except redis.exceptions.NoPermissionError:
        return None, None
    except redis.ResponseError:  # CONFIG renamed away (a managed service): not known either
        return None, None
    said = {text(name): text(value) for name, value in config.items()}
    to_write = said.get("min-replicas-to-write")
    max_lag = said.get("min-replicas-max-lag")
    return (
        int(to_write) if to_write is not None else None,
        int(max_lag) if max_lag is not None else None,
    )
