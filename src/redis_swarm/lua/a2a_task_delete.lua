--#include _a2a_store
-- a2a_task_delete: remove one task of an owner: its record, its index members, its events.
-- KEYS[1] a2a_records(owner)  KEYS[2] a2a_index(owner)  KEYS[3] a2a_events(task)
-- ARGV[1] task id
-- Returns 1 when the task existed, else 0.
local records, index, id = KEYS[1], KEYS[2], ARGV[1]
local raw = redis.call('HGET', records, 'm|' .. id)
redis.call('DEL', KEYS[3])
if not raw then return 0 end
redis.call('ZREM', index, unpack(a2a_members(id, cjson.decode(raw))))
redis.call('HDEL', records, 't|' .. id, 'm|' .. id)
return 1
