-- settle: finish or change the lease of one message.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (or the same nine again) with a release
-- (the one action that may dead-letter), then the operations key
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] event channel
-- ARGV[4] action: ack | release | extend  ARGV[5] n  ARGV[6] expected delivery count or '' (any)
-- ARGV[7] ms: release delay or new lease length  ARGV[8] the call's operation id
-- KEYS[19] (KEYS[10] without the dead-letter keys) the queue's operations key, and after it the same again on a
-- repeat (see _lib.lua)
-- Reply: {status, count, dead listed, timer deadline to index or -1}; status is one of
-- ok | missing (no such message) | not_leased (lease expired or never taken) | stale (re-delivered since)
local queue, dead_name, channel, action, n = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local expected, ms = ARGV[6], tonumber(ARGV[7])
local ops = #KEYS >= 19 and 19 or 10
local done = replayed(KEYS[ops], KEYS[ops + 1])
if done then return done end
local now = now_ms()

local state, count = lease_state(n, expected, now)
if state ~= 'leased' then return {state, count, 0, -1} end

if action == 'ack' then
  remove_leased(n, dead_name)
  redis.call('HINCRBY', K_META, 'acked', 1)
  return remember(KEYS[ops], {'ok', count, 0, -1})
end

local listed, timer = 0, -1
if action == 'extend' then
  timer = lowered(K_LEASED, now + ms)
  redis.call('ZADD', K_LEASED, now + ms, n)
else
  redis.call('ZREM', K_LEASED, n)
  local maxd = max_deliveries()
  if maxd > 0 and count >= maxd and dead_name ~= '' then
    listed = dead_letter(n, queue, dead_name, now)
  elseif ms > 0 then
    timer = lowered(K_DELAYED, now + ms)
    redis.call('ZADD', K_DELAYED, now + ms, n)
  else
    push_head(n)
    redis.call('SPUBLISH', channel, 'add:1')
  end
end
return remember(KEYS[ops], {'ok', count, listed, timer})
