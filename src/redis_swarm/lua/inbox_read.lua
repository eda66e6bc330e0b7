-- inbox_read: the oldest messages of an agent, from its inbox and the broadcasts after its
-- cursor, merged in the order they were sent. An agent does not receive its own broadcasts.
--
-- Acknowledgement is two-step, so that a read whose reply is lost loses no message: an
-- acknowledged read records its batch as pending (its read id and where it ends) and
-- returns it; the same read sent again (redis-py retries after a lost reply) returns the
-- same batch; the next acknowledged read with another id (or a commit, mode '2') first
-- commits the pending batch (moves the inbox and broadcast cursors past it) and then reads
-- on. So the next read returns only newer messages, and two readers of one inbox never get
-- the same message. A peek looks past a pending batch and commits nothing: it would take
-- as read a batch its reader may still give back (below).
-- A read cut before its caller got its batch (a cancelled task, Ctrl-C) is withdrawn (mode
-- '3', sent after it by the same reader): its batch, still pending (no read since committed
-- it), is dropped, so that the next read returns those messages again. Two readers of one
-- inbox: the last batch another read committed is remembered (agent|orphan), so that its
-- read sent again returns it, and its withdrawal puts copies of its messages in the inbox
-- again (the cursors cannot move back); an older one stays read, its withdrawal answered
-- {0} (the core refuses it: Conflict). A withdrawal sent again (its reply lost) answers {1}
-- as its first did (agent|orphan keeps the read id last withdrawn). (The acknowledged read of
-- a full batch is followed by a peek, which looks past that batch: are more waiting?)
-- A reader that must not lose what it never showed (a hook, a restarted session) peeks,
-- shows, then commits through the last message it showed (mode '2'): inbox and broadcast
-- ids come from one sequence (the message.sent events), so one position covers both.
-- The inbox keeps the newest ARGV[5] messages read (those before its cursor), so that one
-- can be shown again by id (message_get); older read ones are trimmed.
-- KEYS[1]: agents   KEYS[2]: inbox(agent)   KEYS[3]: broadcast
-- KEYS[4]: cursors (HASH agent -> last broadcast id read; agent|inbox -> last inbox id read;
--          agent|pending -> 'READID LAST_INBOX_ID LAST_BROADCAST_ID N_READ': the pending
--          batch ('-' for none: READID '-' when no batch is pending) and how many messages
--          of the inbox stream were read (kept, or in the pending batch), so that XLEN -
--          N_READ is the unread count message_send, agent_deregister and agent_sweep use;
--          agent|orphan -> the last pending batch another read committed and the read id
--          last withdrawn: see orphan_parts; agent|gap -> 'FROM TO': broadcasts its cursor
--          passed trimmed, never shown (note_gap); a field of another shape is answered
--          {'damaged', FIELD, VALUE}, before anything is read or written)
-- KEYS[5]: events   KEYS[6]: messages (message_send's index: 'TO STREAM_ID AT FROM READERS',
--          then, for a broadcast, AGENT=COPY_ID for each agent given back a copy of it)
-- ARGV[1]: agent id   ARGV[2]: limit   ARGV[3]: '1' to acknowledge, '0' to peek (past a
--          pending batch, committing nothing), '2' to commit through ARGV[4], '3' to
--          withdraw the acknowledged read ARGV[4]
-- ARGV[4]: the read id (unique per call, repeated by a retry); in mode '2' the stream id
--          of the last message shown
-- ARGV[5]: read messages the inbox keeps
-- ARGV[6]: in mode '2', '1' when ARGV[4] must be the stream id of a message the agent
--          receives (one of its inbox, or a broadcast): a seq its caller typed; '0' when the
--          caller looked it up from a message id (the message index said whose it is)
-- ARGV[7]: events maxlen   ARGV[8]: now (0 = the server's clock; ids of copies, mode '3')
-- returns a list of {stream id, fields}, or, when broadcasts after the agent's broadcast
-- cursor were trimmed before it was shown them (a reader more than the kept number behind),
-- {'trimmed', CURSOR, NEWEST_TRIMMED, OLDEST_KEPT, that list} (reply_of; an acknowledged
-- read, or a commit passing them, notes them in agent|gap 'FROM TO': message_status counts
-- none in (FROM, TO] read by the agent) (mode '3': {1} when the batch was given back, now
-- or by a withdrawal of it before, {0} when the inbox keeps no batch of that read id;
-- mode '2': {'marked'} when messages
-- through ARGV[4] were unread (now read), {'read'} when none were (no cursor moved, beyond
-- committing a pending batch, as any read does), {'foreign'} when ARGV[6] is '1' and no
-- message the agent receives has that id, where it would mark messages read or no cursor
-- has reached it, and it is not older than every broadcast kept (nothing written: a seq
-- past the newest message would mark read every message sent later, another agent's the
-- agent's own before it))
local id, limit, ack, rid = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
local commit_through = ARGV[3] == '2' and ARGV[4] or nil
local keep = tonumber(ARGV[5])
local record = redis.call('HGET', KEYS[1], id)
if not record then
  return swarm_error('SWARM_NOTFOUND', 'agent ' .. id .. ' is not registered: register it '
    .. 'before reading its inbox ' .. register_agent_command(id))
end
local pkey, ikey, okey = id .. '|pending', id .. '|inbox', id .. '|orphan'

-- Every cursor field of the agent is checked before anything is read or written: one written
-- around redis-swarm (not a stream id, or not the shape above) is answered {'damaged', FIELD,
-- VALUE}, which the core says as a CorruptRecord naming its repair (messages.py), rather
-- than a raw 'Invalid stream ID' out of the XRANGE it would reach.
local function sid_ok(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  if not ms then return false end
  for _, part in ipairs({ms, seq}) do
    if (#part > 1 and string.sub(part, 1, 1) == '0')
        or dec_less('18446744073709551615', part) then
      return false
    end
  end
  return true
end
local function sid_or_none_ok(s) return s == '-' or sid_ok(s) end
local fields = redis.call('HMGET', KEYS[4], id, ikey, pkey, okey)  -- (one command, not four)
local shapes = {
  sid_ok,
  sid_ok,
  function(v)
    local _, li, lb = string.match(v, '^(%S+) (%S+) (%S+) %d+$')
    return li ~= nil and sid_or_none_ok(li) and sid_or_none_ok(lb)
  end,
  function(v)
    local _, si, li, sb, lb, given = string.match(v, '^(%S+) (%S+) (%S+) (%S+) (%S+) ?(%S*)$')
    return si ~= nil and sid_or_none_ok(si) and sid_or_none_ok(li) and sid_or_none_ok(sb)
      and sid_or_none_ok(lb)
  end,
}
for i, name in ipairs({id, ikey, pkey, okey}) do
  if fields[i] and not shapes[i](fields[i]) then return {'damaged', name, fields[i]} end
end

local function cursor_of()
  local cursor = redis.call('HGET', KEYS[4], id)
  if cursor then return cursor end
  -- implicitly registered workers have no cursor: broadcasts since they appeared
  return (string.match(record, '"registered_at":(%d+)') or '0') .. '-0'
end

-- Where the unread part of the inbox starts (an XRANGE start).
local function unread_start()
  local cursor = redis.call('HGET', KEYS[4], ikey)
  return cursor and ('(' .. cursor) or '-'
end

-- (ids compared and stepped as decimal strings, the prelude's stream_id_*: a worker may XADD
-- an entry whose seq is past 2^53, where a Lua number is no longer exact)
local before = stream_id_less

-- The id right after entry_id (itself when it is the largest: nothing can follow it).
local function next_id(entry_id)
  return stream_id_next(entry_id) or entry_id
end

-- The broadcasts trimmed after from (a broadcast cursor), which this agent was never shown:
-- from, the newest trimmed and the oldest kept; nil when none was. The stream is only ever
-- trimmed from its oldest end (message_send's MAXLEN), and each broadcast names the one sent
-- before it (its field prev: message_send), so the oldest kept says whether one after from
-- is gone (one stored before prev was: not known, nil).
local function gap_after(from)
  local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)[1]
  if not first or not before(from, first[1]) then return nil end
  local f = first[2]
  for i = 1, #f - 1, 2 do
    if f[i] == 'prev' then
      if before(from, f[i + 1]) then return from, f[i + 1], first[1] end
      return nil
    end
  end
  return nil
end

-- Note that the broadcast cursor passed (from, upto] by trimming (agent|gap 'FROM TO', kept
-- one, widened by the next: message_status counts none in it read by this agent).
local function note_gap(from, upto)
  local was = redis.call('HGET', KEYS[4], id .. '|gap')
  if was then
    local f, t = string.match(was, '^(%S+) (%S+)$')
    if f and before(f, from) then from = f end
    if t and before(upto, t) then upto = t end
  end
  redis.call('HSET', KEYS[4], id .. '|gap', from .. ' ' .. upto)
end

-- A read's reply: its entries, or, when broadcasts after from were trimmed unread,
-- {'trimmed', FROM, NEWEST_TRIMMED, OLDEST_KEPT, entries} (gap_after); noted when
-- the read acknowledges (its cursor passes them).
local function reply_of(out, from)
  local f, t, oldest = gap_after(from)
  if not f then return out end
  if ack then note_gap(f, t) end
  return {'trimmed', f, t, oldest, out}
end

-- Merge up to limit entries of the two ranges; returns them, the inbox ids taken and the
-- newest broadcast id passed (own broadcasts are passed, not returned).
local function merge(mine, all)
  local out, taken, newest = {}, {}, nil
  local i, j = 1, 1
  while #out < limit and (i <= #mine or j <= #all) do
    if j > #all or (i <= #mine and before(mine[i][1], all[j][1])) then
      out[#out + 1] = mine[i]
      taken[#taken + 1] = mine[i][1]
      i = i + 1
    else
      newest = all[j][1]
      if all[j][2][4] ~= id then  -- fields: id, ID, from, SENDER, ...
        out[#out + 1] = all[j]
      end
      j = j + 1
    end
  end
  return out, taken, newest
end

-- Move the cursors through last_i (inbox) and last_b (broadcast), never back.
local function advance(last_i, last_b)
  if last_i ~= '-' then
    local was = redis.call('HGET', KEYS[4], ikey)
    if not was or before(was, last_i) then redis.call('HSET', KEYS[4], ikey, last_i) end
  end
  if last_b ~= '-' and before(cursor_of(), last_b) then
    local f, t = gap_after(cursor_of())
    if f then note_gap(f, before(last_b, t) and last_b or t) end
    redis.call('HSET', KEYS[4], id, last_b)
  end
end

-- The read messages the inbox holds (all before its cursor), trimmed to the newest keep;
-- returns how many it holds then. Only what is before the cursor is ever trimmed.
local function trim_read()
  local cursor = redis.call('HGET', KEYS[4], ikey)
  if not cursor then return 0 end
  local read = redis.call('XREVRANGE', KEYS[2], cursor, '-', 'COUNT', keep + 1)
  if #read <= keep then return #read end
  redis.call('XTRIM', KEYS[2], 'MINID', next_id(read[keep + 1][1]))
  return keep
end

local prid, last_i, last_b, nread = '-', '-', '-', 0
local pending = redis.call('HGET', KEYS[4], pkey)
if pending then
  prid, last_i, last_b, nread = string.match(pending, '^(%S+) (%S+) (%S+) (%d+)$')
  nread = tonumber(nread)
end
if ack and prid ~= '-' and prid == rid then
  -- this very read, sent again: the same batch
  local mine, all = {}, {}
  if last_i ~= '-' then
    mine = redis.call('XRANGE', KEYS[2], unread_start(), last_i, 'COUNT', limit)
  end
  if last_b ~= '-' then
    all = redis.call('XRANGE', KEYS[3], '(' .. cursor_of(), last_b, 'COUNT', limit)
  end
  return (merge(mine, all))
end

-- The agent's orphan record: 'READID START_INBOX LAST_INBOX START_BROADCAST LAST_BROADCAST
-- [GIVEN]', the last batch another read committed (the cursors it began after and its last
-- ids, '-' for none; READID '-' when none is kept) and the read id last given back (mode
-- '3'), so that a give-back sent again answers as the first did. Its parts, GIVEN '' for none.
local function orphan_parts()
  local orphan = redis.call('HGET', KEYS[4], okey)
  if not orphan then return '-', '-', '-', '-', '-', '' end
  return string.match(orphan, '^(%S+) (%S+) (%S+) (%S+) (%S+) ?(%S*)$')
end

-- The orphan record holding batch (its first five parts) and given.
local function set_orphan(batch, given)
  redis.call('HSET', KEYS[4], okey, batch .. (given ~= '' and (' ' .. given) or ''))
end

-- The batch of the read read_id when another read committed it (the last such batch): its
-- messages, own broadcasts left out, in order; nil when the last batch committed so is
-- another read's. Its reader may not have got it: a reply lost (the read sent again), a read
-- cut (withdrawn, mode '3').
local function orphan_batch(read_id)
  local orid, si, li, sb, lb = orphan_parts()
  if orid ~= read_id then return nil end
  local mine, all = {}, {}
  if li ~= '-' then
    mine = redis.call('XRANGE', KEYS[2], si ~= '-' and ('(' .. si) or '-', li)
  end
  if lb ~= '-' then all = redis.call('XRANGE', KEYS[3], '(' .. sb, lb) end
  limit = #mine + #all
  return (merge(mine, all))
end

if ack and prid ~= rid then
  -- this read sent again after another read committed its batch (its reply was lost): the
  -- same batch, nothing else changed
  local batch = orphan_batch(rid)
  if batch then return batch end
end
-- The value of field name in an entry's fields ('' when it has none).
local function field(fields, name)
  for i = 1, #fields - 1, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return ''
end

-- The message index entry of message_id (KEYS[6]: see the header) once its copy waits in
-- the inbox at copy_sid: a direct message's STREAM_ID becomes the copy's; a broadcast (its
-- entry shared by every reader) gets, or replaces, this agent's AGENT=COPY_ID.
local function repoint(message_id, copy_sid)
  local entry = redis.call('HGET', KEYS[6], message_id)
  if not entry then return end  -- (older than the index keeps)
  local to, rest = string.match(entry, '^(%S*) %S*(.*)$')
  if to == id then
    redis.call('HSET', KEYS[6], message_id, to .. ' ' .. copy_sid .. rest)
  elseif to == '*' then
    local head, tokens = string.match(entry, '^(%S* %S* %S* %S* %S*)(.*)$')
    if not head then head, tokens = entry .. ' ', '' end  -- (stored before READERS was)
    local kept = {head}
    for token in string.gmatch(tokens, '%S+') do
      if string.sub(token, 1, #id + 1) ~= id .. '=' then kept[#kept + 1] = token end
    end
    kept[#kept + 1] = id .. '=' .. copy_sid
    redis.call('HSET', KEYS[6], message_id, table.concat(kept, ' '))
  end
end

if ARGV[3] == '3' then
  local _, _, _, _, _, given = orphan_parts()
  -- given back already: this give-back sent again (its reply lost), answered as the first
  if given == rid then return {1} end
end
if ARGV[3] == '3' and prid ~= rid then
  -- the read rid was cut after another read committed its batch: its messages go into the
  -- inbox again (copies, in their order: the cursors cannot move back past them), so the
  -- next read returns them. Each copy is sent as a message is (message_send): its stream id
  -- is its message.sent event's, taken above the log's newest (one sequence, so that a
  -- commit through a later message's id passes no copy unshown), and the event wakes a
  -- reader waiting on the inbox. The message index then points at the copy, so that
  -- message_status, get_message and mark_read by id follow it, not the entry read.
  local batch = orphan_batch(rid)
  if not batch then return {0} end
  local newest = redis.pcall('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
  if newest.err then
    return swarm_error('SWARM_CORRUPT', 'the event log ' .. KEYS[5] .. ' cannot be read ('
      .. newest.err .. '): nothing was given back; swarm doctor names the repair')
  end
  local base = newest[1] and newest[1][1] or '0-0'
  local mine = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if mine and before(base, mine[1]) then base = mine[1] end
  local at = string.format('%d', now_ms(ARGV[8])) .. '-0'
  local sids = {}
  for i = 1, #batch do
    local sid = before(base, at) and at or stream_id_next(base)
    if not sid then
      return swarm_error('SWARM_CORRUPT', 'the stream ' .. KEYS[2] .. ' or ' .. KEYS[5]
        .. ' holds the largest id a stream can hold: nothing was given back; an admin or '
        .. 'shard must delete that key, then give back again')
    end
    sids[i], base = sid, sid
  end
  for i, entry in ipairs(batch) do
    local f = entry[2]
    -- (best effort, as every event: a log that refuses appends refuses sends too)
    redis.pcall('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], sids[i], 'type', 'message.sent',
      'message', field(f, 'id'), 'to', id, 'from', field(f, 'from'), 'kind', field(f, 'kind'),
      'copy', '1')
    redis.call('XADD', KEYS[2], sids[i], unpack(f))
    repoint(field(f, 'id'), sids[i])
  end
  set_orphan('- - - - -', rid)
  return {1}
end
if ARGV[3] == '3' then
  -- the read rid was cut before its caller got its batch, still pending: it is unread
  -- again (the cursors never moved past it), counted unread again too
  if prid == '-' then return {0} end
  if last_i ~= '-' then
    nread = math.max(0, nread - #redis.call('XRANGE', KEYS[2], unread_start(), last_i))
  end
  if nread > 0 then
    redis.call('HSET', KEYS[4], pkey, '- - - ' .. nread)
  else
    redis.call('HDEL', KEYS[4], pkey)
  end
  local orid, si, li, sb, lb = orphan_parts()
  set_orphan(table.concat({orid, si, li, sb, lb}, ' '), rid)
  return {1}
end
if ARGV[3] == '0' and prid ~= '-' then
  -- a peek: past the pending batch, which stays pending (its reader may give it back: one
  -- cut, or whose caller could not hand it on; the next acknowledged read commits it)
  local mine = redis.call('XRANGE', KEYS[2],
    last_i ~= '-' and ('(' .. last_i) or unread_start(), '+', 'COUNT', limit)
  local from = last_b ~= '-' and last_b or cursor_of()
  local all = redis.call('XRANGE', KEYS[3], '(' .. from, '+', 'COUNT', limit)
  return reply_of((merge(mine, all)), from)
end
local marked = false
if commit_through then
  -- Whether a message through it is unread (a pending batch counts as read: it is committed
  -- below): one of the inbox after its cursor, or a broadcast after the broadcast cursor.
  local read_i = last_i ~= '-' and last_i or redis.call('HGET', KEYS[4], ikey)
  local read_b = cursor_of()
  if last_b ~= '-' and before(read_b, last_b) then read_b = last_b end
  marked = #redis.call('XRANGE', KEYS[2],
      last_i ~= '-' and ('(' .. last_i) or unread_start(), commit_through, 'COUNT', 1) > 0
  if not marked and before(read_b, commit_through) then
    -- a broadcast after the cursor that is not the agent's own (never shown to it), looked
    -- for a page at a time (its own in a row are few)
    local from = '(' .. read_b
    repeat
      local page = redis.call('XRANGE', KEYS[3], from, commit_through, 'COUNT', 64)
      for _, entry in ipairs(page) do
        if entry[2][4] ~= id then marked = true break end  -- fields: id, ID, from, SENDER
      end
      if #page > 0 then from = '(' .. page[#page][1] end
    until marked or #page < 64
  end
  -- An id that would mark messages read, or that no cursor has reached (one past the newest
  -- message), must be a message the agent receives. One a cursor has passed that marks
  -- nothing is let be (a message read and trimmed since, or another's: all the same), and so
  -- is one older than every broadcast the swarm keeps (a broadcast shown, then trimmed).
  local passed = not before(read_b, commit_through)
    or read_i and not before(read_i, commit_through)
  if ARGV[6] == '1' and (marked or not passed)
      and #redis.call('XRANGE', KEYS[2], commit_through, commit_through) == 0
      and #redis.call('XRANGE', KEYS[3], commit_through, commit_through) == 0 then
    local oldest = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)[1]
    if not (oldest and before(commit_through, oldest[1])) then return {'foreign'} end
  end
end
if prid ~= '-' then  -- the pending batch is committed: its messages are read now
  -- (kept as the last batch another read committed, should its reader not have got it)
  local _, _, _, _, _, given = orphan_parts()
  set_orphan(prid .. ' ' .. (redis.call('HGET', KEYS[4], ikey) or '-') .. ' ' .. last_i
    .. ' ' .. cursor_of() .. ' ' .. last_b, given)
  advance(last_i, last_b)
  if nread > keep then nread = trim_read() end
end
if marked then
  advance(commit_through, commit_through)
  nread = trim_read()
end

local out, taken, newest = {}, {}, nil
local read_from = nil
if not commit_through then
  read_from = cursor_of()
  local mine = redis.call('XRANGE', KEYS[2], unread_start(), '+', 'COUNT', limit)
  local all = redis.call('XRANGE', KEYS[3], '(' .. read_from, '+', 'COUNT', limit)
  out, taken, newest = merge(mine, all)
end
local now_pending = nil
if ack and (#taken > 0 or newest) then
  now_pending = rid .. ' ' .. (taken[#taken] or '-') .. ' ' .. (newest or '-') .. ' '
    .. (nread + #taken)
elseif nread > 0 then
  now_pending = '- - - ' .. nread
end
if now_pending and now_pending ~= pending then
  redis.call('HSET', KEYS[4], pkey, now_pending)
elseif pending and not now_pending then
  redis.call('HDEL', KEYS[4], pkey)
end
if commit_through then return {marked and 'marked' or 'read'} end
return reply_of(out, read_from)
