-- chunk_acquire: take references on a stored chunk, so that the caller need not send it again.
-- A chunk carries its own reference count (the number of kept context versions, or
-- publishes in flight, that use it) in its own hash slot, so that taking a reference and
-- deleting the chunk at zero are atomic with each other even on a Redis Cluster.
-- KEYS[1]: the chunk (HASH: data = the stored bytes, refs = reference count)
-- ARGV[1]: how many references to take
-- returns 1 when the chunk exists (references taken), 0 when it must be sent (chunk_put)
if redis.call('HEXISTS', KEYS[1], 'data') == 1 then
  redis.call('HINCRBY', KEYS[1], 'refs', ARGV[1])
  return 1
end
return 0
