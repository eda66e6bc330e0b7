-- Helpers of the work-queue scripts (pulled in by "--#include _tasks").
--
-- A task's state is one JSON object in the tasks hash; it never holds an array or a null
-- (absent means none), so cjson can decode and encode it without changing its shape. Besides
-- the public fields it keeps: seq (posting order), pass_id (hash of the pass name), claims
-- (attempt -> worker), seals (attempt -> SHA-1 of the lease's secret), lease_ms (the lease length of the current claim), op (the id of the
-- last lifecycle request applied, so that a retried request is not applied twice) and
-- next_task (the task its report leased with claim_next, for a retry of that report).
--
-- status_at: when the task took its status (ms), written by every status change but the
-- hot path's post, claim and completion, whose times the record has already (created_at,
-- claimed_at, completed_at: no work added to them). A claimed or completed task may so keep
-- an earlier change's status_at; the client reads claimed_at or completed_at for those
-- (Task.status_since). Tasks stored before it existed have none.
--
-- Two budgets, counted apart: failures (fail, the worker saw the work fail) against
-- max_attempts, and abandons (a lease expired with no report, fail or release: its holder
-- vanished) against max_abandons. A worker that dies is not a failed task. Tasks stored before
-- these fields existed have neither: failures and abandons count from 0, and max_abandons is
-- the default the client passes.

-- Pending tasks are ordered by priority (high first), then by posting order: the score is
-- -priority * 2^39 + seq, exact in a double for |priority| <= 10,000 and seq < 2^39.
local PRIO_SHIFT = 549755813888

-- Integers as exact decimal strings (Lua's own tostring keeps only 14 digits). '%d' formats
-- the number as a C long: exact for every integer here (< 2^53) where a long has 64 bits, and a
-- fraction of the cost of '%.0f' (glibc formats a double with multi-precision arithmetic);
-- '%.0f' where a long is narrower. A number given to redis.call is formatted too ('%.14g'),
-- so the scripts give it strings. (Chosen at the first call: a library is loaded without the
-- string library.) The small integers (attempts, counter steps, counts) are formatted once and
-- then looked up (SMALL, kept by the library): a string.format costs some 2,000 instructions,
-- and a claim or a report formats six to eight of them.
local INT_FMT = nil
local SMALL = {}
local function fmt(n)
  local text = SMALL[n]
  if text then return text end
  if not INT_FMT then
    INT_FMT = string.format('%d', 2^53) == '9007199254740992' and '%d' or '%.0f'
  end
  text = string.format(INT_FMT, n)
  if n >= -1024 and n <= 1024 and n == math.floor(n) then SMALL[n] = text end
  return text
end

-- The ranges a post accepts for a task's numbers, which its Python edge checks, as the moves
-- check them again in a record they read back: a worker may write any record
-- (docs/security.md), and a finite number out of them gave nonsense (a lease_s of 1e300 or
-- below 0: a lease deadline no integer holds, or long past; a max_attempts of 1e300: retried
-- for ever). One place holds them, _ops/tasks.py (RECORD_LIMITS), which sends them to every
-- script that moves a task as one string: 'PRIORITY ATTEMPTS LEASE_MIN_MS LEASE_MAX_MS' (the
-- largest |priority|, the largest max_attempts and max_abandons, a lease's shortest and
-- longest). Read once per library: the next call sends the same string (Lua compares strings
-- by reference). One of another shape (a raw FCALL's) is refused before the script's first
-- write: returned as a second value, the error reply the caller returns (raised with error(),
-- a table reads as a failed script on Redis 6.2, its own message lost).
local LIMITS_TEXT, LIMITS = nil, nil
local function record_limits(text)
  if text == LIMITS_TEXT then return LIMITS end
  local priority, attempts, lo, hi = string.match(text or '', '^(%d+) (%d+) (%d+) (%d+)$')
  if not priority then
    return nil, swarm_error('SWARM_INVALID', 'the record limits sent are not "PRIORITY '
      .. 'ATTEMPTS LEASE_MIN_MS LEASE_MAX_MS": send what redis-swarm sends')
  end
  LIMITS = {priority = tonumber(priority), attempts = tonumber(attempts),
            lease_min = tonumber(lo), lease_max = tonumber(hi)}
  LIMITS_TEXT = text
  return LIMITS
end

local function decode_task(raw)
  local t = cjson.decode(raw)
  -- A record written by an older version may hold a null (none); the scan of every field
  -- runs only when the text has one.
  if string.find(raw, 'null', 1, true) then
    for k, v in pairs(t) do
      if v == cjson.null then t[k] = nil end
    end
  end
  return t
end

local function load_task(tasks, id)
  local raw = redis.call('HGET', tasks, id)
  if not raw then return nil end
  return decode_task(raw)
end

-- A record of hash `key` that may be damaged: a worker may write any task record, and any
-- id in a queue's sets (docs/security.md, the threat model). nil when there is none, false
-- when it cannot be decoded (not JSON, not an object). Only the decoding is guarded (pcall),
-- so that a valid record costs what load_task's does.
local function load_record(key, id)
  local raw = redis.call('HGET', key, id)
  if not raw then return nil end
  local ok, record = pcall(decode_task, raw)
  if not ok or type(record) ~= 'table' then return false end
  return record
end

-- A half-stored report's superseded copy f names the first try's record (stands_for), in no
-- index by design (lua/_report.lua): its id, if of f's task, for a retirement removing f to
-- remove too (nothing else ever would); else nil.
local function stood_for(findings, f)
  if type(f.stands_for) ~= 'string' then return nil end
  local first = load_record(findings, f.stands_for)
  if first and first.task_id == f.task_id then return f.stands_for end
  return nil
end

-- The refusal of an operation on task id whose record cannot be read (load_record's false).
local function unreadable(id)
  return swarm_error('SWARM_CORRUPT', 'task ' .. id .. ' is stored unreadable (written '
    .. 'around redis-swarm): swarm doctor names such records; post its work again as a new task')
end

-- The field of table t that holds a number JSON cannot write (NaN or an infinity: cjson
-- decodes a worker's 1e999 as inf, and cannot encode it), in it or in a table under it; nil
-- when none does. Run only once an encode failed.
local function unwritable(t)
  for k, v in pairs(t) do
    if type(v) == 'number' then
      if v - v ~= 0 then return k end  -- (inf - inf and NaN - NaN are NaN)
    elseif type(v) == 'table' and unwritable(v) ~= nil then
      return k
    end
  end
  return nil
end

-- Write t back. A record whose field holds a number JSON cannot write (see unwritable) is
-- written without that field, which the operation did not read (the moves out of a queue's
-- sets check theirs finite: task_in_set dead-letters the task first), instead of the script
-- stopping after its first writes: a task a claim popped was then in no set, a reported one
-- counted completed with its record claimed. Its normal path costs a pcall.
local function save_task(tasks, t)
  local ok, raw = pcall(cjson.encode, t)
  if not ok then
    local field = unwritable(t)
    while field ~= nil do
      t[field] = nil
      field = unwritable(t)
    end
    raw = cjson.encode(t)
  end
  redis.call('HSET', tasks, t.id, raw)
  return raw
end

local function pending_score(t)
  return fmt(-t.priority * PRIO_SHIFT + t.seq)
end

-- The counts field of a parent shard's tasks in a status: 'shard:NAME|status' (a queue name
-- holds no ':', so it never collides with a queue's 'QUEUE|status').
local function shard_field(parent, status)
  return 'shard:' .. parent .. '|' .. status
end

-- Add n to a counter field: at once, or, while K.defer is set (a claim's batch, a report
-- that claims the next task), summed until flush_counts, so that changes that cancel out
-- (claimed -1 by a report, +1 by its next claim) cost no command and a batch of k claims
-- costs two, not 2k.
local function bump(K, key, field, n)
  if not K.defer then
    redis.call('HINCRBY', key, field, fmt(n))
    return
  end
  local fields = K.defer[key]
  if not fields then
    fields = {}
    K.defer[key] = fields
  end
  fields[field] = (fields[field] or 0) + n
end

-- Write the summed counter changes and stop deferring. Returns key -> field -> new value
-- of the fields written (those whose changes cancelled out are not there).
local function flush_counts(K)
  local written = {}
  for key, fields in pairs(K.defer or {}) do
    written[key] = {}
    for field, n in pairs(fields) do
      if n ~= 0 then written[key][field] = redis.call('HINCRBY', key, field, fmt(n)) end
    end
  end
  K.defer = nil
  return written
end

-- Move t to status, keeping the per-queue, per-shard and per-pass counters exact.
local function set_status(K, t, status)
  bump(K, K.counts, t.queue .. '|' .. t.status, -1)
  bump(K, K.counts, t.queue .. '|' .. status, 1)
  if t.parent then
    bump(K, K.counts, shard_field(t.parent, t.status), -1)
    bump(K, K.counts, shard_field(t.parent, status), 1)
  end
  if t.pass_id then
    bump(K, K.pass_counts, t.pass_id .. '|' .. t.status, -1)
    bump(K, K.pass_counts, t.pass_id .. '|' .. status, 1)
  end
  t.status = status
end

-- set_status, and when: status_at (every status change but a post, claim or completion).
local function set_status_at(K, t, status, now)
  set_status(K, t, status)
  t.status_at = now
end

-- Put the field/value pair k, v at args[n + 1], args[n + 2] unless v is nil or false (a number
-- as a string, with all its digits); returns the new length.
local function put_field(args, n, k, v)
  if v == nil or v == false then return n end
  if type(v) == 'number' then v = fmt(v) end
  args[n + 1] = k
  args[n + 2] = v
  return n + 2
end

-- Append a task event: the task, its queue and pass, then up to four field/value pairs
-- (left out when nil or false). One table, built in place (no varargs copied). Best effort,
-- as emit's (the prelude): an append the stream refuses is dropped, the move goes on.
local function task_event(K, etype, t, k1, v1, k2, v2, k3, v3, k4, v4)
  local args = {'XADD', K.events, 'MAXLEN', '~', K.maxlen, '*', 'type', etype, 'task', t.id,
                'queue', t.queue}
  local n = put_field(args, 12, 'pass', t.pass_name)
  n = put_field(args, n, k1, v1)
  n = put_field(args, n, k2, v2)
  n = put_field(args, n, k3, v3)
  put_field(args, n, k4, v4)
  return redis.pcall(unpack(args))
end

-- What the scripts that move a task out of a queue's set read of its record: the field of
-- t that is absent (when it must not be) or of another type than they use, and that type;
-- nil when none is. A record a worker wrote by hand may lack any (docs/security.md). Lua
-- checks only, no command, written out (a loop over a table of the fields cost a claim 2% more
-- instructions): they run for every task claimed.
-- Its owners: what its counters and events are keyed by (its queue, shard and pass).
local function owner_lacking(t)
  if type(t.queue) ~= 'string' then return 'queue', 'a string' end
  local parent, pass_id, pass_name = t.parent, t.pass_id, t.pass_name
  if parent ~= nil and type(parent) ~= 'string' then return 'parent', 'a string' end
  if pass_id ~= nil and type(pass_id) ~= 'string' then return 'pass_id', 'a string' end
  if pass_name ~= nil and type(pass_name) ~= 'string' then return 'pass_name', 'a string' end
  return nil
end

-- A number JSON can write (not NaN, not an infinity: see unwritable).
local function finite(v)
  return type(v) == 'number' and v - v == 0
end

-- Whether v is a number from lo to hi (never NaN or an infinity); range_kind says so.
local function in_range(v, lo, hi)
  return type(v) == 'number' and v >= lo and v <= hi
end

local function range_kind(lo, hi)
  return 'a number from ' .. fmt(lo) .. ' to ' .. fmt(hi)
end

-- A count (attempts, failures, abandons: a lease's token and the claims are keyed by the
-- attempt, messages format them with %d): a whole number from 0 to 2^53 (a worker's 1e300
-- read "failed on all -9223372036854775808 attempts").
local COUNT_LIMIT = 2 ^ 53
local COUNT = 'a count (a whole number from 0 to 2^53)'
local function count(v)
  return in_range(v, 0, COUNT_LIMIT) and v % 1 == 0
end

-- The numbers the moves read, each in the range a post accepts (L: record_limits), which
-- rules out NaN and the infinities too; nil when they are, else the field and its kind.
-- The pending score (a release, a retry, a reclaim, a requeue): priority, and seq (the
-- server's posting number, which any step of its 64-bit counter keeps exact in a score).
local function score_lacking(t, L)
  if not in_range(t.priority, -L.priority, L.priority) then
    return 'priority', range_kind(-L.priority, L.priority)
  end
  -- (seq finite only: the posting counter it comes from is a worker's to HINCRBY, and a
  -- range check would dead-letter every task posted after one pushed it past the range)
  if not finite(t.seq) then return 'seq', 'a finite number' end
  return nil
end

-- The lease a claim gives when it asks none: lease_s.
local function lease_s_lacking(t, L)
  local ms = type(t.lease_s) == 'number' and t.lease_s * 1000
  if ms and ms >= L.lease_min and ms <= L.lease_max then return nil end
  return 'lease_s', string.format('a number of seconds from %.15g to %.15g', L.lease_min / 1000,
                                  L.lease_max / 1000)
end

-- The failures a fail may count (max_attempts).
local function most_lacking(t, L)
  if in_range(t.max_attempts, 1, L.attempts) then return nil end
  return 'max_attempts', range_kind(1, L.attempts)
end

-- What a claim reads, and the numbers the moves after it read of what it writes back: the
-- pending score and max_attempts (a fail). A claim writes a field holding a number JSON
-- cannot write back without it (save_task), so a number left unchecked here was gone when a
-- later move read it, which then stopped after its first writes (a release: its task out of
-- the lease set, counted pending, in no set). The checks of the helpers above, written out
-- (calling them cost a claim 1% more instructions, callgrind: they run for every task
-- claimed); a number that fails one is named by its helper.
local function lease_lacking(t, L)
  local attempts, ms = t.attempts, t.lease_s
  if type(attempts) ~= 'number' or not (attempts >= 0 and attempts <= COUNT_LIMIT)
      or attempts % 1 ~= 0 then
    return 'attempts', COUNT
  end
  ms = type(ms) == 'number' and ms * 1000
  if not (ms and ms >= L.lease_min and ms <= L.lease_max) then return lease_s_lacking(t, L) end
  local priority, seq, most, top = t.priority, t.seq, t.max_attempts, L.priority
  if type(priority) ~= 'number' or type(seq) ~= 'number'
      or not (priority >= -top and priority <= top and seq - seq == 0) then
    return score_lacking(t, L)
  end
  if type(most) ~= 'number' or not (most >= 1 and most <= L.attempts) then
    return most_lacking(t, L)
  end
  if type(t.claims) ~= 'table' then return 'claims', 'an object' end
  local seals = t.seals
  if seals ~= nil and type(seals) ~= 'table' then return 'seals', 'an object' end
  return nil
end

-- What a reclaim or a promotion reads besides (lease_lacking has the pending score's
-- priority and seq): it makes the task pending or dead.
local function requeue_lacking(t, L)
  local worker, abandons, most = t.worker, t.abandons, t.max_abandons
  if worker ~= nil and type(worker) ~= 'string' then return 'worker', 'a string' end
  if abandons ~= nil and not count(abandons) then return 'abandons', COUNT end
  if most ~= nil and not in_range(most, 1, L.attempts) then
    return 'max_abandons', range_kind(1, L.attempts)
  end
  return nil
end

-- The id of pass name: the field of pass_counts that names it (pass-id -> name; a pass id
-- is a hash the scripts cannot compute), for a record that lost its pass_id; nil when no
-- pass of that name is counted. Reads the whole hash, once per script: only a damaged
-- record costs it.
local function pass_id_of(K, name)
  local ids = K.pass_ids
  if not ids then
    ids = {}
    local flat = redis.call('HGETALL', K.pass_counts)
    for i = 1, #flat, 2 do
      if not string.find(flat[i], '|', 1, true) then ids[flat[i + 1]] = flat[i] end
    end
    K.pass_ids = ids
  end
  return ids[name]
end

-- Queue names by delayed key, kept by the library across calls (reading the name back with
-- string.match on every claim cost it some 5,000 instructions, callgrind; a look-up here, a
-- few): at most QUEUE_NAMES_CAP, then started again.
local QUEUE_NAMES, QUEUE_NAMES_N, QUEUE_NAMES_CAP = {}, 0, 1024

-- The name of the queue whose delayed key is `delayed`, read back from the key
-- (rs:{SWARM}:q:QUEUE:delayed, made by _keys.py; a queue name holds no ':'), for
-- task_in_set, which reads QUEUE_NAMES first; false when the key has another shape (the
-- check is then skipped, never every task dropped).
local function queue_name(delayed)
  local name = string.match(delayed, ':q:([^:]+):delayed$') or false
  if QUEUE_NAMES_N >= QUEUE_NAMES_CAP then QUEUE_NAMES, QUEUE_NAMES_N = {}, 0 end
  QUEUE_NAMES[delayed], QUEUE_NAMES_N = name, QUEUE_NAMES_N + 1
  return name
end

-- Why record t, whose field (that must be kind) a move lacks, is damaged (NaN or an
-- infinity: not a finite number, whatever range kind says).
local function damage(t, field, kind)
  local v = t[field]
  if type(v) == 'number' and v - v ~= 0 then kind = 'a finite number' end
  return 'damaged record: its field ' .. field .. ' is '
    .. (v == nil and 'missing' or 'not ' .. kind) .. ' (written around redis-swarm)'
end

-- Whether queue named (a record's field queue) is one a task was ever posted to: the post
-- counts each task as pending or delayed, so the counters name every such queue. No queue
-- name holds a ':' (the shards' counters, shard:NAME|STATUS, share the hash: not queues).
local function queue_counted(K, named)
  if type(named) ~= 'string' or string.find(named, ':', 1, true) then return false end
  return (redis.call('HGET', K.counts, named .. '|pending')
          or redis.call('HGET', K.counts, named .. '|delayed')) ~= false
end

-- Why record t, met in the set of status of queue (a scripts' entry: scored_as), is damaged
-- when its field queue names another (named), or none.
local function queue_damage(named, queue, status)
  local shown = type(named) == 'string' and 'names ' .. string.sub(named, 1, 100)
    or (named == nil and 'is missing' or 'is not a string')
  return 'damaged record: its field queue ' .. shown .. ' (written around redis-swarm) while '
    .. 'queue ' .. queue .. "'s " .. (status == 'claimed' and 'lease' or status)
    .. ' set held it'
end

-- Dead-letter t, the record of task id met in Q's set of status, damaged as why says (a
-- field a move reads is lacking): its owners are readable, so that its counters move from
-- the set's status as any death's do, and it shows in the queue's dead set (task list, swarm
-- doctor's readers) instead of being counted for ever in a status no set holds. A pass_id it
-- lost is found again by its pass_name, so that its pass's counters move too (none when no
-- pass of that name is counted). A field holding a number JSON cannot write is written
-- without it (save_task).
local function bury_damaged(K, Q, t, id, status, why, now)
  local reason = why .. ', so it could not be moved out of ' .. status
    .. ': post its work again as a new task'
  t.id, t.status = id, status  -- (the set's status: what counted it, when the record lost it)
  if t.pass_id == nil and t.pass_name ~= nil then t.pass_id = pass_id_of(K, t.pass_name) end
  -- (no lease left, as any death leaves: reclaim_expired's, a fail's)
  t.worker, t.lease_deadline = nil, nil
  set_status_at(K, t, 'dead', now)
  t.dead_reason = reason
  redis.call('ZADD', Q.dead, fmt(now), id)
  save_task(K.tasks, t)
  local attempt = t.attempts
  task_event(K, 'task.dead', t, 'reason', reason, 'attempt', finite(attempt) and attempt or nil)
end

-- Whether score, the entry of t's id in a set of status, is the one the scripts give it when
-- they add it (its pending score, its lease deadline, its due time): an entry of the scripts,
-- whose queue's counters count the task, and not one a worker added (a ZADD, at a score of
-- its choosing). Read only for a record that names another queue than the set's.
local function scored_as(t, status, score)
  local want
  if status == 'pending' then
    if not (finite(t.priority) and finite(t.seq)) then return false end
    want = -t.priority * PRIO_SHIFT + t.seq
  elseif status == 'claimed' then
    want = t.lease_deadline
  else
    want = t.not_before
  end
  return type(want) == 'number' and tonumber(score) == want
end

-- The task of id found in Q's set of status (pending, delayed, claimed) at score, read for a
-- script that moves it out of that set, which it has already left; nil when there is none to
-- move, and then true when it was dead-lettered. The caller goes on: an id no task backs must
-- never block its queue. Five cases:
-- - no record, one that cannot be read, one of another id, or one whose owners cannot be
--   read: dropped, the record left as it is (swarm doctor names those stored unreadable).
--   Nothing tells a posted task's from one a worker wrote under an id never posted, nor
--   which counters hold it: none is moved;
-- - a record of another queue, one tasks were posted to (queue_counted), or whose entry has
--   a score of the worker's choosing (its id added to this queue's set): dropped, left as it
--   is; it is counted, and held, by its own queue's set (leased through this queue, it moved
--   its own queue's counters and left its id in that queue's set too). The score alone does
--   not tell: a worker reads the record, and can add another queue's task here at its very
--   score (that task was then dead-lettered here and stuck in its own queue's set);
-- - a record of a queue no task was posted to (or of none) whose entry has the score the
--   scripts gave it (scored_as): this queue's task, counted by this queue, whose record a
--   worker rewrote; dropped, it was counted here for ever, held by no set, its pass never
--   settled. It is dead-lettered here, its record naming this queue again (one rewritten to
--   name another real queue is dropped, as above: docs/security.md);
-- - a record of another status (a settled task's id added to the set): dropped, left as it
--   is; it is counted under its own status;
-- - a record of the set's status (or of none: it lost it), of this id (or of none), with
--   readable owners, that lacks a field the move reads or holds a number out of the range a
--   post accepts (K.limits: record_limits), or lacks a pass_id when it has a pass_name (the
--   pass's counters are keyed by it): dead-lettered (bury_damaged).
local function task_in_set(K, Q, id, status, now, score)
  local t = load_record(K.tasks, id)
  if not t or (t.id ~= id and t.id ~= nil) or (t.status ~= status and t.status ~= nil) then
    return nil
  end
  local queue = QUEUE_NAMES[Q.delayed]
  if queue == nil then queue = queue_name(Q.delayed) end
  local why = nil
  if queue and t.queue ~= queue then
    if not scored_as(t, status, score) or queue_counted(K, t.queue) then return nil end
    why = queue_damage(t.queue, queue, status)
    t.queue = queue
  end
  if owner_lacking(t) then return nil end
  local L = K.limits
  local field, kind = lease_lacking(t, L)
  if not field and status ~= 'pending' then field, kind = requeue_lacking(t, L) end
  if not field and t.pass_id == nil and t.pass_name ~= nil then
    field, kind = 'pass_id', 'a string'
  end
  if not field and not why then
    if t.id and t.status then return t end
    field, kind = t.id and 'status' or 'id', 'a string'
  end
  bury_damaged(K, Q, t, id, status, why or damage(t, field, kind), now)
  return nil, true
end

-- Wake-up tokens kept per queue at most: a hint for waiting claims, never the truth.
local WAKE_CAP = 64
local WAKE_KEEP = '-' .. WAKE_CAP  -- LTRIM's start: the last WAKE_CAP (a string: see fmt)

-- How long a token pushed to one worker's list outlives a wait that never takes it (a
-- worker killed mid-wait): as the report's (lua/_report.lua).
local OWN_WAKE_MS = '60000'

-- Push n wake-up tokens (default 1): first one each to the workers on top of the queue's
-- waiters list (when the script was given it: Keys.waiters), the last to begin waiting first,
-- to the worker's list of that queue (Keys.waiter_wake), which its BLPOP watches first; the
-- rest to the queue's wake list (when the script was given it), where Redis serves the
-- waiter that began first. So a stream of tasks keeps the few workers it needs busy, warm,
-- while the others sleep (with every token on the wake list, each task woke the next of all
-- the idle workers in turn, each woken process cold: twice the CPU per task with 16
-- workers). A name is popped once whatever becomes of its wait: a worker killed mid-wait
-- costs the one task it was given the wait of another claim (a waiter's chunk, a claim, a
-- report's claim_next), the token expiring with its list. Whatever a worker pushed there
-- names a worker's wake list, which a worker may push to anyway. The wake list is capped:
-- trimmed only when the push took it over the cap (one command, not two).
local function wake(Q, n)
  n = n or 1
  if Q.waiters then
    local names = redis.call('LPOP', Q.waiters, fmt(n))
    if names then
      local pre, queue = string.match(Q.waiters, '^(.*)q:([^:]*):waiters$')
      for _, name in ipairs(names) do
        local own = pre .. 'q:worker:' .. name .. '@' .. queue .. ':wake'  -- (Keys.waiter_wake)
        redis.call('RPUSH', own, '1')
        redis.call('PEXPIRE', own, OWN_WAKE_MS)
      end
      n = n - #names
    end
  end
  if Q.wake and n > 0 then
    local tokens = {}
    for j = 1, math.min(n, WAKE_CAP) do tokens[j] = '1' end
    if redis.call('RPUSH', Q.wake, unpack(tokens)) > WAKE_CAP then
      redis.call('LTRIM', Q.wake, WAKE_KEEP, '-1')
    end
  end
end

-- Put t back in its queue's pending set (it must already be out of every other set), at now.
local function make_pending(K, Q, t, now)
  set_status_at(K, t, 'pending', now)
  redis.call('ZADD', Q.pending, pending_score(t), t.id)
  wake(Q)
end

-- Dead-letter t with a reason.
local function make_dead(K, Q, t, now, reason)
  set_status_at(K, t, 'dead', now)
  t.dead_reason = reason
  redis.call('ZADD', Q.dead, fmt(now), t.id)
  task_event(K, 'task.dead', t, 'reason', reason, 'attempt', t.attempts)
end

-- Take t out of whichever per-queue set holds it, according to its status.
local function unlink(Q, t)
  if t.status == 'pending' then
    redis.call('ZREM', Q.pending, t.id)
  elseif t.status == 'delayed' then
    redis.call('ZREM', Q.delayed, t.id)
  elseif t.status == 'claimed' then
    redis.call('ZREM', Q.leases, t.id)
  elseif t.status == 'dead' then
    redis.call('ZREM', Q.dead, t.id)
  end
end

-- Reclaim up to maxn expired leases (due by upto, now as a string) of one queue: back to pending (an abandon), or dead when
-- the task has been abandoned max_abandons times (default_max for tasks stored without one).
-- Returns how many were reclaimed (a damaged record's lease dead-lettered counts too).
local function reclaim_expired(K, Q, now, upto, maxn, default_max)
  local due = redis.call('ZRANGEBYSCORE', Q.leases, '-inf', upto, 'WITHSCORES', 'LIMIT', '0',
                        maxn)
  local n = 0
  for i = 1, #due, 2 do
    local id = due[i]
    redis.call('ZREM', Q.leases, id)
    local t, buried = task_in_set(K, Q, id, 'claimed', now, due[i + 1])
    if buried then n = n + 1 end  -- (a lease ended too: reap counts it)
    if t then
      local worker = t.worker
      t.worker = nil
      t.lease_deadline = nil
      t.abandons = (t.abandons or 0) + 1
      t.max_abandons = t.max_abandons or default_max
      local dies = t.abandons >= t.max_abandons
      -- status: where the task goes now (pending: claimable again; dead: task.dead follows)
      task_event(K, 'task.expired', t, 'attempt', t.attempts, 'worker', worker,
                 'abandons', t.abandons, 'status', dies and 'dead' or 'pending')
      if dies then
        make_dead(K, Q, t, now, string.format(
          'max_abandons reached: abandoned %d %s (the lease of attempt %d, worker %s, '
          .. 'expired with no report)', t.abandons, t.abandons == 1 and 'time' or 'times',
          t.attempts, worker or '?'))
      else
        make_pending(K, Q, t, now)
      end
      save_task(K.tasks, t)
      n = n + 1
    end
  end
  return n
end

-- Move up to maxn delayed tasks of one queue whose time has come to pending (task.due each:
-- what watches for claimable tasks learns of it as of a post).
local function promote_due(K, Q, now, upto, maxn)
  local due = redis.call('ZRANGEBYSCORE', Q.delayed, '-inf', upto, 'WITHSCORES', 'LIMIT', '0',
                        maxn)
  for i = 1, #due, 2 do
    local id = due[i]
    redis.call('ZREM', Q.delayed, id)
    local t = task_in_set(K, Q, id, 'delayed', now, due[i + 1])
    if t then
      make_pending(K, Q, t, now)
      save_task(K.tasks, t)
      task_event(K, 'task.due', t, 'attempt', (t.attempts or 0) > 0 and t.attempts or nil)
    end
  end
end

-- The earliest time (ms) something of this queue becomes due: a delayed task or a lease
-- expiry; nil when none.
local function next_due(Q, best)
  for _, key in ipairs({Q.delayed, Q.leases}) do
    local first = redis.call('ZRANGE', key, '0', '0', 'WITHSCORES')
    if first[2] then
      local at = tonumber(first[2])
      if not best or at < best then best = at end
    end
  end
  return best
end

-- The due hint of a queue (a field of counts): a time before which none of the queue's leases
-- ends and none of its delayed tasks falls due. A claim reads it (one HGET) and scans the
-- queue's leases and delayed tasks only once that time has come (two ZRANGEBYSCORE, then two
-- ZRANGE to set it again), instead of scanning on every claim. It is a lower bound: a lease
-- that ends early (a report, a release) leaves it earlier than need be, which costs one scan;
-- whatever adds a lease or a delayed task earlier than it lowers it (lower_due), and it is
-- set at most DUE_HORIZON after a scan, so that a lease added without lowering it (by a script
-- of an older version, while an upgrade replaces the library) waits that long at most. No
-- hint (a swarm written before it existed): scan. Written with HINCRBY (a worker's ACL allows
-- no other write to counts, and a function runs with its caller's rights), from the value
-- read: Q.due_stored (false: none).
local DUE_HORIZON = 60000
local function due_field(Q)
  return 'due:' .. Q.delayed  -- the queue's delayed key: every task script has it
end

-- The largest step set_due takes: a worker may HINCRBY the hint anywhere in a 64-bit integer's
-- range (docs/security.md), where one step from there to a time overflowed ("increment or
-- decrement would overflow": every claim of the queue failed for good, after its reclaims).
local DUE_STEP = 2^62

-- Set the due hint of Q's queue to at (ms, an integer), from the value read (due, nil when
-- none), and keep in Q.due_stored what Redis answered (false: nothing it can hold). From a
-- hint a scan or lower_due set, one HINCRBY (its normal path: no command added). From one a
-- worker moved past +-2^53 (a Lua number then misses its last digits) or up to +-2^63: steps
-- of at most DUE_STEP, each from the value the last answered, exact once under 2^53 (three at
-- most). The HINCRBY is pcall'ed: a field that holds no integer (a worker's HSET where Redis
-- has no ACL selectors, before 7.0) leaves the queue with no hint (scanned at each claim), the
-- script going on. at is taken down to a whole ms (a worker may ZADD a lease at 0.5).
local function set_due(K, Q, due, at)
  local field, stored = due_field(Q), due or 0
  at = math.floor(at)
  for _ = 1, 4 do
    local step = at - stored
    if step > DUE_STEP then step = DUE_STEP elseif step < -DUE_STEP then step = -DUE_STEP end
    local got = redis.pcall('HINCRBY', K.counts, field, fmt(step))
    if type(got) ~= 'number' then
      Q.due_stored = false
      return
    end
    stored = got
    if stored == at then break end
  end
  Q.due_stored = stored
end

-- When something of the groups may fall due next, for a claim that found nothing to claim:
-- their due hints, as refresh_groups just read or set them (a time before which nothing of
-- theirs can be due), else the first lease or delayed task. The waiting claim that follows
-- sleeps until then at most: a hint left early by a lease that ended early (a report) costs
-- one claim that finds nothing, and an empty claim reads no ZRANGE (two per queue before).
local function hinted_due(groups)
  local due = nil
  for _, Q in ipairs(groups) do
    local at = Q.due_stored or next_due(Q, nil)
    if at and (not due or at < due) then due = at end
  end
  return due
end

-- Lower the due hint of Q's queue to at (ms) if it is later. (A hint a worker moved far
-- behind, below 0 even, is left: the next claim scans, then sets it again.)
local function lower_due(K, Q, at)
  if Q.due_stored == nil then
    Q.due_stored = tonumber(redis.call('HGET', K.counts, due_field(Q))) or false
  end
  if Q.due_stored and at < Q.due_stored then set_due(K, Q, Q.due_stored, at) end
end

-- The per-queue keys of the group of four starting at keys[i], and the queue's wake list
-- at keys[w] when w is given (scripts that never make a task pending do without it). keys:
-- the script's KEYS (a helper is defined once for the library, outside any call's KEYS).
local function queue_keys(keys, i, w)
  return {pending = keys[i], delayed = keys[i + 1], leases = keys[i + 2], dead = keys[i + 3],
          wake = w and keys[w] or nil}
end

-- A lease's token is 'ATTEMPT.SECRET'. The claiming client chooses the secret (a script's
-- randomness is not), and the task keeps only its SHA-1 (seals), so that reading a task does
-- not reveal a token: only the holder of a lease can act on it.
local function seal(secret)
  return redis.sha1hex(secret)
end

-- {task JSON, data JSON or false} of task id while the lease its current attempt holds was
-- sealed with secret (a retried request's first lease, given back), else nil.
local function still_leased(K, task_data, id, secret)
  local n = load_record(K.tasks, id)
  if not n or n.status ~= 'claimed' or not n.seals
      or n.seals[fmt(n.attempts)] ~= seal(secret) then
    return nil
  end
  return {redis.call('HGET', K.tasks, id), redis.call('HGET', task_data, id) or false}
end

-- The attempt of token when t really issued it, else nil.
local function issued(t, token)
  local attempt, secret = string.match(token, '^(%d+)%.([%w_%-]+)$')
  if not attempt or not t.seals or t.seals[attempt] ~= seal(secret) then return nil end
  return tonumber(attempt)
end

-- The refusal of a token t never issued (the message never repeats the token).
local function never_issued(t)
  return string.format(
    'this token was never issued for task %s: use the token its claim returned', t.id)
end

-- What a lease's refusal adds while its task is open: a report with the token is still taken
-- (it completes the task: task_report), so a finding already made need not be thrown away.
local STILL_REPORTABLE = ' (a finding you already have can still be reported)'

-- The token's attempt, and why its holder no longer holds t's lease (nil when it does).
local function lease_refusal(t, token)
  local attempt = issued(t, token)
  if not attempt then return nil, never_issued(t) end
  if t.status == 'claimed' and t.attempts == attempt then return attempt, nil end
  if t.status == 'claimed' then
    return attempt, string.format(
      'the lease of attempt %d on task %s ended (it expired, or was released) and attempt %d '
      .. 'holds it now: stop working on it', attempt, t.id, t.attempts) .. STILL_REPORTABLE
  end
  local open = (t.status == 'pending' or t.status == 'delayed') and STILL_REPORTABLE or ''
  return attempt, string.format(
    'task %s is %s, no longer held by attempt %d: stop working on it', t.id, t.status, attempt)
    .. open
end

-- --- claiming (task_claim, and task_report's claim_next)

-- The per-queue groups of keys of the queues a claim names: five per queue from keys[first].
local function claim_groups(keys, first, nq)
  local groups = {}
  for g = 1, nq do
    local i = first + 5 * (g - 1)
    groups[g] = queue_keys(keys, i, i + 4)
  end
  return groups
end

-- Make each group's queue current before picking from it: reclaim its expired leases and
-- promote its delayed tasks whose time has come. L: expire and promote (the most per queue, as
-- the strings ARGV gave), default_max (max_abandons of a task stored without one). Returns how
-- many were reclaimed.
local function refresh_groups(K, groups, now, L)
  local reclaimed = 0
  local upto = nil
  for _, Q in ipairs(groups) do
    local due = tonumber(redis.call('HGET', K.counts, due_field(Q)))
    Q.due_stored = due or false
    -- Something may be due: scan, then set the hint again. A hint more than DUE_HORIZON
    -- ahead was set by no scan (each sets it DUE_HORIZON ahead at most, and lower_due only
    -- lowers it): a worker's HINCRBY (it may write counts: docs/security.md), or a clock
    -- that went back. Trusted, it froze the queue's reclaims and promotions for good. One
    -- behind now (below 0 even, a worker's too) is not trusted either: scanned, set again.
    if not due or due <= now or due > now + DUE_HORIZON then
      upto = upto or fmt(now)
      reclaimed = reclaimed + reclaim_expired(K, Q, now, upto, L.expire, L.default_max)
      promote_due(K, Q, now, upto, L.promote)
      -- (no earlier than now: a worker may ZADD a lease at -inf; a hint at now is scanned
      -- again by the next claim all the same)
      local at = math.min(next_due(Q, nil) or math.huge, now + DUE_HORIZON)
      set_due(K, Q, due, math.max(at, now))
    end
  end
  return reclaimed
end

-- The highest-priority, oldest pending task across the groups: its id, group and score, or
-- nil.
local function best_pending(groups)
  local best_id, best_score, best_q = nil, nil, nil
  for _, Q in ipairs(groups) do
    local first = redis.call('ZRANGE', Q.pending, '0', '0', 'WITHSCORES')
    if first[1] then
      local score = tonumber(first[2])
      if not best_score or score < best_score then
        best_id, best_score, best_q = first[1], score, Q
      end
    end
  end
  return best_id, best_q, best_score
end

-- Lease pending task t (out of its group Q's pending set) to C.worker: a new attempt,
-- sealed with the SHA-1 of secret, for C.lease_ms (0: the task's lease_s). Returns the
-- task's JSON and its queue.
local function lease_one(K, Q, t, now, C, secret)
  set_status(K, t, 'claimed')
  t.attempts = t.attempts + 1
  t.worker = C.worker
  t.claims[fmt(t.attempts)] = C.worker
  t.seals = t.seals or {}  -- a task stored before seals existed has none
  t.seals[fmt(t.attempts)] = seal(secret)
  t.claimed_at = now
  local lease_ms = C.lease_ms
  if lease_ms <= 0 then lease_ms = math.floor(t.lease_s * 1000) end
  t.lease_ms = lease_ms  -- the length renewals default to
  t.lease_deadline = now + lease_ms
  redis.call('ZADD', Q.leases, fmt(t.lease_deadline), t.id)
  lower_due(K, Q, t.lease_deadline)
  local raw = save_task(K.tasks, t)
  -- (No lease_deadline: no reader of the event needs it; the task record has it.)
  task_event(K, 'task.claimed', t, 'worker', C.worker, 'attempt', t.attempts)
  return raw, t.queue
end

-- Wake lists hold about one token per claimable task (capped): whatever makes a task
-- claimable pushes one; a waiting claim pops one (BLPOP) before its script runs; a claim pops
-- the tokens of the other tasks it takes, so that no waiter wakes for a task already gone.
-- A claim that finds nothing clears them (no task is claimable, so every token is stale).
-- A claim of several queues leaves a token on each that still has pending tasks and none,
-- as it may have taken another queue's task than its token's. A claim of one queue costs one
-- command or none: the pending count left comes from the counter the claim moved (left),
-- the tokens to take from the m tasks taken and C.woken. It adds a token only when the list
-- ran dry while at least WAKE_CAP tasks are left (the cap may have dropped theirs): below
-- the cap every pending task has its token, in the list or held by a waiter on its way, and
-- one more would only wake a worker for a task already taken (at 16 workers, the wake-ups
-- that found nothing were more than one per task).
-- A token on each queue of the groups that has pending tasks and none.
local function wake_tokenless(groups)
  for _, Q in ipairs(groups) do
    if redis.call('LLEN', Q.wake) == 0 and redis.call('EXISTS', Q.pending) == 1 then
      wake(Q)
    end
  end
end

local function settle_wake(groups, m, left, C)
  if #groups > 1 then
    wake_tokenless(groups)
    return
  end
  local Q = groups[1]
  local take = m - (C.woken and 1 or 0)
  if left <= 0 then
    redis.call('LTRIM', Q.wake, '1', '0')  -- nothing left to claim: every token is stale
  elseif take <= 0 then
    if left >= WAKE_CAP and redis.call('LLEN', Q.wake) == 0 then wake(Q) end
  else
    local got = redis.call('LPOP', Q.wake, fmt(take))
    if left >= WAKE_CAP and (not got or #got < take) then wake(Q) end
  end
end

-- Workers that only claim and report are registered implicitly, by a claim that takes a
-- task, and marked present. Only the claim that creates the record says the worker joined
-- (agent.joined, with agent_register's fields): once per worker, not per claim; the worker
-- joins again only after it left (deregistered, or swept as stale). Called before the
-- claim's task.claimed, so that the stream says who joined before what they took. (The JSON
-- is written by hand: worker names are checked names, nothing in them needs escaping.)
local function join_implicitly(K, C, now)
  local record = '{"id":"' .. C.worker .. '","role":"worker","implicit":true,'
    .. '"registered_at":' .. fmt(now) .. '}'
  if redis.call('HSETNX', C.agents, C.worker, record) == 1 then
    emit(K.events, K.maxlen, 'agent.joined', 'agent', C.worker, 'role', 'worker')
  end
  redis.call('ZADD', C.presence, fmt(now), C.worker)
end

-- Ids a claim may drop (task_in_set: no task behind them) before it stops looking: a claim
-- stays short whatever a worker wrote into a pending set; the next claim goes on from there
-- (one that stopped so with nothing leased says so: claim_best's third result).
local DROP_CAP = 1000

-- Claim up to #C.secrets of the best pending tasks of the groups (refreshed first) for
-- C.worker, one secret each. C: worker, lease_ms, secrets, agents, presence, task_data,
-- register (register the worker and mark it present), woken (a wake-up token was popped).
-- Returns {task JSON, data JSON or false, ...} (a pair per task, best first; empty: none),
-- the list of their ids, and true when it leased none because it stopped at DROP_CAP (ids
-- are left to look at: the queues are not known empty). One queue: the tasks are popped in one command (ZPOPMIN), and
-- popped again for those short only when ids without a task were among them. The
-- counters are written once at the end (with what the caller deferred before: K.defer).
local function claim_best(K, groups, now, C)
  local out, ids = {}, {}
  K.defer = K.defer or {}
  local one = #groups == 1 and groups[1] or nil
  local popped, p = {}, -1  -- one queue: the ZPOPMIN reply (id, score, ...), the id looked at
  local dry = false  -- one queue: its pending set gave fewer than asked (it is empty)
  local dropped = 0  -- ids without a task taken out of a pending set
  local queue = nil
  local n = 1  -- the secret of the next lease
  while C.secrets[n] do
    local id, Q, score
    if one then
      if p + 2 > #popped then
        if dry or dropped >= DROP_CAP then break end
        local want = #C.secrets - n + 1
        popped, p = redis.call('ZPOPMIN', one.pending, fmt(want)), -1
        dry = #popped < 2 * want
      end
      p = p + 2
      id, Q, score = popped[p], one, popped[p + 1]
    else
      if dropped >= DROP_CAP then break end
      id, Q, score = best_pending(groups)
      if id then redis.call('ZREM', Q.pending, id) end
    end
    if not id then break end
    local t = task_in_set(K, Q, id, 'pending', now, score)
    if t then
      if n == 1 and C.register then join_implicitly(K, C, now) end
      out[#out + 1], queue = lease_one(K, Q, t, now, C, C.secrets[n])
      out[#out + 1] = redis.call('HGET', C.task_data, id) or false
      ids[#ids + 1] = id
      n = n + 1
    else
      dropped = dropped + 1  -- (out of the set already: popped, or ZREM above)
    end
  end
  local written = flush_counts(K)
  if #out == 0 and dropped >= DROP_CAP then
    wake_tokenless(groups)  -- ids are left to look at: the next claim goes on at once
    return out, ids, true
  end
  if #out == 0 then
    for _, Q in ipairs(groups) do
      redis.call('LTRIM', Q.wake, '1', '0')  -- empties it (workers may not DEL)
    end
    return out, ids
  end
  -- The pending tasks left in the (one) queue: from the counter just written, else read.
  local field = queue .. '|pending'
  local left = written[K.counts] and written[K.counts][field]
  if #groups == 1 and not left then left = tonumber(redis.call('HGET', K.counts, field) or '0') end
  settle_wake(groups, #ids, left or 0, C)
  return out, ids
end
