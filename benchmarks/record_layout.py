"""The server's instructions for a claim's update of one task record, in three layouts: today's
JSON blob in the tasks hash (``HGET``, ``cjson.decode``, the claim's eight fields set,
``cjson.encode``, ``HSET``), the same blob edited as text (the fields a claim reads found
with Lua's string functions, the eight it changes spliced in, no cjson) and a hash per task
(``HMGET`` of the six fields a claim reads, one ``HSET`` of the eight it changes); each as a
script, under callgrind (``_callgrind``), on the record the lifecycle benchmark posts. What a
redesign of the record would save, measured before building it (docs/benchmarks.md,
"Session 30" and "Session 31")::

    python -m benchmarks.record_layout [-n 300]

A benchmark, not a test; not part of ``run_all``. Needs valgrind.
"""

from __future__ import annotations

import argparse
import json

from benchmarks._callgrind import CallgrindServer
from redis_swarm import Swarm

# ARGV: task id, now (ms), worker, the lease's seal, then (hash) the attempt and the deadline.
JSON_UPDATE = """
local t = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]))
local now = tonumber(ARGV[2])
t.status = 'claimed'
t.attempts = t.attempts + 1
t.claimed_at = now
t.lease_deadline = now + 900000
t.lease_ms = 900000
t.worker = ARGV[3]
t.claims[tostring(t.attempts)] = ARGV[3]
t.seals = t.seals or {}
t.seals[tostring(t.attempts)] = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(t))
return t.attempts
"""
# The blob edited as text. A key's pattern '"key":' never matches inside a string value
# (there every quote is escaped), and the values edited here hold no escapes.
TEXT_UPDATE = r"""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local function span(key)  -- where key's value starts and ends
  local at = string.find(raw, '"' .. key .. '":', 1, true)
  if not at then return nil end
  local s = at + #key + 3
  local first = string.sub(raw, s, s)
  if first == '"' then return s, string.find(raw, '"', s + 1, true) end
  if first == '{' then return s, string.find(raw, '}', s, true) end
  return s, string.find(raw, '[,}]', s) - 1
end
local function value(key)
  local s, e = span(key)
  return s and string.sub(raw, s, e)
end
local attempts = tonumber(value('attempts')) + 1
local _ = {value('status'), value('queue'), value('priority'), value('lease_s'),
           value('max_abandons')}
local n = tostring(attempts)
local function added(key, v)  -- the object of key with one more member
  local s, e = span(key)
  if not s then return '{"' .. n .. '":"' .. v .. '"}' end
  return string.sub(raw, s, e - 1) .. (e - s > 1 and ',' or '') .. '"' .. n .. '":"' .. v .. '"}'
end
local changes = {status = '"claimed"', attempts = n, claimed_at = ARGV[2],
                 lease_deadline = ARGV[6], lease_ms = '900000', worker = '"' .. ARGV[3] .. '"',
                 claims = added('claims', ARGV[3]), seals = added('seals', ARGV[4])}
local edits, tail = {}, {}
for key, v in pairs(changes) do
  local s, e = span(key)
  if s then edits[#edits + 1] = {s, e, v} else tail[#tail + 1] = ',"' .. key .. '":' .. v end
end
table.sort(edits, function(a, b) return a[1] < b[1] end)
local out, pos = {}, 1
for _, edit in ipairs(edits) do
  out[#out + 1] = string.sub(raw, pos, edit[1] - 1)
  out[#out + 1] = edit[3]
  pos = edit[2] + 1
end
out[#out + 1] = string.sub(raw, pos, -2) .. table.concat(tail) .. '}'
redis.call('HSET', KEYS[1], ARGV[1], table.concat(out))
return attempts
"""
HASH_UPDATE = """
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'priority', 'queue', 'lease_s',
                     'max_abandons')
redis.call('HSET', KEYS[1], 'status', 'claimed', 'attempts', ARGV[5], 'claimed_at', ARGV[2],
           'lease_deadline', ARGV[6], 'lease_ms', '900000', 'worker', ARGV[3],
           'claims.' .. ARGV[5], ARGV[3], 'seals.' .. ARGV[5], ARGV[4])
return tonumber(f[2]) + 1
"""
NOW, DEADLINE, SEAL = "1800000000000", "1800000900000", "5f2c34aa141f38013eadc839ed655542bad81e4b"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="records updated per layout")
    n = parser.parse_args().n
    with CallgrindServer() as server:
        swarm = Swarm(server.url, swarm="bench")
        posted = swarm.post_task("q", "noop", {"i": 1, "t0": 0.0})
        client = server.client()
        record = client.hget(swarm.keys.tasks, posted.id)
        assert isinstance(record, bytes)
        fields = {
            k: json.dumps(v) if isinstance(v, dict | list) else str(v)
            for k, v in json.loads(record).items()
        }
        ids = [f"t-{i}" for i in range(n)]
        for task_id in ids:
            client.hset("records", task_id, record)
            client.hset("edited", task_id, record)
            client.hset(f"record:{task_id}", mapping=fields)
        as_json, as_hash = client.script_load(JSON_UPDATE), client.script_load(HASH_UPDATE)
        as_text = client.script_load(TEXT_UPDATE)

        def json_layout() -> None:
            for task_id in ids:
                client.evalsha(as_json, 1, "records", task_id, NOW, "w1", SEAL)

        def text_layout() -> None:
            for task_id in ids:
                client.evalsha(as_text, 1, "edited", task_id, NOW, "w1", SEAL, "1", DEADLINE)

        def hash_layout() -> None:
            for task_id in ids:
                key = f"record:{task_id}"
                client.evalsha(as_hash, 1, key, task_id, NOW, "w1", SEAL, "1", DEADLINE)

        print(f"the record: {len(record)} bytes of JSON, {len(fields)} fields")
        layouts = (
            ("JSON blob", json_layout),
            ("JSON edited as text", text_layout),
            ("hash per task", hash_layout),
        )
        for name, run in layouts:
            per = server.measure(run).per(n)
            print(f"{name}: {per['total']:.1f} thousand instructions per update")
        json_bytes = client.memory_usage("records") or 0
        hash_bytes = client.memory_usage(f"record:{ids[0]}") or 0
        print(f"memory per record: JSON ~{json_bytes / n:.0f} bytes, hash {hash_bytes} bytes")
        edited, decoded = client.hget("edited", ids[0]), client.hget("records", ids[0])
        assert edited and decoded and json.loads(edited) == json.loads(decoded), "text edit differs"
        client.close()
        swarm.close()


if __name__ == "__main__":
    main()
