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
-- Returns {'completed' | 'superseded' | 'existing', finding JSON}
local now = now_ms(ARGV[1])
local K = {tasks = KEYS[1], counts = KEYS[2], pass_counts = KEYS[3], events = KEYS[4],
           maxlen = ARGV[2]}
local Q = queue_keys(5)
local id, fid = ARGV[3], ARGV[6]
local attempt = nil  -- the reporting lease's attempt; nil: outside any lease

local stored = redis.call('HGET', KEYS[9], fid)
if stored then return {'existing', stored} end

local t = load_task(K.tasks, id)
if not t then
  return swarm_error('SWARM_NOTFOUND',
    'task ' .. id .. ' does not exist: check the id with swarm task list')
end
if t.queue ~= ARGV[4] then
  return swarm_error('SWARM_CONFLICT', 'task ' .. id .. ' is not in queue ' .. ARGV[4])
end
if ARGV[5] == '' then
  if t.status == 'claimed' and t.lease_deadline > now then
    return swarm_error('SWARM_LEASELOST', string.format(
      'task %s is held by worker %s (attempt %d) until its lease ends: let that worker '
      .. 'report, or report with the token your claim returned', id, t.worker, t.attempts))
  end
else
  attempt = issued(t, ARGV[5])
  if not attempt then return swarm_error('SWARM_LEASELOST', never_issued(t)) end
end

local worker = ARGV[8]
if worker == '' then worker = attempt and t.claims[tostring(attempt)] or nil end
local superseded = t.status == 'completed' or t.status == 'cancelled'

if not superseded then
  unlink(Q, t)
  set_status(K, t, 'completed')
  t.completed_at = now
  t.finding_id = fid
  t.worker = worker
  t.lease_deadline = nil
  t.dead_reason = nil
  save_task(K.tasks, t)
  task_event(K, 'task.completed', t, 'worker', worker, 'attempt', attempt, 'finding', fid)
end

-- The client's JSON object, closed with the fields only the server knows.
local meta = cjson.encode({queue = t.queue, pass_name = t.pass_name, shard = t.parent,
                           worker = worker, created_at = now, superseded = superseded,
                           attempt = attempt})
local body = ARGV[7]
local finding = string.sub(body, 1, -2) .. ',' .. string.sub(meta, 2)
redis.call('HSET', KEYS[9], fid, finding)
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
return {superseded and 'superseded' or 'completed', finding}
