-- redrive: move up to LIMIT waiting dead letters back to the tail of their original queue, as new
-- messages with a fresh delivery count (keeping their priority, or their message group: see _lib.lua).
-- KEYS[1..9] the dead-letter queue's message keys, KEYS[10..18] the original queue's
-- KEYS[19] the dead-letter queue's operations key, KEYS[20] it again on a repeat (see _lib.lua: a repeat replays its reply)
-- ARGV[1] the original queue's event channel  ARGV[2] limit  ARGV[3] the call's operation id
-- Reply: {moved, original queue newly listed (0|1)}
local done = replayed(KEYS[19], KEYS[20])
if done then return done end
local limit = tonumber(ARGV[2])
local q_meta, q_msgs, q_ready, q_prio = KEYS[10], KEYS[11], KEYS[12], KEYS[16]
local moved = 0
while moved < limit do
  local n = redis.call('ZPOPMIN', K_READY)[1]
  if not n then break end
  -- a dead letter of a message group goes back into its group, behind the group's messages already there
  local origin = redis.call('HGET', K_ORIGIN, n)
  local group = origin and cjson.decode(origin).group
  local value = redis.call('HGET', K_MSGS, n)
  local p = priority_of(n)
  local attrs = redis.call('HGET', K_ORIGIN, 'a' .. n)
  forget(n)
  if value then
    init_seq(q_meta, redis.call('HGET', K_META, 'base') or '0')
    local m = redis.call('HINCRBY', q_meta, 'seq', 1)
    redis.call('HSET', q_msgs, m, value)
    if attrs then redis.call('HSET', KEYS[18], 'a' .. m, attrs) end
    if p > 0 then redis.call('HSET', q_prio, m, p) end
    if type(group) == 'string' then
      join_group(q_meta, q_ready, m, group, redis.call('HINCRBY', q_meta, 'order', 1))
      redis.call('HSET', q_meta, 'grouped', '1')  -- as add_group.lua: read by pop.lua and ack_lease.lua
    else
      push_tail(q_meta, q_ready, m, p)
    end
    moved = moved + 1
  end
end
local listed = 0
if moved > 0 then
  redis.call('HINCRBY', q_meta, 'added', moved)
  listed = redis.call('HSETNX', q_meta, 'listed', '1')
  redis.call('SPUBLISH', ARGV[1], 'add')
end
return remember(KEYS[19], {moved, listed})
