--#include _tasks
-- pass_retire: one step of retiring a pass's settled work (swarm retire): one chunk of
-- entries of one of its indexes examined, atomically, every counter kept exact, so that the
-- swarm's invariants hold between two steps. A run walks three phases, each an index of the
-- pass from an offset (the entries kept before it: removed ones leave the index, so the next
-- step starts where this one stopped):
--   findings: the pass's finding index; a finding of a settled task that is not the one its
--     task names (superseded), or of a task no longer stored, is removed with its entries in
--     every index (a task's current finding goes with its task, so that a completed task
--     always names a stored finding);
--   tasks: the pass's task index; a settled task (completed, cancelled, dead) is removed with
--     its data, its entries in the task index, the pass's, its queue's dead letters and the
--     dedupe hash, its current finding and its own keys (webhooks, asked); the counters of
--     its queue, shard and pass go down by what went (a pass's fields are dropped at zero,
--     its name when none is left). Open tasks (pending, delayed, claimed) are kept;
--   sweep: the finding index again, as in the findings phase: a report that came after the
--     findings phase passed its task left a superseded finding its task no longer has.
-- A finding a synthesis of another pass cites (flagged by the client, which read the
-- syntheses) is kept, and so is its task (flagged in the tasks phase: the findings phases
-- return the tasks of the cited findings they saw), with that task's current finding: a
-- synthesis never cites a missing finding. The step refuses to run ('stale') when a synthesis
-- was stored since the client read them (synthesis_index's size is not ARGV[9]): the client
-- reads them again and starts over.
-- A record that cannot be decoded (or that names another pass than the index it is in) is
-- kept and counted (corrupt); a task or finding whose queue or shard has no key here (one
-- that appeared after the client listed them) is kept and counted (unknown): the client
-- lists them again and walks again.
-- Count mode (a dry run) writes nothing and counts what would go: the superseded and orphan
-- findings in the findings phase, every settled task with its current finding in the tasks
-- phase; the sweep then counts only corrupt findings.
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] task_index  KEYS[4] dedupe  KEYS[5] counts
-- KEYS[6] pass_counts  KEYS[7] events  KEYS[8] pass_tasks(p)  KEYS[9] findings
-- KEYS[10] finding_index  KEYS[11] findings_by(pass, p)  KEYS[12] retired_passes
-- KEYS[13] synthesis_index
-- KEYS[14..13+nq] dead(q) of each queue, then findings_by(queue, q) of each queue, then
-- findings_by(shard, s) of each shard (ns of them), then in the tasks phase asked(id) and
-- webhooks(id) of each of the chunk's ids
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] pass name  ARGV[4] pass id
-- ARGV[5] '1' to retire, '0' to count only  ARGV[6] phase: 'findings' | 'tasks' | 'sweep'
-- ARGV[7] offset of the chunk in the phase's index  ARGV[8] chunk size
-- ARGV[9] the syntheses the client read (synthesis_index's size then)  ARGV[10] nq
-- ARGV[11] ns  ARGV[12] n (the chunk's ids)  ARGV[13..12+nq] the queues' names, then the
-- shards' names, then the chunk: n pairs (id, flag: '1' a finding a synthesis of another
-- pass cites, or a task of such a finding)
-- Returns {'stale'}, or {'ok', next phase ('done' at the end), its offset, tasks, findings,
-- kept (open tasks), cited (settled tasks kept for a citation), corrupt, unknown, n', the
-- next chunk's n' ids, then the tasks of the cited findings this step saw}.
-- Appends one pass.retired event when it removed anything, and adds what it removed to the
-- pass's record in retired_passes ({at, tasks, findings}).
if redis.call('ZCARD', KEYS[13]) ~= tonumber(ARGV[9]) then return {'stale'} end
local now = now_ms(ARGV[1])
local name, pass_id, retire = ARGV[3], ARGV[4], ARGV[5] == '1'
local phase, offset, size = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local nq, ns, n = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local SETTLED = {completed = true, cancelled = true, dead = true}
local dead_key, queue_findings, shard_findings = {}, {}, {}
for i = 1, nq do
  local queue = ARGV[12 + i]
  dead_key[queue] = KEYS[13 + i]
  queue_findings[queue] = KEYS[13 + nq + i]
end
for i = 1, ns do shard_findings[ARGV[12 + nq + i]] = KEYS[13 + 2 * nq + i] end
local chunk_at, own_at = 12 + nq + ns, 13 + 2 * nq + ns  -- (ARGV, KEYS) before the chunk's

local removed_tasks, removed_findings, kept, cited, corrupt, unknown = 0, 0, 0, 0, 0, 0
local protected = {}  -- the tasks of the cited findings seen
local drops = {}  -- key -> field -> how much it goes down

local function drop(key, field)
  local fields = drops[key]
  if not fields then
    fields = {}
    drops[key] = fields
  end
  fields[field] = (fields[field] or 0) + 1
end

-- The index keys finding f is listed in: nil when one of them was not given ('unknown'),
-- or when f names another pass ('corrupt').
local function finding_keys(f)
  local keys = {KEYS[10]}
  local by_queue = queue_findings[f.queue]
  if not by_queue then return nil, 'unknown' end
  keys[#keys + 1] = by_queue
  if f.pass_name ~= nil then
    if f.pass_name ~= name then return nil, 'corrupt' end
    keys[#keys + 1] = KEYS[11]
  end
  if f.shard ~= nil then
    local by_shard = shard_findings[f.shard]
    if not by_shard then return nil, 'unknown' end
    keys[#keys + 1] = by_shard
  end
  return keys
end

local function remove_finding(fid, keys)
  redis.call('HDEL', KEYS[9], fid)
  for _, key in ipairs(keys) do redis.call('ZREM', key, fid) end
  removed_findings = removed_findings + 1
end

-- One finding of the findings or sweep phase; returns whether its entry stays.
local function walk_finding(fid, flag, sweep)
  local f = load_record(KEYS[9], fid)
  if f == nil then  -- an entry of no stored finding
    if not retire then return true end
    redis.call('ZREM', KEYS[11], fid)
    redis.call('ZREM', KEYS[10], fid)
    return false
  end
  if not f or f.pass_name ~= name then  -- unreadable, or of another pass: kept, counted once
    if sweep then corrupt = corrupt + 1 end
    return true
  end
  if flag == '1' then  -- cited by a synthesis of another pass: kept, with its task
    protected[#protected + 1] = f.task_id
    return true
  end
  local t = load_record(KEYS[1], f.task_id)
  if t == false then return true end  -- its task unreadable: counted in the tasks phase
  if t and not SETTLED[t.status] then return true end
  if t and t.finding_id == fid and f.superseded ~= true then return true end  -- its task's own
  local keys, why = finding_keys(f)
  if not keys then
    if why == 'unknown' then unknown = unknown + 1 elseif sweep then corrupt = corrupt + 1 end
    return true
  end
  if not retire then  -- (a dry run's sweep sees again what its findings phase counted)
    if not sweep then removed_findings = removed_findings + 1 end
    return true
  end
  remove_finding(fid, keys)
  local first = stood_for(KEYS[9], f)
  if first then redis.call('HDEL', KEYS[9], first) end
  return false
end

-- Remove settled task t (its current finding too, and its own keys `own`), or only count
-- it in a dry run: 'removed', or why it stays ('unknown', 'corrupt').
local function remove_task(t, own)
  local id = t.id
  local dead = nil
  if t.status == 'dead' then
    dead = dead_key[t.queue]
    if not dead then return 'unknown' end
  end
  local fid, fkeys = nil, nil
  if t.finding_id then
    local f = load_record(KEYS[9], t.finding_id)
    if f == false then return 'corrupt' end
    if f and f.task_id == id then
      local why
      fkeys, why = finding_keys(f)
      if not fkeys then return why end
      fid = t.finding_id
    end
  end
  removed_tasks = removed_tasks + 1
  if not retire then
    if fid then removed_findings = removed_findings + 1 end
    return 'removed'
  end
  if fid then remove_finding(fid, fkeys) end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[8], id)
  redis.call('DEL', own[1], own[2])
  if dead then redis.call('ZREM', dead, id) end
  if t.dedupe_key then
    local field = t.queue .. '|' .. t.dedupe_key
    if redis.call('HGET', KEYS[4], field) == id then redis.call('HDEL', KEYS[4], field) end
  end
  drop(KEYS[5], t.queue .. '|' .. t.status)
  if t.parent then drop(KEYS[5], shard_field(t.parent, t.status)) end
  drop(KEYS[6], pass_id .. '|' .. t.status)
  return 'removed'
end

-- One task of the tasks phase (own: its asked and webhooks keys); returns whether its entry
-- stays.
local function walk_task(id, flag, own)
  local t = load_record(KEYS[1], id)
  if t == nil then  -- an entry of no stored task
    if retire then redis.call('ZREM', KEYS[8], id) end
    return not retire
  end
  if not t or t.pass_id ~= pass_id then
    corrupt = corrupt + 1
  elseif not SETTLED[t.status] then
    kept = kept + 1
  elseif flag == '1' then
    cited = cited + 1
  else
    local outcome = remove_task(t, own)
    if outcome == 'removed' then return not retire end
    if outcome == 'unknown' then unknown = unknown + 1 else corrupt = corrupt + 1 end
  end
  return true
end

for i = 1, n do
  local id, flag = ARGV[chunk_at + 2 * i - 1], ARGV[chunk_at + 2 * i]
  local stays
  if phase == 'tasks' then
    stays = walk_task(id, flag, {KEYS[own_at + 2 * i - 1], KEYS[own_at + 2 * i]})
  else
    stays = walk_finding(id, flag, phase == 'sweep')
  end
  if stays then offset = offset + 1 end
end

-- The next chunk: of this phase, or (this one at its end) of the next one.
local NEXT = {findings = 'tasks', tasks = 'sweep', sweep = 'done'}
local INDEX = {findings = KEYS[11], tasks = KEYS[8], sweep = KEYS[11]}
local ids = {}
while phase ~= 'done' do
  ids = redis.call('ZRANGE', INDEX[phase], fmt(offset), fmt(offset + size - 1))
  if #ids > 0 then break end
  phase, offset = NEXT[phase], 0
end

-- The counters go down by what went.
for key, fields in pairs(drops) do
  for field, count in pairs(fields) do redis.call('HINCRBY', key, field, fmt(-count)) end
end
-- The pass's fields at zero are dropped (those an earlier change left at zero too), and its
-- name once none is left: a pass retired whole is gone from the views.
if retire then
  local STATUSES = {'pending', 'delayed', 'claimed', 'completed', 'dead', 'cancelled'}
  local fields = {}
  for i, status in ipairs(STATUSES) do fields[i] = pass_id .. '|' .. status end
  local counts = redis.call('HMGET', KEYS[6], unpack(fields))
  local left = false
  for i = 1, #STATUSES do
    local count = tonumber(counts[i])
    if count and count > 0 then
      left = true
    elseif count then
      redis.call('HDEL', KEYS[6], fields[i])
    end
  end
  if not left then redis.call('HDEL', KEYS[6], pass_id) end
end

if retire and removed_tasks + removed_findings > 0 then
  emit(KEYS[7], ARGV[2], 'pass.retired', 'pass', name, 'tasks', fmt(removed_tasks),
       'findings', fmt(removed_findings))
  local raw = redis.call('HGET', KEYS[12], name)
  local ok, record = pcall(cjson.decode, raw or '')
  if not ok or type(record) ~= 'table' then record = {} end
  record.at = now
  record.tasks = (tonumber(record.tasks) or 0) + removed_tasks
  record.findings = (tonumber(record.findings) or 0) + removed_findings
  redis.call('HSET', KEYS[12], name, cjson.encode(record))
end
local out = {'ok', phase, fmt(offset), removed_tasks, removed_findings, kept, cited, corrupt,
             unknown, #ids}
for _, id in ipairs(ids) do out[#out + 1] = id end
for _, id in ipairs(protected) do out[#out + 1] = id end
return out
