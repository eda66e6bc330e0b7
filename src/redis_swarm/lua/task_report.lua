--#include _tasks
-- task_report: store a finding and complete its task, atomically.
-- The first report of an open task (pending, delayed, claimed, or dead: the work is real)
-- completes it, whatever the token's age (any lease the task really issued); a report on a
-- completed or cancelled task is kept as a superseded finding. A token the task never issued
-- is refused and nothing is stored.
-- The finding id is the client's: a retried report returns the stored finding.
-- KEYS[1] tasks  KEYS[2] counts  KEYS[3] pass_counts  KEYS[4] events
-- KEYS[5] pending(q)  KEYS[6] delayed(q)  KEYS[7] leases(q)  KEYS[8] dead(q)
-- KEYS[9] findings  KEYS[10] finding_index  KEYS[11] findings_by(queue)
-- KEYS[12] findings_by(pass) when ARGV[9] == '1', then findings_by(shard) when ARGV[10] == '1'
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] task id  ARGV[4] queue
-- ARGV[5] token 'ATTEMPT.SECRET' ('' = none: a report from outside any lease, refused while a
-- live lease holds
-- the task)  ARGV[6] finding id  ARGV[7] finding JSON from the client (an object without
-- the fields added here: queue, pass_name, shard, worker, created_at, superseded, attempt)
-- ARGV[8] worker ('' = the worker the token was issued to)  ARGV[9] has pass  ARGV[10] has shard
-- claim_next: then KEYS agents, presence, task_data and five keys per queue to claim from
-- (as task_claim's); ARGV[11] the number of those queues (0: claim nothing)  ARGV[12] lease ms
-- (0 = the task's lease_s)  ARGV[13] max expired leases reclaimed per queue  ARGV[14] max
-- delayed tasks promoted per queue  ARGV[15] max_abandons of a task stored without one
-- ARGV[16] the lease's secret  ARGV[17] '1' to register the worker and mark it present (as
-- task_claim's ARGV[9]). The next task is claimed for the report's worker, and only when
-- this report completed its task (a refused or superseded report claims nothing); the
-- reported task remembers it (next_task), so that the same report retried with the same
-- secret (its reply lost) gets the same lease back instead of leasing another task.
-- Without claim_next (ARGV[11] '0'), ARGV[12] '1' says a wait and a claim are pipelined behind
-- this report (report's wait_s) and KEYS[claim_at] is the reporting worker's own wake list
-- (worker_wake): a report that does not complete its task (refused, superseded) pushes one
-- token there, so that the wait, which watches it first, ends at once (the claim behind it
-- then finds the task not completed by this finding and claims nothing).
-- Returns {'completed' | 'superseded', created_at, worker or false} for a finding stored now
-- (the client has the rest: what it sent), {'existing', stored finding JSON} for a finding id
-- already stored, and with claim_next then the next task's JSON and data JSON (false, false:
-- none claimed), or, when the claim ran and found nothing, false, the queues' due hint (-1:
-- none) and now, as an empty task_claim answers, and '1' when it leased nothing only because
-- it dropped as many ids without a task as one claim may (task_claim's fourth item: the
-- caller claims again at once).
local now = now_ms(ARGV[1])
local K = {tasks = KEYS[1], counts = KEYS[2], pass_counts = KEYS[3], events = KEYS[4],
           maxlen = ARGV[2]}
local Q = queue_keys(KEYS, 5)
local id, fid = ARGV[3], ARGV[6]
local attempt = nil  -- the reporting lease's attempt; nil: outside any lease

-- Where the keys of the queues to claim from begin.
local claim_at = 12 + (ARGV[9] == '1' and 1 or 0) + (ARGV[10] == '1' and 1 or 0)
local claim_queues = tonumber(ARGV[11] or '0')
local own_wake = claim_queues == 0 and ARGV[12] == '1' and KEYS[claim_at] or nil

-- End the wait pipelined behind this report at once (see own_wake above): it will claim
-- nothing, and the caller hears why now rather than when a task comes. The token expires,
-- should the wait never come (its client gone).
local function end_wait()
  if own_wake then
    redis.call('RPUSH', own_wake, '1')
    redis.call('PEXPIRE', own_wake, '60000')
  end
end

local function refuse(code, message)
  end_wait()
  return swarm_error(code, message)
end

-- The lease this report's first try took (see next_task above), when it still holds.
local function claimed_before(t)
  if claim_queues == 0 or not t or t.finding_id ~= fid or not t.next_task then return nil end
  return still_leased(K, KEYS[claim_at + 2], t.next_task, ARGV[16])
end

local t = load_record(K.tasks, id)
if t == nil then
  return refuse('SWARM_NOTFOUND',
    'task ' .. id .. ' does not exist: check the id with swarm task list')
end
if not t then
  end_wait()
  return unreadable(id)
end
if t.queue ~= ARGV[4] then
  return refuse('SWARM_CONFLICT', 'task ' .. id .. ' is not in queue ' .. ARGV[4])
end
if ARGV[5] == '' then
  if t.status == 'claimed' and t.lease_deadline > now then
    return refuse('SWARM_LEASELOST', string.format(
      'task %s is held by worker %s (attempt %d) until its lease ends: let that worker '
      .. 'report, or report with the token your claim returned', id, t.worker, t.attempts))
  end
else
  attempt = issued(t, ARGV[5])
  if not attempt then return refuse('SWARM_LEASELOST', never_issued(t)) end
end

-- What the completion reads besides (the owners whose counters it moves, the status it moves
-- them from), checked before the first write: a record a worker wrote may lack them, and the
-- script stopped half-way (its finding stored, its task out of its set, still counted).
local field, kind = owner_lacking(t)
if not field and type(t.status) ~= 'string' then field, kind = 'status', 'a string' end
if field then
  return refuse('SWARM_CORRUPT', 'task ' .. id .. ' has a ' .. damage(t, field, kind)
    .. ', so no report can complete it: post its work again as a new task')
end

local worker = ARGV[8]
if worker == '' then worker = attempt and t.claims[tostring(attempt)] or nil end
local superseded = t.status == 'completed' or t.status == 'cancelled'

-- The client's JSON object, closed with the fields only the server knows, its id and task id
-- too: written after the client's, they win over any it sent under the same names (JSON
-- readers keep the last of duplicate keys: Python's json, cjson, JSON.parse), so that a body
-- sent through a raw FCALL cannot claim another finding's id or task's.
local meta = cjson.encode({queue = t.queue, pass_name = t.pass_name, shard = t.parent,
                           worker = worker, created_at = now, superseded = superseded,
                           attempt = attempt, id = fid, task_id = id})
local body = ARGV[7]
local finding = string.sub(body, 1, -2) .. ',' .. string.sub(meta, 2)
-- Stored first, and only when the id is new: a retried report (after a lost reply) finds
-- its finding and changes nothing (one command where a look-up and a write were two).
if redis.call('HSETNX', KEYS[9], fid, finding) == 0 then
  local stored = redis.call('HGET', KEYS[9], fid)
  if claim_queues == 0 then
    -- (a retry of a superseded report raises again, and a finding id of another task's
    -- report is refused: the wait must not hold that back; nor when the first try's claim
    -- behind it took a task: the claim answers that task again at once)
    if string.find(stored, '"superseded":true', 1, true)
        or not string.find(stored, '"task_id":"' .. id .. '"', 1, true)
        or t.next_task then
      end_wait()
    end
    return {'existing', stored, false}
  end
  local again = claimed_before(t)
  return {'existing', stored, false, again and again[1] or false, again and again[2] or false}
end
if superseded then end_wait() end  -- (stored now: a retry of it ends its wait above)

local next_task = {}
local idle = nil  -- claim_next found nothing: when its queues have something due next
if not superseded then
  -- The counters move once at the end of the next claim (completed +1, and claimed -1 +1
  -- cancel out when the next task comes from the same queue).
  if claim_queues > 0 and worker then K.defer = {} end
  unlink(Q, t)
  set_status(K, t, 'completed')
  t.completed_at = now
  t.finding_id = fid
  t.worker = worker
  t.lease_deadline = nil
  t.dead_reason = nil
  task_event(K, 'task.completed', t, 'worker', worker, 'attempt', attempt, 'finding', fid)
  if claim_queues > 0 and worker then
    local groups = claim_groups(KEYS, claim_at + 3, claim_queues)
    refresh_groups(K, groups, now, {expire = ARGV[13], promote = ARGV[14],
                                    default_max = tonumber(ARGV[15])})
    local ids, capped
    next_task, ids, capped = claim_best(K, groups, now, {
      worker = worker, lease_ms = tonumber(ARGV[12]), secrets = {ARGV[16]},
      register = ARGV[17] ~= '0', woken = false,
      agents = KEYS[claim_at], presence = KEYS[claim_at + 1], task_data = KEYS[claim_at + 2]})
    t.next_task = ids[1]
    if not ids[1] then
      idle = {false, fmt(hinted_due(groups) or -1), fmt(now), capped and '1' or nil}
    end
  end
  save_task(K.tasks, t)
end

local score = fmt(now)
redis.call('ZADD', KEYS[10], score, fid)
redis.call('ZADD', KEYS[11], score, fid)
local k = 12
if ARGV[9] == '1' then
  redis.call('ZADD', KEYS[k], score, fid)
  k = k + 1
end
if ARGV[10] == '1' then redis.call('ZADD', KEYS[k], score, fid) end
task_event(K, superseded and 'finding.superseded' or 'finding.reported', t,
           'finding', fid, 'worker', worker, 'shard', t.parent)
local outcome = superseded and 'superseded' or 'completed'
-- (now as a number: an integer reply, exact below 2^53, and no formatting)
if claim_queues == 0 then return {outcome, now, worker or false} end
if idle then return {outcome, now, worker or false, unpack(idle)} end
return {outcome, now, worker or false, next_task[1] or false, next_task[2] or false}
