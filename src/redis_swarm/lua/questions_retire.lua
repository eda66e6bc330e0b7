--#include _tasks
-- questions_retire: one step of retiring the settled tasks of no pass of one queue: the
-- questions of a queue of questions (swarm retire --questions), or a pipeline's bookkeeping,
-- its planning, synthesizer and lease tasks (swarm pipeline retire), which are retired as
-- questions are (below, "question": such a task): one chunk examined, atomically, every
-- counter kept exact, so
-- that the swarm's invariants hold between two steps. A question has no pass, so no index
-- of its own lists them all (a cancelled one is in no per-queue index): a run walks three
-- phases:
--   findings: the queue's finding index, from an offset (the entries kept before it): a
--     finding of a retirable question (below) that is not the one its question names
--     (superseded), or of a task no longer stored, is removed with its index entries (a
--     question's current finding goes with it, so that a completed task always names a
--     stored finding);
--   tasks: the task index (every task by creation time), from a cursor (the score and id
--     of the last entry examined) up to the cutoff: a task created after it cannot have
--     settled before it. Each step examines up to a chunk of entries and returns the
--     questions of the queue among them that are retirable, with the asker's task of each
--     (the client gives their own keys to the next step, which removes them); a retirable
--     question is a task of the queue with no pass and no shard (those are retire_pass's),
--     completed, cancelled or dead at the cutoff or before (its completed_at, else
--     status_at, else created_at). One is removed with its data, its entries in the task
--     index, the queue's dead letters and the dedupe hash (its own key's entry, and that of
--     the key it took over as a successor: its data's takes_over), its current finding and
--     its own keys (webhooks, asked); in the asked index of the asker's task its score becomes
--     minus when it was retired, and a quarter per step of how it ended (OUTCOME_MARK: lineage
--     says so, and whether it was answered); the queue's counters go down by what went.
--     Open questions, and those settled after the cutoff, are kept;
--   sweep: the finding index again, as in the findings phase: a report that came after
--     the findings phase passed its task left a finding of a task no longer stored.
-- A finding a synthesis cites (flagged by the client, which read the syntheses) is kept,
-- and so is its task (flagged in the tasks phase: the findings phases return the tasks of
-- the cited findings they saw). The step refuses to run ('stale') when a synthesis was
-- stored since the client read them: the client reads them again and starts over.
-- A record that cannot be decoded is kept and counted (corrupt): a task only when its text
-- names the queue (another queue's is swarm doctor's to name, and pins nothing here).
-- Every question of the queue kept (and every corrupt task of it) lowers `walked`, the lowest
-- creation time of a question of the queue left; the step that ends a run stores it in the
-- queue's record, and the next run starts its tasks phase there (no question of the queue
-- created before it is left, so the walk of the task index skips what earlier runs walked).
-- Count mode (a dry run) writes nothing and counts what would go: the superseded and orphan
-- findings in the findings phase, every retirable question with its current finding in the
-- tasks phase; the sweep then counts nothing.
-- KEYS[1] tasks  KEYS[2] task_data  KEYS[3] task_index  KEYS[4] dedupe  KEYS[5] counts
-- KEYS[6] events  KEYS[7] findings  KEYS[8] finding_index  KEYS[9] findings_by(queue, q)
-- KEYS[10] dead(q)  KEYS[11] retired_questions  KEYS[12] synthesis_index
-- KEYS[13..] in the tasks phase, for each of the chunk's ids: asked(id), webhooks(id), and
-- asked(its asker's task) (asked(id) again when it has none)
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] the queue
-- ARGV[4] '1' to retire, '0' to count only  ARGV[5] phase: 'findings' | 'tasks' | 'sweep'
-- ARGV[6] offset of the chunk in the queue's finding index  ARGV[7] chunk size
-- ARGV[8] the syntheses the client read (synthesis_index's size then)  ARGV[9] the cutoff
-- (ms)  ARGV[10] the cursor's score  ARGV[11] the cursor's id ('' for none: from the
-- score on)  ARGV[12] walked so far  ARGV[13] the queue whose open task holds the run off
-- ('' for none)  ARGV[14] n (the chunk's entries)  ARGV[15..] the chunk:
-- n pairs (finding id, flag: '1' cited by a synthesis) in the findings phases, n triples
-- (task id, '1' when it has an asker's task, flag: '1' the task of a cited finding) in the
-- tasks phase
-- Returns {'stale'}, {'busy'} (the holding queue has an open task), or {'ok', next phase
-- ('done' at the end), its offset, the cursor's score and id, questions, findings, open, recent, cited, other (settled), other open,
-- corrupt, walked, n', the next chunk (n' finding ids, or n' pairs: task id, its asker's
-- task or ''), then the tasks of the cited findings this step saw}.
-- Appends one questions.retired event when it removed anything, and adds what it removed to
-- the queue's record in retired_questions ({at, questions, findings, walked}).
if redis.call('ZCARD', KEYS[12]) ~= tonumber(ARGV[8]) then return {'stale'} end
-- A queue whose open task holds the run off (a pipeline's lease, held by the run that still
-- reads the bookkeeping this removes): checked at every step, so that a run starting
-- between two steps stops the retirement there.
local holding = ARGV[13]
if holding ~= '' then
  for _, status in ipairs({'pending', 'delayed', 'claimed'}) do
    if (tonumber(redis.call('HGET', KEYS[5], holding .. '|' .. status)) or 0) > 0 then
      return {'busy'}
    end
  end
end
local now = now_ms(ARGV[1])
local queue, retire = ARGV[3], ARGV[4] == '1'
local phase, offset, size = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local cutoff = tonumber(ARGV[9])
local cursor_score, cursor_id = ARGV[10], ARGV[11]
local walked = tonumber(ARGV[12])
local n = tonumber(ARGV[14])
local SETTLED = {completed = true, cancelled = true, dead = true}

local removed_questions, removed_findings = 0, 0
local open, recent, cited, other, other_open, corrupt = 0, 0, 0, 0, 0, 0
local protected = {}  -- the tasks of the cited findings seen
local dropped = {}  -- counts field -> how much it goes down

local function kept_from(created)
  local at = tonumber(created)
  if at and at < walked then walked = at end
end

-- Why task t of the queue stays ('open', 'recent', 'other', 'other open': a task of a pass
-- or shard, settled or not, which the client takes apart from the counters' settled and
-- open figures), or nil: it is retirable.
local function stays(t)
  if t.pass_name ~= nil or t.parent ~= nil then
    return SETTLED[t.status] and 'other' or 'other open'
  end
  if not SETTLED[t.status] then return 'open' end
  local settled = tonumber(t.completed_at or t.status_at or t.created_at) or 0
  if settled > cutoff then return 'recent' end
  return nil
end

local function count_kept(why)
  if why == 'open' then open = open + 1
  elseif why == 'recent' then recent = recent + 1
  elseif why == 'other' then other = other + 1
  elseif why == 'other open' then other_open = other_open + 1
  else corrupt = corrupt + 1 end
end

local function remove_finding(fid)
  redis.call('HDEL', KEYS[7], fid)
  redis.call('ZREM', KEYS[8], fid)
  redis.call('ZREM', KEYS[9], fid)
  removed_findings = removed_findings + 1
end

-- One finding of the findings or sweep phase; returns whether its entry stays.
local function walk_finding(fid, flag, sweep)
  local f = load_record(KEYS[7], fid)
  if f == nil then  -- an entry of no stored finding
    if retire then redis.call('ZREM', KEYS[9], fid) end
    return not retire
  end
  if not f or f.queue ~= queue or f.pass_name ~= nil or f.shard ~= nil then
    return true  -- unreadable (counted with its task), or not a question's: retire_pass's
  end
  if flag == '1' then  -- cited by a synthesis: kept, with its task
    protected[#protected + 1] = f.task_id
    return true
  end
  local t = load_record(KEYS[1], f.task_id)
  if t == false then return true end  -- its task unreadable: counted in the tasks phase
  if t then
    if stays(t) then return true end
    if t.finding_id == fid and f.superseded ~= true then return true end  -- goes with it
  end
  if not retire then  -- (a dry run's sweep sees again what its findings phase counted)
    if not sweep then removed_findings = removed_findings + 1 end
    return true
  end
  remove_finding(fid)
  local first = stood_for(KEYS[7], f)
  if first then redis.call('HDEL', KEYS[7], first) end
  return false
end

-- The dedupe key question id took over (a successor's, posted under a key of its own after
-- the question its asker's key named was withdrawn: ask.py's TAKES_OVER in its data), or nil.
local function took_over(id)
  local raw = redis.call('HGET', KEYS[2], id)
  local ok, data = pcall(cjson.decode, raw or '')
  if ok and type(data) == 'table' and type(data.takes_over) == 'string' then
    return data.takes_over
  end
  return nil
end

-- How a retired question ended, after minus when it went in its asker's asked index (a
-- quarter per outcome: exact in a score, a time in ms below 2^51), which lineage reads back
-- (retire_questions.RETIRED_OUTCOMES says them once in Python); none (a whole number): it
-- was retired before the mark was kept.
local OUTCOME_MARK = {completed = '.25', cancelled = '.5', dead = '.75'}

-- One question of the tasks phase (own: its asked and webhooks keys, and the asked index
-- of its asker's task or nil).
local function walk_task(id, flag, own)
  local t = load_record(KEYS[1], id)
  if t == nil then return end  -- gone meanwhile (another run removed it)
  if not t then
    corrupt = corrupt + 1
    return
  end
  local why = stays(t)
  if why then
    count_kept(why)
    kept_from(t.created_at)
    return
  end
  if flag == '1' then
    cited = cited + 1
    kept_from(t.created_at)
    return
  end
  local fid = nil
  if t.finding_id then
    local f = load_record(KEYS[7], t.finding_id)
    if f == false then  -- its answer unreadable: kept with it
      corrupt = corrupt + 1
      kept_from(t.created_at)
      return
    end
    if f and f.task_id == id then fid = t.finding_id end
  end
  removed_questions = removed_questions + 1
  if not retire then
    if fid then removed_findings = removed_findings + 1 end
    return
  end
  if fid then remove_finding(fid) end
  -- its dedupe entries: its own key's, and the key it took over (read before its data goes)
  local keys = {t.dedupe_key or false, took_over(id) or false}
  for i = 1, 2 do
    local field = keys[i] and t.queue .. '|' .. keys[i]
    if field and redis.call('HGET', KEYS[4], field) == id then
      redis.call('HDEL', KEYS[4], field)
    end
  end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('DEL', own[1], own[2])
  if own[3] then
    redis.call('ZADD', own[3], 'XX', fmt(-now) .. (OUTCOME_MARK[t.status] or ''), id)
  end
  if t.status == 'dead' then redis.call('ZREM', KEYS[10], id) end
  local field = t.queue .. '|' .. t.status
  dropped[field] = (dropped[field] or 0) + 1
end

-- Where the walk of the task index resumes: after the cursor's entry, its rank read before
-- this step removes the chunk's questions (all ranked before it: the last step's walk found
-- them), so that ties of creation time are never skipped nor walked twice.
local resume_rank = cursor_id ~= '' and redis.call('ZRANK', KEYS[3], cursor_id)

local chunk_at = 14
if phase == 'tasks' then
  for i = 1, n do
    local at = chunk_at + 3 * (i - 1)
    local own_at = 12 + 3 * (i - 1)
    local asker = nil
    if ARGV[at + 2] == '1' then asker = KEYS[own_at + 3] end
    walk_task(ARGV[at + 1], ARGV[at + 3], {KEYS[own_at + 1], KEYS[own_at + 2], asker})
  end
else
  for i = 1, n do
    local fid, flag = ARGV[chunk_at + 2 * i - 1], ARGV[chunk_at + 2 * i]
    if walk_finding(fid, flag, phase == 'sweep') then offset = offset + 1 end
  end
end

-- The asker's task of question id ('' for none), from its data.
local function asker_of(id)
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then return '' end
  local ok, data = pcall(cjson.decode, raw)
  if ok and type(data) == 'table' and type(data.asker_task) == 'string' then
    return data.asker_task
  end
  return ''
end

-- Whether the task stored undecodable under id names this queue as its queue (its text
-- holds the field as the client's compact JSON writes it: a queue's name needs no escape).
local QUEUE_FIELD = '"queue":"' .. queue .. '"'
local function of_queue(id)
  return string.find(redis.call('HGET', KEYS[1], id) or '', QUEUE_FIELD, 1, true) ~= nil
end

-- Up to `size` entries of the task index from the cursor on, up to the cutoff: the
-- retirable questions of the queue among them (id, asker's task pairs); the others of the
-- queue counted as kept. Returns them and whether the index was walked to the cutoff.
local function scan_tasks()
  local start
  if resume_rank then
    start = resume_rank + 1
    if retire then start = start - removed_questions end
  else  -- (no cursor yet, or its entry removed by another run: from its score on, again)
    start = redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. cursor_score)
  end
  local entries = redis.call('ZRANGE', KEYS[3], fmt(start), fmt(start + size - 1), 'WITHSCORES')
  local found = {}
  for i = 1, #entries, 2 do
    local id, score = entries[i], entries[i + 1]
    if tonumber(score) > cutoff then return found, true end
    cursor_id, cursor_score = id, score
    local t = load_record(KEYS[1], id)
    if t == false then
      if of_queue(id) then  -- (another queue's is swarm doctor's to name: not counted here)
        corrupt = corrupt + 1
        kept_from(score)
      end
    elseif t and t.queue == queue then
      local why = stays(t)
      if why then
        count_kept(why)
        kept_from(score)
      else
        found[#found + 1] = id
        found[#found + 1] = asker_of(id)
      end
    end
  end
  return found, #entries < 2 * size
end

-- The next chunk: of this phase, or (this one at its end) of the next one.
local ids = {}
while phase ~= 'done' do
  if phase == 'tasks' then
    local ended
    ids, ended = scan_tasks()
    if #ids > 0 or not ended then break end
    phase, offset = 'sweep', 0
  else
    ids = redis.call('ZRANGE', KEYS[9], fmt(offset), fmt(offset + size - 1))
    if #ids > 0 then break end
    if phase == 'findings' then phase = 'tasks' else phase = 'done' end
    offset = 0
  end
end

-- The counters go down by what went.
for field, count in pairs(dropped) do redis.call('HINCRBY', KEYS[5], field, fmt(-count)) end

if retire and (removed_questions + removed_findings > 0 or phase == 'done') then
  if removed_questions + removed_findings > 0 then
    emit(KEYS[6], ARGV[2], 'questions.retired', 'queue', queue,
         'questions', fmt(removed_questions), 'findings', fmt(removed_findings))
  end
  local raw = redis.call('HGET', KEYS[11], queue)
  local ok, record = pcall(cjson.decode, raw or '')
  if not ok or type(record) ~= 'table' then record = {} end
  if removed_questions + removed_findings > 0 then record.at = now end
  record.questions = (tonumber(record.questions) or 0) + removed_questions
  record.findings = (tonumber(record.findings) or 0) + removed_findings
  if phase == 'done' then record.walked = walked end
  redis.call('HSET', KEYS[11], queue, cjson.encode(record))
end
local listed = #ids  -- (the tasks phase's chunk is of pairs)
if phase == 'tasks' then listed = listed / 2 end
local out = {'ok', phase, fmt(offset), cursor_score, cursor_id, removed_questions,
             removed_findings, open, recent, cited, other, other_open, corrupt, fmt(walked),
             listed}
for _, id in ipairs(ids) do out[#out + 1] = id end
for _, id in ipairs(protected) do out[#out + 1] = id end
return out
