-- schedule_fire: publish one tick of a schedule, once: the claim of the tick and the add are one step.
-- KEYS[1..9] the queue's message keys  KEYS[10] the schedule's hash (keys.schedule_key: same slot)
-- ARGV[1] event channel  ARGV[2] tick (ms)  ARGV[3] the tick as ISO 8601 text  ARGV[4] key base (see add.lua)
-- The schedule hash holds value, paused ('0'|'1'), last (the last tick published, or the creation time), fired
-- fired_at (the last tick published) and last_key. A tick at or before `last` was published already (by any process): nothing happens. A tick
-- later than this engine's clock is not due yet: nothing happens (a process whose clock runs ahead can only
-- be early by its own reckoning, never publish early).
-- Reply: {status, last tick, n}; status 1 published (n is the new message's number), 0 already published
-- or not due, -1 no such schedule, -2 paused.
local sched, tick = KEYS[10], tonumber(ARGV[2])
local state = redis.call('HMGET', sched, 'value', 'paused', 'last')
if not state[1] then return {-1, 0, 0} end
local last = tonumber(state[3] or '0')
if state[2] == '1' then return {-2, last, 0} end
if tick <= last or tick > now_ms() then return {0, last, 0} end
-- {{tick}} and {{tick_ms}} in the value become the tick (docs/schedules.md); % is literal in a replacement
-- only when doubled, and neither text holds one.
local value = state[1]
if string.find(value, '{{tick', 1, true) then
  value = string.gsub(value, '{{tick_ms}}', ARGV[2])
  value = string.gsub(value, '{{tick}}', ARGV[3])
end
init_seq(K_META, ARGV[4])
local n = redis.call('HINCRBY', K_META, 'seq', 1)
redis.call('HSET', K_MSGS, n, value)
push_tail(K_META, K_READY, n, 0)
redis.call('HINCRBY', K_META, 'added', 1)
local listed = redis.call('HSETNX', K_META, 'listed', '1')
redis.call('SPUBLISH', ARGV[1], 'add:1')
redis.call('HSET', sched, 'last', tick, 'fired_at', tick, 'last_key', n)
redis.call('HINCRBY', sched, 'fired', 1)
return {1, tick, n, listed}
