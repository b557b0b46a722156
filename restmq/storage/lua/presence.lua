-- presence: a server process's heartbeat for one queue: keep its streaming consumers registered and the
-- roundrobin messages it holds in flight leased a little longer; forget consumers whose process stopped
-- beating. What a dead process held runs out soon after its heartbeat and returns (housekeep, the reaper).
-- KEYS[1] the queue's consumers zset  KEYS[2] its leased zset  KEYS[3] its counts hash
-- ARGV[1] ttl ms  ARGV[2] 'add' | 'remove'  ARGV[3] number of consumer ids k  ARGV[4..3+k] consumer ids
-- then, with 'add', one triple per held message: n, its delivery count, ms to keep it from now
-- Reply: {live consumers on all processes, the held n that are no longer leased with that count...}
-- A hold is extended, never shortened (a client's own extend may reach further) and never revived: a
-- message acked, released, expired or delivered again since is reported back instead.
local now = now_ms()
local ttl, k = tonumber(ARGV[1]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 4, 3 + k do
  if ARGV[2] == 'add' then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
local out = {redis.call('ZCARD', KEYS[1])}
for i = 4 + k, #ARGV - 2, 3 do
  local n, count, hold = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local deadline = redis.call('ZSCORE', KEYS[2], n)
  if deadline and tonumber(deadline) > now and redis.call('HGET', KEYS[3], n) == count then
    redis.call('ZADD', KEYS[2], 'XX', 'GT', now + hold, n)
  else
    out[#out + 1] = tonumber(n)
  end
end
return out
