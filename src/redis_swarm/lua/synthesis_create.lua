-- synthesis_create: store a synthesis whose every source finding exists (checked here, in
-- the same atomic step). The id is the client's: a retried request returns the stored one.
-- KEYS[1] findings  KEYS[2] syntheses  KEYS[3] synthesis_index  KEYS[4] events
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] synthesis id
-- ARGV[4] synthesis JSON from the client (an object without created_at)
-- ARGV[5] shard  ARGV[6] pass name  ARGV[7..] the source finding ids
-- Returns the synthesis JSON.
local now = now_ms(ARGV[1])
local id = ARGV[3]
local stored = redis.call('HGET', KEYS[2], id)
if stored then return stored end

local missing = {}
for i = 7, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then missing[#missing + 1] = ARGV[i] end
end
if #missing > 0 then
  return swarm_error('SWARM_NOTFOUND', 'no finding ' .. table.concat(missing, ', ')
    .. ': a synthesis may cite only stored findings (list them with swarm findings)')
end

local stamp = string.format('%.0f', now)
local synthesis = string.sub(ARGV[4], 1, -2) .. ',"created_at":' .. stamp .. '}'
redis.call('HSET', KEYS[2], id, synthesis)
redis.call('ZADD', KEYS[3], stamp, id)
emit(KEYS[4], ARGV[2], 'synthesis.created', 'synthesis', id, 'shard', ARGV[5],
     'pass', ARGV[6], 'sources', tostring(#ARGV - 6))
return synthesis
