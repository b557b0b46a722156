-- push_reserve: reserve delivery slots of a push subscription, under its limits, across every server process.
-- KEYS[1] the subscription hash  KEYS[2] its in-flight slots (ZSET slot id -> deadline)
-- ARGV[1] slots wanted  ARGV[2] how long a slot is held (ms: the lease)  ARGV[3] slot id prefix (the process)
-- Reply: {wait_ms, slot ids...}: the ids granted (none when the subscription is gone or paused, or its limits are
-- reached); wait_ms is when the rate allows the next one (0: not limited by the rate).
-- The in-flight count is the slots held: a slot is given back when its delivery ends, and one of a process that
-- died expires with its lease. The rate is a token bucket holding up to a tenth of a second of tokens (at least 1).
local sub, slots = KEYS[1], KEYS[2]
local want, hold_ms, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local state = redis.call('HMGET', sub, 'url', 'paused', 'max_in_flight', 'rate', 'tokens', 'tokens_at')
if not state[1] or state[2] == '1' then return {0} end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
local grant = math.min(want, tonumber(state[3]) - redis.call('ZCARD', slots))
local wait_ms = 0
local rate = tonumber(state[4] or '0')
if rate > 0 and grant > 0 then
  local cap = math.max(1, rate / 10)
  local tokens = tonumber(state[5] or cap)
  local since = now - tonumber(state[6] or now)
  if since > 0 then tokens = math.min(cap, tokens + since * rate / 1000) end
  if math.floor(tokens) < grant then grant = math.floor(tokens) end
  tokens = tokens - math.max(grant, 0)
  if tokens < 1 then wait_ms = math.ceil((1 - tokens) * 1000 / rate) end
  redis.call('HSET', sub, 'tokens', tostring(tokens), 'tokens_at', now)
end
local reply = {wait_ms}
for _ = 1, grant do
  local id = prefix .. ':' .. redis.call('HINCRBY', sub, 'slot_seq', 1)
  redis.call('ZADD', slots, now + hold_ms, id)
  reply[#reply + 1] = id
end
if grant > 0 then redis.call('PEXPIRE', slots, hold_ms + 60000) end
return reply
