-- delete: remove one message wherever it is (ready, delayed or leased).
-- KEYS[1..9] the queue's message keys.  ARGV[1] n
-- Reply: 1 when it existed, else 0.
local n = ARGV[1]
local existed = redis.call('HEXISTS', K_MSGS, n)
forget(n)
return existed
