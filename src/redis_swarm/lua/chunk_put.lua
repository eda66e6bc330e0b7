-- chunk_put: store a chunk and add a holder to it. The bytes are written even when the chunk
-- has some: its key names their content hash (_digest.py), so they are the same bytes unless
-- the stored ones were damaged, which this repairs (chunk_acquire sends a chunk again when its
-- stored length is wrong; a publish with --repair sends every chunk again).
-- KEYS[1]: the chunk (HASH: data, h:TOKEN); its key names the content hash of data (_digest.py)
-- ARGV[1]: the stored bytes   ARGV[2]: the holder token
-- returns 1
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'h:' .. ARGV[2], 1)
return 1
