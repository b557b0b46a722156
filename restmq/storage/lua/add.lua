-- add: append messages to a queue (all or nothing).
-- KEYS[1..9]  the queue's message keys; KEYS[10] its idempotency key (or the meta key when unused)
-- KEYS[11] the queue's operations key, KEYS[12] it again on a repeat (see _lib.lua: a repeat replays its reply)
-- ARGV[1] queue name  ARGV[2] event channel  ARGV[3] priority 0..9  ARGV[4] delay ms
-- ARGV[5] ttl ms (0 = none)  ARGV[6] idempotency window ms (0 = no idempotency key)
-- ARGV[7] key base: where this node's numbering starts (0, or i * 10^12 for ring node i)
-- ARGV[8] '1' when each value's attributes follow the values ('' for none), else '0'  ARGV[9..] values
-- ARGV[#ARGV] the call's operation id
-- Reply: {first n, last n, newly listed (0|1), timer deadline to index or -1, duplicate (0|1)}
local queue, channel = ARGV[1], ARGV[2]
local p, delay, ttl, idem_window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local with_attrs = ARGV[8] == '1'
local count = #ARGV - 9
if with_attrs then count = count / 2 end
local done = replayed(KEYS[11], KEYS[12])
if done then return done end

local duplicate = idempotent_repeat(idem_window, KEYS[10], KEYS[11])
if duplicate then return duplicate end

local timed = delay > 0 or ttl > 0
local now, before = 0, -1  -- only a delay or a ttl needs the clock
if timed then now, before = now_ms(), next_deadline() end
init_seq(K_META, ARGV[7])
local last = redis.call('HINCRBY', K_META, 'seq', count)
local first = last - count + 1
-- Few large commands rather than several per message: chunks stay under Lua's unpack limit.
local order = 0
if delay == 0 then order = redis.call('HINCRBY', K_META, 'order', count) - count end
local base = (9 - p) * BAND + MID
local due, expires_at = now + delay, now + delay + ttl
local CHUNK = 2000
for from = 1, count, CHUNK do
  local to = math.min(from + CHUNK - 1, count)
  local bodies, scores, prios, expiry = {}, {}, {}, {}
  for i = from, to do
    -- positions counted here: Lua 5.1's # operator searches the table on every use
    local n, j = first + i - 1, 2 * (i - from)
    bodies[j + 1], bodies[j + 2] = n, ARGV[8 + i]
    if with_attrs and ARGV[8 + count + i] ~= '' then redis.call('HSET', K_ORIGIN, 'a' .. n, ARGV[8 + count + i]) end
    if delay > 0 then scores[j + 1] = due else scores[j + 1] = base + order + i end
    scores[j + 2] = n
    if p > 0 then prios[j + 1], prios[j + 2] = n, p end
    if ttl > 0 then expiry[j + 1], expiry[j + 2] = expires_at, n end
  end
  redis.call('HSET', K_MSGS, unpack(bodies))
  redis.call('ZADD', delay > 0 and K_DELAYED or K_READY, unpack(scores))
  if p > 0 then redis.call('HSET', K_PRIO, unpack(prios)) end
  if ttl > 0 then redis.call('ZADD', K_EXPIRES, unpack(expiry)) end
end
redis.call('HINCRBY', K_META, 'added', count)
if idem_window > 0 then
  redis.call('SET', KEYS[10], first .. ':' .. last, 'PX', idem_window)
end
local listed = redis.call('HSETNX', K_META, 'listed', '1')
if delay == 0 then redis.call('SPUBLISH', channel, 'add:' .. count) end

local timer = -1
if timed then
  local after = next_deadline()
  if before < 0 or after < before then timer = after end
end
return remember(KEYS[11], {first, last, listed, timer, 0})
