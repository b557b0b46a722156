-- peek_recent: the newest waiting messages of a queue, without delivering them (for /j pages).
-- KEYS[1..9] the queue's message keys.  ARGV[1] limit
-- Reply: {n1, value1, count1, ...} newest first.
local out = {}
for _, n in ipairs(redis.call('ZREVRANGE', K_READY, 0, tonumber(ARGV[1]) - 1)) do
  local value = redis.call('HGET', K_MSGS, n)
  if value then
    out[#out + 1] = tonumber(n)
    out[#out + 1] = value
    out[#out + 1] = tonumber(redis.call('HGET', K_COUNTS, n) or '0')
  end
end
return out
