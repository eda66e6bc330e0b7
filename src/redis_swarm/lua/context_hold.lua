--#include _holds
-- context_hold: journal a publish in flight before it adds its token to any chunk, so that
-- gc can release its chunks if it dies before its flip (see _holds.lua).
-- KEYS[1]: chunk_holds (HASH)   KEYS[2]: holds_publishing (ZSET)
-- ARGV[1]: the publish's holder token   ARGV[2]: JSON list of the digests it will hold
-- ARGV[3]: now (0 = server time)
-- returns 1
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', now_ms(ARGV[3]), ARGV[1])
return 1
