"""Moving hash slots between the masters of a LocalCluster while clients work, as an operator
does it: by hand (SETSLOT IMPORTING / MIGRATING, MIGRATE ... KEYS in small batches, SETSLOT
NODE), or with ``redis-cli --cluster reshard``.

The manual move pauses between batches on purpose: clients then meet the slot half-moved,
which is when Redis answers ASK (the key is already on the target) and TRYAGAIN (a multi-key
command or script whose keys are split between the two nodes, or not all present on either).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from ._cluster import LocalCluster, redis_cli

__all__ = [
    "Move",
    "agree_on_layout",
    "lowest_slot",
    "move_slot",
    "owner",
    "redirect_counts",
    "reset_error_stats",
    "reshard_with_cli",
]

# INFO errorstats prefixes of the replies that tell a client to go elsewhere or come back.
REDIRECTS = ("ASK", "MOVED", "TRYAGAIN", "CROSSSLOT")


@dataclass
class Move:
    """One slot moved: where from, where to, how many keys, and when (monotonic seconds)."""

    slot: int
    source: int
    target: int
    keys: int
    started: float
    ended: float


def _direct(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port)


def _node_id(port: int) -> str:
    with _direct(port) as client:
        return str(client.execute_command("CLUSTER", "MYID"), "ascii")


def _layout(port: int) -> list[tuple[int, int, int]]:
    """(first slot, last slot, master port) of every range, as the node on ``port`` sees it."""
    with _direct(port) as client:
        ranges = client.execute_command("CLUSTER", "SLOTS")
    return sorted((int(first), int(last), int(master[1])) for first, last, master, *_ in ranges)


def owner(cluster: LocalCluster, slot: int) -> int:
    """The port of the master that serves ``slot`` (as the first master sees it)."""
    for first, last, master in _layout(cluster.masters()[0]):
        if first <= slot <= last:
            return master
    raise AssertionError(f"slot {slot} is served by no master")


def agree_on_layout(cluster: LocalCluster, timeout: float = 20.0) -> None:
    """Wait until every node (replicas too) sees the same owner for every slot: what
    ``redis-cli --cluster`` checks before it reshards."""
    deadline = time.monotonic() + timeout
    while True:
        views = {port: _layout(port) for port in cluster.ports}
        if len({tuple(view) for view in views.values()}) == 1:
            return
        assert time.monotonic() < deadline, f"the nodes disagree on the slots: {views}"
        time.sleep(0.02)


def move_slot(
    cluster: LocalCluster, slot: int, target: int, *, batch: int = 2, pause: float = 0.01
) -> Move:
    """Move ``slot`` to the master on port ``target`` key by key, ``batch`` keys per MIGRATE
    with ``pause`` seconds between batches, then give it to the target on every master."""
    source = owner(cluster, slot)
    assert source != target, f"slot {slot} is already on {target}"
    source_id, target_id = _node_id(source), _node_id(target)
    started = time.monotonic()
    moved = 0
    with _direct(source) as src, _direct(target) as dst:
        # The target first: once the source redirects with ASK, the target must accept.
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            time.sleep(pause)
        # The target first again (the order the Redis manual gives), so that the source never
        # sends a client to a node that does not serve the slot yet.
        for port in [target, source, *(p for p in cluster.masters() if p not in (source, target))]:
            with _direct(port) as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return Move(slot, source, target, moved, started, time.monotonic())


def reshard_with_cli(cluster: LocalCluster, source: int, target: int, slots: int) -> float:
    """``redis-cli --cluster reshard`` of ``slots`` slots (the lowest numbered ones the source
    serves) from one master to another; returns the seconds it took."""
    started = time.monotonic()
    command = [
        redis_cli(),
        "--cluster", "reshard", f"127.0.0.1:{source}",
        "--cluster-from", _node_id(source),
        "--cluster-to", _node_id(target),
        "--cluster-slots", str(slots),
        "--cluster-yes",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0 or "[ERR]" in result.stdout:
        raise AssertionError(f"redis-cli --cluster reshard failed:\n{result.stdout[-3000:]}")
    return time.monotonic() - started


def lowest_slot(port: int) -> int:
    """The lowest numbered slot the master on ``port`` serves."""
    return min(first for first, _, master in _layout(port) if master == port)


def reset_error_stats(cluster: LocalCluster) -> None:
    for port in cluster.ports:
        with _direct(port) as client:
            client.config_resetstat()


def redirect_counts(cluster: LocalCluster) -> Counter[str]:
    """ASK, MOVED, TRYAGAIN and CROSSSLOT replies sent since ``reset_error_stats``, summed
    over every node (INFO errorstats)."""
    out: Counter[str] = Counter()
    for port in cluster.ports:
        with _direct(port) as client:
            stats = client.info("errorstats")
        for name, value in stats.items():
            prefix = name.removeprefix("errorstat_")
            if prefix in REDIRECTS:
                out[prefix] += int(value["count"])
    return out


def calls(client: Any, command: str) -> int:
    """How many times one node ran ``command`` (INFO commandstats; since its last reset)."""
    stats = client.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if isinstance(stats, dict) else 0


def errors_sent(client: Any, error: str) -> int:
    """How many ``error`` replies (MOVED, ASK...) one node sent (INFO errorstats)."""
    stats = client.info("errorstats").get(f"errorstat_{error}")
    return int(stats["count"]) if isinstance(stats, dict) else 0


def command_count(cluster: LocalCluster, command: str) -> int:
    """How many times ``command`` ran since ``reset_error_stats``, summed over every node."""
    total = 0
    for port in cluster.ports:
        with _direct(port) as client:
            total += calls(client, command)
    return total
