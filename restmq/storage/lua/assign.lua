-- assign: hand up to MAX messages of a roundrobin queue to its live streaming consumers, rotating
-- over all consumers of all server processes, and publish the assignments.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (or the same nine again),
-- KEYS[19] its consumers zset (member "<node>/<conn>/<lease ms or 0>", score = presence deadline: the
-- consumer's process heartbeat plus the presence ttl, see presence.lua)
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] event channel  ARGV[4] max
-- ARGV[5] in-flight ms for consumers without a lease  ARGV[6] grace ms: how long past its consumer's
-- presence a message may stay held
-- Reply: {status ('ok' | 'stop' | 'policy' | 'none'), assigned, dead listed, timer deadline or -1}
-- Each assigned message is leased until its consumer's process writes it (then acks it) or, in lease
-- mode, until the client acks it, for at most its in-flight bound (ARGV[5], or the consumer's lease) and
-- no longer than its consumer's presence + the grace: the process's heartbeat extends what it holds
-- (presence.lua), so if that process dies, its messages return within the presence ttl + the grace.
local queue, dead_name, channel = ARGV[1], ARGV[2], ARGV[3]
local want, inflight, grace = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6] or '0')
local now = now_ms()
local kept = housekeep(queue, dead_name, now)
if redis.call('HGET', K_META, 'status') == 'stop' then return {'stop', 0, kept[2], -1} end
if redis.call('HGET', K_META, 'policy') ~= 'roundrobin' then return {'policy', 0, kept[2], -1} end

redis.call('ZREMRANGEBYSCORE', KEYS[19], '-inf', now)
local present = redis.call('ZRANGE', KEYS[19], 0, -1, 'WITHSCORES')
if #present == 0 then return {'none', 0, kept[2], -1} end
local consumers, presence = {}, {}
for i = 1, #present, 2 do
  consumers[#consumers + 1] = present[i]
  presence[present[i]] = tonumber(present[i + 1])
end
table.sort(consumers)

-- Start after the consumer served last, wrapping around.
local cursor = redis.call('HGET', K_META, 'rr') or ''
local next_i = 1
for i, id in ipairs(consumers) do
  if id > cursor then next_i = i break end
end

local before = next_deadline()
local maxd = max_deliveries()
local out = {}
local budget = want + 1000
while #out < want and budget > 0 do
  budget = budget - 1
  local n = redis.call('ZPOPMIN', K_READY)[1]
  if not n then break end
  local expires = redis.call('ZSCORE', K_EXPIRES, n)
  local value = redis.call('HGET', K_MSGS, n)
  if (expires and tonumber(expires) <= now) or not value then
    forget(n)
    redis.call('HINCRBY', K_META, 'expired', 1)
  elseif maxd > 0 and tonumber(redis.call('HGET', K_COUNTS, n) or '0') >= maxd and dead_name ~= '' then
    if dead_letter(n, queue, dead_name, now) == 1 then kept[2] = 1 end
  else
    local to = consumers[next_i]
    next_i = next_i % #consumers + 1
    local lease = tonumber(string.match(to, '/(%d+)$') or '0')
    if lease <= 0 then lease = inflight end
    local count = redis.call('HINCRBY', K_COUNTS, n, 1)
    redis.call('ZADD', K_LEASED, math.min(now + lease, presence[to] + grace), n)
    out[#out + 1] = {to = to, key = queue .. ':' .. n, value = value, count = count}
    cursor = to
  end
end
local timer = -1
if #out > 0 then
  redis.call('HSET', K_META, 'rr', cursor)
  redis.call('HINCRBY', K_META, 'delivered', #out)
  redis.call('SPUBLISH', channel, 'r' .. cjson.encode(out))
  local after = next_deadline()
  if before < 0 or after < before then timer = after end
end
return {'ok', #out, kept[2], timer}
