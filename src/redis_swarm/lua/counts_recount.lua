--#include _tasks
-- counts_recount: set each given queue's counters of the statuses its own sets hold to the
-- size of those sets (pending: its pending set, delayed: its delayed set, claimed: its lease
-- set, dead: its dead set: unlink's pairs), atomically (swarm doctor --recount). A worker may
-- HINCRBY the counters by any amount (docs/security.md, 'Forge the status counters'), and a
-- claim that drops an unreadable record leaves it counted; the sets are what claims, reaps
-- and promotions read. The other counters (completed and cancelled, which no set holds, a
-- shard's, a pass's) are left as they are. A counter is written with HSET (one that holds no
-- integer, written where Redis has no ACL selectors, is set too); one already right, or
-- absent while its set is empty, is not written. A queue whose pending set holds tasks and
-- whose wake list is empty gets a token (claims that met a forged pending count of zero or
-- less cleared it), so that a waiting claim wakes for them.
-- KEYS[1] counts  KEYS[2..1+5n] pending(q), delayed(q), leases(q), dead(q), wake(q) of each of
-- the n queues
-- ARGV[1..n] the queues' names
-- Returns {queue, status, the counter before (false: none), its value now, ...}: one entry of
-- four per counter written.
local SETS = {{'pending', 'pending'}, {'delayed', 'delayed'}, {'claimed', 'leases'},
              {'dead', 'dead'}}
local groups = claim_groups(KEYS, 2, #ARGV)
local out = {}
for g, Q in ipairs(groups) do
  local queue = ARGV[g]
  for _, pair in ipairs(SETS) do
    local field = queue .. '|' .. pair[1]
    local held = redis.call('ZCARD', Q[pair[2]])
    local before = redis.call('HGET', KEYS[1], field)
    if tonumber(before or '0') ~= held then
      redis.call('HSET', KEYS[1], field, fmt(held))
      out[#out + 1] = queue
      out[#out + 1] = pair[1]
      out[#out + 1] = before
      out[#out + 1] = held
    end
  end
end
wake_tokenless(groups)
return out
