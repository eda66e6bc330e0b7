--#include _tasks
-- pass_retire: one step of retiring a pass's settled work (swarm retire): up to a budget of
-- entries of its indexes examined, atomically, every counter kept exact, so that the swarm's
-- invariants hold between two steps. Two phases, each walking one index of the pass from an
-- offset (the entries kept before it: removed ones leave the index, so the next step starts
-- where this one stopped):
--   findings: the pass's finding index; a finding of a settled task that is not the one its
--     task names (superseded), or of a task no longer stored, is removed with its entries in
--     every index (a task's current finding goes with its task, so that a completed task
--     always names a stored finding);
--   tasks: the pass's task index; a settled task (completed, cancelled, dead) is removed with
--     its data, its entries in the task index, the pass's, its queue's dead letters and the
--     dedupe hash, and its current finding; the counters of its queue, shard and pass go down
--     by what went (a pass's fields are dropped at zero, its name when none is left). Open
--     tasks (pending, delayed, claimed) are kept.
-- Count mode (a dry run) writes nothing and counts what would go: every finding of a settled
-- task in the findings phase, every settled task in the tasks phase.
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] task_index  KEYS[4] dedupe  KEYS[5] counts
-- KEYS[6] pass_counts  KEYS[7] events  KEYS[8] pass_tasks(p)  KEYS[9] findings
-- KEYS[10] finding_index  KEYS[11] findings_by(pass, p)  KEYS[12] retired_passes
-- KEYS[13..12+nq] dead(q) of each queue, then findings_by(queue, q) of each queue, then
-- findings_by(shard, s) of each shard (ns of them)
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] pass name  ARGV[4] pass id
-- ARGV[5] '1' to retire, '0' to count only  ARGV[6] phase: 'findings' | 'tasks'
-- ARGV[7] offset in the phase's index  ARGV[8] budget: the most index entries examined
-- ARGV[9] nq  ARGV[10] ns  ARGV[11..10+nq] the queues' names, then the shards' names
-- A task or finding whose queue or shard has no key here (one that appeared after the client
-- listed them) is kept, counted as kept: the next run retires it.
-- Returns {done (1: the tasks phase reached the end of the pass's index), phase, offset,
-- tasks, findings, kept, settled tasks left in the pass, then the ids of the tasks removed}.
-- Appends one pass.retired event when it removed anything, and adds what it removed to the
-- pass's record in retired_passes ({at, tasks, findings}).
local now = now_ms(ARGV[1])
local name, pass_id, retire = ARGV[3], ARGV[4], ARGV[5] == '1'
local phase, offset, budget = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local nq, ns = tonumber(ARGV[9]), tonumber(ARGV[10])
local SETTLED = {completed = true, cancelled = true, dead = true}
local dead_key, queue_findings, shard_findings = {}, {}, {}
for i = 1, nq do
  local queue = ARGV[10 + i]
  dead_key[queue] = KEYS[12 + i]
  queue_findings[queue] = KEYS[12 + nq + i]
end
for i = 1, ns do shard_findings[ARGV[10 + nq + i]] = KEYS[12 + 2 * nq + i] end

local removed_tasks, removed_findings, kept = 0, 0, 0
local ids = {}
local drops = {}  -- key -> field -> how much it goes down

local function drop(key, field)
  local fields = drops[key]
  if not fields then
    fields = {}
    drops[key] = fields
  end
  fields[field] = (fields[field] or 0) + 1
end

-- The index keys a finding is listed in (nil: one of them was not given).
local function finding_keys(f)
  local keys = {KEYS[10]}
  local by_queue = queue_findings[f.queue]
  if not by_queue then return nil end
  keys[#keys + 1] = by_queue
  if f.pass_name ~= nil and f.pass_name ~= cjson.null then
    if f.pass_name ~= name then return nil end
    keys[#keys + 1] = KEYS[11]
  end
  if f.shard ~= nil and f.shard ~= cjson.null then
    local by_shard = shard_findings[f.shard]
    if not by_shard then return nil end
    keys[#keys + 1] = by_shard
  end
  return keys
end

local function remove_finding(fid, keys)
  redis.call('HDEL', KEYS[9], fid)
  for _, key in ipairs(keys) do redis.call('ZREM', key, fid) end
  removed_findings = removed_findings + 1
end

-- The findings phase: returns the entries it examined.
local function walk_findings()
  local fids = redis.call('ZRANGE', KEYS[11], fmt(offset), fmt(offset + budget - 1))
  for _, fid in ipairs(fids) do
    local raw = redis.call('HGET', KEYS[9], fid)
    local f = raw and cjson.decode(raw)
    local t = f and load_task(KEYS[1], f.task_id)
    if not f then  -- an entry of no stored finding
      if retire then
        redis.call('ZREM', KEYS[11], fid)
        redis.call('ZREM', KEYS[10], fid)
      else
        offset = offset + 1
      end
    elseif t and not SETTLED[t.status] then  -- (an open task has no finding: kept anyway)
      offset = offset + 1
    elseif t and t.finding_id == fid and f.superseded ~= true then
      -- its task's own: goes with the task (counted here by a dry run)
      if not retire then removed_findings = removed_findings + 1 end
      offset = offset + 1
    elseif not retire then
      removed_findings = removed_findings + 1
      offset = offset + 1
    else
      local keys = finding_keys(f)
      if keys then remove_finding(fid, keys) else offset = offset + 1 end
    end
  end
  return #fids
end

-- Remove settled task t (and its current finding) when every key it is listed in was given;
-- returns whether it did.
local function remove_task(t)
  local id = t.id
  local dead = nil
  if t.status == 'dead' then
    dead = dead_key[t.queue]
    if not dead then return false end
  end
  local fid, fkeys = nil, nil
  if t.finding_id then
    local raw = redis.call('HGET', KEYS[9], t.finding_id)
    local f = raw and cjson.decode(raw)
    if f and f.task_id == id then
      fkeys = finding_keys(f)
      if not fkeys then return false end
      fid = t.finding_id
    end
  end
  if fid then remove_finding(fid, fkeys) end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[8], id)
  if dead then redis.call('ZREM', dead, id) end
  if t.dedupe_key then
    local field = t.queue .. '|' .. t.dedupe_key
    if redis.call('HGET', KEYS[4], field) == id then redis.call('HDEL', KEYS[4], field) end
  end
  drop(KEYS[5], t.queue .. '|' .. t.status)
  if t.parent then drop(KEYS[5], shard_field(t.parent, t.status)) end
  if t.pass_id then drop(KEYS[6], t.pass_id .. '|' .. t.status) end
  return true
end

-- The tasks phase: returns the entries it examined.
local function walk_tasks(n)
  local tids = redis.call('ZRANGE', KEYS[8], fmt(offset), fmt(offset + n - 1))
  for _, id in ipairs(tids) do
    local t = load_task(KEYS[1], id)
    if not t then  -- an entry of no stored task
      if retire then redis.call('ZREM', KEYS[8], id) else offset = offset + 1 end
    elseif not SETTLED[t.status] then
      kept = kept + 1
      offset = offset + 1
    elseif not retire then
      removed_tasks = removed_tasks + 1
      offset = offset + 1
    elseif remove_task(t) then
      removed_tasks = removed_tasks + 1
      ids[#ids + 1] = id
    else
      kept = kept + 1
      offset = offset + 1
    end
  end
  return #tids
end

local done = 0
if phase == 'findings' then
  local seen = walk_findings()
  if seen < budget then  -- the findings are done: the tasks, with what is left of the budget
    phase, offset, budget = 'tasks', 0, budget - seen
  else
    budget = 0
  end
end
if phase == 'tasks' and budget > 0 then
  if walk_tasks(budget) < budget then done = 1 end
end

-- The counters go down by what went.
for key, fields in pairs(drops) do
  for field, n in pairs(fields) do redis.call('HINCRBY', key, field, fmt(-n)) end
end
-- The pass's fields at zero are dropped (those an earlier change left at zero too), and its
-- name once none is left: a pass retired whole is gone from the views.
local STATUSES = {'pending', 'delayed', 'claimed', 'completed', 'dead', 'cancelled'}
local fields = {}
for i, status in ipairs(STATUSES) do fields[i] = pass_id .. '|' .. status end
local counts = redis.call('HMGET', KEYS[6], unpack(fields))
local settled, left = 0, false
for i, status in ipairs(STATUSES) do
  local n = tonumber(counts[i])
  if n and n > 0 then
    left = true
    if SETTLED[status] then settled = settled + n end
  elseif n and retire then
    redis.call('HDEL', KEYS[6], fields[i])
  end
end
if retire and not left then redis.call('HDEL', KEYS[6], pass_id) end

if retire and removed_tasks + removed_findings > 0 then
  emit(KEYS[7], ARGV[2], 'pass.retired', 'pass', name, 'tasks', fmt(removed_tasks),
       'findings', fmt(removed_findings))
  local raw = redis.call('HGET', KEYS[12], name)
  local record = raw and cjson.decode(raw) or {tasks = 0, findings = 0}
  record.at = now
  record.tasks = record.tasks + removed_tasks
  record.findings = record.findings + removed_findings
  redis.call('HSET', KEYS[12], name, cjson.encode(record))
end
return {done, phase, fmt(offset), removed_tasks, removed_findings, kept, settled, unpack(ids)}
