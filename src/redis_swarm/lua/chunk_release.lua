-- chunk_release: drop references on a chunk; the last one deletes it (chunks never expire).
-- KEYS[1]: the chunk (HASH: data, refs)
-- ARGV[1]: how many references to drop
-- returns 1 when the chunk was deleted, else 0
local left = redis.call('HINCRBY', KEYS[1], 'refs', -tonumber(ARGV[1]))
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
