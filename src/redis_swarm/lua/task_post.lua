--#include _tasks
-- task_post: post a batch of tasks atomically. Ids are chosen by the client, so a retried
-- batch (after a lost reply) returns the stored tasks instead of posting them twice.
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] task_index  KEYS[4] dedupe  KEYS[5] counts
-- KEYS[6] pass_counts  KEYS[7] queues  KEYS[8] events  KEYS[9] queue_settings
-- KEYS[10..9+3n] pending(q), delayed(q), wake(q) of each of the n queues; then pass_tasks(p)
-- per pass
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
local out = {fmt(now)}
local stamp = fmt(now)
-- Counters and sets are updated once per batch, not once per task.
local qbumps, pbumps, queues, passes, wakes = {}, {}, {}, {}, {}
local seq = tonumber(redis.call('HGET', KEYS[5], '#seq') or '0')
local queue_abandons = {}  -- queue -> its max_abandons (the queue's setting, else ARGV[5])
local function max_abandons_of(queue)
  if not queue_abandons[queue] then
    local set = redis.call('HGET', KEYS[9], queue .. '|max_abandons')
    queue_abandons[queue] = tonumber(set) or tonumber(ARGV[5])
  end
  return queue_abandons[queue]
end
for i, t in ipairs(specs) do
  local existing = nil
  if redis.call('HEXISTS', KEYS[1], t.id) == 1 then
    existing = t.id
  elseif t.dedupe_key then
    existing = redis.call('HGET', KEYS[4], t.queue .. '|' .. t.dedupe_key)
  end
  if existing then
    out[#out + 1] = redis.call('HGET', KEYS[1], existing)
    out[#out + 1] = redis.call('HGET', KEYS[2], existing) or ''
  else
    local pending, delayed = KEYS[7 + 3 * t.qi], KEYS[8 + 3 * t.qi]
    local wake_key = KEYS[9 + 3 * t.qi]
    local pass_key = t.pi and KEYS[9 + 3 * nq + t.pi]
    t.qi = nil
    t.pi = nil
    seq = seq + 1
    t.seq = seq
    t.created_at = now
    t.attempts = 0
    t.failures = 0
    t.abandons = 0
    t.max_abandons = t.max_abandons or max_abandons_of(t.queue)
    t.claims = {}
    if t.not_before and t.not_before > now then
      t.status = 'delayed'
      redis.call('ZADD', delayed, fmt(t.not_before), t.id)
    else
      t.status = 'pending'
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
    queues[t.queue] = true
    if pass_key then
      passes[t.pass_id] = t.pass_name
      local pfield = t.pass_id .. '|' .. t.status
      pbumps[pfield] = (pbumps[pfield] or 0) + 1
      redis.call('ZADD', pass_key, stamp, t.id)
    end
    if ARGV[5 + i] ~= '' then redis.call('HSET', KEYS[2], t.id, ARGV[5 + i]) end
    redis.call('ZADD', KEYS[3], stamp, t.id)
    if t.dedupe_key then redis.call('HSET', KEYS[4], t.queue .. '|' .. t.dedupe_key, t.id) end
    save_task(KEYS[1], t)
    out[#out + 1] = false
    out[#out + 1] = t.max_abandons
    if t.pass_name then
      emit(KEYS[8], ARGV[2], 'task.posted', 'task', t.id, 'queue', t.queue, 'pass', t.pass_name,
           'status', t.status, 'priority', fmt(t.priority))
    else
      emit(KEYS[8], ARGV[2], 'task.posted', 'task', t.id, 'queue', t.queue,
           'status', t.status, 'priority', fmt(t.priority))
    end
  end
end
redis.call('HSET', KEYS[5], '#seq', fmt(seq))
for field, n in pairs(qbumps) do redis.call('HINCRBY', KEYS[5], field, n) end
for field, n in pairs(pbumps) do redis.call('HINCRBY', KEYS[6], field, n) end
for pass_id, name in pairs(passes) do redis.call('HSETNX', KEYS[6], pass_id, name) end
for queue in pairs(queues) do redis.call('SADD', KEYS[7], queue) end
-- One wake-up token per task made pending or delayed, capped (a hint for waiting claims).
for key, n in pairs(wakes) do
  local tokens = {}
  for j = 1, math.min(n, WAKE_CAP) do tokens[j] = '1' end
  redis.call('RPUSH', key, unpack(tokens))
  redis.call('LTRIM', key, -WAKE_CAP, -1)
end
return out
