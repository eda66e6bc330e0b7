--#include _a2a_store
-- a2a_task_save: store one task of an a2a-sdk server, with its version check and its event.
-- mode 'plain' (TaskStore.save): overwrite, the version unchanged (a plain store does not
-- version). mode 'check' (VersionedTaskStore.save): the stored version must be ARGV[7] (0: no
-- version yet), else nothing is written and -1 returned; the new version is that plus one.
-- mode 'cancel' (a save that moves the task to CANCELED): no version check, but the task must
-- exist and not be terminal, else -1. A versioned save carries a write id: the same write sent
-- again after a lost reply finds it and returns its version, instead of failing the check.
-- The event (if any) joins the task's stream in the same step, under the new version; when
-- the task is terminal its stream expires ARGV[11] ms later (0: kept until deleted).
-- KEYS[1] a2a_records(owner)  KEYS[2] a2a_index(owner)  KEYS[3] a2a_events(task)
-- ARGV[1] task id  ARGV[2] task (bytes)  ARGV[3] context id  ARGV[4] state (number)
-- ARGV[5] sort key  ARGV[6] mode  ARGV[7] expected version  ARGV[8] write id
-- ARGV[9] event (bytes; '' = none)  ARGV[10] terminal states, as ',3,4,'  ARGV[11] ms
-- Returns the task's version after the write, or -1 (a stale version; or cancel refused).
local records, index, events = KEYS[1], KEYS[2], KEYS[3]
local id, mode, write = ARGV[1], ARGV[6], ARGV[8]
local function terminal(state)
  return string.find(ARGV[10], ',' .. tostring(state) .. ',', 1, true) ~= nil
end

local raw = redis.call('HGET', records, 'm|' .. id)
local old = raw and cjson.decode(raw) or nil
local version = old and old.v or 0
if mode ~= 'plain' then
  if old and write ~= '' and old.w == write then return version end
  if mode == 'cancel' then
    if not old or terminal(old.s) then return -1 end
  elseif version ~= tonumber(ARGV[7]) then
    return -1
  end
  version = version + 1
end

local meta = {v = version, s = tonumber(ARGV[4]), c = redis.sha1hex(ARGV[3]), k = ARGV[5],
              w = mode == 'plain' and '' or write}
if old then redis.call('ZREM', index, unpack(a2a_members(id, old))) end
local add = {}
for _, member in ipairs(a2a_members(id, meta)) do
  add[#add + 1] = 0
  add[#add + 1] = member
end
redis.call('ZADD', index, unpack(add))
redis.call('HSET', records, 't|' .. id, ARGV[2], 'm|' .. id, cjson.encode(meta))
if ARGV[9] ~= '' and version > 0 then a2a_append(events, version, ARGV[9]) end
if terminal(meta.s) and tonumber(ARGV[11]) > 0 then
  redis.call('PEXPIRE', events, ARGV[11])
end
return version
