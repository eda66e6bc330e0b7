-- agent_deregister: remove an agent, its presence, its inbox and its broadcast cursor.
-- Each call carries a token of its own, recorded with the departure: a call sent again
-- after its reply was lost finds it and answers as the first did (no NotFound, no second
-- agent.left). Departures are kept for ARGV[4] ms, at most ARGV[5] of them.
-- KEYS[1]: agents   KEYS[2]: presence   KEYS[3]: cursors (and pending reads)
-- KEYS[4]: inbox(agent)
-- KEYS[5]: events
-- KEYS[6]: departures (ZSET agent|token -> time of the deregistration)
-- ARGV[1]: agent id   ARGV[2]: events maxlen   ARGV[3]: this call's token
-- ARGV[4]: how long a departure is remembered (ms)   ARGV[5]: departures remembered at most
-- ARGV[6]: now (0 = server time)
-- ARGV[7]: '1' = only if no direct message waits unread: else nothing changes (returns -1)
-- returns the number of unread messages dropped with the inbox (0 for a retried call), or
-- -1 when ARGV[7] kept the agent
--
-- 'unread' (returned, and on agent.left) counts the agent's direct messages only: those are
-- what is dropped with it. Broadcasts it had not read stay in the shared stream for the
-- others, and counting them would mean reading every broadcast past its cursor (no command
-- counts a stream range, and only an entry's sender tells whether it is the agent's own),
-- up to the ~10,000 kept, bodies and all, inside a script that holds the server.
local id = ARGV[1]
local departure = id .. '|' .. ARGV[3]
if redis.call('ZSCORE', KEYS[6], departure) then
  return 0
end
-- read messages (kept for message_get, or handed out by a read not yet committed: see
-- inbox_read) are not unread
local pending = redis.call('HGET', KEYS[3], id .. '|pending')
local unread = redis.call('XLEN', KEYS[4])
  - tonumber(pending and string.match(pending, '(%d+)$') or 0)
-- (an agent not registered is NotFound below, as without ARGV[7])
if ARGV[7] == '1' and unread > 0 and redis.call('HEXISTS', KEYS[1], id) == 1 then
  return -1
end
if redis.call('HDEL', KEYS[1], id) == 0 then
  return swarm_error('SWARM_NOTFOUND', 'agent ' .. id .. ' is not registered: '
    .. 'check the id with swarm agents')
end
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id, id .. '|pending', id .. '|inbox', id .. '|orphan',
  id .. '|gap')
redis.call('DEL', KEYS[4])
local now = now_ms(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[6], now, departure)
redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -(tonumber(ARGV[5]) + 1))
emit(KEYS[5], ARGV[2], 'agent.left', 'agent', id, 'unread', tostring(unread))
return unread
