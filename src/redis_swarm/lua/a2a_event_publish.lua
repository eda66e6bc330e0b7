--#include _a2a_store
-- a2a_event_publish: TaskEventStream.publish, one event of one task at the version (>= 1) it
-- produced. An event the store already appended with its save (the same version) is not
-- added twice; nor is one older than the newest there. A task's last event (it finished)
-- makes its stream expire ARGV[3] ms later (0: kept), as the store's save does.
-- KEYS[1] a2a_events(task)
-- ARGV[1] version  ARGV[2] event (bytes)  ARGV[3] ms the stream is kept, if it is the last
-- Returns 1 when appended, else 0.
local appended = a2a_append(KEYS[1], tonumber(ARGV[1]), ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return appended
