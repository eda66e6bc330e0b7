-- Helpers of the a2a-sdk task store scripts (redis_swarm.a2a, _ops/a2a_store.py).
-- An owner's index holds each task once per listing it can appear in: every task ('a'), its
-- context ('c'), its state ('s'), its context and state ('x'). A member is the listing's
-- prefix, then the task's sort key (fixed width: '1' and the padded status time, or '0' and
-- zeros when it has none), then its id; so a listing, in ListTasks order (newest first, then
-- id), is one ZREVRANGEBYLEX over its prefix, its total one ZLEXCOUNT, and a page token the
-- sort key and id it stopped at. Contexts enter the prefix as their SHA1 (any text fits).
local function a2a_prefix(kind, context_digest, state)
  if kind == 'a' then return 'a|' end
  if kind == 'c' then return 'c|' .. context_digest .. '|' end
  if kind == 's' then return 's|' .. state .. '|' end
  return 'x|' .. context_digest .. '|' .. state .. '|'
end

-- Every index member of task ``id`` whose meta is ``meta`` ({c = digest, s = state, k = key}).
local function a2a_members(id, meta)
  local out = {}
  for _, kind in ipairs({'a', 'c', 's', 'x'}) do
    out[#out + 1] = a2a_prefix(kind, meta.c, tostring(meta.s)) .. meta.k .. id
  end
  return out
end

-- Append an event to a task's stream under the id VERSION-0, unless the stream already holds
-- this version or a later one (the store appended it with its save, or replicas raced): a
-- reader after version N reads on from N-0, and every event is there once, in order.
local function a2a_append(stream, version, payload)
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if last and tonumber(string.match(last[1], '^(%d+)')) >= version then return 0 end
  redis.call('XADD', stream, string.format('%d-0', version), 'v', version, 'e', payload)
  return 1
end
