-- index_repair: put some entries of one index right (swarm doctor --repair: the ids the
-- doctor's scan named, at most a thousand a call): each stored record the index lacks added
-- back at its score (ZADD NX: an entry added meanwhile, by a retried report, keeps its own),
-- and each entry of a record no longer stored removed. The record is looked for again just
-- before each write (HEXISTS), so that a record retired since the scan is not re-added and
-- one stored since is not removed from its index.
-- The repair removes entries, which a worker never may (it may add to some indexes): the
-- caller's rights to both writes on the index are asked first (acl_check_cmd runs no
-- command), so that a user who may not remove is refused before anything is written, never
-- half-way. (Redis 6.2 has no acl_check_cmd, and no selectors: a worker's writes reach every
-- key of its swarm there.)
-- KEYS[1] the index (ZSET of record ids)  KEYS[2] the hash of its records
-- ARGV[1] n: how many records to add back  ARGV[2..1+2n] score, id of each
-- ARGV[2+2n..] the ids of the entries to remove
-- Returns {the ids added, the ids removed}: what was done, the rest found put right meanwhile.
if redis.acl_check_cmd and not (redis.acl_check_cmd('ZREM', KEYS[1], 'id')
    and redis.acl_check_cmd('ZADD', KEYS[1], 'NX', '0', 'id')) then
  return redis.error_reply('NOPERM rs_index_repair: this user may not remove entries from the '
    .. 'indexes; nothing was changed')
end
local n = tonumber(ARGV[1])
if not n or n < 0 or 1 + 2 * n > #ARGV then
  return swarm_error('SWARM_INVALID', 'index_repair was sent arguments of another layout '
    .. 'than the server\'s redis-swarm library takes (a client of another version?)')
end
local added, removed = {}, {}
for i = 1, n do
  local score, id = ARGV[2 * i], ARGV[2 * i + 1]
  if redis.call('HEXISTS', KEYS[2], id) == 1
      and redis.call('ZADD', KEYS[1], 'NX', score, id) == 1 then
    added[#added + 1] = id
  end
end
for i = 2 + 2 * n, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], id) == 0 and redis.call('ZREM', KEYS[1], id) == 1 then
    removed[#removed + 1] = id
  end
end
return {added, removed}
