-- agent_deregister: remove an agent, its presence, its inbox and its broadcast cursor.
-- KEYS[1]: agents   KEYS[2]: presence   KEYS[3]: cursors (and pending reads)
-- KEYS[4]: inbox(agent)
-- KEYS[5]: events
-- ARGV[1]: agent id   ARGV[2]: events maxlen
-- returns the number of unread messages dropped with the inbox
local id = ARGV[1]
if redis.call('HDEL', KEYS[1], id) == 0 then
  return swarm_error('SWARM_NOTFOUND', 'agent ' .. id .. ' is not registered: '
    .. 'check the id with agents()')
end
redis.call('ZREM', KEYS[2], id)
local pending = redis.call('HGET', KEYS[3], id .. '|pending')
redis.call('HDEL', KEYS[3], id, id .. '|pending')
-- messages handed out by a read not yet committed (see inbox_read) were read
local unread = redis.call('XLEN', KEYS[4])
  - tonumber(pending and string.match(pending, '(%d+)$') or 0)
redis.call('DEL', KEYS[4])
emit(KEYS[5], ARGV[2], 'agent.left', 'agent', id, 'unread', tostring(unread))
return unread
