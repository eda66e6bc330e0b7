"""``_replies.reply_fields``: the one reader of HELLO's reply (and the other replies of fields)
that ``swarm doctor``'s server info, the topology view and the ACL apply share. It meets a
RESP2 flat list or a RESP3 map, bytes or str, and INFO-style ``key:value`` lines."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from redis_swarm._replies import reply_fields, reply_map

from ._servers import RedisServer

HELLO_FIELDS = {"server": "redis", "version": "7.2.4", "proto": "2", "id": "5",
                "mode": "standalone", "role": "master", "modules": "[]"}  # fmt: skip


def test_a_resp2_flat_list_of_bytes() -> None:
    reply = [b"server", b"redis", b"version", b"7.2.4", b"proto", 2, b"id", 5,
             b"mode", b"standalone", b"role", b"master", b"modules", []]  # fmt: skip
    assert reply_fields(reply) == HELLO_FIELDS


def test_a_resp3_map_of_bytes() -> None:
    reply = {b"server": b"redis", b"version": b"7.2.4", b"proto": 2, b"id": 5,
             b"mode": b"standalone", b"role": b"master", b"modules": []}  # fmt: skip
    assert reply_fields(reply) == HELLO_FIELDS


def test_str_values_as_a_decoding_connection_gives_them() -> None:
    reply = {"server": "redis", "version": "7.2.4", "proto": 2, "id": 5,
             "mode": "standalone", "role": "master", "modules": []}  # fmt: skip
    assert reply_fields(reply) == HELLO_FIELDS
    assert reply_fields(tuple(item for pair in reply.items() for item in pair)) == HELLO_FIELDS


def test_info_style_lines_bytes_or_str() -> None:
    lines = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n# a header\r\n\r\nbare\r\n"
    expected = {"cluster_state": "ok", "cluster_slots_assigned": "16384"}
    assert reply_fields(lines) == expected
    assert reply_fields(lines.encode()) == expected


def test_an_undecodable_byte_is_replaced_not_fatal() -> None:
    assert reply_fields([b"version", b"7.2\xff"]) == {"version": "7.2\ufffd"}


def test_what_is_no_reply_of_fields_reads_as_none() -> None:
    assert reply_fields(None) == {} and reply_fields(3) == {}
    assert reply_map(None) == {}


def test_a_map_keeps_its_nested_values() -> None:
    nested = [{b"id": b"n1"}]
    assert reply_map([b"nodes", nested, "slots", [0, 5]]) == {"nodes": nested, "slots": [0, 5]}


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [False, True])
def test_a_real_servers_hello(redis_server: RedisServer, protocol: int, decode: bool) -> None:
    """Every shape a real server's HELLO reaches the readers in, through redis-py."""
    client: Any = redis.Redis(
        host="127.0.0.1", port=redis_server.port or 0, protocol=protocol, decode_responses=decode
    )
    try:
        reply: Any = client.execute_command("HELLO")
        version = str(client.info("server")["redis_version"])
    finally:
        client.close()
    fields = reply_fields(reply)
    assert fields["version"] == version
    assert (fields["server"], fields["mode"], fields["role"]) == ("redis", "standalone", "master")
