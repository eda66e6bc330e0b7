"""Replies made of fields, read one way: HELLO's (the server's name, version, mode, role), a
sentinel's SENTINEL MASTER and REPLICAS, CLUSTER SHARDS' entries and CLUSTER INFO's
``key:value`` lines. They arrive as a RESP3 map or RESP2's flat list, with bytes or str
(a connection with or without ``decode_responses``), depending on who asks: the operations
(I/O-free), the topology view and the ACL apply each read them through here, so that none
reads a shape the others do not. (The operations' stream entries and hashes too: a flat list
of fields and values, or a map.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ShardNode", "cluster_shards", "reply_fields", "reply_map", "text"]


def text(value: Any) -> str:
    """A reply's value as str: bytes decoded (an undecodable byte replaced, not fatal: these
    are shown, never stored), anything else as ``str`` gives it."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def reply_map(reply: Any) -> dict[str, Any]:
    """A map reply (or RESP2's flat list of keys and values) with str keys and the values as
    they came (a nested reply stays one); {} for anything else."""
    if isinstance(reply, list | tuple):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    return {text(k): v for k, v in reply.items()} if isinstance(reply, dict) else {}


def reply_fields(reply: Any) -> dict[str, str]:
    """A reply of fields (a map, RESP2's flat list, or INFO-style ``key:value`` lines) with
    str keys and values (a nested value, such as HELLO's ``modules``, as ``str`` gives it)."""
    if isinstance(reply, bytes | str):
        lines = (line.partition(":") for line in text(reply).splitlines())
        return {k.strip(): v.strip() for k, sep, v in lines if sep}
    return {k: text(v) for k, v in reply_map(reply).items()}


@dataclass(frozen=True)
class ShardNode:
    """A node as a CLUSTER SHARDS reply lists it ("" for a field it leaves out). ``endpoint``
    is the one its clients dial, as the node asked picks it by its
    cluster-preferred-endpoint-type ("?" when it knows none); ``role`` master or replica;
    ``health`` online, fail or loading (the cluster agrees it failed: ``fail``; a node only
    some find silent, PFAIL, is still online here)."""

    id: str
    endpoint: str
    hostname: str
    ip: str
    port: str
    tls_port: str
    role: str
    health: str

    def address(self, tls: bool) -> str:
        """``host:port`` it is dialled at: its endpoint, else its IP; its TLS port on TLS."""
        host = self.ip if self.endpoint in ("", "?") else self.endpoint
        return f"{host}:{self.tls_port if tls and self.tls_port else self.port}"


def cluster_shards(reply: Any) -> list[tuple[list[int], list[ShardNode]]]:
    """A CLUSTER SHARDS reply (as sent, or as redis-py's cluster client parses it): each
    shard's slot bounds, flat (``[start, end, start, end...]``), and its nodes."""
    shards: list[tuple[list[int], list[ShardNode]]] = []
    for shard in reply or []:
        fields = reply_map(shard)
        bounds: list[int] = []
        for item in fields.get("slots") or []:  # (redis-py may pair them)
            bounds += [int(x) for x in item] if isinstance(item, list | tuple) else [int(item)]
        nodes = [_shard_node(reply_map(node)) for node in fields.get("nodes") or []]
        shards.append((bounds, nodes))
    return shards


def _shard_node(node: dict[str, Any]) -> ShardNode:
    def field(name: str) -> str:
        value = node.get(name)
        return text(value) if value else ""  # (a port of 0 is no port)

    return ShardNode(
        id=field("id"),
        endpoint=field("endpoint"),
        hostname=field("hostname"),
        ip=field("ip"),
        port=field("port"),
        tls_port=field("tls-port"),
        role=field("role"),
        health=field("health"),
    )
