-- timer_cas: after a reap, move a queue's entry in the timer index unless someone changed it meanwhile.
-- KEYS[1] rmq:timers (this script uses none of the prelude's queue keys)
-- ARGV[1] queue name  ARGV[2] the score the reaper saw  ARGV[3] the queue's next deadline or -1
-- Reply: 1 when updated.
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not seen or tonumber(seen) ~= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) < 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
