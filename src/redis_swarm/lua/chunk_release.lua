-- chunk_release: remove a holder from a chunk; the chunk goes with its last holder (chunks
-- never expire). Removing a holder twice is harmless.
-- KEYS[1]: the chunk (HASH: data, h:TOKEN)
-- ARGV[1]: the holder token
-- returns the stored bytes of the chunk when it was deleted, else 0
redis.call('HDEL', KEYS[1], 'h:' .. ARGV[1])
if redis.call('HLEN', KEYS[1]) <= 1 then
  local size = redis.call('HSTRLEN', KEYS[1], 'data')
  redis.call('DEL', KEYS[1])
  return size
end
return 0
