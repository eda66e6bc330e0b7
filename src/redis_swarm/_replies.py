"""Replies made of fields, read one way: HELLO's (the server's name, version, mode, role), a
sentinel's SENTINEL MASTER and REPLICAS, CLUSTER SHARDS' entries and CLUSTER INFO's
``key:value`` lines. They arrive as a RESP3 map or RESP2's flat list, with bytes or str
(a connection with or without ``decode_responses``), depending on who asks: the operations
(I/O-free), the topology view and the ACL apply each read them through here, so that none
reads a shape the others do not."""

from __future__ import annotations

from typing import Any

__all__ = ["reply_fields", "reply_map", "text"]


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
