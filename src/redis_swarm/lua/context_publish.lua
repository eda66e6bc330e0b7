-- context_publish: make a version the owner's current one (the pointer flips last, in one
-- step), keep the newest N versions and drop the rest. The version's chunks were stored and
-- given a holder token before (chunk_acquire / chunk_put), so a reader sees the old version
-- or the new one, never a mix. A manifest records the token that holds its chunks.
-- KEYS[1]: contexts (HASH owner -> manifest of the current version: the pointer)
-- KEYS[2]: context_manifests (HASH owner|version -> manifest of every kept version)
-- KEYS[3]: context_history(owner) (ZSET version -> publish order)
-- KEYS[4]: events (STREAM)
-- ARGV[1]: owner   ARGV[2]: version   ARGV[3]: manifest JSON without its tail (the script
--          appends ',"holder":TOKEN,"created_at":NOW}')
-- ARGV[4]: now (0 = server time)   ARGV[5]: versions to keep   ARGV[6]: events maxlen
-- ARGV[7]: 'new' when the caller's token holds the version's chunks, 'existing' when it
--          holds none (the version is expected to be kept already)
-- ARGV[8]: size in bytes (for the event)   ARGV[9]: the caller's holder token
-- returns {status, manifest, then per pruned version: holder token, n, n chunk digests}:
--   status 'new' (the caller's token now holds the version; a retry of a call that did it
--   changes nothing and returns the manifest alone: the versions that call pruned, if any,
--   are not listed again, so their chunks stay stored: a leak, never a loss), 'kept' (the
--   version was kept already with another holder: the caller releases its token),
--   'missing' (mode 'existing' but the version was pruned meanwhile: nothing changed,
--   publish with chunks). The caller releases each pruned version's holder token from its
--   chunks (chunk_release).
local owner, version, mode, token = ARGV[1], ARGV[2], ARGV[7], ARGV[9]
local field = owner .. '|' .. version
local existing = redis.call('HGET', KEYS[2], field)
if mode == 'existing' and not existing then
  return {'missing', ''}
end
local holder, status = token, 'new'
if existing then
  holder = string.match(existing, '"holder":"([%w%-]+)"')
  -- This very call, sent again after its reply was lost: it was applied, apply nothing.
  if holder == token then return {'new', existing} end
  status = 'kept'
end
local now = now_ms(ARGV[4])
local manifest = ARGV[3] .. ',"holder":"' .. holder .. '","created_at":'
  .. string.format('%d', now) .. '}'
redis.call('HSET', KEYS[2], field, manifest)
redis.call('HSET', KEYS[1], owner, manifest)

-- Publish order: strictly increasing, even for several publishes within one millisecond.
local order = now
local top = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if top[1] and tonumber(top[2]) >= order then
  order = tonumber(top[2]) + (top[1] == version and 0 or 1)
end
redis.call('ZADD', KEYS[3], order, version)

local out = {status, manifest}
local keep = tonumber(ARGV[5])
local count = redis.call('ZCARD', KEYS[3])
local pruned = 0
if count > keep then
  local old = redis.call('ZRANGE', KEYS[3], 0, count - keep - 1)
  for _, v in ipairs(old) do
    local f = owner .. '|' .. v
    local m = redis.call('HGET', KEYS[2], f)
    redis.call('HDEL', KEYS[2], f)
    redis.call('ZREM', KEYS[3], v)
    pruned = pruned + 1
    if m then
      local decoded = cjson.decode(m)
      local parts = decoded['parts']
      out[#out + 1] = decoded['holder']
      out[#out + 1] = #parts
      for _, part in ipairs(parts) do
        out[#out + 1] = part[1]
      end
    end
  end
end
emit(KEYS[4], ARGV[6], 'context.published', 'owner', owner, 'version', version,
  'size_bytes', ARGV[8], 'pruned', tostring(pruned))
return out
