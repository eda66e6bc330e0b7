-- The id under which the superseded copy of the finding fid is kept, whose report's first
-- try stopped half-way (its finding stored, in no index) while its task was settled since by
-- another report: fid's first 40 characters, then '.late-' and 12 hex digits of its SHA-1,
-- so that it is fid's alone, reads as fid's, and stays within an id's 64 characters.
local function half_stored_copy(fid)
  return string.sub(fid, 1, 40) .. '.late-' .. string.sub(redis.sha1hex(fid), 1, 12)
end

-- The report of a finding (task_report and task_report_unleased, whose headers say their
-- KEYS and ARGV): one body, two functions, so that Redis's ACL, which allows or refuses a
-- function by its name, can give a worker the report under a lease and keep the report from
-- outside any lease (no token: it completes any task no live lease holds) a shard's,
-- coordinator's or admin's (docs/security.md). ``unleased``: the call came through
-- task_report_unleased, which alone takes ARGV[5] ''; task_report refuses it, and
-- task_report_unleased refuses a token (a leased report goes through task_report).
local function report_task(KEYS, ARGV, unleased)
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
  -- claim_next: ARGV[18] the ranges a post accepts for a task's numbers (task_claim's
  -- ARGV[9]), read before the first write
  if claim_queues > 0 then
    local refused
    K.limits, refused = record_limits(ARGV[18])
    if refused then return refused end
  end

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

  -- The function called, never what a caller sent, says whether the report may come from
  -- outside any lease: the ACL lets a worker call task_report alone.
  if ARGV[5] == '' and not unleased then
    return refuse('SWARM_INVALID', 'a report without a token is a shard\'s (or a coordinator\'s '
      .. 'or an admin\'s): report task ' .. ARGV[3] .. ' with the token your claim returned, '
      .. 'or as a shard or coordinator user (swarm acl --role shard --user NAME makes one)')
  end
  if ARGV[5] ~= '' and unleased then
    return refuse('SWARM_INVALID', 'a report with a token is a leased report: send it to '
      .. 'the task_report function, which checks the token')
  end

  -- The lease this report's first try took (see next_task above), when it still holds.
  local function claimed_before(t)
    if claim_queues == 0 or not t or t.finding_id ~= fid or not t.next_task then return nil end
    return still_leased(K, KEYS[claim_at + 2], t.next_task, ARGV[16])
  end

  local t = load_record(K.tasks, id)
  if t == nil then
    return refuse('SWARM_NOTFOUND',
      'task ' .. id .. ' does not exist (the finding was not stored): '
      .. 'check the id with swarm task list')
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
  -- The later lease that holds t now: this report's lease ran out and t was leased again.
  -- The report completes t all the same (the first report of an open task wins), and that
  -- lease's own report will be superseded: the reply says whose it is, {worker, attempt}
  -- (its attempt tells it apart from this report's own when both name one worker: two
  -- processes sharing a name). Only a worker's name as a string, never a record's forged
  -- value of another type (false then).
  local overtaken_by = false
  if attempt and t.status == 'claimed' and t.attempts ~= attempt
      and type(t.worker) == 'string' then
    overtaken_by = {t.worker, type(t.attempts) == 'number' and t.attempts or false}
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
  local body = ARGV[7]
  -- (stands_for: the copy of a half-stored finding names the first try's record, which is
  -- in no index by design: the doctor's index check reads it, HALF_STORED_FIELD in Python)
  local function closed(finding_id, created_at, stands_for)
    local meta = cjson.encode({queue = t.queue, pass_name = t.pass_name, shard = t.parent,
                               worker = worker, created_at = created_at,
                               superseded = superseded, attempt = attempt, id = finding_id,
                               task_id = id, stands_for = stands_for})
    return string.sub(body, 1, -2) .. ',' .. string.sub(meta, 2)
  end
  local finding = closed(fid, now)
  local kept_as = nil  -- the id of a half-stored finding's superseded copy (below)
  -- Stored first, and only when the id is new: a retried report (after a lost reply) finds
  -- its finding and changes nothing (one command where a look-up and a write were two).
  local created = now
  if redis.call('HSETNX', KEYS[9], fid, finding) == 0 then
    local stored = redis.call('HGET', KEYS[9], fid)
    -- A script is not rolled back: a first try stopped by an error after this HSETNX (a
    -- command its user's ACL refused) left its finding stored, its task as it was and the
    -- finding in no index (every report indexes it last; a retirement removes both). Its
    -- retry completes the report now instead of answering what never happened; under the
    -- stored finding's time, and only with the same finding (else nothing is done).
    if not redis.call('ZSCORE', KEYS[10], fid)
        and string.find(stored, '"task_id":"' .. id .. '"', 1, true) then
      if string.sub(stored, 1, #body) ~= string.sub(body, 1, -2) .. ',' then
        return refuse('SWARM_CONFLICT', 'finding id ' .. fid .. ' holds another finding of '
          .. 'task ' .. id .. ', stored by a report that did not complete: report this one '
          .. 'under a new finding id')
      end
      created = tonumber(cjson.decode(stored).created_at) or now
      -- Settled since by another report (or cancelled): the report is a late one, whose
      -- finding is kept superseded and indexed as any. The stored one says it is not
      -- superseded, which a worker cannot rewrite (HSETNX alone: findings are append-only
      -- for workers, docs/security.md): it is stored again, superseded, under an id made
      -- from its own (half_stored_copy), and that copy is indexed; the first try's record
      -- stays as it is, in no index. A retry of this report finds the copy (answered as a
      -- finding already stored: 'existing', the copy).
      if superseded then
        kept_as = half_stored_copy(fid)
        finding = closed(kept_as, created, fid)
        if redis.call('HSETNX', KEYS[9], kept_as, finding) == 0 then
          end_wait()
          local copy = redis.call('HGET', KEYS[9], kept_as)
          if claim_queues == 0 then return {'existing', copy, false, false} end
          return {'existing', copy, false, false, false, false}
        end
        fid = kept_as
      end
    elseif claim_queues == 0 then
      -- (a retry of a superseded report raises again, and a finding id of another task's
      -- report is refused: the wait must not hold that back; nor when the first try's claim
      -- behind it took a task: the claim answers that task again at once)
      if string.find(stored, '"superseded":true', 1, true)
          or not string.find(stored, '"task_id":"' .. id .. '"', 1, true)
          or t.next_task then
        end_wait()
      end
      return {'existing', stored, false, false}
    else
      local again = claimed_before(t)
      return {'existing', stored, false, false, again and again[1] or false,
              again and again[2] or false}
    end
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

  local score = fmt(created)
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
  if kept_as then  -- (the copy: the client knows its record only from here)
    if claim_queues == 0 then return {'existing', finding, false, false} end
    return {'existing', finding, false, false, false, false}
  end
  local outcome = superseded and 'superseded' or 'completed'
  -- (now as a number: an integer reply, exact below 2^53, and no formatting)
  if claim_queues == 0 then return {outcome, created, worker or false, overtaken_by} end
  if idle then return {outcome, created, worker or false, overtaken_by, unpack(idle)} end
  return {outcome, created, worker or false, overtaken_by, next_task[1] or false,
          next_task[2] or false}
end
