-- chunk_release: remove a holder from a chunk; the chunk goes with its last holder (chunks
-- never expire). Removing a holder twice is harmless.
-- KEYS[1]: the chunk (HASH: data, h:TOKEN)
-- ARGV[1]: the holder token
-- returns 1 when the chunk was deleted, else 0
redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1])
if redis.call('HLEN', KEYS[1]) <= 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
