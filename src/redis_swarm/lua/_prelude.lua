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

local function swarm_error(code, message)
  return redis.error_reply(code .. ' ' .. message)
end
