-- pop: deliver up to COUNT messages from the head of a queue.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (only from a caller that has seen the
-- queue answer 'dead_keys'), then the queue's operations key, and it again on a repeat (see _lib.lua: a repeat
-- replays its reply)
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] mode: take | lease | peek
-- ARGV[4] count  ARGV[5] lease ms (lease mode)  ARGV[6] the call's operation id
-- Reply: {status ('ok' | 'stop' | 'dead_keys'), dead listed (0|1), timer deadline to index or -1, n1, value1, count1,
-- ...}; 'dead_keys': the queue has max_deliveries and the call came without the dead-letter queue's keys, so it
-- changed nothing: call again with them.
-- take removes the message; lease hides it until the deadline; peek (the original soft get) leaves it
-- at the head and only raises its delivery count.
local queue, dead_name, mode = ARGV[1], ARGV[2], ARGV[3]
local want, lease_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local ops = #KEYS >= 19 and 19 or 10  -- the operations key follows the dead-letter queue's keys when they came
local done = replayed(KEYS[ops], KEYS[ops + 1])
if done then return done end
local meta = redis.call('HMGET', K_META, 'status', 'max_deliveries')
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
local delivered, budget = 0, want + 1000
while delivered < want and budget > 0 do
  budget = budget - 1
  local n, score
  if mode == 'peek' then
    n = redis.call('ZRANGE', K_READY, 0, 0)[1]
  else
    local head = redis.call('ZPOPMIN', K_READY)
    n, score = head[1], head[2]
  end
  if not n then break end
  local expires = has_ttl and redis.call('ZSCORE', K_EXPIRES, n)
  local value = redis.call('HGET', K_MSGS, n)
  local count = tonumber(redis.call('HGET', K_COUNTS, n) or '0')
  if (expires and tonumber(expires) <= now) or not value then
    forget(n)
    redis.call('HINCRBY', K_META, 'expired', 1)
  elseif maxd > 0 and count >= maxd and dead_name ~= '' then
    -- already delivered max_deliveries times without an ack (soft gets, or a lowered limit):
    -- no mode may deliver it again
    if dead_letter(n, queue, dead_name, now) == 1 then out[2] = 1 end
  else
    count = count + 1
    if mode == 'take' then
      -- popped from ready, so it is in no other set: only its fields and its ttl entry remain
      redis.call('HDEL', K_MSGS, n)
      if count > 1 then redis.call('HDEL', K_COUNTS, n) end
      if tonumber(score) < 9 * BAND then redis.call('HDEL', K_PRIO, n) end  -- its band: priority above 0
      if expires then redis.call('ZREM', K_EXPIRES, n) end
      if dead_name == '' then redis.call('HDEL', K_ORIGIN, n) end  -- a dead letter's history
    else
      redis.call('HSET', K_COUNTS, n, count)
      if mode == 'lease' then redis.call('ZADD', K_LEASED, now + lease_ms, n) end
    end
    out[#out + 1] = tonumber(n)
    out[#out + 1] = value
    out[#out + 1] = count
    delivered = delivered + 1
    if mode == 'peek' then break end
  end
end
if delivered > 0 then redis.call('HINCRBY', K_META, 'delivered', delivered) end
if delivered > 0 then out[3] = timer end
-- a call that delivered nothing and listed nothing may run again: nothing to remember (empty polls stay cheap)
if delivered > 0 or out[2] == 1 then return remember(KEYS[ops], out) end
return out
