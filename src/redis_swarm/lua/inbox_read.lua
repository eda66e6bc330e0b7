-- inbox_read: the oldest messages of an agent, from its inbox and the broadcasts after its
-- cursor, merged in the order they were sent. With ack, the messages returned are removed
-- from the inbox and the cursor moves past the broadcasts returned, so that the next read
-- returns only newer messages (and two readers of one inbox never get the same message).
-- An agent does not receive its own broadcasts.
-- KEYS[1]: agents   KEYS[2]: inbox(agent)   KEYS[3]: broadcast   KEYS[4]: cursors
-- ARGV[1]: agent id   ARGV[2]: limit   ARGV[3]: '1' to acknowledge, '0' to peek
-- returns a list of {stream id, fields}
local id, limit = ARGV[1], tonumber(ARGV[2])
local record = redis.call('HGET', KEYS[1], id)
if not record then
  return swarm_error('SWARM_NOTFOUND', 'agent ' .. id .. ' is not registered: register it '
    .. 'before reading its inbox')
end
local cursor = redis.call('HGET', KEYS[4], id)
if not cursor then
  -- implicitly registered workers have no cursor: broadcasts since they appeared
  local since = string.match(record, '"registered_at":(%d+)')
  cursor = (since or '0') .. '-0'
end

local function before(a, b)
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  if ams ~= bms then return tonumber(ams) < tonumber(bms) end
  return tonumber(aseq) < tonumber(bseq)
end

local mine = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', limit)
local all = redis.call('XRANGE', KEYS[3], '(' .. cursor, '+', 'COUNT', limit)
local out, taken, newest = {}, {}, nil
local i, j = 1, 1
while #out < limit and (i <= #mine or j <= #all) do
  if j > #all or (i <= #mine and before(mine[i][1], all[j][1])) then
    out[#out + 1] = mine[i]
    taken[#taken + 1] = mine[i][1]
    i = i + 1
  else
    local entry = all[j]
    newest = entry[1]
    if entry[2][4] ~= id then  -- fields: id, ID, from, SENDER, ...
      out[#out + 1] = entry
    end
    j = j + 1
  end
end
if ARGV[3] == '1' then
  if #taken > 0 then redis.call('XDEL', KEYS[2], unpack(taken)) end
  if newest then redis.call('HSET', KEYS[4], id, newest) end
end
return out
