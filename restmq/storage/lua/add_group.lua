-- add_group: append messages of one message group to a queue (all or nothing); add.lua for grouped messages.
-- The group's first message without a head becomes its head and ready; the others wait parked (see _lib.lua's
-- message groups). Grouped messages have no priority and no per-message delay (service.py refuses both).
-- KEYS[1..9]  the queue's message keys; KEYS[10] its idempotency key (or the meta key when unused)
-- KEYS[11] the queue's operations key, KEYS[12] it again on a repeat (see _lib.lua: a repeat replays its reply)
-- ARGV[1] queue name  ARGV[2] event channel  ARGV[3] group id  ARGV[4] ttl ms (0 = none)
-- ARGV[5] idempotency window ms (0 = no idempotency key)  ARGV[6] key base (as add.lua's ARGV[7])
-- ARGV[7] '1' when each value's attributes follow the values ('' for none), else '0' (as add.lua's ARGV[8])
-- ARGV[8..] values
-- ARGV[#ARGV] the call's operation id
-- Reply: {first n, last n, newly listed (0|1), timer deadline to index or -1, duplicate (0|1)}, as add.lua's
local channel, gid = ARGV[2], ARGV[3]
local ttl, idem_window = tonumber(ARGV[4]), tonumber(ARGV[5])
local with_attrs = ARGV[7] == '1'
local count = #ARGV - 8
if with_attrs then count = count / 2 end
local done = replayed(KEYS[11], KEYS[12])
if done then return done end

local duplicate = idempotent_repeat(idem_window, KEYS[10], KEYS[11])
if duplicate then return duplicate end

local now, before = 0, -1  -- only a ttl needs the clock
if ttl > 0 then now, before = now_ms(), next_deadline() end
init_seq(K_META, ARGV[6])
local last = redis.call('HINCRBY', K_META, 'seq', count)
local first = last - count + 1
local order = redis.call('HINCRBY', K_META, 'order', count) - count
local ready = 0
for i = 1, count do
  local n = first + i - 1
  redis.call('HSET', K_MSGS, n, ARGV[7 + i])
  if with_attrs and ARGV[7 + count + i] ~= '' then redis.call('HSET', K_ORIGIN, 'a' .. n, ARGV[7 + count + i]) end
  if ttl > 0 then redis.call('ZADD', K_EXPIRES, now + ttl, n) end
  ready = ready + join_group(K_META, K_READY, n, gid, order + i)
end
redis.call('HINCRBY', K_META, 'added', count)
if idem_window > 0 then
  redis.call('SET', KEYS[10], first .. ':' .. last, 'PX', idem_window)
end
local listed = redis.call('HSETNX', K_META, 'listed', '1')
redis.call('HSET', K_META, 'grouped', '1')  -- read by pop.lua and ack_lease.lua (_lib.lua's grouped())
if ready > 0 then redis.call('SPUBLISH', channel, 'add:1') end

local timer = -1
if ttl > 0 then
  local after = next_deadline()
  if before < 0 or after < before then timer = after end
end
return remember(KEYS[11], {first, last, listed, timer, 0})
