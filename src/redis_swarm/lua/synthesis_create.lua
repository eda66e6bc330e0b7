-- synthesis_create: store a synthesis whose every source finding exists and is of its pass
-- or of no pass, unless told it spans passes (checked here, in the same atomic step). The id
-- is the client's: a retried request returns the stored one.
-- KEYS[1] findings  KEYS[2] syntheses  KEYS[3] synthesis_index  KEYS[4] events
-- KEYS[5] findings_by(pass) of the synthesis's pass
-- ARGV[1] now (0 = server time)  ARGV[2] events maxlen  ARGV[3] synthesis id
-- ARGV[4] synthesis JSON from the client (an object without created_at)
-- ARGV[5] shard  ARGV[6] pass name  ARGV[7] '1': it may cite the findings of any pass
-- ARGV[8..] the source finding ids
-- Returns the synthesis JSON.
local now = now_ms(ARGV[1])
local id = ARGV[3]
local stored = redis.call('HGET', KEYS[2], id)
if stored then return stored end

-- The pass's own findings are found in its index (no record decoded); one not there is
-- read (its record names its pass): a finding of no pass (its task posted outside any) may be
-- cited, another pass's may not (the pipeline cites an earlier pass's work through that
-- pass's synthesis).
local NAMED = 5  -- the findings of other passes the refusal names, with their passes
local any_pass = ARGV[7] == '1'
local missing, foreign, others = {}, {}, 0
for i = 8, #ARGV do
  local fid = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], fid) == 0 then
    missing[#missing + 1] = fid
  elseif not any_pass and #missing == 0 and not redis.call('ZSCORE', KEYS[5], fid) then
    local ok, finding = pcall(cjson.decode, redis.call('HGET', KEYS[1], fid))
    local of = ok and type(finding) == 'table' and finding.pass_name or nil
    if type(of) == 'string' and of ~= ARGV[6] then  -- (one of its own the index misses: cited)
      others = others + 1
      if others <= NAMED then
        foreign[#foreign + 1] = fid .. ' (of pass ' .. cjson.encode(of) .. ')'
      end
    end
  end
end
if #missing > 0 then
  return swarm_error('SWARM_NOTFOUND', 'no finding ' .. table.concat(missing, ', ')
    .. ': a synthesis may cite only stored findings (list them with swarm findings)')
end
if others > 0 then
  local more = others > NAMED and (' and ' .. (others - NAMED) .. ' more') or ''
  return swarm_error('SWARM_INVALID', (others > 1 and 'findings ' or 'finding ')
    .. table.concat(foreign, ', ') .. more .. (others > 1 and ' are' or ' is')
    .. ' not of pass ' .. cjson.encode(ARGV[6]) .. ', the pass of this synthesis, so nothing '
    .. 'was stored: a synthesis cites the findings of '
    .. 'its own pass (or of tasks posted outside any pass); cite an earlier pass\'s work '
    .. 'through that pass\'s synthesis (its id in the text), or synthesize under the pass '
    .. 'the findings are of; a synthesis that spans passes (a final report of several) says '
    .. 'so: across_passes (swarm synth create --across-passes)')
end

local stamp = string.format('%.0f', now)
local synthesis = string.sub(ARGV[4], 1, -2) .. ',"created_at":' .. stamp .. '}'
redis.call('HSET', KEYS[2], id, synthesis)
redis.call('ZADD', KEYS[3], stamp, id)
emit(KEYS[4], ARGV[2], 'synthesis.created', 'synthesis', id, 'shard', ARGV[5],
     'pass', ARGV[6], 'sources', tostring(#ARGV - 7))
return synthesis
