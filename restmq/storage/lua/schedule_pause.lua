-- schedule_pause: pause or resume a schedule that exists.
-- KEYS[1] the schedule's hash (this script uses none of the prelude's queue keys)
-- ARGV[1] '1' to pause, '0' to resume
-- Resuming publishes no tick that fell while paused: ticks count again from the resume.
-- Reply: 1 changed or already so, 0 no such schedule.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '0' and redis.call('HGET', KEYS[1], 'paused') == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
  if now > last then redis.call('HSET', KEYS[1], 'last', now) end
end
redis.call('HSET', KEYS[1], 'paused', ARGV[1])
return 1
