-- add: append messages to a queue (all or nothing).
-- KEYS[1..9]  the queue's message keys; KEYS[10] its idempotency key (or the meta key when unused)
-- ARGV[1] queue name  ARGV[2] event channel  ARGV[3] priority 0..9  ARGV[4] delay ms
-- ARGV[5] ttl ms (0 = none)  ARGV[6] idempotency window ms (0 = no idempotency key)
-- ARGV[7] key base: where this node's numbering starts (0, or i * 10^12 for ring node i)  ARGV[8..] values
-- Reply: {first n, last n, newly listed (0|1), timer deadline to index or -1, duplicate (0|1)}
local queue, channel = ARGV[1], ARGV[2]
local p, delay, ttl, idem_window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local count = #ARGV - 7

if idem_window > 0 then
  local seen = redis.call('GET', KEYS[10])
  if seen then
    local first, last = string.match(seen, '^(%d+):(%d+)$')
    return {tonumber(first), tonumber(last), 0, -1, 1}
  end
end

local now = now_ms()
local before = next_deadline()
init_seq(K_META, ARGV[7])
local last = redis.call('HINCRBY', K_META, 'seq', count)
local first = last - count + 1
for i = 1, count do
  local n = first + i - 1
  redis.call('HSET', K_MSGS, n, ARGV[7 + i])
  if p > 0 then redis.call('HSET', K_PRIO, n, p) end
  if ttl > 0 then redis.call('ZADD', K_EXPIRES, now + delay + ttl, n) end
  if delay > 0 then
    redis.call('ZADD', K_DELAYED, now + delay, n)
  else
    push_tail(K_META, K_READY, n, p)
  end
end
redis.call('HINCRBY', K_META, 'added', count)
if idem_window > 0 then
  redis.call('SET', KEYS[10], first .. ':' .. last, 'PX', idem_window)
end
local listed = redis.call('HSETNX', K_META, 'listed', '1')
if delay == 0 then redis.call('SPUBLISH', channel, 'add') end

local timer = -1
if delay > 0 or ttl > 0 then
  local after = next_deadline()
  if before < 0 or after < before then timer = after end
end
return {first, last, listed, timer, 0}
