-- chunk_put: store a chunk (unless an identical one is there) and take references on it.
-- KEYS[1]: the chunk (HASH: data, refs); its key names the SHA-256 of data
-- ARGV[1]: the stored bytes   ARGV[2]: how many references to take
-- returns the reference count after this call
redis.call('HSETNX', KEYS[1], 'data', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'refs', ARGV[2])
