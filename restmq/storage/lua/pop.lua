-- pop: deliver up to COUNT messages from the head of a queue.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (only from a caller that has seen the
-- queue answer 'dead_keys'), then the queue's operations key, and it again on a repeat (see _lib.lua: a repeat
-- replays its reply)
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] mode: take | lease | peek
-- ARGV[4] count  ARGV[5] lease ms (lease mode)  ARGV[6] the call's operation id
-- Reply: {status ('ok' | 'stop' | 'dead_keys'), dead listed (0|1), timer deadline to index or -1, n1, value1, count1,
-- ...}; 'dead_keys': the queue has max_deliveries and the call came without the dead-letter queue's keys, so it
-- changed nothing: call again with them.
-- take, lease, peek: see deliver in _lib.lua.
local queue, dead_name, mode = ARGV[1], ARGV[2], ARGV[3]
local want, lease_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local ops = #KEYS >= 19 and 19 or 10  -- the operations key follows the dead-letter queue's keys when they came
local done = replayed(KEYS[ops], KEYS[ops + 1])
if done then return done end
local meta = redis.call('HMGET', K_META, 'status', 'max_deliveries', 'grouped')
GROUPED = meta[3] == '1'  -- message groups (_lib.lua): the flag spares grouped() its EXISTS
local maxd = tonumber(meta[2] or '0')
-- Only a queue with max_deliveries dead-letters: nine keys fewer on the calls of every other queue.
if maxd > 0 and dead_name ~= '' and ops == 10 then return {'dead_keys', 0, -1} end
-- A queue without timers (delays, leases, ttl) needs no housekeeping, and without a delivery limit no
-- clock either, unless this call leases: one EXISTS tells.
local timed = redis.call('EXISTS', K_DELAYED, K_LEASED, K_EXPIRES) > 0
local now = 0
if timed or maxd > 0 or mode == 'lease' then now = now_ms() end
local listed = 0
if timed then listed = housekeep(queue, dead_name, now)[2] end
if meta[1] == 'stop' then
  return {'stop', listed, -1}
end

local has_ttl = timed and redis.call('EXISTS', K_EXPIRES) == 1
local timer = -1
if mode == 'lease' then timer = lowered(K_LEASED, now + lease_ms) end  -- every lease of this call has that deadline
local out = {'ok', listed, -1}
local delivered = deliver(queue, dead_name, mode, want, lease_ms, now, has_ttl, maxd, out)
if delivered > 0 then out[3] = timer end
-- a call that delivered nothing and listed nothing may run again: nothing to remember (empty polls stay cheap)
if delivered > 0 or out[2] == 1 then return remember(KEYS[ops], out) end
return out
