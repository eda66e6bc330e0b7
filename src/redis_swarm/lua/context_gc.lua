--#include _holds
-- context_gc: one step of the chunk gc's journal work (see _holds.lua). First forget the
-- holds the caller has released (ARGV[6..]); then give up on the publishes in flight older
-- than the grace period, and hand out the holds to release (those handed out to a publisher
-- a moment ago too: a release twice is harmless).
-- KEYS[1]: chunk_holds (HASH)   KEYS[2]: holds_publishing (ZSET)
-- KEYS[3]: holds_releasing (ZSET)
-- ARGV[1]: 'take', or 'peek' (a dry run: change nothing, list what 'take' would give up on
--          and hand out, publishes in flight included)
-- ARGV[2]: now (0 = server time)   ARGV[3]: grace (ms)   ARGV[4]: budget (digests handed
--          out at most; 0 = only forget)   ARGV[5]: how long a taker has to release (ms)
-- ARGV[6..]: holder tokens the caller released (forgotten: their chunks are free of them)
-- returns {publishes given up on, then per hold handed out: token, n, n digests}
local now = now_ms(ARGV[2])
local cutoff = now - tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
if ARGV[1] == 'peek' then
  local out = {0}
  local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', cutoff))
  out[1] = #stale
  for _, token in ipairs(stale) do
    local digests = cjson.decode(redis.call('HGET', KEYS[1], token) or '[]')
    out[#out + 1] = token
    out[#out + 1] = #digests
    for _, d in ipairs(digests) do out[#out + 1] = d end
  end
  return holds_take(KEYS[1], KEYS[3], '+inf', budget, nil, out)
end
for i = 6, #ARGV do
  if redis.call('ZREM', KEYS[3], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
if budget <= 0 then return {0} end
local reaped = holds_reap(KEYS[2], KEYS[3], cutoff, now, 1000)
return holds_take(KEYS[1], KEYS[3], '+inf', budget, now + tonumber(ARGV[5]), {reaped})
