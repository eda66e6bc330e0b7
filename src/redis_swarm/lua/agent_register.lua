-- agent_register: store an agent's record, mark it present, start its broadcast cursor at
-- the newest broadcast (an agent receives the broadcasts sent after it joined).
-- Registering an existing id again replaces its profile (a restarted agent keeps its name,
-- its inbox, its broadcast cursor and its registered_at: the same life, whose reads a
-- broadcast's status counts; a new life, after it left or was swept, gets a new one).
-- Each registration records an agent.joined event (an agent arriving: a process starting
-- as it), unless ARGV[9] says the agent's running process only revises its profile and the
-- agent is registered (the same life). Each call carries a registration token of its own,
-- stored in the record: a call sent again after its reply was lost finds its token there
-- and changes nothing (one agent.joined event).
-- KEYS[1]: agents (HASH id -> record JSON)   KEYS[2]: presence (ZSET id -> last heartbeat)
-- KEYS[3]: cursors (HASH id -> last broadcast id read)   KEYS[4]: broadcast (STREAM)
-- KEYS[5]: events (STREAM)   KEYS[6]: contexts (HASH owner -> manifest)
-- ARGV[1]: agent id   ARGV[2]: record JSON without its tail (the script appends
--          ',"registered_at":T,"current_task":null}', T the stored record's registered_at,
--          else now); its second key is "registration"
-- ARGV[3]: now (0 = server time)   ARGV[4]: events maxlen   ARGV[5]: role
-- ARGV[6]: parent ('' for none)   ARGV[7]: this call's registration token
-- A parent is refused (nothing written) unless an agent is registered under it, or it owns a
-- context (a swarm serve slot's parent is the owner it answers for, an agent or not), or the
-- stored record holds it already: checked here, beside the write, so that no face's
-- check-then-register races, and an agent registered again (a session joining, a revision)
-- keeps the parent it was registered with even once that parent left or was swept.
-- ARGV[8] (optional, a compare-and-set: ``join``): the record its caller built this one
--          from ('' when it was not registered); when the stored one is another, nothing is
--          written and 0 is returned: the caller reads again and builds anew
-- ARGV[9] (optional, with ARGV[8]: ``join(announce=False)``): '1' when no agent.joined is
--          recorded for an agent registered in this life (a revision, not an arrival)
-- returns {record, now}, or 0 (ARGV[8] given and no longer the stored record)
local id = ARGV[1]
local now = now_ms(ARGV[3])
local stored = redis.call('HGET', KEYS[1], id)
-- The id is a checked name (no quotes), so the first "registration" is the record's own.
if stored and string.match(stored, '"registration":"([%w%-]+)"') == ARGV[7] then
  return {stored, now}
end
if ARGV[8] and (stored or '') ~= ARGV[8] then
  return 0
end
local previous = nil
if stored then
  local ok, decoded = pcall(cjson.decode, stored)
  if ok and type(decoded) == 'table' then previous = decoded end
end
local parent = ARGV[6]
if parent ~= '' and not (previous and previous.parent == parent)
    and redis.call('HEXISTS', KEYS[1], parent) == 0
    and redis.call('HEXISTS', KEYS[6], parent) == 0 then
  return swarm_error('SWARM_NOTFOUND', 'no agent ' .. parent .. ' is registered to be the '
    .. 'parent of ' .. id .. ': register the parent first ' .. register_agent_command(parent)
    .. ', or leave the parent out; nothing was registered')
end
-- The stored record's own registered_at (decoded: a metadata key of that name is nested,
-- and a record without one, or unreadable, starts a life now).
local since = nil
local at = previous and tonumber(previous.registered_at)
if at then since = string.format('%d', at) end
local same_life = since ~= nil
since = since or string.format('%d', now)
local record = ARGV[2] .. ',"registered_at":' .. since .. ',"current_task":null}'
redis.call('HSET', KEYS[1], id, record)
redis.call('ZADD', KEYS[2], now, id)
if redis.call('HEXISTS', KEYS[3], id) == 0 then
  if same_life then
    -- A worker its claims registered has no cursor: the broadcasts since it appeared stay
    -- unread, as its inbox reads them (inbox_read's cursor_of), not skipped as read.
    redis.call('HSET', KEYS[3], id, since .. '-0')
  else
    local newest = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
    redis.call('HSET', KEYS[3], id, newest[1] and newest[1][1] or '0-0')
  end
end
-- (a revision by the agent's running process is no arrival: it joined when it started)
local arrives = not (same_life and ARGV[9] == '1')
if arrives and ARGV[6] ~= '' then
  emit(KEYS[5], ARGV[4], 'agent.joined', 'agent', id, 'role', ARGV[5], 'parent', ARGV[6])
elseif arrives then
  emit(KEYS[5], ARGV[4], 'agent.joined', 'agent', id, 'role', ARGV[5])
end
return {record, now}
