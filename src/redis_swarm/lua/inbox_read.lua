-- inbox_read: the oldest messages of an agent, from its inbox and the broadcasts after its
-- cursor, merged in the order they were sent. An agent does not receive its own broadcasts.
--
-- Acknowledgement is two-step, so that a read whose reply is lost loses no message: an
-- acknowledged read records its batch as pending (its read id and where it ends) and
-- returns it; the same read sent again (redis-py retries after a lost reply) returns the
-- same batch; the next read with another id first commits the pending batch (trims it from
-- the inbox, moves the broadcast cursor) and then reads on. So the next read returns only
-- newer messages, and two readers of one inbox never get the same message.
-- A reader that must not lose what it never showed (a hook, a restarted session) peeks,
-- shows, then commits through the last message it showed (mode '2'): inbox and broadcast
-- ids come from one sequence (the message.sent events), so one position covers both.
-- KEYS[1]: agents   KEYS[2]: inbox(agent)   KEYS[3]: broadcast
-- KEYS[4]: cursors (HASH agent -> last broadcast id read; agent|inbox -> last inbox id read;
--          agent|pending -> the pending batch: 'READID LAST_INBOX_ID LAST_BROADCAST_ID
--          N_INBOX', '-' for none)
-- ARGV[1]: agent id   ARGV[2]: limit   ARGV[3]: '1' to acknowledge, '0' to peek,
--          '2' to commit through ARGV[4]
-- ARGV[4]: the read id (unique per call, repeated by a retry); in mode '2' the stream id
--          of the last message shown
-- returns a list of {stream id, fields} (mode '2': an empty list)
local id, limit, ack, rid = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
local commit_through = ARGV[3] == '2' and ARGV[4] or nil
local record = redis.call('HGET', KEYS[1], id)
if not record then
  return swarm_error('SWARM_NOTFOUND', 'agent ' .. id .. ' is not registered: register it '
    .. 'before reading its inbox')
end
local pkey = id .. '|pending'

local function cursor_of()
  local cursor = redis.call('HGET', KEYS[4], id)
  if cursor then return cursor end
  -- implicitly registered workers have no cursor: broadcasts since they appeared
  return (string.match(record, '"registered_at":(%d+)') or '0') .. '-0'
end

local function before(a, b)
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  if ams ~= bms then return tonumber(ams) < tonumber(bms) end
  return tonumber(aseq) < tonumber(bseq)
end

-- Merge up to limit entries of the two ranges; returns them, the inbox ids taken and the
-- newest broadcast id passed (own broadcasts are passed, not returned).
local function merge(mine, all)
  local out, taken, newest = {}, {}, nil
  local i, j = 1, 1
  while #out < limit and (i <= #mine or j <= #all) do
    if j > #all or (i <= #mine and before(mine[i][1], all[j][1])) then
      out[#out + 1] = mine[i]
      taken[#taken + 1] = mine[i][1]
      i = i + 1
    else
      newest = all[j][1]
      if all[j][2][4] ~= id then  -- fields: id, ID, from, SENDER, ...
        out[#out + 1] = all[j]
      end
      j = j + 1
    end
  end
  return out, taken, newest
end

-- Move the cursors through last_i (inbox) and last_b (broadcast), never back.
local function advance(last_i, last_b)
  if last_i ~= '-' then
    local ms, seq = string.match(last_i, '(%d+)-(%d+)')
    redis.call('XTRIM', KEYS[2], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
    local was = redis.call('HGET', KEYS[4], id .. '|inbox')
    if not was or before(was, last_i) then redis.call('HSET', KEYS[4], id .. '|inbox', last_i) end
  end
  if last_b ~= '-' and before(cursor_of(), last_b) then
    redis.call('HSET', KEYS[4], id, last_b)
  end
end

local pending = redis.call('HGET', KEYS[4], pkey)
if pending then
  local prid, last_i, last_b = string.match(pending, '^(%S+) (%S+) (%S+) %d+$')
  if ack and prid == rid then
    -- this very read, sent again: the same batch
    local mine, all = {}, {}
    if last_i ~= '-' then mine = redis.call('XRANGE', KEYS[2], '-', last_i, 'COUNT', limit) end
    if last_b ~= '-' then
      all = redis.call('XRANGE', KEYS[3], '(' .. cursor_of(), last_b, 'COUNT', limit)
    end
    return (merge(mine, all))
  end
  advance(last_i, last_b)
  redis.call('HDEL', KEYS[4], pkey)
end
if commit_through then
  advance(commit_through, commit_through)
  return {}
end

local mine = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', limit)
local all = redis.call('XRANGE', KEYS[3], '(' .. cursor_of(), '+', 'COUNT', limit)
local out, taken, newest = merge(mine, all)
if ack and (#taken > 0 or newest) then
  redis.call('HSET', KEYS[4], pkey, rid .. ' ' .. (taken[#taken] or '-') .. ' '
    .. (newest or '-') .. ' ' .. #taken)
end
return out
