-- peek_recent: the newest waiting messages of a queue, without delivering them (for /peek and /j pages).
-- KEYS[1..9] the queue's message keys.  ARGV[1] limit  ARGV[2] most bytes of values (0: no limit)
-- Reply: {truncated, n1, value1, count1, ...} newest first; truncated is 1 when the next message's value
-- would have passed the byte limit (older messages were left out), else 0.
local limit, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2] or '0')
local out, bytes = {0}, 0
for _, n in ipairs(redis.call('ZREVRANGE', K_READY, 0, limit - 1)) do
  local value = redis.call('HGET', K_MSGS, n)
  if value then
    bytes = bytes + #value
    if max_bytes > 0 and bytes > max_bytes then
      out[1] = 1
      break
    end
    out[#out + 1] = tonumber(n)
    out[#out + 1] = value
    out[#out + 1] = tonumber(redis.call('HGET', K_COUNTS, n) or '0')
  end
end
return out
