--#include _tasks
-- task_post: post a batch of tasks atomically. Ids are chosen by the client, so a retried
-- batch (after a lost reply) returns the stored tasks instead of posting them twice.
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] task_index  KEYS[4] dedupe  KEYS[5] counts
-- KEYS[6] pass_counts  KEYS[7] events  KEYS[8] queue_settings
-- KEYS[9..8+4n] pending(q), delayed(q), wake(q), waiters(q) of each of the n queues; then
-- pass_tasks(p)
-- per pass
-- (No set of queue names: the fields of counts name every queue ever posted to.)
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] n (number of queues)
-- ARGV[4] m (number of passes)  ARGV[5] max_abandons of a task that sets none, in a queue
-- that sets none  ARGV[6..5+n] the queues' names  then pass_id, pass_name of each pass
-- then ten per task (STRIDE): queue (1..n), pass (1..m, '' none), id, priority, not_before
-- (epoch ms; '+MS' a delay from this script's now, the server's clock, which the record
-- then gets here; '' none), dedupe_key ('' none), parent ('' none), max_abandons ('' none),
-- the task as a
-- JSON object of the client's fields (id, queue, description, priority, max_attempts,
-- lease_s, and those set of max_abandons, pass_name, pass_id, not_before, dedupe_key, parent)
-- without its closing brace, and its data as JSON ('' for none).
-- The record stored is the client's object closed with the fields only the server knows (no
-- JSON decoded or encoded here: a record's numbers cost the most to format).
-- Returns {now, then per task: false, its max_abandons for a task created now (it is what the
-- client sent, created at now, with the max_abandons its queue gave it), or its task JSON and
-- data JSON ('' for none) as stored, when it already existed under the same id, or the same
-- queue and dedupe key}.
local STRIDE = 10
local now = now_ms(ARGV[1])
local nq, np = tonumber(ARGV[3]), tonumber(ARGV[4])
local first = 6 + nq + 2 * np  -- the first task's arguments
-- A pass's keys are a shard's (docs/security.md): a worker may post a task, but not to a
-- pass. Redis refuses the writes themselves, but only when the script gets to them, after
-- the seq, the record and the pending set are written (a script is not rolled back): so the
-- caller's rights to every pass write of the batch are asked first (acl_check_cmd runs no
-- command), and a refusal stores nothing. (Redis 6.2 has no acl_check_cmd, and no selectors:
-- a worker's writes reach every key of its swarm there, passes included.)
if np > 0 and redis.acl_check_cmd then
  for p = 1, np do
    if not (redis.acl_check_cmd('ZADD', KEYS[8 + 4 * nq + p], '0', 'id')
        and redis.acl_check_cmd('HSETNX', KEYS[6], ARGV[4 + nq + 2 * p], 'name')) then
      return redis.error_reply('NOPERM rs_task_post: this user may not write the keys of a '
        .. 'pass; nothing was stored')
    end
  end
end
local count = (#ARGV - first + 1) / STRIDE
local stamp = fmt(now)
local K = {events = KEYS[7], maxlen = ARGV[2], counts = KEYS[5]}
local groups = {}  -- queue number -> its delayed key, as lower_due takes it
local posted = {}  -- the task an event is about: id, queue, pass_name
local out = {stamp}
-- Counters and sets are updated once per batch, not once per task.
local qbumps, pbumps, passes, wakes = {}, {}, {}, {}
-- One increment reserves a posting number for every task of the batch (a task that already
-- existed leaves a gap: only the order matters).
local seq = redis.call('HINCRBY', KEYS[5], '#seq', fmt(count)) - count
local queue_abandons = {}  -- queue -> its max_abandons (the queue's setting, else ARGV[5])
for i = 1, count do
  local b = first + STRIDE * (i - 1)
  local qi, pi, id = tonumber(ARGV[b]), ARGV[b + 1], ARGV[b + 2]
  local queue, dedupe_key, parent = ARGV[5 + qi], ARGV[b + 5], ARGV[b + 6]
  local not_before, due_set = ARGV[b + 4], ''
  if not_before == '' then  -- (most tasks: no call at all)
    not_before = nil
  elseif string.byte(not_before) == 43 then  -- '+': due that long after now, on this clock
    not_before = now + tonumber(string.sub(not_before, 2))
    due_set = ',"not_before":' .. fmt(not_before)
  else
    not_before = tonumber(not_before)
  end
  local status = (not_before and not_before > now) and 'delayed' or 'pending'
  local existing = dedupe_key ~= '' and redis.call('HGET', KEYS[4], queue .. '|' .. dedupe_key)
  -- The task a dedupe key names, read here (the reply returns it): an entry of a task no
  -- longer stored (retired, as a question whose key a successor took over) is as none, and
  -- the task posted now overwrites it. (No command more on the path of a task posted anew.)
  local found = existing and redis.call('HGET', KEYS[1], existing)
  if not found then existing = false end
  local max_abandons = ARGV[b + 7]
  if not existing then
    local set_here = ''
    if max_abandons == '' then
      max_abandons = queue_abandons[queue]
      if not max_abandons then
        local set = tonumber(redis.call('HGET', KEYS[8], queue .. '|max_abandons'))
        max_abandons = set and fmt(set) or ARGV[5]
        queue_abandons[queue] = max_abandons
      end
      set_here = ',"max_abandons":' .. max_abandons
    end
    local raw = ARGV[b + 8] .. set_here .. due_set .. ',"seq":' .. fmt(seq + i)
      .. ',"created_at":' .. stamp
      .. ',"attempts":0,"failures":0,"abandons":0,"claims":{},"status":"' .. status .. '"}'
    -- Stored only when the id is new: a retried batch finds its tasks (one command, not two).
    if redis.call('HSETNX', KEYS[1], id, raw) == 0 then
      existing, found = id, redis.call('HGET', KEYS[1], id)
    end
  end
  if existing then
    out[#out + 1] = found
    out[#out + 1] = redis.call('HGET', KEYS[2], existing) or ''
  else
    if status == 'delayed' then
      redis.call('ZADD', KEYS[6 + 4 * qi], fmt(not_before), id)
      groups[qi] = groups[qi] or {delayed = KEYS[6 + 4 * qi]}
      lower_due(K, groups[qi], not_before)
    else
      local score = fmt(-tonumber(ARGV[b + 3]) * PRIO_SHIFT + seq + i)
      redis.call('ZADD', KEYS[5 + 4 * qi], score, id)
    end
    -- A token for a delayed task too: the waiter it wakes learns when the task falls due.
    wakes[qi] = (wakes[qi] or 0) + 1
    local field = queue .. '|' .. status
    qbumps[field] = (qbumps[field] or 0) + 1
    if parent ~= '' then
      field = shard_field(parent, status)
      qbumps[field] = (qbumps[field] or 0) + 1
    end
    local pass_name = nil
    if pi ~= '' then
      local p = tonumber(pi)
      local pass_id = ARGV[4 + nq + 2 * p]
      pass_name = ARGV[5 + nq + 2 * p]
      passes[pass_id] = pass_name
      local pfield = pass_id .. '|' .. status
      pbumps[pfield] = (pbumps[pfield] or 0) + 1
      redis.call('ZADD', KEYS[8 + 4 * nq + p], stamp, id)
    end
    if ARGV[b + 9] ~= '' then redis.call('HSET', KEYS[2], id, ARGV[b + 9]) end
    redis.call('ZADD', KEYS[3], stamp, id)
    if dedupe_key ~= '' then redis.call('HSET', KEYS[4], queue .. '|' .. dedupe_key, id) end
    out[#out + 1] = false
    out[#out + 1] = max_abandons
    posted.id, posted.queue, posted.pass_name = id, queue, pass_name
    -- (No priority: no reader of the event needs it; the task record has it.)
    task_event(K, 'task.posted', posted, 'status', status)
  end
end
for field, n in pairs(qbumps) do redis.call('HINCRBY', KEYS[5], field, fmt(n)) end
for field, n in pairs(pbumps) do redis.call('HINCRBY', KEYS[6], field, fmt(n)) end
for pass_id, name in pairs(passes) do redis.call('HSETNX', KEYS[6], pass_id, name) end
-- One wake-up token per task made pending or delayed, capped (a hint for waiting claims).
for qi, n in pairs(wakes) do
  wake({wake = KEYS[8 + 4 * qi - 1], waiters = KEYS[8 + 4 * qi]}, n)
end
return out
