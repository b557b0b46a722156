-- purge: remove every message of a queue and unlist it; settings (policy, status, counters) stay.
-- KEYS[1..9] the queue's message keys, KEYS[10] its broadcast history, KEYS[11] the queue's operations key
-- (KEYS[12] it again on a repeat: see _lib.lua)
-- ARGV[1] event channel  ARGV[2] the call's operation id
-- Reply: the number of messages removed.
local done = replayed(KEYS[11], KEYS[12])
if done then return done[1] end
local removed = redis.call('HLEN', K_MSGS)
redis.call('DEL', K_MSGS, K_READY, K_DELAYED, K_LEASED, K_COUNTS, K_PRIO, K_EXPIRES, K_ORIGIN, KEYS[10])
redis.call('DEL', group_keys(K_META))  -- message groups (_lib.lua): their heads and parked messages
redis.call('HDEL', K_META, 'listed')
redis.call('SPUBLISH', ARGV[1], 'purge')
remember(KEYS[11], {removed})
return removed
