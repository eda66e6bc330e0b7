-- agent_heartbeat: mark an agent present now; optionally set the task it works on.
-- The record is JSON written by agent_register, whose last key is "current_task" (records
-- of implicitly registered workers have none: it is appended). The value is replaced as
-- text, so that the rest of the record (metadata with empty lists, big numbers) is kept
-- byte for byte, which a cjson decode/encode round trip would not do.
-- KEYS[1]: agents (HASH id -> record JSON)   KEYS[2]: presence (ZSET id -> last heartbeat)
-- ARGV[1]: agent id   ARGV[2]: now (0 = server time)
-- ARGV[3]: '1' to set the current task, '0' to leave it   ARGV[4]: the task as JSON
--          (a string, or null to clear it)
-- KEYS[3]: tasks (HASH id -> task)   ARGV[5]: the task's id ('' = none, or clearing it)
-- returns {record, now}
local id = ARGV[1]
local record = redis.call('HGET', KEYS[1], id)
if not record then
  return swarm_error('SWARM_NOTFOUND', 'agent ' .. id .. ' is not registered (never, or it '
    .. 'was swept as stale or deregistered): register it again '
    .. register_agent_command(id))
end
-- A task no one posted would show the agent working on nothing, in every view.
if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[5]) == 0 then
  return swarm_error('SWARM_NOTFOUND', 'task ' .. ARGV[5] .. ' does not exist: check the '
    .. 'id with swarm task list; nothing was changed')
end
local now = now_ms(ARGV[2])
redis.call('ZADD', KEYS[2], now, id)
if ARGV[3] == '1' then
  local marker = ',"current_task":'
  local last, from = nil, 1
  while true do
    local at = string.find(record, marker, from, true)
    if not at then break end
    last, from = at, at + 1
  end
  local head = last and string.sub(record, 1, last - 1) or string.sub(record, 1, -2)
  record = head .. marker .. ARGV[4] .. '}'
  redis.call('HSET', KEYS[1], id, record)
end
return {record, now}
