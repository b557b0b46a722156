-- delete: remove one message wherever it is (ready, delayed or leased).
-- KEYS[1..9] the queue's message keys, KEYS[10] the queue's operations key (KEYS[11] it again on a repeat:
-- see _lib.lua).  ARGV[1] n  ARGV[2] the call's operation id
-- Reply: 1 when it existed, else 0.
local done = replayed(KEYS[10], KEYS[11])
if done then return done[1] end
local n = ARGV[1]
local existed = redis.call('HEXISTS', K_MSGS, n)
if existed == 0 then return 0 end
forget(n)
remember(KEYS[10], {existed})
return existed
