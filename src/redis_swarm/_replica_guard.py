"""Whether a master with replicas refuses writes when cut off from them:
``replica_guard(settings)``, for ``swarm doctor``.

Redis replicates asynchronously, and a master does not know it was demoted until Sentinel tells
it, seconds after the sentinels promoted another (at their next look at it). Meanwhile the
clients still connected to it (a pool's open connections) keep writing there, while those that
asked the sentinels again write to the new master: two masters, and what the old one took is
dropped when it becomes a replica of the new one (acknowledged findings lost, claims unknown to
the new master, tasks run twice). ``min-replicas-to-write 1`` closes that window: a master with
no replica that acknowledged within ``min-replicas-max-lag`` seconds refuses writes
(NOREPLICAS), and a promoted replica leaves its old master at once. Its cost: a master whose
replicas are all down refuses writes too (docs/deployment.md, "Sentinel").

Not asked on a Redis Cluster (a master cut off from the majority stops taking writes after
``cluster-node-timeout`` by itself, and ``CLUSTER FAILOVER`` pauses the old master's clients
until its replica caught up) nor of the embedded server (no replica reaches its socket).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from ._codec import counted
from ._config import Settings
from ._connect import sync_client
from ._replies import text
from ._translate import translate

__all__ = ["ReplicaGuard", "replica_guard"]

# The two lines docs/deployment.md's Sentinel recipe sets on every server of the set.
GUARD_LINES = "min-replicas-to-write 1 and min-replicas-max-lag 10"
# What the row says where this user may not run CONFIG GET (every role but an admin).
GUARD_UNKNOWN = "unknown (this user may not run CONFIG GET)"


@dataclass(frozen=True)
class ReplicaGuard:
    """``min-replicas-to-write`` of a master with replicas, or behind Sentinel. None: not
    known (``replicas``: this user may not run INFO; ``to_write``, ``max_lag``: nor CONFIG
    GET)."""

    where: str  # the URL, as shown
    replicas: int | None  # connected now
    to_write: int | None
    max_lag: int | None

    @property
    def row(self) -> str:
        """The doctor's ``min_replicas_to_write`` row."""
        if self.to_write is None:
            return GUARD_UNKNOWN
        if self.to_write == 0:
            return "0: a master cut off from its replicas still takes writes (see the warnings)"
        return (
            f"{self.to_write}, max lag {self.max_lag} s: a master with fewer replicas in reach "
            "refuses writes"
        )

    @property
    def warning(self) -> str | None:
        """The risk of ``min-replicas-to-write 0`` and the two lines to set; None when it is
        set, or not known."""
        if self.to_write != 0:
            return None
        has = "" if self.replicas is None else f" ({counted(self.replicas, 'replica')} connected)"
        return (
            f"min-replicas-to-write is 0 on the master of {self.where}{has}: in a failover, "
            "a planned SENTINEL FAILOVER included, the old master goes on taking the writes of "
            "the clients still connected to it until Sentinel makes it a replica, seconds "
            "later, and then drops them (acknowledged findings lost, tasks run twice). Set "
            f"{GUARD_LINES} on every server of the set (in redis.conf, and CONFIG SET now): a "
            "master cut off from its replicas then refuses writes. The cost: a master whose "
            "only replica is down refuses writes too (keep two replicas to write through the "
            "loss of one); docs/deployment.md, 'Sentinel'"
        )


def replica_guard(settings: Settings) -> ReplicaGuard | None:
    """The guard of the master ``settings`` reaches, on a connection of its own: for a
    Sentinel URL always, for a plain one when INFO shows a master with connected replicas;
    None otherwise (a cluster, the embedded server, a replica, a master alone, or one whose
    INFO this user may not read outside Sentinel)."""
    if settings.kind in ("cluster", "embedded"):
        return None
    client: Any = sync_client(settings)
    try:
        replicas: int | None = None
        try:
            replication = client.info("replication")
        except redis.exceptions.NoPermissionError:  # a worker: INFO lists every swarm's keys
            if settings.kind != "sentinel":
                return None
        else:
            if text(replication.get("role", "")) != "master":
                return None
            replicas = int(replication.get("connected_slaves", 0))
            if settings.kind != "sentinel" and not replicas:
                return None
        to_write, max_lag = _configured(client)
    except redis.RedisError as exc:
        raise translate(exc, settings.url) from exc
    finally:
        client.close()
    return ReplicaGuard(settings.url, replicas, to_write, max_lag)


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
