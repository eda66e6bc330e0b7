"""What the parts of a script cost the server, in instructions, under callgrind
(``_callgrind``): an FCALL itself and each key and argument it carries, a ``redis.call``, and
the Lua a task's scripts are made of (string functions, tables, cjson). The unit prices for
whoever weighs a change to the scripts before making it (docs/benchmarks.md, "Session 31")::

    python -m benchmarks.lua_costs [-n 200]

Each Lua operation runs 1,000 times inside one FCALL, less the same loop doing nothing; each
FCALL shape is called ``-n`` times. A benchmark, not a test; not part of ``run_all``. Needs
valgrind.
"""

from __future__ import annotations

import argparse
import json

from benchmarks._callgrind import CallgrindServer

LOOPS = 1000  # Lua operations per FCALL

# A lifecycle record as a claim leaves it (the lifecycle benchmark's task, claimed once).
RECORD = json.dumps(
    {
        "id": "t-01JEXAMPLE0000000000000000", "queue": "bench", "description": "noop",
        "priority": 0, "max_attempts": 3, "lease_s": 900, "max_abandons": 3, "seq": 12,
        "created_at": 1800000000000, "attempts": 1, "failures": 0, "abandons": 0,
        "claims": {"1": "bench-1234"}, "status": "claimed",
        "seals": {"1": "5f2c34aa141f38013eadc839ed655542bad81e4b"}, "worker": "bench-1234",
        "claimed_at": 1800000000000, "lease_ms": 900000, "lease_deadline": 1800000900000,
    },
    separators=(",", ":"),
)  # fmt: skip

# Lua operations: name -> the statement run LOOPS times (rec: RECORD, i: the loop counter).
OPERATIONS = {
    "a call of a local function": "f(i)",
    "an empty table": "local t = {}",
    "a table of three fields": "local t = {a = i, b = 2, c = 'x'}",
    "string.format('%d')": "local s = string.format('%d', 1800000000000 + i)",
    "tostring of an integer": "local s = tostring(i)",
    "tonumber of a 13-digit string": "local s = tonumber('1800000000000')",
    "a concatenation of two strings": "local s = a1 .. a2",
    "a concatenation with a number": "local s = 'abc' .. i .. 'def'",
    "string.find, plain, in the record": "local s = string.find(rec, '\"status\":', 1, true)",
    "string.match of a number in the record": "local s = string.match(rec, '\"attempts\":(%d+)')",
    "string.sub of the record": "local s = string.sub(rec, 10, 200)",
    "unpack of five values": "g(unpack(five))",
    "cjson.decode of the record": "local t = cjson.decode(rec)",
    "cjson.decode and cjson.encode of the record": "local t = cjson.encode(cjson.decode(rec))",
    "redis.sha1hex of a 40-character secret": "local s = redis.sha1hex(a3)",
    "redis.call('HGET') of a missing field": "redis.call('HGET', k, 'none')",
    "redis.call('TIME')": "redis.call('TIME')",
}
# FCALLs: name -> (function, number of keys, the FCALL's keys and arguments).
KEY = "{swarm:bench}:pending:bench"
CALLS = {
    "an FCALL of an empty function, one key": ("nothing", 1, [KEY]),
    "the same with 26 keys more": ("nothing", 27, [f"{KEY}:{i}" for i in range(27)]),
    "the same with 26 arguments of 8 bytes": ("nothing", 1, [KEY, *["abcdefgh"] * 26]),
    "the same with 26 arguments of 480 bytes": ("nothing", 1, [KEY, *["abcdefgh" * 60] * 26]),
    "an FCALL returning the record twice": ("echo", 1, [KEY, RECORD]),
}


def library() -> str:
    lines = [
        "#!lua name=lua_costs",
        f"local rec = {json.dumps(RECORD)}",
        "local function f(x) return x end",
        "local function g(...) return 1 end",
        "local five, a1, a2 = {1, 2, 3, 4, 5}, 'bench', '|pending'",
        "local a3 = '5f2c34aa141f38013eadc839ed655542bad81e4b'",
        "redis.register_function('nothing', function(keys, args) return 1 end)",
        "redis.register_function('echo', function(keys, args) return {args[1], args[1]} end)",
        "redis.register_function('loop', function(keys, args)",
        f"  local k = keys[1] for i = 1, {LOOPS} do end return 1 end)",
    ]
    for n, body in enumerate(OPERATIONS.values()):
        lines += [
            f"redis.register_function('op{n}', function(keys, args)",
            f"  local k = keys[1] for i = 1, {LOOPS} do {body} end return 1 end)",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="FCALLs per measure")
    n = parser.parse_args().n
    with CallgrindServer() as server:
        client = server.client()
        client.function_load(library(), replace=True)

        def per_call(function: str, keys: int, args: list[str]) -> float:
            def run() -> None:
                for _ in range(n):
                    client.fcall(function, keys, *args)

            return server.measure(run).per(n)["total"] * 1000

        print(f"{'instructions':>12}  FCALL ({n} calls each)")
        for name, (function, keys, args) in CALLS.items():
            print(f"{per_call(function, keys, args):12,.0f}  {name}")
        empty = per_call("loop", 1, [KEY]) / LOOPS
        print(f"{'instructions':>12}  Lua operation ({LOOPS:,} per call, an empty loop less)")
        for i, name in enumerate(OPERATIONS):
            print(f"{per_call(f'op{i}', 1, [KEY]) / LOOPS - empty:12,.0f}  {name}")
        client.close()


if __name__ == "__main__":
    main()
