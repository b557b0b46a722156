-- settings: read, and optionally change, a queue's policy, flow status and max_deliveries.
-- KEYS[1] the queue's meta hash (this script uses none of the prelude's other keys)
-- ARGV[1] event channel  ARGV[2] policy or ''  ARGV[3] status or ''  ARGV[4] max_deliveries or ''
-- Reply: {policy or false, status or false, max_deliveries or false}
local changed = false
local fields = {'policy', 'status', 'max_deliveries'}
for i, field in ipairs(fields) do
  if ARGV[i + 1] ~= '' then
    redis.call('HSET', KEYS[1], field, ARGV[i + 1])
    changed = true
  end
end
if changed then redis.call('SPUBLISH', ARGV[1], 'settings') end
return redis.call('HMGET', KEYS[1], 'policy', 'status', 'max_deliveries')
