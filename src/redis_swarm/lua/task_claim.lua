--#include _tasks
-- task_claim: claim the best eligible tasks of the given queues, or reap them.
-- First, for each queue: reclaim expired leases (back to pending, or dead when every attempt
-- is used) and move delayed tasks whose time has come to pending. Then, in mode 'claim',
-- lease the highest-priority, oldest pending tasks across the queues to the worker, one per
-- secret given (a batch: the best, then the next best, ...).
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] counts  KEYS[4] pass_counts  KEYS[5] events
-- KEYS[6] agents  KEYS[7] presence
-- KEYS[8..] five per queue: pending(q), delayed(q), leases(q), dead(q), wake(q); then, for a
-- claim behind a wait that stood on the one queue's waiters list, the worker's own wake list
-- and that waiters list (two keys more: see leave_waiters)
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] mode: 'claim' or 'reap'
-- ARGV[4] worker  ARGV[5] lease ms (0 = the task's lease_s)
-- ARGV[6] max expired leases reclaimed per queue  ARGV[7] max delayed tasks promoted per queue
-- ARGV[8] max_abandons of a task stored without one
-- ARGV[9] the ranges a post accepts for a task's numbers (lua/_tasks: record_limits)
-- ARGV[10] claim: '1' to register the worker (implicitly) and mark it present; the client asks
-- for it on a worker's first claim through a handle, then at most once a second
-- ARGV[11] claim: '1' when the claim follows a wait that popped a wake-up token; '2' when
-- it also follows a report (report's wait_s: the report, the wait and this claim pipelined):
-- ARGV[12] the reported task's id, ARGV[13] the report's finding id, and the claim takes a
-- task only when that report completed that task (not when it was refused or superseded)
-- ARGV[12..] claim (ARGV[14..] after a report): the leases' secrets, one per task wanted
-- (each task keeps its secret's SHA-1; the client makes each token 'ATTEMPT.SECRET')
-- Returns, claim: {task JSON, data JSON or false, ...} a pair per task claimed, best first,
--   or, when nothing is eligible, {false, the queues' due hint (ms: nothing falls due
--   before it; see hinted_due) or -1, now}, and a fourth item, '1', when it leased nothing
--   only because it dropped as many ids without a task as one claim may (DROP_CAP): more are
--   left to look at, so the caller claims again at once instead of calling the queues empty;
--   reap: {reclaimed, next due ms or -1, now}
local now = now_ms(ARGV[1])
local record_limits_refused
local K = {tasks = KEYS[1], counts = KEYS[3], pass_counts = KEYS[4], events = KEYS[5],
           maxlen = ARGV[2]}
K.limits, record_limits_refused = record_limits(ARGV[9])
if record_limits_refused then return record_limits_refused end
local nq = math.floor((#KEYS - 7) / 5)
local groups = claim_groups(KEYS, 8, nq)
local own_wake, waiters = nil, nil
if #KEYS == 7 + 5 * nq + 2 then own_wake, waiters = KEYS[#KEYS - 1], KEYS[#KEYS] end
local limits = {expire = ARGV[6], promote = ARGV[7],
                default_max = tonumber(ARGV[8])}
local reclaimed = refresh_groups(K, groups, now, limits)

local function due_of()
  local due = nil
  for _, Q in ipairs(groups) do due = next_due(Q, due) end
  return fmt(due or -1)
end

if ARGV[3] == 'reap' then return {reclaimed, due_of(), fmt(now)} end

-- After a report (ARGV[11] '2'): nil when the claim may go on, else its answer. The report
-- must have completed its task; the lease its first try's claim took, when the same report
-- is retried (a lost reply), is answered again, never a second task (the reported task keeps
-- its id as next_task, as a report with claim_next does).
-- A claim behind a wait that stood on its queue's waiters list takes the worker off it, here,
-- atomically with the claim: in the pipeline after it, a post served between the wait's end
-- and that command (Redis runs what an unblocked client sent once its event loop is about to
-- sleep, other clients' commands read in the same pass first) could still pick the worker
-- and give it a token it would not see. Tokens given to it since its wait ended are given on
-- (to the next newest waiter, or the queue's wake list) when it took a task (or stopped at its
-- cap of dropped ids), for the tasks they were posted for; when it found none, they are stale
-- (their tasks gone, or delayed: its answer's due hint covers those).
local function leave_waiters(took)
  if not waiters then return end
  redis.call('LREM', waiters, '0', ARGV[4])
  -- (a live waiter pushes its name anew at each wait: those of workers killed mid-wait sink
  -- below, where one-at-a-time posts never pop them; kept to the newest 256)
  redis.call('LTRIM', waiters, '0', '255')
  local left = redis.call('LPOP', own_wake, '64')  -- (a wake list's cap)
  if left and took then wake({wake = groups[1].wake, waiters = waiters}, #left) end
end

local function after_report(reported, secret)
  -- (ids hold no character JSON escapes, and a record holds no unescaped quote in a value)
  if not (reported and string.find(reported, '"status":"completed"', 1, true)
          and string.find(reported, '"finding_id":"' .. ARGV[13] .. '"', 1, true)) then
    -- The report did not complete its task: claim nothing. Its refusal woke the wait at
    -- once (lua/task_report: own_wake); should the wait have popped a queue's token all the
    -- same, that token goes back to whichever queue now lacks one.
    wake_tokenless(groups)
    return {false, due_of(), fmt(now)}
  end
  local before = string.match(reported, '"next_task":"([^"]+)"')
  if not before then return nil end
  return still_leased(K, KEYS[2], before, secret) or {false, due_of(), fmt(now)}
end

local first_secret, reported = 12, nil
if ARGV[11] == '2' then
  first_secret = 14
  reported = redis.call('HGET', K.tasks, ARGV[12])
  local answer = after_report(reported, ARGV[14])
  if answer then
    leave_waiters(answer[1])
    return answer
  end
end
local claimer = {worker = ARGV[4], lease_ms = tonumber(ARGV[5]), secrets = {},
                 agents = KEYS[6], presence = KEYS[7], task_data = KEYS[2],
                 register = ARGV[10] == '1', woken = ARGV[11] ~= '0'}
for i = first_secret, #ARGV do claimer.secrets[#claimer.secrets + 1] = ARGV[i] end
local claimed, ids, capped = claim_best(K, groups, now, claimer)
if reported and ids[1] then  -- (the record's closing brace reopened: no JSON decoded)
  redis.call('HSET', K.tasks, ARGV[12],
             string.sub(reported, 1, -2) .. ',"next_task":"' .. ids[1] .. '"}')
end
leave_waiters(#claimed > 0 or capped)
if #claimed > 0 then return claimed end
return {false, fmt(hinted_due(groups) or -1), fmt(now), capped and '1' or nil}
