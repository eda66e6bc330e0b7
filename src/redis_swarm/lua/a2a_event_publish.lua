--#include _a2a_store
-- a2a_event_publish: TaskEventStream.publish, one event of one task at the version it
-- produced. An event the store already appended with its save (the same version) is not
-- added twice; nor is one older than the newest there. Version 0 (a store that does not
-- version) appends under a time id.
-- KEYS[1] a2a_events(task)
-- ARGV[1] version  ARGV[2] event (bytes)
-- Returns 1 when appended, else 0.
local version = tonumber(ARGV[1])
if version == 0 then
  redis.call('XADD', KEYS[1], '*', 'v', 0, 'e', ARGV[2])
  return 1
end
return a2a_append(KEYS[1], version, ARGV[2])
