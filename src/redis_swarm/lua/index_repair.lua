--#include _tasks
-- index_repair: put some entries of one index right (swarm doctor --repair: the ids the
-- doctor's scan named, at most a thousand a call): each stored record the index lacks added
-- back at its score (ZADD NX: an entry added meanwhile, by a retried report, keeps its own),
-- and each entry of a record no longer stored removed. The record is looked for again just
-- before each write (HEXISTS), so that a record retired since the scan is not re-added and
-- one stored since is not removed from its index.
-- A queue's pending, delayed, leases or dead set is put right so too: a task whose record
-- holds the set's status and names its queue, and that the set lacks (never claimed, or never
-- reclaimed, reaped or requeued), is added back at the score its record gives it, as the
-- scripts that move a task there give it (set_score), read from the record just before the
-- write: a task moved meanwhile (claimed, reported, ...) holds another status, and is left.
-- The repair removes entries, which a worker never may (it may add to some indexes): the
-- caller's rights to both writes on the index are asked first (acl_check_cmd runs no
-- command), so that a user who may not remove is refused before anything is written, never
-- half-way. (Redis 6.2 has no acl_check_cmd, and no selectors: a worker's writes reach every
-- key of its swarm there.)
-- A task put back where it can fall due or be claimed tells the queue's claimers as the
-- scripts that move a task there do: a pending one pushes a wake-up token (a waiting claim
-- takes it at once, not at the end of its wait), a delayed one or a lease lowers the queue's
-- due hint to its time (else a claim would not scan for it before the hint came, up to a
-- minute late).
-- KEYS[1] the index (ZSET of record ids)  KEYS[2] the hash of its records
-- KEYS[3] counts  KEYS[4] delayed(q)  KEYS[5] wake(q): of a queue's set only (without them,
-- no claimer is told)
-- ARGV[1] n: how many records to add back  ARGV[2] the status of the tasks KEYS[1] holds when
-- it is a queue's set (pending, delayed, claimed, dead), '' for an index  ARGV[3] that queue
-- ('' for an index)  ARGV[4..3+2n] score ('' for a queue's set: its record's), id of each
-- ARGV[4+2n..] the ids of the entries to remove
-- Returns {id, score of each id added, the ids removed}: what was done (each addition at the
-- score written), the rest found put right meanwhile.
if redis.acl_check_cmd and not (redis.acl_check_cmd('ZREM', KEYS[1], 'id')
    and redis.acl_check_cmd('ZADD', KEYS[1], 'NX', '0', 'id')) then
  return redis.error_reply('NOPERM rs_index_repair: this user may not remove entries from the '
    .. 'indexes; nothing was changed')
end
local n = tonumber(ARGV[1])
if not n or n < 0 or 3 + 2 * n > #ARGV then
  return swarm_error('SWARM_INVALID', 'index_repair was sent arguments of another layout '
    .. 'than the server\'s redis-swarm library takes (a client of another version?)')
end
local status, queue = ARGV[2], ARGV[3]

-- The score of task t in its queue's set of status: a pending task's (pending_score), a
-- delayed task's due time, a lease's deadline, a dead task's time of death (status_at: a
-- record stored before it existed, its creation); nil when the record does not hold it.
local function set_score(t)
  if status == 'pending' then
    return finite(t.priority) and finite(t.seq) and pending_score(t) or nil
  end
  local at = t.lease_deadline
  if status == 'delayed' then
    at = t.not_before
  elseif status == 'dead' then
    at = t.status_at or t.created_at
  end
  return finite(at) and fmt(at) or nil
end

-- The score id is added back at, its record looked for again: nil when it is not stored (or,
-- in a queue's set, no longer holds the set's status and queue, or no score).
local function score_of(score, id)
  if status == '' then
    return redis.call('HEXISTS', KEYS[2], id) == 1 and score or nil
  end
  local t = load_record(KEYS[2], id)
  if not t or t.status ~= status or t.queue ~= queue or (t.id ~= nil and t.id ~= id) then
    return nil
  end
  return set_score(t)
end

local added, removed = {}, {}
local K, Q = {counts = KEYS[3]}, {delayed = KEYS[4], wake = KEYS[5]}
local woken = 0  -- pending tasks put back: a wake-up token each
for i = 1, n do
  local id = ARGV[2 * i + 3]
  local score = score_of(ARGV[2 * i + 2], id)
  if score and redis.call('ZADD', KEYS[1], 'NX', score, id) == 1 then
    added[#added + 1] = id
    added[#added + 1] = score
    if status == 'pending' then
      woken = woken + 1
    elseif (status == 'delayed' or status == 'claimed') and K.counts then
      lower_due(K, Q, tonumber(score))
    end
  end
end
if woken > 0 then wake(Q, woken) end
for i = 4 + 2 * n, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], id) == 0 and redis.call('ZREM', KEYS[1], id) == 1 then
    removed[#removed + 1] = id
  end
end
return {added, removed}
