-- webhook_claim: claim one event for delivery to one webhook of a task. The webhook's cursor
-- moves to the event only if the event comes after it, so of every server that follows the
-- event stream, exactly one delivers each event to each webhook, and none delivers it twice
-- (a restart that replays the stream meets the cursor and sends nothing again).
-- KEYS[1]: webhooks(task) (HASH webhook id -> record; 'id|sent' -> last event id claimed)
-- ARGV[1]: webhook id   ARGV[2]: the event's stream id (MS-SEQ)
-- returns 1: claimed, deliver it; 0: claimed before (or older than one claimed); -1: no webhook
local id, event = ARGV[1], ARGV[2]
if redis.call('HEXISTS', KEYS[1], id) == 0 then return -1 end
local sent = redis.call('HGET', KEYS[1], id .. '|sent')
if sent and not stream_id_less(sent, event) then return 0 end  -- (at or before the cursor)
redis.call('HSET', KEYS[1], id .. '|sent', event)
return 1
