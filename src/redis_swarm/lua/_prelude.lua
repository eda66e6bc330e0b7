-- Helpers shared by every script (prepended to each).

-- The time in ms: the caller's clock when it passes one (tests), else the server's, so that
-- leases stay right when agents on different machines disagree about the time.
local function now_ms(arg)
  local n = tonumber(arg)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one event to the swarm's capped event stream; returns its id, or a table (the
-- error) when the stream refused it. The log is best effort: a worker may XADD to the stream
-- (docs/security.md), and an entry it adds under the largest id (or a key of another type)
-- makes every later XADD fail; a script that stopped there, after its first writes, lost its
-- work (a claim its popped tasks). So the append is dropped and the script goes on: pcall
-- costs no command, and the same instructions as call when the append succeeds.
local function emit(stream, maxlen, etype, ...)
  return redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', etype, ...)
end

-- Stream ids ('MS-SEQ') compared and stepped as decimal strings: their parts reach 2^64 - 1,
-- past what a Lua number holds exactly (a worker may XADD any id), so no part goes through
-- tonumber. Whether decimal string a (no leading zeros) is below b.
local function dec_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

-- Decimal string n plus one; nil past 2^64 - 1, the largest part of a stream id.
local function dec_plus_one(n)
  if n == '18446744073709551615' then return nil end
  local head, nines = string.match(n, '^(%d-)(9*)$')
  local last = #head > 0 and tonumber(string.sub(head, -1)) or 0
  return string.sub(head, 1, -2) .. string.format('%d', last + 1) .. string.rep('0', #nines)
end

-- Whether stream id a is below stream id b: by their ms, then their seq.
local function stream_id_less(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  if a_ms ~= b_ms then return dec_less(a_ms, b_ms) end
  return dec_less(a_seq, b_seq)
end

-- The stream id right after id (its seq plus one, or the next ms); nil after the largest.
local function stream_id_next(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  local next_seq = dec_plus_one(seq)
  if next_seq then return ms .. '-' .. next_seq end
  local next_ms = dec_plus_one(ms)
  return next_ms and next_ms .. '-0' or nil
end

local function swarm_error(code, message)
  return redis.error_reply(code .. ' ' .. message)
end

-- The command that registers agent id, said where a script refuses an agent that is not
-- registered: the core's hint REGISTER_AGENT (redis_swarm/_hints.py) naming id, in its words
-- exactly, parentheses included, so that each face rewords it (tests/test_cli_hints.py).
local function register_agent_command(id)
  return '(swarm agents register ' .. id .. ' --role ROLE)'
end
