-- chunk_acquire: add a holder to a stored chunk, so that the caller need not send it again.
-- A chunk lists its holders (one token per publish whose version uses it) in its own hash
-- slot, so that adding a holder and deleting the chunk when none is left are atomic with
-- each other even on a Redis Cluster. Holders are a set, not a count: a request retried
-- after a lost reply cannot count twice.
-- The stored bytes are trusted only when they are as long as the caller's: a chunk cut short
-- (or overwritten with other bytes of another length) is sent again (chunk_put overwrites
-- it), in the same round trip as ever. Bytes of the right length but damaged are not caught
-- here: readers refuse them, and a publish with --repair sends every chunk again.
-- With no token it only looks: a publish that would reuse a kept version's chunks (its own
-- version current already, or an older one made current again) checks each is stored at its
-- length first, and sends the version's chunks when one is not.
-- KEYS[1]: the chunk (HASH: data = the stored bytes, h:TOKEN = 1 per holder)
-- ARGV[1]: the holder token ('' = only look)   ARGV[2]: the length of the stored bytes (at
--          least 1)
-- returns 1 when the chunk exists (holder added), 0 when it must be sent (chunk_put)
if redis.call('HSTRLEN', KEYS[1], 'data') == tonumber(ARGV[2]) then
  if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'h:' .. ARGV[1], 1) end
  return 1
end
return 0
