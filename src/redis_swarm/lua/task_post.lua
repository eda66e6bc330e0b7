--#include _tasks
-- task_post: post a batch of tasks atomically. Ids are chosen by the client, so a retried
-- batch (after a lost reply) returns the stored tasks instead of posting them twice.
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] task_index  KEYS[4] dedupe  KEYS[5] counts
-- KEYS[6] pass_counts  KEYS[7] events  KEYS[8] queue_settings
-- KEYS[9..8+3n] pending(q), delayed(q), wake(q) of each of the n queues; then pass_tasks(p)
-- per pass
-- (No set of queue names: the fields of counts name every queue ever posted to.)
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] n (number of queues)
-- ARGV[4] JSON array of task specs: id, queue, qi (queue group 1..n), description, priority,
--         max_attempts, lease_s, and when set: pi (pass key 1..m), pass_name, pass_id,
--         not_before, dedupe_key, parent, max_abandons
-- ARGV[5] max_abandons of a task that sets none, in a queue that sets none
-- ARGV[6..] each task's data as JSON ('' for none), in the same order
-- Returns {now, then per task: false, its max_abandons for a task created now (it is what the
-- client sent, created at now, with the max_abandons its queue gave it), or its task JSON and
-- data JSON ('' for none) as stored, when it already existed under the same id, or the same
-- queue and dedupe key}.
local now = now_ms(ARGV[1])
local nq = tonumber(ARGV[3])
local specs = cjson.decode(ARGV[4])
local stamp = fmt(now)
local K = {events = KEYS[7], maxlen = ARGV[2]}
local out = {stamp}
-- Counters and sets are updated once per batch, not once per task.
local qbumps, pbumps, passes, wakes = {}, {}, {}, {}
-- One increment reserves a posting number for every task of the batch (a task that already
-- existed leaves a gap: only the order matters).
local seq = redis.call('HINCRBY', KEYS[5], '#seq', fmt(#specs)) - #specs
local queue_abandons = {}  -- queue -> its max_abandons (the queue's setting, else ARGV[5])
local function max_abandons_of(queue)
  if not queue_abandons[queue] then
    local set = redis.call('HGET', KEYS[8], queue .. '|max_abandons')
    queue_abandons[queue] = tonumber(set) or tonumber(ARGV[5])
  end
  return queue_abandons[queue]
end
for i, t in ipairs(specs) do
  local existing = t.dedupe_key and redis.call('HGET', KEYS[4], t.queue .. '|' .. t.dedupe_key)
  local pending, delayed = KEYS[6 + 3 * t.qi], KEYS[7 + 3 * t.qi]
  local wake_key = KEYS[8 + 3 * t.qi]
  local pass_key = t.pi and KEYS[8 + 3 * nq + t.pi]
  t.qi = nil
  t.pi = nil
  t.seq = seq + i
  t.created_at = now
  t.attempts = 0
  t.failures = 0
  t.abandons = 0
  t.claims = {}
  t.status = (t.not_before and t.not_before > now) and 'delayed' or 'pending'
  if not existing then
    t.max_abandons = t.max_abandons or max_abandons_of(t.queue)
    -- Stored only when the id is new: a retried batch finds its tasks (one command, not two).
    if redis.call('HSETNX', KEYS[1], t.id, cjson.encode(t)) == 0 then existing = t.id end
  end
  if existing then
    out[#out + 1] = redis.call('HGET', KEYS[1], existing)
    out[#out + 1] = redis.call('HGET', KEYS[2], existing) or ''
  else
    if t.status == 'delayed' then
      redis.call('ZADD', delayed, fmt(t.not_before), t.id)
    else
      redis.call('ZADD', pending, pending_score(t), t.id)
    end
    -- A token for a delayed task too: the waiter it wakes learns when the task falls due.
    wakes[wake_key] = (wakes[wake_key] or 0) + 1
    local field = t.queue .. '|' .. t.status
    qbumps[field] = (qbumps[field] or 0) + 1
    if t.parent then
      field = shard_field(t.parent, t.status)
      qbumps[field] = (qbumps[field] or 0) + 1
    end
    if pass_key then
      passes[t.pass_id] = t.pass_name
      local pfield = t.pass_id .. '|' .. t.status
      pbumps[pfield] = (pbumps[pfield] or 0) + 1
      redis.call('ZADD', pass_key, stamp, t.id)
    end
    if ARGV[5 + i] ~= '' then redis.call('HSET', KEYS[2], t.id, ARGV[5 + i]) end
    redis.call('ZADD', KEYS[3], stamp, t.id)
    if t.dedupe_key then redis.call('HSET', KEYS[4], t.queue .. '|' .. t.dedupe_key, t.id) end
    out[#out + 1] = false
    out[#out + 1] = t.max_abandons
    -- (No priority: no reader of the event needs it; the task record has it.)
    task_event(K, 'task.posted', t, 'status', t.status)
  end
end
for field, n in pairs(qbumps) do redis.call('HINCRBY', KEYS[5], field, fmt(n)) end
for field, n in pairs(pbumps) do redis.call('HINCRBY', KEYS[6], field, fmt(n)) end
for pass_id, name in pairs(passes) do redis.call('HSETNX', KEYS[6], pass_id, name) end
-- One wake-up token per task made pending or delayed, capped (a hint for waiting claims).
for key, n in pairs(wakes) do wake({wake = key}, n) end
return out
