-- agent_sweep: remove the candidates whose last heartbeat is still older than the cutoff
-- (one that sent a heartbeat since it was listed is kept), with their inbox and cursor.
-- KEYS[1]: agents   KEYS[2]: presence   KEYS[3]: cursors   KEYS[4]: events
-- KEYS[5..]: inbox of each candidate, in the order of ARGV[4..]
-- ARGV[1]: now (0 = server time)   ARGV[2]: stale after (ms)   ARGV[3]: events maxlen
-- ARGV[4..]: candidate agent ids
-- returns {id, unread, id, unread, ...}: the ids removed, each with its unread count
-- 'unread' on agent.stale counts the direct messages dropped with the inbox, as
-- agent_deregister's does (see there why unread broadcasts are not counted).
local cutoff = now_ms(ARGV[1]) - tonumber(ARGV[2])
local removed = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local seen = redis.call('ZSCORE', KEYS[2], id)
  if seen and tonumber(seen) <= cutoff then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    local pending = redis.call('HGET', KEYS[3], id .. '|pending')
    redis.call('HDEL', KEYS[3], id, id .. '|pending', id .. '|inbox', id .. '|orphan',
      id .. '|gap')
    local inbox = KEYS[i + 1]
    -- read messages (kept for message_get, or handed out by a read not yet committed: see
    -- inbox_read) are not unread
    local unread = redis.call('XLEN', inbox)
      - tonumber(pending and string.match(pending, '(%d+)$') or 0)
    redis.call('DEL', inbox)
    emit(KEYS[4], ARGV[3], 'agent.stale', 'agent', id, 'last_seen', seen,
      'unread', tostring(unread))
    removed[#removed + 1] = id
    removed[#removed + 1] = unread
  end
end
return removed
