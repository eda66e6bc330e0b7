-- chunk_put: store a chunk (unless an identical one is there) and add a holder to it.
-- KEYS[1]: the chunk (HASH: data, h:TOKEN); its key names the content hash of data (_digest.py)
-- ARGV[1]: the stored bytes   ARGV[2]: the holder token
-- returns 1
redis.call('HSETNX', KEYS[1], 'data', ARGV[1])
redis.call('HSET', KEYS[1], 'h:' .. ARGV[2], 1)
return 1
