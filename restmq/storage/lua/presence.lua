-- presence: keep this process's streaming consumers of a queue alive and forget expired ones.
-- KEYS[1] the queue's consumers zset (this script uses none of the prelude's queue keys)
-- ARGV[1] presence ttl ms  ARGV[2] 'add' | 'remove'  ARGV[3..] consumer ids
-- Reply: the number of live consumers on all processes.
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 3, #ARGV do
  if ARGV[2] == 'add' then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return redis.call('ZCARD', KEYS[1])
