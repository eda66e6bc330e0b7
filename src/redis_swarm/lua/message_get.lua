-- message_get: one message an agent received, by its message id, read or not; nothing is
-- marked read. Its own inbox keeps its unread messages and the newest of those read (see
-- inbox_read); the broadcast stream keeps the newest broadcasts.
-- flags: no-writes
-- KEYS[1]: agents   KEYS[2]: messages (HASH message id -> 'TO STREAM_ID AT FROM READERS',
--          then a broadcast's AGENT=COPY_ID tokens: see inbox_read.lua's header)
-- KEYS[3]: inbox(agent)   KEYS[4]: broadcast
-- ARGV[1]: agent id   ARGV[2]: message id
-- returns {'ok', to, sender, stream id, fields, registered_at}; {'unknown'} (not in the
-- index); {'elsewhere', to} (a direct message to another agent); {'gone', to, sender} (no
-- longer kept). registered_at: the agent record's ('0' when it holds none), from which the
-- core judges whether the agent receives a broadcast (messages.py's _receivers, the
-- rule message_status counts readers by): one sent before it registered is none of its.
local id, message = ARGV[1], ARGV[2]
if redis.call('HEXISTS', KEYS[1], id) == 0 then
  return swarm_error('SWARM_NOTFOUND', 'agent ' .. id .. ' is not registered: register it '
    .. 'before reading its inbox ' .. register_agent_command(id))
end
local entry = redis.call('HGET', KEYS[2], message)
if not entry then return {'unknown'} end
local to, sid, _, sender = string.match(entry, '^(%S*) (%S*) ?(%S*) ?(%S*)')
if to ~= id and to ~= '*' then return {'elsewhere', to} end
local stream = to == '*' and KEYS[4] or KEYS[3]
if to == '*' then
  -- A copy of the broadcast given back to this agent's inbox (an AGENT=COPY_ID token: past
  -- the first four, which hold no '=', READERS absent from an entry older than it) is the
  -- one it reads: shown as it waits there.
  local n = 0
  for token in string.gmatch(entry, '%S+') do
    n = n + 1
    if n > 4 and string.sub(token, 1, #id + 1) == id .. '=' then
      stream, sid = KEYS[3], string.sub(token, #id + 2)
    end
  end
end
local found = redis.call('XRANGE', stream, sid, sid)
-- (the entry's own id field guards against a stream recreated since: another message)
if not found[1] or found[1][2][2] ~= message then return {'gone', to, sender or ''} end
local registered_at = '0'
if to == '*' then
  -- (decoded, as agent_register reads it: a metadata key of that name is nested, and comes
  -- first in the record's text)
  local decoded, parsed = pcall(cjson.decode, redis.call('HGET', KEYS[1], id))
  local at = decoded and type(parsed) == 'table' and tonumber(parsed.registered_at)
  if at then registered_at = string.format('%d', at) end
end
return {'ok', to, sender or '', found[1][1], found[1][2], registered_at}
