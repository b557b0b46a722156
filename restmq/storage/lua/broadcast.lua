-- broadcast: take up to MAX messages for the streaming consumers of a broadcast queue and publish them
-- to every server process, recording them in the bounded history used for SSE resume.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (or the same nine again),
-- KEYS[19] its history list
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] event channel  ARGV[4] max
-- ARGV[5] history length
-- Reply: {status ('ok' | 'stop' | 'policy'), taken, dead listed}
-- The publish happens inside the script, so a server process dying right after it loses nothing
-- that the other processes' consumers would have received.
local queue, dead_name, channel = ARGV[1], ARGV[2], ARGV[3]
local want, history_len = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local kept = housekeep(queue, dead_name, now)
if redis.call('HGET', K_META, 'status') == 'stop' then return {'stop', 0, kept[2]} end
if redis.call('HGET', K_META, 'policy') == 'roundrobin' then return {'policy', 0, kept[2]} end

local maxd = max_deliveries()
local out = {}
local budget = want + 1000
while #out < want and budget > 0 do
  budget = budget - 1
  local n = redis.call('ZPOPMIN', K_READY)[1]
  if not n then break end
  local expires = redis.call('ZSCORE', K_EXPIRES, n)
  local value = redis.call('HGET', K_MSGS, n)
  local count = tonumber(redis.call('HGET', K_COUNTS, n) or '0') + 1
  local gone = (expires and tonumber(expires) <= now) or not value
  if not gone and maxd > 0 and count > maxd and dead_name ~= '' then
    -- already delivered max_deliveries times without an ack: dead-lettered, not delivered again
    if dead_letter(n, queue, dead_name, now) == 1 then kept[2] = 1 end
  elseif gone then
    forget(n)
    redis.call('HINCRBY', K_META, 'expired', 1)
  else
    forget(n)
    out[#out + 1] = {key = queue .. ':' .. n, value = value, count = count}
  end
end
if #out > 0 then
  redis.call('HINCRBY', K_META, 'delivered', #out)
  for _, m in ipairs(out) do
    m.t = now
    redis.call('LPUSH', KEYS[19], cjson.encode(m))
    m.t = nil
  end
  redis.call('LTRIM', KEYS[19], 0, history_len - 1)
  redis.call('SPUBLISH', channel, 'b' .. cjson.encode(out))
end
return {'ok', #out, kept[2]}
