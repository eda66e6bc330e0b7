-- agent_swap: replace an agent's record, but only if it is still the one its caller read (a
-- compare-and-set: the caller edits the JSON, which Lua's cjson would not keep byte for byte,
-- and sends it back; one that lost a race reads again and retries).
-- KEYS[1]: agents (HASH id -> record JSON)
-- ARGV[1]: agent id   ARGV[2]: the record as read   ARGV[3]: the record to store
-- returns 1 when stored, 0 when the record changed meanwhile or is gone
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
