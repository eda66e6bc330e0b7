--#include _tasks
-- task_update: one lifecycle change of one task: renew, release, fail, cancel or requeue; or
-- add_failed_usage, what a failed run cost told after its failure (no change of status).
-- Each request carries an op id: a retried request (after a lost reply) finds its op id in
-- the task and returns the task as it left it, instead of applying twice.
-- KEYS[1] tasks  KEYS[2] counts  KEYS[3] pass_counts  KEYS[4] events
-- KEYS[5] pending(q)  KEYS[6] delayed(q)  KEYS[7] leases(q)  KEYS[8] dead(q)  KEYS[9] task_data
-- KEYS[10] wake(q)  KEYS[11] queue_settings (a fail reads its queue's QUEUE|retry_backoff_ms)
-- KEYS[12] presence (ZSET agent -> last sign of life): a renewal marks its worker present
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] action: renew | release |
--   fail | cancel | requeue | add_failed_usage  ARGV[4] task id  ARGV[5] the task's queue (as
--   the client knows it)  ARGV[6] op id  ARGV[7] token 'ATTEMPT.SECRET' (renew, release,
--   fail, add_failed_usage)
-- ARGV[8] the ranges a post accepts for a task's numbers (lua/_tasks: record_limits)
-- ARGV[9] renew: lease ms (0 = the length the claim asked for); fail: '1' to retry, '0' not to;
--   cancel: '1' to drop a dead task for good (else a dead task is refused)
-- ARGV[10] fail: error text  ARGV[11] fail: backoff base ms, unless the queue sets its own
--   (QUEUE|retry_backoff_ms in KEYS[11])  ARGV[12] fail: backoff cap ms
-- ARGV[13] fail, add_failed_usage: the failed run's usage JSON (fail: '' = none), added to
--   the task's failed_usage
-- ARGV[14] fail: ms before the retry may run, instead of the backoff ('' = the backoff)
-- ARGV[15] (a bulk change's, cancel or requeue; optional) the statuses the task may have for
--   the change to go on, comma-separated (another: refused, nothing written); the reply
--   then holds no data (a bulk change of 500 tasks read back their data for nothing)
-- Every change of status but renew's (none) records its time: status_at (lua/_tasks).
-- What the action reads of the record is checked before its first write (update_lacking): a
-- damaged record (written around redis-swarm) is dead-lettered when in one of its queue's
-- sets, else refused, and the script never stops half-way.
-- Returns {task JSON after the change, data JSON or false}.
local now = now_ms(ARGV[1])
local record_limits_refused
local K = {tasks = KEYS[1], counts = KEYS[2], pass_counts = KEYS[3], events = KEYS[4],
           maxlen = ARGV[2]}
K.limits, record_limits_refused = record_limits(ARGV[8])
if record_limits_refused then return record_limits_refused end
local Q = queue_keys(KEYS, 5, 10)
local action, id, op = ARGV[3], ARGV[4], ARGV[6]

-- Sums a failed run's usage into the task's failed_usage: money spent no finding records.
local function add_usage(total, u)
  total = total or {}
  total.source = u.source
  for _, k in ipairs({'cost_usd', 'tokens_in', 'tokens_out', 'cached_in'}) do
    if type(u[k]) == 'number' then total[k] = (total[k] or 0) + u[k] end
  end
  if type(u.models) == 'table' and next(u.models) ~= nil then
    total.models = total.models or {}
    for model, figures in pairs(u.models) do
      local acc = total.models[model] or {}
      for k, v in pairs(figures) do
        if type(v) == 'number' then acc[k] = (acc[k] or 0) + v end
      end
      total.models[model] = acc
    end
  end
  return total
end

local only = ARGV[15] ~= nil and ARGV[15] ~= '' and ARGV[15] or nil

local function reply(raw)
  if only then return {raw, false} end
  return {raw, redis.call('HGET', KEYS[9], id) or false}
end

-- The field of t this action reads that is missing (where it must not be) or not of its kind,
-- and that kind; nil when none is. Lua checks only, no command. lease: what lease_refusal
-- reads (renew, release, fail: checked before it).
local function update_lacking(t, lease)
  local field, kind = owner_lacking(t)
  if field then return field, kind end
  local status, worker = t.status, t.worker
  if type(status) ~= 'string' then return 'status', 'a string' end
  local queued = status == 'pending' or status == 'delayed' or status == 'claimed'
  if t.pass_id == nil and t.pass_name ~= nil then
    -- As task_in_set's check; a record out of the queue's sets (dead-lettered for it, and no
    -- pass of that name counted then) gets it back when a pass of its name is counted now.
    if queued then return 'pass_id', 'a string' end
    t.pass_id = pass_id_of(K, t.pass_name)
  end
  if worker ~= nil and type(worker) ~= 'string' then return 'worker', 'a string' end
  if lease then
    if not count(t.attempts) then return 'attempts', COUNT end
    if t.seals ~= nil and type(t.seals) ~= 'table' then return 'seals', 'an object' end
    return nil
  end
  -- (what the action reads before refusing a task of another status is checked above;
  -- add_failed_usage moves nothing, and sums failed_usage guarded: refused when damaged)
  if action == 'cancel' or action == 'add_failed_usage'
      or (action == 'requeue' and status ~= 'dead') then
    return nil
  end
  local L = K.limits
  if action == 'renew' then
    -- (the lease its claim gave, lease_ms; a task claimed before that field existed: lease_s)
    local lease_ms, deadline = t.lease_ms, t.lease_deadline
    if lease_ms ~= nil and not in_range(lease_ms, L.lease_min, L.lease_max) then
      return 'lease_ms', range_kind(L.lease_min, L.lease_max)
    end
    if lease_ms == nil then
      field, kind = lease_s_lacking(t, L)
      if field then return field, kind end
    end
    if deadline ~= nil and not finite(deadline) then
      return 'lease_deadline', 'a finite number'
    end
    return nil
  end
  -- release, fail, requeue: the pending score (make_pending), the event's attempt
  field, kind = score_lacking(t, L)
  if field then return field, kind end
  if t.attempts ~= nil and not count(t.attempts) then return 'attempts', COUNT end
  if action == 'fail' then
    local failures, usage = t.failures, t.failed_usage
    if failures ~= nil and not count(failures) then return 'failures', COUNT end
    if t.failed_run_count ~= nil and not count(t.failed_run_count) then
      return 'failed_run_count', COUNT
    end
    field, kind = most_lacking(t, L)
    if field then return field, kind end
    if usage ~= nil and type(usage) ~= 'table' then return 'failed_usage', 'an object' end
  end
  return nil
end

local t = load_record(K.tasks, id)
if t == nil then
  return swarm_error('SWARM_NOTFOUND',
    'task ' .. id .. ' does not exist: check the id with swarm task list')
end
if not t then return unreadable(id) end
if t.queue ~= ARGV[5] then
  return swarm_error('SWARM_CONFLICT', 'task ' .. id .. ' is not in queue ' .. ARGV[5])
end
if t.op == op then return reply(redis.call('HGET', K.tasks, id)) end

-- t lacks field (of kind), which this action reads: dead-lettered when it is in one of its
-- queue's sets (as the next move out of it would: task_in_set), else refused; nothing else
-- written either way.
local function damaged(field, kind)
  local status = t.status
  if type(status) == 'string' and not owner_lacking(t)
      and (status == 'pending' or status == 'delayed' or status == 'claimed') then
    unlink(Q, t)
    bury_damaged(K, Q, t, id, status, damage(t, field, kind), now)
    return swarm_error('SWARM_CORRUPT', 'task ' .. id .. ' was dead-lettered: ' .. t.dead_reason)
  end
  return swarm_error('SWARM_CORRUPT', 'task ' .. id .. ' has a ' .. damage(t, field, kind)
    .. ', so it cannot be changed (' .. action .. '): post its work again as a new task')
end

-- Taking a task out of the dead-letter set (requeue, or drop it for good) is a shard's or
-- coordinator's (docs/security.md): a worker's rules allow ZREM on the dead set only so that
-- its report completes a task dead-lettered meanwhile (the first report wins, _report). So
-- the caller's rights to a write only those roles have (its queue's settings) are asked
-- first; acl_check_cmd runs no command. (Redis 6.2 has neither acl_check_cmd nor selectors:
-- a worker's writes reach every key of its swarm there.) The refusal names no key and no
-- internals: _translate says who may.
local function dead_letters_refused()
  if not redis.acl_check_cmd then return nil end
  -- The settings key is named from the tasks key's prefix, not taken as sent: a caller could
  -- send, as KEYS[11], a key it may write, and pass the check.
  local settings = string.sub(KEYS[1], 1, -#'tasks' - 1) .. 'queue_settings'
  if KEYS[11] ~= settings or not redis.acl_check_cmd('HSET', settings, 'QUEUE', '{}') then
    return redis.error_reply('NOPERM this user may not take a task out of the dead-letter '
      .. 'set; nothing was changed')
  end
  return nil
end

local field, kind
if action == 'renew' or action == 'release' or action == 'fail' then
  field, kind = update_lacking(t, true)
  if field then return damaged(field, kind) end
  local _, refusal = lease_refusal(t, ARGV[7])
  if refusal then return swarm_error('SWARM_LEASELOST', refusal) end
end
field, kind = update_lacking(t, false)
if field then return damaged(field, kind) end

if action == 'renew' then
  local lease_ms = tonumber(ARGV[9])
  if lease_ms <= 0 then lease_ms = t.lease_ms or math.floor(t.lease_s * 1000) end
  local before = t.lease_deadline
  t.lease_deadline = now + lease_ms
  redis.call('ZADD', Q.leases, fmt(t.lease_deadline), id)
  if not before or t.lease_deadline < before then lower_due(K, Q, t.lease_deadline) end
  -- A renewal is a sign of life of the worker holding the lease, as a heartbeat is: a
  -- worker busy on one long task stays alive in the listings and is not swept. Only a
  -- registered worker is marked (XX): a renewal registers nobody.
  if t.worker then redis.call('ZADD', KEYS[12], 'XX', fmt(now), t.worker) end
  task_event(K, 'task.renewed', t, 'worker', t.worker, 'attempt', t.attempts,
             'lease_deadline', t.lease_deadline)

elseif action == 'release' then
  -- Back to the queue: neither a failure nor an abandon.
  redis.call('ZREM', Q.leases, id)
  local worker = t.worker
  t.worker = nil
  t.lease_deadline = nil
  make_pending(K, Q, t, now)
  task_event(K, 'task.released', t, 'worker', worker, 'attempt', t.attempts)

elseif action == 'fail' then
  -- Every failed run, kept apart from failures (which a requeue sets back to 0, while
  -- failed_usage keeps summing): how many runs failed_usage and the failures stand for. A
  -- task stored before the count existed starts from what _models.failed_runs_of reads of
  -- it (its failures, at least one when it has a failed_usage): one rule in both.
  local runs = t.failed_run_count
  if runs == nil then
    runs = t.failures or 0
    if t.failed_usage ~= nil and runs < 1 then runs = 1 end
  end
  -- failed_cost: 'unknown' while this failure said nothing of what its run cost, which
  -- add_failed_usage may then add, once ('added'); none when it said.
  t.failed_cost = 'unknown'
  if ARGV[13] and ARGV[13] ~= '' then
    -- (summed before the first write: a total written around redis-swarm may hold anything)
    local ok, total = pcall(add_usage, t.failed_usage, cjson.decode(ARGV[13]))
    if not ok then return damaged('failed_usage', 'an object of usage figures') end
    t.failed_usage = total
    t.failed_cost = nil
  end
  redis.call('ZREM', Q.leases, id)
  local worker, err = t.worker, ARGV[10]
  t.worker = nil
  t.lease_deadline = nil
  t.last_error = err
  t.failed_run_count = runs + 1
  -- Which attempt failed last: a failure read back after its reply was lost is this lease's
  -- only if it is (a later claim may have come since; another worker's failure too).
  t.failed_attempt = t.attempts
  t.failures = (t.failures or 0) + 1
  task_event(K, 'task.failed', t, 'worker', worker, 'attempt', t.attempts,
             'error', string.sub(err, 1, 500))
  if ARGV[9] ~= '1' then
    make_dead(K, Q, t, now, 'failed without retry: ' .. err)
  elseif t.failures >= t.max_attempts then
    make_dead(K, Q, t, now, string.format(
      'max_attempts reached: failed on %s; last error: %s',
      t.failures == 1 and 'its 1 attempt' or string.format('all %d attempts', t.failures), err))
  else
    local delay = tonumber(ARGV[14])  -- the caller's (a rate limit's Retry-After)
    if not delay then
      -- Exponential backoff: base, 2 * base, 4 * base, ... capped; the queue's base if set.
      local base = tonumber(redis.call('HGET', KEYS[11], t.queue .. '|retry_backoff_ms'))
      delay = math.min((base or tonumber(ARGV[11])) * 2 ^ (t.failures - 1), tonumber(ARGV[12]))
    end
    t.not_before = now + delay
    if delay > 0 then
      set_status_at(K, t, 'delayed', now)
      redis.call('ZADD', Q.delayed, fmt(t.not_before), id)
      lower_due(K, Q, t.not_before)
      wake(Q)  -- one waiter learns when the retry falls due
    else
      make_pending(K, Q, t, now)  -- claimable at once, as a task posted due now
    end
    task_event(K, 'task.retried', t, 'attempt', t.attempts, 'not_before', t.not_before)
  end

elseif action == 'add_failed_usage' then
  -- What a failed run cost, told after its failure, which said nothing of it (an agent that
  -- failed its own task, then printed its cost): added to failed_usage by the holder of the
  -- lease whose attempt failed last, once (a retry after a lost reply finds it added, and
  -- adds nothing). Neither status nor counters change.
  local lacking, of_kind = update_lacking(t, true)  -- (what issued reads: attempts, seals)
  if lacking then
    return swarm_error('SWARM_CORRUPT', 'task ' .. id .. ' has a '
      .. damage(t, lacking, of_kind) .. ', so no cost was added to it')
  end
  local attempt = issued(t, ARGV[7])
  if not attempt then return swarm_error('SWARM_LEASELOST', never_issued(t)) end
  local last = t.failed_attempt
  if last ~= attempt then
    local which = type(last) == 'number' and last % 1 == 0
      and string.format('its last failure is attempt %s\'s', fmt(last)) or 'it has no failure'
    return swarm_error('SWARM_INVALIDSTATE', string.format(
      'task %s: attempt %s has no failure to add a cost to (%s): only the run that failed '
      .. 'last may add what it cost, nothing was added', id, fmt(attempt), which))
  end
  if t.failed_cost == 'added' then return reply(redis.call('HGET', K.tasks, id)) end
  if t.failed_cost ~= 'unknown' then
    return swarm_error('SWARM_INVALIDSTATE', string.format(
      'task %s: the failure of attempt %s gave its cost with it (fail\'s usage), so nothing '
      .. 'was added: a failure\'s cost is added once', id, fmt(attempt)))
  end
  local ok, total = pcall(add_usage, t.failed_usage, cjson.decode(ARGV[13]))
  if not ok then
    return swarm_error('SWARM_CORRUPT', 'task ' .. id .. ' has a ' .. damage(t, 'failed_usage',
      'an object of usage figures') .. ', so no cost was added to it')
  end
  t.failed_usage = total
  t.failed_cost = 'added'

elseif action == 'cancel' then
  if t.status == 'cancelled' then return reply(redis.call('HGET', K.tasks, id)) end
  if t.status == 'completed' then
    return swarm_error('SWARM_INVALIDSTATE', 'task ' .. id .. ' is already completed and '
      .. 'cannot be cancelled: its finding stands, leave it')
  end
  -- A dead task is dropped for good only when asked (a coordinator's `swarm task cancel`):
  -- a caller withdrawing what it posted (an ask, an A2A cancel) must not erase a dead
  -- letter it did not know of. A worker's drop of a dead task is refused before any write
  -- (dead_letters_refused).
  if only and not string.find(',' .. only .. ',', ',' .. t.status .. ',', 1, true) then
    return swarm_error('SWARM_INVALIDSTATE', 'task ' .. id .. ' is ' .. t.status .. ' now, '
      .. 'not ' .. only .. ': left as it is')
  end
  if t.status == 'dead' and ARGV[9] ~= '1' then
    return swarm_error('SWARM_INVALIDSTATE', 'task ' .. id .. ' is dead: requeue it '
      .. '(swarm task requeue ' .. id .. '), or drop it for good (swarm task cancel ' .. id .. ')')
  end
  if t.status == 'dead' then
    local refused = dead_letters_refused()
    if refused then return refused end
  end
  unlink(Q, t)
  local worker = t.worker
  t.worker = nil
  t.lease_deadline = nil
  t.dead_reason = nil  -- (the task.dead event keeps why it died)
  set_status_at(K, t, 'cancelled', now)
  task_event(K, 'task.cancelled', t, 'worker', worker)

elseif action == 'requeue' then
  if t.status ~= 'dead' then
    return swarm_error('SWARM_INVALIDSTATE', 'task ' .. id .. ' is ' .. t.status
      .. ', not dead: only dead-lettered tasks can be requeued')
  end
  local refused = dead_letters_refused()
  if refused then return refused end
  redis.call('ZREM', Q.dead, id)
  -- Fresh budgets of failures and abandons; tokens keep counting up, so old leases stay
  -- invalid.
  t.failures = 0
  t.abandons = 0
  t.dead_reason = nil
  make_pending(K, Q, t, now)
  task_event(K, 'task.requeued', t, 'attempt', t.attempts)

else
  return swarm_error('SWARM_INVALID', 'unknown task action ' .. action)
end

t.op = op
return reply(save_task(K.tasks, t))
