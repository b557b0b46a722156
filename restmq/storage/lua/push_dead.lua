-- push_dead: move a leased message whose push attempts ran out to the dead-letter queue, with the last status and
-- error of its delivery in its history (beside what every dead letter records: queue, key, count, dead_at).
-- KEYS[1..9] the queue's message keys  KEYS[10..18] its dead-letter queue's
-- ARGV[1] queue name  ARGV[2] dead-letter queue name  ARGV[3] n  ARGV[4] expected delivery count
-- ARGV[5] last status ('' when there was no reply)  ARGV[6] last error
-- Reply: {status, dead listed}; status is ok | missing | not_leased | stale (then nothing changed)
local queue, dead_name, n, expected = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
local state = lease_state(n, expected, now)
if state ~= 'leased' then return {state, 0} end
redis.call('ZREM', K_LEASED, n)
local listed = dead_letter(n, queue, dead_name, now)
local m = redis.call('HGET', KEYS[10], 'seq')
local origin = redis.call('HGET', KEYS[18], m)
if origin then
  local history = cjson.decode(origin)
  history.reason = 'push'
  history.last_error = ARGV[6]
  if ARGV[5] ~= '' then history.last_status = tonumber(ARGV[5]) end
  redis.call('HSET', KEYS[18], m, cjson.encode(history))
end
return {'ok', listed}
