-- stats: the numbers of one or more queues in one call (on a cluster, queues of one hash slot per call).
-- KEYS, for each queue in turn: its meta, ready, delayed, leased and consumers keys, then (when ARGV[i] is 6) its
-- dead-letter queue's ready key. A dead-letter queue has none: dead letters are not dead-lettered again, and a
-- cluster refuses the key of another slot.
-- ARGV[i]: how many KEYS queue i has, 5 or 6.
-- Reply: for each queue, {ready, delayed, leased, consumers, dead ready, {meta field/value pairs...}}
-- Ready counts the messages parked behind their group's head too (message groups, _lib.lua): they wait their turn.
local now = now_ms()
local out, k = {}, 1
for i = 1, #ARGV do
  local n = tonumber(ARGV[i])
  out[i] = {
    redis.call('ZCARD', KEYS[k + 1]) + redis.call('ZCARD', select(2, group_keys(KEYS[k]))),
    redis.call('ZCARD', KEYS[k + 2]),
    redis.call('ZCARD', KEYS[k + 3]),
    redis.call('ZCOUNT', KEYS[k + 4], now, '+inf'),
    n == 6 and redis.call('ZCARD', KEYS[k + 5]) or 0,
    redis.call('HGETALL', KEYS[k]),
  }
  k = k + n
end
return out
