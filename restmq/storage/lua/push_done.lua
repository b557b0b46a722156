-- push_done: end deliveries of a push subscription: give back their slots and record their outcome.
-- KEYS[1] the subscription hash  KEYS[2] its in-flight slots
-- ARGV[1] k, the number of slots  ARGV[2..k+1] the slot ids  then: tokens to refund (slots reserved but unused),
-- delivered, failed and dead-lettered counts to add, the last status ('' to leave it; '-' when the last attempt got
-- no reply), the last error ('' to
-- leave it; '-' clears it), '1' to pause ('' not), and 'reset' | 'inc' | '' for the consecutive-failure count.
-- Reply: 1, or 0 when the subscription is gone (nothing recorded: a removed subscription is not brought back).
local sub, slots = KEYS[1], KEYS[2]
local k = tonumber(ARGV[1])
for i = 2, k + 1 do redis.call('ZREM', slots, ARGV[i]) end
local refund, delivered, failed, dead = tonumber(ARGV[k + 2]), tonumber(ARGV[k + 3]), tonumber(ARGV[k + 4]),
  tonumber(ARGV[k + 5])
local status, err, pause, failing = ARGV[k + 6], ARGV[k + 7], ARGV[k + 8], ARGV[k + 9]
if redis.call('HEXISTS', sub, 'url') == 0 then return 0 end
if refund > 0 and redis.call('HEXISTS', sub, 'tokens') == 1 then
  redis.call('HINCRBYFLOAT', sub, 'tokens', refund)
end
if delivered > 0 then redis.call('HINCRBY', sub, 'delivered', delivered) end
if failed > 0 then redis.call('HINCRBY', sub, 'failed', failed) end
if dead > 0 then redis.call('HINCRBY', sub, 'dead', dead) end
if status == '-' then
  redis.call('HDEL', sub, 'last_status')
  redis.call('HSET', sub, 'last_at', now_ms())
elseif status ~= '' then
  redis.call('HSET', sub, 'last_status', status, 'last_at', now_ms())
end
if err == '-' then redis.call('HDEL', sub, 'last_error') elseif err ~= '' then redis.call('HSET', sub, 'last_error', err) end
if pause == '1' then redis.call('HSET', sub, 'paused', '1') end
if failing == 'reset' then redis.call('HSET', sub, 'failing', 0) elseif failing == 'inc' then
  redis.call('HINCRBY', sub, 'failing', 1)
end
return 1
