-- index_page: one page of records listed through an index, in index order (oldest first) or
-- newest first, with a cursor.
-- The cursor is the last id examined and its score, ID@SCORE: the next page starts right
-- after it (its rank). A cursor stays valid while records are added, and while records are
-- removed (swarm retire removes a settled pass's tasks and findings from their indexes): when
-- its id has left the index, the page starts where the id was, after the members of a lower
-- score and, among those of its score (ordered by member, byte by byte), after the id. An id
-- still stored in the records but not in this index never belonged to the listing: refused.
-- A cursor of an older version is the id alone: it works while its id is in the index, and
-- when it is gone the listing cannot say where it was (start again). A cursor of a listing
-- newest first is marked with a leading '~' (no id holds one, nor '@'): a cursor of one order
-- is refused by the other, which would list from the wrong end of it. At most ARGV[4]
-- entries are examined per call: a page may hold fewer than ARGV[2] records and still carry
-- a cursor when the filters are selective; keep paging until the cursor is empty.
-- flags: no-writes
-- KEYS[1] index ZSET (score: time)  KEYS[2] records HASH (id -> JSON)
-- KEYS[3] data HASH (id -> JSON), only when ARGV[5] == '1'
-- ARGV[1] cursor ('' = from the start)  ARGV[2] limit  ARGV[3] since: the minimum score
-- ('' = none; oldest first it is where the listing starts, used only without a cursor; newest
-- first, where it ends, on every page)  ARGV[4] max entries examined  ARGV[5] with data
-- ARGV[6] '1': newest first (from the end of the index back)
-- ARGV[7..] field, value pairs every record must match
-- Returns {next cursor or '', id, record JSON, data JSON or false, id, record JSON, ...}; a
-- record that is not JSON matches every filter, so that the reader can count it as corrupt.
-- The layout is checked, not assumed: a client of another version (the flag at ARGV[6] came
-- later) would otherwise have its filters read shifted, match nothing and get an empty page
-- with no cursor, as if there were nothing to list.
if (ARGV[6] ~= '0' and ARGV[6] ~= '1') or (#ARGV - 6) % 2 ~= 0 then
  return swarm_error('SWARM_INVALID', 'this listing was sent arguments of another layout than '
    .. 'the server\'s redis-swarm library takes (a client of another version?): run the same '
    .. 'redis-swarm version in every client of this swarm')
end
local index, records = KEYS[1], KEYS[2]
local limit, budget = tonumber(ARGV[2]), tonumber(ARGV[4])
local with_data = ARGV[5] == '1'
local newest = ARGV[6] == '1'
local filters = {}
for i = 7, #ARGV, 2 do filters[#filters + 1] = {ARGV[i], ARGV[i + 1]} end
local NEWEST_MARK = '~'

local total = redis.call('ZCARD', index)
-- Ranks are the index's (ascending). Newest first, pos walks down to floor; else up to total.
local floor = 0
if newest and ARGV[3] ~= '' then
  floor = redis.call('ZCOUNT', index, '-inf', '(' .. ARGV[3])
end
local step = newest and -1 or 1
local pos = newest and total - 1 or 0
local function refused(cursor, why)
  return swarm_error('SWARM_INVALID', 'cursor ' .. cursor .. ' does not belong to this '
    .. 'listing: pass back the cursor of the previous page with the same filters' .. why)
end
-- Whether a comes before b in the order of members of one score (bytes, not the locale's).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
if ARGV[1] ~= '' then
  local marked = string.sub(ARGV[1], 1, 1) == NEWEST_MARK
  local body = marked and string.sub(ARGV[1], 2) or ARGV[1]
  local id, score = string.match(body, '^([^@]*)@(.*)$')
  if not id then id = body end
  if id == '' or (score and not string.find(score, '^%-?%d+%.?%d*$')) then
    return refused(ARGV[1], '')
  end
  local rank = redis.call('ZRANK', index, id)
  local stored = not rank and redis.call('HGET', records, id)
  if not rank and (stored or not score) then
    -- A record listed elsewhere, or an id alone that no index holds: no place to go on from.
    local gone = ''
    if not stored then
      -- (Said without the word 'cursor': the faces reword the sentence before, not this.)
      gone = '. If it is, its record is no longer stored (removed by swarm retire since that '
        .. 'page) and one of this older form, the id alone, cannot say where it was: start '
        .. 'the listing again from its start'
    end
    return refused(ARGV[1], gone)
  end
  if marked ~= newest then
    local given, this = 'oldest first', 'newest first'
    if marked then given, this = this, given end
    return refused(ARGV[1], ' (it lists ' .. given .. '; this listing is ' .. this .. ')')
  end
  if rank then
    pos = rank + step
  else
    -- Its record was removed: the first rank after the id, past every lower score, then (a
    -- binary search) past the members of its score that come before it.
    local lo = redis.call('ZCOUNT', index, '-inf', '(' .. score)
    local hi = lo + redis.call('ZCOUNT', index, score, score)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if before(redis.call('ZRANGE', index, mid, mid)[1], id) then lo = mid + 1 else hi = mid end
    end
    pos = newest and lo - 1 or lo
  end
elseif not newest and ARGV[3] ~= '' then
  pos = redis.call('ZCOUNT', index, '-inf', '(' .. ARGV[3])
end
-- (The listing goes on while pos is in [floor, total).)

local out = {''}
local found, examined, last, last_score = 0, 0, nil, nil
while found < limit and examined < budget and pos >= floor and pos < total do
  local n = math.min(budget - examined, 256)
  -- WITHSCORES: id, score, id, score, ... (the scores name the cursor's place).
  local pairs_read
  if newest then
    pairs_read = redis.call('ZRANGE', index, math.max(floor, pos - n + 1), pos, 'WITHSCORES')
  else
    pairs_read = redis.call('ZRANGE', index, pos, pos + n - 1, 'WITHSCORES')
  end
  local ids, scores = {}, {}
  local count = #pairs_read / 2
  for i = 1, count do
    local j = newest and count - i + 1 or i
    ids[i], scores[i] = pairs_read[2 * j - 1], pairs_read[2 * j]
  end
  local values = redis.call('HMGET', records, unpack(ids))
  for i, id in ipairs(ids) do
    examined = examined + 1
    pos = pos + step
    last, last_score = id, scores[i]
    local raw = values[i]
    if raw then
      local keep = true
      if #filters > 0 then
        local ok, rec = pcall(cjson.decode, raw)
        for _, f in ipairs(filters) do
          if not ok or type(rec) ~= 'table' then break end
          local v = rec[f[1]]
          if v == nil or v == cjson.null or tostring(v) ~= f[2] then
            keep = false
            break
          end
        end
      end
      if keep then
        out[#out + 1] = id
        out[#out + 1] = raw
        out[#out + 1] = with_data and (redis.call('HGET', KEYS[3], id) or false) or false
        found = found + 1
        if found >= limit then break end
      end
    end
  end
end
if last and pos >= floor and pos < total then
  out[1] = (newest and NEWEST_MARK or '') .. last .. '@' .. last_score
end
return out
