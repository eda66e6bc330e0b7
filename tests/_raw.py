"""Raw redis-py access to the server a test's swarm lives on, standalone or cluster alike.

Tests inspect what the operations stored (keys, TTLs, events) and what they cost (INFO
commandstats). On a Redis Cluster the keys of one swarm live on one master and its context
chunks on all of them, and every node keeps its own statistics: these helpers hide that, so
that one test body checks both kinds of server.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from redis_swarm import Swarm
from redis_swarm._protocol import Call, Operation

__all__ = [
    "command_calls",
    "net_output_bytes",
    "raw_client",
    "reset_stats",
    "run_script",
    "scan_keys",
    "script_calls",
]


# Not the operation's: the test's own probes, a connection's handshake, and replication
# traffic (a replica's REPLCONF ACK to its master lands in the master's commandstats).
_NOT_COUNTED = frozenset(
    {"info", "config", "cluster", "hello", "auth", "client", "command", "replconf", "psync"}
)


def raw_client(url: str, **kwargs: Any) -> Any:
    """A redis-py client for ``url`` (redis:// or redis+cluster://); use it with ``with``."""
    if url.startswith("redis+cluster://"):
        hosts = url.split("://", 1)[1].split("?", 1)[0].split(",")
        nodes = [ClusterNode(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def _per_master(client: Any, section: str) -> list[dict[str, Any]]:
    if isinstance(client, RedisCluster):
        replies = client.info(section, target_nodes=RedisCluster.PRIMARIES)
        return list(replies.values())
    return [client.info(section)]


def blocked_clients(client: Any) -> int:
    """Clients blocked on the server (on every master of a cluster): a wait that began."""
    return sum(int(info["blocked_clients"]) for info in _per_master(client, "clients"))


def scan_keys(client: Any, pattern: str) -> list[Any]:
    """Every key matching ``pattern`` (on every master of a cluster)."""
    return list(client.scan_iter(pattern))


def reset_stats(client: Any) -> None:
    """CONFIG RESETSTAT (on every master of a cluster)."""
    if isinstance(client, RedisCluster):
        client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.config_resetstat()


def command_calls(client: Any) -> dict[str, int]:
    """Commands run since ``reset_stats`` (INFO commandstats, summed over the masters), minus
    the test's own INFO and CONFIG and what opening a connection costs (HELLO, AUTH, CLIENT,
    and the cluster client's topology requests): a cluster client opens one connection per
    node it talks to, so a first request to a node pays a handshake that is not the call's."""
    out: dict[str, int] = {}
    for stats in _per_master(client, "commandstats"):
        for name, value in stats.items():
            if name.removeprefix("cmdstat_").split("|")[0] in _NOT_COUNTED:
                continue
            key = name.removeprefix("cmdstat_")
            out[key] = out.get(key, 0) + int(value["calls"])
    return out


# The commands that run a script: FCALL of the library (Redis >= 7), EVALSHA elsewhere.
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "evalsha_ro", "fcall", "fcall_ro"})


def script_calls(calls: dict[str, int]) -> int:
    """How many script calls a ``command_calls`` count holds."""
    return sum(n for name, n in calls.items() if name in SCRIPT_COMMANDS)


def net_output_bytes(client: Any) -> int:
    """Bytes the server(s) sent to clients since ``reset_stats``."""
    return sum(int(stats["total_net_output_bytes"]) for stats in _per_master(client, "stats"))


def _call(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> Operation[Any]:
    reply = yield Call(script, keys, args)
    return reply


def run_script(swarm: Swarm, script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
    """One call of a script, as the operations make it (FCALL of the library, or EVALSHA
    where Functions do not exist): its raw reply."""
    return swarm._run(_call(script, keys, args))
