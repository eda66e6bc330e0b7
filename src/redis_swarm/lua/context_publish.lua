--#include _holds
-- context_publish: make a version the owner's current one (the pointer flips last, in one
-- step), keep the newest N versions and drop the rest. The version's chunks were stored and
-- given a holder token before (chunk_acquire / chunk_put), so a reader sees the old version
-- or the new one, never a mix. A manifest records the token that holds its chunks.
-- Every token that stops being held by a kept version (the pruned versions', the caller's
-- when the version was current already, the old holder of a kept version a publish with
-- chunks takes over) is journaled for release (see _holds.lua), then the
-- holds due are handed out to the caller: a bounded step of gc with every publish.
-- KEYS[1]: contexts (HASH owner -> manifest of the current version: the pointer)
-- KEYS[2]: context_manifests (HASH owner|version -> manifest of every kept version)
-- KEYS[3]: context_history(owner) (ZSET version -> publish order)
-- KEYS[4]: events (STREAM)
-- KEYS[5]: chunk_holds (HASH)   KEYS[6]: holds_publishing (ZSET)
-- KEYS[7]: holds_releasing (ZSET)
-- KEYS[8]: context_copy(owner) (STRING: the current version's bytes, when kept whole)
-- ARGV[1]: owner   ARGV[2]: version   ARGV[3]: manifest JSON without its tail (the script
--          appends ',"holder":TOKEN,"created_at":NOW}')
-- ARGV[4]: now (0 = server time)   ARGV[5]: versions to keep   ARGV[6]: events maxlen
-- ARGV[7]: 'new' when the caller's token holds the version's chunks (it must still be
--          publishing: context_hold), 'existing' when it holds none (the version is
--          expected to be kept already), 'repair' as 'new' even when the version is
--          current already (every chunk was sent again: its manifest is written again)
-- ARGV[8]: size in bytes (for the event)   ARGV[9]: the caller's holder token
-- ARGV[10]: gc grace (ms)   ARGV[11]: gc budget (digests handed out at most)
-- ARGV[12]: how long the caller has to release what it is handed (ms)
-- ARGV[13]: 'copy' when ARGV[14] holds the version's bytes, to keep whole beside its chunks
--           (a reader fetches them with the pointer, in one round trip, and checks them
--           against the version); '' when none is kept (the old one goes)
-- returns {status, manifest, then per hold handed out: token, n, n digests}:
--   status 'new' (the caller's token now holds the version: a version kept already with
--   another holder is taken over, its manifest written anew with the caller's parts, and
--   the other holder journaled for release; a retry of a call that did it changes nothing
--   and returns the manifest alone), 'kept' (mode 'existing': the kept version, with its
--   holder, is made current), 'current' (not 'repair': the pointer names this very version
--   already, with the same source and media type: nothing is written and no event
--   recorded, so of identical publishes racing only the one that moved the pointer says it
--   did; the caller's token is journaled for release), 'missing' (mode 'existing' but the
--   version was pruned meanwhile, or its holder cannot be read: nothing changed, publish
--   with chunks), 'expired' ('new'
--   or 'repair' but gc gave up on the publish, older than the grace period: its token is
--   journaled for release, nothing is published). The caller releases each hold handed
--   out (chunk_release), then tells context_gc it did.
local owner, version, mode, token = ARGV[1], ARGV[2], ARGV[7], ARGV[9]
local field = owner .. '|' .. version
local existing = redis.call('HGET', KEYS[2], field)
if mode == 'existing' and not existing then
  return {'missing', ''}
end

-- The digests a manifest lists (nil when it is damaged: not JSON).
local function digests_of(manifest)
  local ok, decoded = pcall(cjson.decode, manifest)
  if not ok or type(decoded) ~= 'table' or type(decoded['parts']) ~= 'table' then return nil end
  local digests = {}
  for i, part in ipairs(decoded['parts']) do digests[i] = part[1] end
  return digests, decoded
end

-- Whether the pointer is the kept manifest itself (not damaged apart from it) with the
-- source and media type this call would write.
local function is_current(kept)
  if redis.call('HGET', KEYS[1], owner) ~= kept then return false end
  local _, stored = digests_of(kept)
  local ok, asked = pcall(cjson.decode, ARGV[3] .. '}')
  return stored ~= nil and ok and stored['source'] == asked['source']
    and stored['media_type'] == asked['media_type']
end

local sends = mode ~= 'existing'  -- the caller's token holds every chunk of its parts
local holder, status, replaced = token, 'new', nil
if existing then
  local kept_holder = string.match(existing, '"holder":"([%w%-]+)"')
  -- This very call, sent again after its reply was lost: it was applied, apply nothing.
  if kept_holder == token then return {'new', existing} end
  if mode ~= 'repair' and is_current(existing) then
    status = 'current'
  elseif sends then
    replaced = kept_holder  -- taken over: the caller's token holds the parts it writes
  elseif not kept_holder then
    return {'missing', ''}  -- its holder cannot be read (damaged): publish with chunks
  else
    holder, status = kept_holder, 'kept'
  end
end
local now = now_ms(ARGV[4])
local grace, budget, again = tonumber(ARGV[10]), tonumber(ARGV[11]), now + tonumber(ARGV[12])
if sends then
  local in_flight = redis.call('ZREM', KEYS[6], token) == 1
  if status == 'new' and in_flight then
    redis.call('HDEL', KEYS[5], token)  -- the manifest lists its chunks from now on
  elseif in_flight then
    redis.call('ZADD', KEYS[7], now, token)  -- current already: release this one
  elseif not redis.call('ZSCORE', KEYS[7], token) then
    -- Not in flight, not journaled: gc gave up on this publish and released its chunks
    -- already (or this call is a retry of a 'current' one). Journal it again: a release
    -- twice is harmless.
    holds_release(KEYS[5], KEYS[7], token, cjson.encode((digests_of(ARGV[3] .. '}'))), now)
  end
  if status == 'new' and not in_flight then
    -- Its chunks may be gone: a version is published only on chunks held in flight.
    return holds_take(KEYS[5], KEYS[7], now, budget, again, {'expired', ''})
  end
end
if status == 'current' then
  return holds_take(KEYS[5], KEYS[7], now, budget, again, {'current', existing})
end
if replaced then
  -- The version's other holder goes: every chunk the new manifest lists is the caller's.
  -- (A kept manifest too damaged to list its chunks leaks them: never a loss.)
  local digests = digests_of(existing)
  if digests then
    holds_release(KEYS[5], KEYS[7], replaced, cjson.encode(digests), now)
  end
end
local manifest = ARGV[3] .. ',"holder":"' .. holder .. '","created_at":'
  .. string.format('%d', now) .. '}'
redis.call('HSET', KEYS[2], field, manifest)
redis.call('HSET', KEYS[1], owner, manifest)
-- The copy changes with the pointer, in this one step: never the bytes of another version.
if ARGV[13] == 'copy' then
  redis.call('SET', KEYS[8], ARGV[14])
else
  redis.call('DEL', KEYS[8])
end

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
    local digests, decoded = nil, nil
    if m then digests, decoded = digests_of(m) end
    if digests and type(decoded['holder']) == 'string' then
      holds_release(KEYS[5], KEYS[7], decoded['holder'], cjson.encode(digests), now)
    end
  end
end
emit(KEYS[4], ARGV[6], 'context.published', 'owner', owner, 'version', version,
  'size_bytes', ARGV[8], 'pruned', tostring(pruned))
holds_reap(KEYS[6], KEYS[7], now - grace, now, 100)
return holds_take(KEYS[5], KEYS[7], now, budget, again, out)
