-- Helpers of the gc journal of context chunks (pulled in by "--#include _holds").
--
-- Every holder token that is not a kept version's is journaled in the swarm's slot, so that
-- gc finds leaked chunks without scanning the chunks (spread over the cluster's nodes):
--   chunk_holds        HASH token -> JSON list of the digests it holds
--   holds_publishing   ZSET token -> start (ms): a publish in flight (context_hold)
--   holds_releasing    ZSET token -> due (ms): a hold whose chunks are to be released
-- A publish flips only while its token is publishing; gc gives up on one older than the
-- grace period by moving it to releasing, atomically, so a flip and a give-up never race.

-- Journal a hold to release from `due` on (its digests: a JSON list).
local function holds_release(holds, releasing, token, digests, due)
  redis.call('HSET', holds, token, digests)
  redis.call('ZADD', releasing, due, token)
end

-- Give up on the publishes in flight that started at `cutoff` or before (at most `limit`):
-- their holds are due for release now. Returns how many.
local function holds_reap(publishing, releasing, cutoff, now, limit)
  local stale = redis.call('ZRANGEBYSCORE', publishing, '-inf', string.format('%d', cutoff),
    'LIMIT', 0, limit)
  for _, token in ipairs(stale) do
    redis.call('ZREM', publishing, token)
    redis.call('ZADD', releasing, now, token)
  end
  return #stale
end

-- Hand out the holds due for release by `upto`, oldest first, up to `budget` digests (at
-- least one hold if any is due), appending {token, n, n digests} to `out`. A handed-out hold
-- is due again at `again` (if its taker dies before it is forgotten, another one takes it).
local function holds_take(holds, releasing, upto, budget, again, out)
  local due = redis.call('ZRANGEBYSCORE', releasing, '-inf', upto, 'LIMIT', 0, 100)
  local given = 0
  for _, token in ipairs(due) do
    local digests = cjson.decode(redis.call('HGET', holds, token) or '[]')
    if given > 0 and given + #digests > budget then break end
    if again then redis.call('ZADD', releasing, again, token) end
    out[#out + 1] = token
    out[#out + 1] = #digests
    for _, d in ipairs(digests) do out[#out + 1] = d end
    given = given + #digests
  end
  return out
end
