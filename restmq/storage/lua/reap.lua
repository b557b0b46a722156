-- reap: the background timer sweep of one queue: promote due delayed messages, take back expired
-- leases, drop messages whose ttl passed while they waited.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (or the same nine again)
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] event channel
-- Reply: {moved to ready, dead listed (0|1), the queue's next deadline or -1}
local queue, dead_name, channel = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local kept = housekeep(queue, dead_name, now)
-- Drop up to 500 messages past their ttl. Leased ones stay until their lease ends (then a pop or
-- this sweep drops them), so look past them rather than stopping at them.
local skipped, dropped = 0, 0
while dropped < 500 do
  local gone = redis.call('ZRANGEBYSCORE', K_EXPIRES, '-inf', now, 'LIMIT', skipped, 500)
  if #gone == 0 then break end
  for _, n in ipairs(gone) do
    if redis.call('ZSCORE', K_LEASED, n) then
      skipped = skipped + 1
    else
      forget(n)
      dropped = dropped + 1
    end
  end
  if skipped > 5000 then break end
end
if dropped > 0 then redis.call('HINCRBY', K_META, 'expired', dropped) end
if kept[1] > 0 and redis.call('HGET', K_META, 'status') ~= 'stop' then
  redis.call('SPUBLISH', channel, 'add')
end
return {kept[1], kept[2], next_deadline()}
