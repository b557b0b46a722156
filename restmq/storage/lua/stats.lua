-- stats: one queue's numbers in one round trip.
-- KEYS[1..9] the queue's message keys, KEYS[10] its consumers key, KEYS[11] its dead-letter queue's ready key
-- (absent for a dead-letter queue: dead letters are not dead-lettered again, and a cluster refuses the
-- key of another slot)
-- Reply: {ready, delayed, leased, consumers, dead ready, meta field/value pairs...}
local now = now_ms()
return {
  redis.call('ZCARD', K_READY),
  redis.call('ZCARD', K_DELAYED),
  redis.call('ZCARD', K_LEASED),
  redis.call('ZCOUNT', KEYS[10], now, '+inf'),
  KEYS[11] and redis.call('ZCARD', KEYS[11]) or 0,
  redis.call('HGETALL', K_META),
}
