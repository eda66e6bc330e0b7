"""The stdio screen: which lines it replaces, and the id it finds wherever it sits."""

from __future__ import annotations

import json

from redis_swarm.mcp_server._stdin import request_id, screen

DEEP = "[" * 3000 + "]" * 3000


def test_the_id_is_found_at_the_top_level_only() -> None:
    assert request_id(b'{"method":"x","params":{"id":7,"a":' + DEEP.encode() + b'},"id":9}') == 9
    assert request_id(b'{"id":"a\\"b","params":' + DEEP.encode() + b"}") == 'a"b'
    assert request_id(b'{"method":"id","params":{"id":1}}') is None
    assert request_id(b"not json at all") is None


def test_only_lines_the_protocol_cannot_parse_are_replaced() -> None:
    fine = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode() + b"\n"
    assert screen(fine) is fine
    wide = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"a": [[1]] * 500}}
    line = json.dumps(wide).encode() + b"\n"  # many brackets, shallow: untouched
    assert screen(line) is line
    deep = b'{"jsonrpc":"2.0","method":"tools/call","params":{"a":' + DEEP.encode() + b'},"id":3}'
    ping = json.loads(screen(deep))
    assert ping["id"] == 3 and ping["method"] == "ping"
    assert "nested" in ping["params"]["_meta"]["io.redis-swarm/refused"]
    assert screen(b'{"jsonrpc":"2.0","method":"x","params":' + DEEP.encode() + b"}") == b""


def test_every_malformed_line_is_replaced_whatever_its_size() -> None:
    """Short lines too: a trailing comma, a truncated call, a lone surrogate."""
    bad = (
        b'{"jsonrpc":"2.0","id":2,"method":"ping",}\n',
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"claim_ta\n',
        b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x",'
        b'"arguments":{"q":"\\ud800"}}}\n',
    )
    for ident, line in enumerate(bad, start=2):
        ping = json.loads(screen(line))
        assert ping["id"] == ident and ping["method"] == "ping"
        said = ping["params"]["_meta"]["io.redis-swarm/refused"]
        assert "not valid JSON-RPC" in said and "send it again" in said
    assert screen(b"\n") == b"\n"
