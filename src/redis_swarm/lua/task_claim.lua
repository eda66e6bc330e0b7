--#include _tasks
-- task_claim: claim the best eligible task of the given queues, or reap them.
-- First, for each queue: reclaim expired leases (back to pending, or dead when every attempt
-- is used) and move delayed tasks whose time has come to pending. Then, in mode 'claim', take
-- the highest-priority, oldest pending task across the queues and lease it to the worker.
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] counts  KEYS[4] pass_counts  KEYS[5] events
-- KEYS[6] agents  KEYS[7] presence
-- KEYS[8..] five per queue: pending(q), delayed(q), leases(q), dead(q), wake(q)
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] mode: 'claim' or 'reap'
-- ARGV[4] worker  ARGV[5] lease ms (0 = the task's lease_s)
-- ARGV[6] max expired leases reclaimed per queue  ARGV[7] max delayed tasks promoted per queue
-- ARGV[8] max_abandons of a task stored without one  ARGV[9] claim: the lease's secret (the
-- task keeps its SHA-1; the client makes the token 'ATTEMPT.SECRET')
-- Returns, claim: {task JSON, data JSON or false} or, when nothing is eligible,
--   {false, next due ms or -1, now, last event id};  reap: {reclaimed, next due ms or -1, now}
-- Wake lists: reclaiming or promoting a task pushes a token; a claim that finds nothing
-- clears them (no task is claimable, so every token is stale); a claim that takes a task
-- leaves a token on each queue that still has pending tasks, so that no waiter is stranded
-- when the tokens were capped or a claim took another queue's task.
local now = now_ms(ARGV[1])
local K = {tasks = KEYS[1], counts = KEYS[3], pass_counts = KEYS[4], events = KEYS[5],
           maxlen = ARGV[2]}
local mode = ARGV[3]
local nq = (#KEYS - 7) / 5
local reclaimed = 0
local groups = {}
for g = 1, nq do
  local i = 8 + 5 * (g - 1)
  local Q = queue_keys(i, i + 4)
  groups[g] = Q
  reclaimed = reclaimed + reclaim_expired(K, Q, now, tonumber(ARGV[6]), tonumber(ARGV[8]))
  promote_due(K, Q, now, tonumber(ARGV[7]))
end

if mode == 'reap' then
  local due = nil
  for g = 1, nq do due = next_due(groups[g], due) end
  return {reclaimed, fmt(due or -1), fmt(now)}
end

local best_id, best_score, best_q = nil, nil, nil
for g = 1, nq do
  local first = redis.call('ZRANGE', groups[g].pending, 0, 0, 'WITHSCORES')
  if first[1] then
    local score = tonumber(first[2])
    if not best_score or score < best_score then
      best_id, best_score, best_q = first[1], score, groups[g]
    end
  end
end

if not best_id then
  local due = nil
  for g = 1, nq do
    due = next_due(groups[g], due)
    redis.call('LTRIM', groups[g].wake, 1, 0)  -- empties it (workers may not DEL)
  end
  local last = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
  return {false, fmt(due or -1), fmt(now), last[1] and last[1][1] or '0-0'}
end

local worker = ARGV[4]
local t = load_task(K.tasks, best_id)
redis.call('ZREM', best_q.pending, best_id)
set_status(K, t, 'claimed')
t.attempts = t.attempts + 1
t.worker = worker
t.claims[tostring(t.attempts)] = worker
t.seals = t.seals or {}  -- a task stored before seals existed has none
t.seals[tostring(t.attempts)] = seal(ARGV[9])
t.claimed_at = now
local lease_ms = tonumber(ARGV[5])
if lease_ms <= 0 then lease_ms = math.floor(t.lease_s * 1000) end
t.lease_ms = lease_ms  -- the length renewals default to
t.lease_deadline = now + lease_ms
redis.call('ZADD', best_q.leases, fmt(t.lease_deadline), t.id)
local raw = save_task(K.tasks, t)

-- Workers that only claim and report are registered implicitly. (The JSON is written by
-- hand: worker names are checked names, nothing in them needs escaping.)
redis.call('HSETNX', KEYS[6], worker, '{"id":"' .. worker .. '","role":"worker",'
  .. '"implicit":true,"registered_at":' .. fmt(now) .. '}')
redis.call('ZADD', KEYS[7], fmt(now), worker)
task_event(K, 'task.claimed', t, 'worker', worker, 'attempt', t.attempts,
           'lease_deadline', t.lease_deadline)
for g = 1, nq do
  local Q = groups[g]
  if redis.call('LLEN', Q.wake) == 0 and redis.call('EXISTS', Q.pending) == 1 then wake(Q) end
end
return {raw, redis.call('HGET', KEYS[2], t.id) or false}
