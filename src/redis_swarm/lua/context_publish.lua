-- context_publish: make a version the owner's current one (the pointer flips last, in one
-- step), keep the newest N versions and drop the rest. The version's chunks were stored and
-- referenced before (chunk_acquire / chunk_put), so a reader sees the old version or the new
-- one, never a mix.
-- KEYS[1]: contexts (HASH owner -> manifest of the current version: the pointer)
-- KEYS[2]: context_manifests (HASH owner|version -> manifest of every kept version)
-- KEYS[3]: context_history(owner) (ZSET version -> publish order)
-- KEYS[4]: events (STREAM)
-- ARGV[1]: owner   ARGV[2]: version   ARGV[3]: manifest JSON without its tail
--          (the script appends ',"created_at":NOW}')
-- ARGV[4]: now (0 = server time)   ARGV[5]: versions to keep   ARGV[6]: events maxlen
-- ARGV[7]: 'new' when the caller holds chunk references for this version, 'existing' when
--          it took none (the version is expected to be kept already)
-- ARGV[8]: size in bytes (for the event)
-- returns {status, manifest, digest...}: status 'new' (the caller's chunk references now
--   belong to the version), 'kept' (the version was kept already: the caller drops the
--   references it took), 'missing' (mode 'existing' but the version was pruned meanwhile:
--   nothing changed, publish with chunks); then one digest per chunk reference of the pruned
--   versions, for the caller to release (chunk_release).
local owner, version, mode = ARGV[1], ARGV[2], ARGV[7]
local field = owner .. '|' .. version
local kept = redis.call('HEXISTS', KEYS[2], field) == 1
if mode == 'existing' and not kept then
  return {'missing', ''}
end
local now = now_ms(ARGV[4])
local manifest = ARGV[3] .. ',"created_at":' .. string.format('%d', now) .. '}'
redis.call('HSET', KEYS[2], field, manifest)
redis.call('HSET', KEYS[1], owner, manifest)

-- Publish order: strictly increasing, even for several publishes within one millisecond.
local order = now
local top = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if top[1] and tonumber(top[2]) >= order then
  order = tonumber(top[2]) + (top[1] == version and 0 or 1)
end
redis.call('ZADD', KEYS[3], order, version)

local out = {kept and 'kept' or 'new', manifest}
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
      for _, part in ipairs(cjson.decode(m)['parts']) do
        out[#out + 1] = part[1]
      end
    end
  end
end
emit(KEYS[4], ARGV[6], 'context.published', 'owner', owner, 'version', version,
  'size_bytes', ARGV[8], 'pruned', tostring(pruned))
return out
