-- reap: the background timer sweep of one queue: promote due delayed messages, take back expired
-- leases, drop messages whose ttl passed while they waited.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (or the same nine again)
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] event channel
-- Reply: {moved to ready, dead listed (0|1), the queue's next deadline or -1}
local queue, dead_name, channel = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local kept = housekeep(queue, dead_name, now)
local gone = redis.call('ZRANGEBYSCORE', K_EXPIRES, '-inf', now, 'LIMIT', 0, 500)
for _, n in ipairs(gone) do
  if not redis.call('ZSCORE', K_LEASED, n) then
    forget(n)
    redis.call('HINCRBY', K_META, 'expired', 1)
  end
end
if kept[1] > 0 and redis.call('HGET', K_META, 'status') ~= 'stop' then
  redis.call('SPUBLISH', channel, 'add')
end
return {kept[1], kept[2], next_deadline()}
