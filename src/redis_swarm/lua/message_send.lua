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
-- returns {stream id, created_at, readers}; the stream id is also the message.sent event's
-- id; readers: a broadcast's count stored in KEYS[5] ('' for a direct message, or a retried
-- broadcast whose entry is no longer kept), so that its sender learns that it reached nobody
-- without asking again
--
-- Every message's stream id is the id of its message.sent event, taken above the event log's
-- newest before anything is written: one sequence for the whole swarm, so that an agent's
-- inbox and the broadcasts merge in the order they were sent, and a reader that commits
-- through the last id it showed (inbox_read's mode '2') passes no message it did not show.
-- Both streams are read first, then the event is appended, then the message with the same
-- id, above both streams' newest (only a target stream a worker emptied under a higher id,
-- which XREVRANGE cannot see, refuses it after its event). A send is refused, before any
-- write, while the event log refuses appends (a worker's XADD at the largest id, or a key of another type: swarm doctor
-- names the repair): a message given an id of its own stream instead could take a
-- broadcast's id, or one below an id a reader already committed through, and never be shown.
local to, id = ARGV[1], ARGV[2]

-- The refusal of a send to a stream that takes no entry (written around redis-swarm).
local function refuses(stream, why)
  return swarm_error('SWARM_CORRUPT', 'the stream ' .. stream .. ' refuses new entries ('
    .. why .. '): nothing was sent; ' .. (stream == KEYS[3]
      and 'an admin or shard must delete that key (swarm doctor names the repair: the log\'s '
        .. 'past events are lost with it, no message), then send again'
      or 'an admin or shard must delete that key (its messages are lost with it), then send '
        .. 'again'))
end

local recent = redis.pcall('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 32)
if recent.err then return refuses(KEYS[2], recent.err) end
for _, entry in ipairs(recent) do
  local f = entry[2]
  if f[2] == id then
    local indexed = redis.call('HGET', KEYS[5], id)
    local counted = indexed and string.match(indexed, '^[^ ]* [^ ]* [^ ]* [^ ]* (%d+)') or ''
    for i = 1, #f, 2 do
      if f[i] == 'at' then return {entry[1], tonumber(f[i + 1]), counted} end
    end
  end
end
if to ~= '*' then
  if redis.call('HEXISTS', KEYS[1], to) == 0 then
    if string.sub(to, 1, 1) == '-' or not string.find(to, '[^.]') then
      -- No agent can be registered under a name beginning with '-' (a command naming it would
      -- read it as an option) or only dots (a file's name: _validate.begins_like_option),
      -- so registering it is no way out, whoever sends (the CLI, an MCP tool, the Python
      -- API: one wording for all).
      return swarm_error('SWARM_NOTFOUND', 'no agent \'' .. to .. '\' is registered, and '
        .. 'none can be (a new agent\'s name may not begin with \'-\' or be only dots): '
        .. 'nobody would read the message; check the id with swarm agents, or broadcast')
    end
    return swarm_error('SWARM_NOTFOUND', 'agent ' .. to .. ' is not registered, so nobody '
      .. 'would read the message: check the id with swarm agents, register it first '
      .. register_agent_command(to) .. ', or broadcast')
  end
  -- read messages (kept for message_get, or in a read not yet committed: see inbox_read)
  -- do not count as unread
  local pending = redis.call('HGET', KEYS[4], to .. '|pending')
  local read = tonumber(pending and string.match(pending, '(%d+)$') or 0)
  if redis.call('XLEN', KEYS[2]) - read >= tonumber(ARGV[8]) then
    return swarm_error('SWARM_CONFLICT', 'the inbox of ' .. to .. ' is full (' .. ARGV[8]
      .. ' unread messages): the agent does not read it; check that it runs, or deregister it')
  end
end
local now = now_ms(ARGV[7])
local at = string.format('%d', now)

-- The first id after last (nil: none) at or after ms now: nil when last is the largest id
-- (stream ids compared and stepped as decimal strings: the prelude's stream_id_*).
local function id_after(last)
  if not last then return at .. '-0' end
  local ms = string.match(last, '^(%d+)-')
  if dec_less(ms, at) then return at .. '-0' end
  return stream_id_next(last)
end

local newest = redis.pcall('XREVRANGE', KEYS[3], '+', '-', 'COUNT', '1')
if newest.err then return refuses(KEYS[3], newest.err) end
local sid = id_after(newest[1] and newest[1][1])
if not sid then return refuses(KEYS[3], 'its newest id is the largest a stream can hold') end
-- The target stream's newest (read above) may be past it: a clock stepped back, or a worker's
-- XADD ahead. The message then takes the first id after that, and its event the same id.
local mine = recent[1] and recent[1][1]
if mine and not stream_id_less(mine, sid) then
  sid = id_after(mine)
  if not sid then return refuses(KEYS[2], 'its newest id is the largest a stream can hold') end
end
-- The event first: an append the log refuses (its newest id the largest, or its entries
-- trimmed under a worker's id: the id stays taken) refuses the send with nothing written.
local logged = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[10], sid, 'type',
  'message.sent', 'message', id, 'to', to, 'from', ARGV[3], 'kind', ARGV[4])
if type(logged) == 'table' and logged.err then return refuses(KEYS[3], logged.err) end
local args = {'XADD', KEYS[2]}
if to == '*' then args = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[9]} end
for _, a in ipairs({sid, 'id', id, 'from', ARGV[3], 'to', to, 'kind', ARGV[4],
                    'body', ARGV[5], 'data', ARGV[6], 'at', at}) do
  args[#args + 1] = a
end
if to == '*' and mine then
  -- the broadcast sent before it: once that one is trimmed, a reader whose cursor is before
  -- it knows it lost broadcasts (inbox_read's gap_after)
  args[#args + 1], args[#args + 2] = 'prev', mine
end
local added = redis.pcall(unpack(args))
if type(added) == 'table' and added.err then
  -- Its newest entry is below sid, yet it refuses it: a worker's XADD at a larger id whose
  -- entries were trimmed since (the id stays taken). Only then does the event above announce
  -- a message not stored; a stream refusing with its entry still there, or holding another
  -- type, was refused before any write (recent).
  return refuses(KEYS[2], added.err)
end
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
return {sid, now, readers}
