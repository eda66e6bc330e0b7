-- message_send: append a message to an agent's inbox, or to the broadcast stream.
-- Sending to an agent that is not registered is refused (no phantom inbox); a full inbox
-- is refused too (an agent that never reads must not make the swarm drop messages).
-- A retried send (its reply lost) finds its message id among the newest and is not
-- stored twice.
-- KEYS[1]: agents   KEYS[2]: inbox(to), or broadcast   KEYS[3]: events
-- KEYS[4]: cursors (for the agent's pending read, see inbox_read)
-- ARGV[1]: to ('*' = broadcast)   ARGV[2]: message id   ARGV[3]: sender ('' none)
-- ARGV[4]: kind   ARGV[5]: body   ARGV[6]: data JSON ('' none)   ARGV[7]: now (0 = server)
-- ARGV[8]: inbox limit (unread messages)   ARGV[9]: broadcast maxlen   ARGV[10]: events maxlen
-- KEYS[5]: messages (HASH message id -> 'TO STREAM_ID AT FROM READERS', for message_status;
--   READERS: for a broadcast, how many agents but its sender were registered when it was
--   sent, so that a status can tell readers who left since from none ever; '' for a direct)
-- KEYS[6]: message_order (LIST of those ids, oldest first: the index keeps the newest ARGV[12])
-- ARGV[11]: pass name when the message requests a synthesis, else ''
-- returns {stream id, created_at}; the stream id is also the message.sent event's id
local to, id = ARGV[1], ARGV[2]
local recent = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 32)
for _, entry in ipairs(recent) do
  local f = entry[2]
  if f[2] == id then
    for i = 1, #f, 2 do
      if f[i] == 'at' then return {entry[1], tonumber(f[i + 1])} end
    end
  end
end
local trim = {}
if to ~= '*' then
  if redis.call('HEXISTS', KEYS[1], to) == 0 then
    return swarm_error('SWARM_NOTFOUND', 'agent ' .. to .. ' is not registered, so nobody '
      .. 'would read the message: check the id with swarm agents, or broadcast')
  end
  -- read messages (kept for message_get, or in a read not yet committed: see inbox_read)
  -- do not count as unread
  local pending = redis.call('HGET', KEYS[4], to .. '|pending')
  local read = tonumber(pending and string.match(pending, '(%d+)$') or 0)
  if redis.call('XLEN', KEYS[2]) - read >= tonumber(ARGV[8]) then
    return swarm_error('SWARM_CONFLICT', 'the inbox of ' .. to .. ' is full (' .. ARGV[8]
      .. ' unread messages): the agent does not read it; check that it runs, or deregister it')
  end
else
  trim = {'MAXLEN', '~', ARGV[9]}
end
local now = now_ms(ARGV[7])
local at = string.format('%d', now)
-- The message's stream id is the id of its message.sent event: one sequence for the whole
-- swarm, so that an agent's inbox and the broadcasts merge in the order they were sent. An
-- event stream that refused the append (emit: poisoned by a worker) leaves the message a
-- fresh id of its own stream.
local sid = emit(KEYS[3], ARGV[10], 'message.sent', 'message', id, 'to', to, 'from', ARGV[3],
  'kind', ARGV[4])
if type(sid) ~= 'string' then sid = '*' end
local fields = {'id', id, 'from', ARGV[3], 'to', to, 'kind', ARGV[4], 'body', ARGV[5],
  'data', ARGV[6], 'at', at}
local function add(entry_id)
  local args = {'XADD', KEYS[2]}
  for _, a in ipairs(trim) do args[#args + 1] = a end
  args[#args + 1] = entry_id
  for _, a in ipairs(fields) do args[#args + 1] = a end
  return redis.pcall(unpack(args))
end
local added = add(sid)
if type(added) == 'table' and added.err and sid ~= '*' then
  -- the event stream was reset below this stream's newest id: fall back to a fresh id
  added = add('*')
end
if type(added) == 'table' and added.err then
  -- Nothing stored yet but the event: the stream itself refuses entries (a worker's XADD
  -- under the largest id, or a key of another type, written around redis-swarm).
  return swarm_error('SWARM_CORRUPT', 'the stream ' .. KEYS[2] .. ' refuses new messages ('
    .. added.err .. '): an operator must delete that key (its messages are lost with it), '
    .. 'then send again')
end
sid = added
local readers = ''
if to == '*' then
  readers = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], ARGV[3])
end
redis.call('HSET', KEYS[5], id, to .. ' ' .. sid .. ' ' .. at .. ' ' .. ARGV[3] .. ' ' .. readers)
if redis.call('RPUSH', KEYS[6], id) > tonumber(ARGV[12]) then
  redis.call('HDEL', KEYS[5], redis.call('LPOP', KEYS[6]))
end
if ARGV[11] ~= '' then
  emit(KEYS[3], ARGV[10], 'synthesis.requested', 'shard', to, 'pass', ARGV[11],
    'message', id, 'from', ARGV[3])
end
return {sid, now}
