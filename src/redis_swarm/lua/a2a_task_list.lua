--#include _a2a_store
-- a2a_task_list: one page of an owner's tasks, in ListTasks order, and how many match.
-- flags: no-writes
-- KEYS[1] a2a_records(owner)  KEYS[2] a2a_index(owner)
-- ARGV[1] listing: 'a' every task, 'c' of a context, 's' in a state, 'x' both
-- ARGV[2] context id  ARGV[3] state  ARGV[4] the padded status time the tasks must be at or
-- after ('' = any; tasks without a time are then left out)  ARGV[5] cursor: the sort key and
-- id of the last task of the previous page ('' = from the top)  ARGV[6] a legacy page token's
-- task id: the page starts at that task ('' = none)  ARGV[7] page size  ARGV[8] sort key width
-- Returns {total, cursor of the next page or '', id, task, id, task, ...}, or {-1} when the
-- legacy token's task does not exist.
local records, index = KEYS[1], KEYS[2]
local prefix = a2a_prefix(ARGV[1], redis.sha1hex(ARGV[2]), ARGV[3])
local low = ARGV[4] ~= '' and ('[' .. prefix .. '1' .. ARGV[4]) or ('[' .. prefix)
local top = '(' .. prefix .. '2'  -- sort keys start with '0' or '1'
local total = redis.call('ZLEXCOUNT', index, low, top)
local high = top
if ARGV[6] ~= '' then
  local raw = redis.call('HGET', records, 'm|' .. ARGV[6])
  if not raw then return {-1} end
  high = '[' .. prefix .. cjson.decode(raw).k .. ARGV[6]
elseif ARGV[5] ~= '' then
  high = '(' .. prefix .. ARGV[5]
end
local size = tonumber(ARGV[7])
local found = redis.call('ZREVRANGEBYLEX', index, high, low, 'LIMIT', 0, size + 1)
local out = {total, ''}
local n = math.min(#found, size)
if n == 0 then return out end
local id_at = #prefix + tonumber(ARGV[8]) + 1
local fields = {}
for i = 1, n do
  out[#out + 1] = string.sub(found[i], id_at)
  fields[i] = 't|' .. out[#out]
  out[#out + 1] = false
end
local tasks = redis.call('HMGET', records, unpack(fields))
for i = 1, n do out[2 + 2 * i] = tasks[i] end
if #found > size then out[2] = string.sub(found[size], #prefix + 1) end
return out
