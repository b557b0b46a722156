-- Shared prelude: defined once when scripts.py loads the library, for every function of it.
-- Each function call sets KEYS and ARGV to its own keys and arguments before its script runs (scripts.py), and the
-- queue's key names below: message scripts take the nine keys of one queue as KEYS[1..9]
-- (keys.QueueKeys.message_keys) and, where a message may be dead-lettered, the nine keys of its dead-letter queue
-- as KEYS[10..18]. A script runs to its end before another starts, so these never mix two calls.
local KEYS, ARGV
local K_META, K_MSGS, K_READY, K_DELAYED, K_LEASED
local K_COUNTS, K_PRIO, K_EXPIRES, K_ORIGIN
local GROUPED -- whether this call's queue holds grouped messages: nil until grouped() asks (message groups, below)

local function bind(keys, args)
  KEYS, ARGV, GROUPED = keys, args, nil
  K_META, K_MSGS, K_READY, K_DELAYED, K_LEASED = keys[1], keys[2], keys[3], keys[4], keys[5]
  K_COUNTS, K_PRIO, K_EXPIRES, K_ORIGIN = keys[6], keys[7], keys[8], keys[9]
end

-- Ready-set scores: the priority band first (priority 9 lowest score), then insertion order.
-- Tail inserts count up from MID, head inserts (expired leases) count down from it.
local BAND = 35184372088832 -- 2^45
local MID = 17592186044416  -- 2^44

-- Operation ids: a script that changes state takes its call's operation id as its last ARGV entry, and the queue's
-- operation hash of the call's time window (keys.QueueKeys.operations) as its last KEYS entry. It remembers its reply
-- there under the id, and a call repeating that id (the storage layer's retry after a broken connection) gets the
-- same reply and changes nothing. The client picks the window (wall clock, OP_WINDOW_S in storage/node.py) and keeps
-- it for the call's retry; the hash expires OPS_TTL_MS after its first record: the window (30 s), then 30 s for a
-- retry to arrive (a socket timeout of 10 s plus a connect of 2 s), and 15 s more for a call sent late in its window
-- and for clocks that differ between server hosts. One key per queue and window instead of one per call: nothing
-- to expire one by one, and the whole hash freed at once by the engine's lazy-free thread.
-- An id is new on a call's first attempt, which has nothing to replay: only a call that may be a repeat
-- sends its operations key twice (repeat_key: the KEYS entry after it), and only such a call looks it up.
local OPS_TTL_MS = 75000

local function replayed(ops_key, repeat_key)
  if not repeat_key then return nil end
  local seen = redis.call('HGET', ops_key, ARGV[#ARGV])
  if seen then return cmsgpack.unpack(seen) end
  return nil
end

local function remember(ops_key, reply)
  redis.call('HSET', ops_key, ARGV[#ARGV], cmsgpack.pack(reply))
  redis.call('PEXPIRE', ops_key, OPS_TTL_MS, 'NX')
  return reply
end

-- An add (add.lua, add_group.lua) whose idempotency key was seen within its window: the first add's numbers as a
-- duplicate reply, remembered like any reply; nil for an add without a key or with a new one.
local function idempotent_repeat(idem_window, idem_key, ops_key)
  if idem_window <= 0 then return nil end
  local seen = redis.call('GET', idem_key)
  if not seen then return nil end
  local first, last = string.match(seen, '^(%d+):(%d+)$')
  return remember(ops_key, {tonumber(first), tonumber(last), 0, -1, 1})
end

-- Scores are whole numbers below 2^53, passed to redis.call as numbers: since Redis 7.0 (the oldest engine with
-- functions) it prints a whole number as an integer, exactly, in C (Lua's own tostring would use exponent form).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Start a queue's key numbering at this node's base (ring mode keeps keys unique across nodes),
-- and remember the base for the queue's dead letters.
local function init_seq(meta, base)
  if redis.call('HEXISTS', meta, 'seq') == 0 then
    redis.call('HSET', meta, 'seq', base, 'base', base)
  end
end

local function priority_of(n)
  return tonumber(redis.call('HGET', K_PRIO, n) or '0')
end

local function push_tail(meta, ready, n, p)
  local order = redis.call('HINCRBY', meta, 'order', 1)
  redis.call('ZADD', ready, (9 - p) * BAND + MID + order, n)
end

local function push_head(n)
  local head = redis.call('HINCRBY', K_META, 'head', 1)
  redis.call('ZADD', K_READY, (9 - priority_of(n)) * BAND + MID - head, n)
end

-- Message groups (docs/semantics.md, "Message groups"). A grouped message's group is in the queue's groups hash
-- (n -> "<order> <group id>"), and so is each group's head ("=<group id>" -> n): the one message of the group that
-- is ready, delayed (released with a delay) or in flight. The group's later messages wait in the parked set (score 0,
-- members "<group id> <n, 20 digits>": ordered by group, then by n, which is the order they were added) and only
-- enter the ready set when the head leaves the queue: so a take or lease never meets a blocked group, at most one
-- message of a group is in flight, and an expired lease redelivers the head before the rest of its group.
-- The two keys are derived from the meta key ("rmq:{T}N:meta" -> "rmq:{T}N:groups", "...:parked"), not passed in
-- KEYS: they share its hash tag (so its slot on a cluster), and passing them would shift every script's KEYS layout.
-- A group id has no space and only characters above it (core/names.py), so "<id> " prefixes never overlap.
local function group_keys(meta)
  local base = string.sub(meta, 1, -5)
  return base .. 'groups', base .. 'parked'
end

-- A queue without grouped messages pays this one EXISTS per call, and only on the paths where one leaves; pop.lua
-- and ack_lease.lua spare even that: they read the meta hash's `grouped` flag (set by every grouped add, never
-- cleared) with the fields they read anyway, and set GROUPED from it.
local function grouped()
  if GROUPED == nil then GROUPED = redis.call('EXISTS', (group_keys(K_META))) == 1 end
  return GROUPED
end

local function parked_member(gid, n)
  return gid .. ' ' .. string.format('%020d', tonumber(n))
end

-- Message n leaves the queue (taken, acked, deleted, dead-lettered, dropped by its ttl): forget its group entry; if
-- it was its group's head, the group's next message becomes the head, ready at its place in the insertion order.
local function leave_group(n)
  if not grouped() then return end
  local k_groups, k_parked = group_keys(K_META)
  local entry = redis.call('HGET', k_groups, n)
  if not entry then return end
  redis.call('HDEL', k_groups, n)
  local gid = string.match(entry, '^%d+ (.*)$')
  if redis.call('HGET', k_groups, '=' .. gid) ~= tostring(n) then
    redis.call('ZREM', k_parked, parked_member(gid, n))  -- a parked message leaves: its group's head stays
    return
  end
  local next_member = redis.call('ZRANGEBYLEX', k_parked, '[' .. gid .. ' ', '(' .. gid .. '!', 'LIMIT', 0, 1)[1]
  if not next_member then
    redis.call('HDEL', k_groups, '=' .. gid)
    return
  end
  redis.call('ZREM', k_parked, next_member)
  local m = string.match(string.sub(next_member, #gid + 2), '^0*(%d+)$')  -- digits as stored, without padding
  redis.call('HSET', k_groups, '=' .. gid, m)
  local order = tonumber(string.match(redis.call('HGET', k_groups, m), '^(%d+) '))
  redis.call('ZADD', K_READY, 9 * BAND + MID + order, m)  -- groups carry no priority (service.py refuses one)
  redis.call('SPUBLISH', string.sub(K_META, 1, -5) .. 'ev', 'add:1')  -- wakes long-polls and streams
end

-- Message n (just stored in the queue of `meta`, `ready`) joins group gid as the queue's order-th message: the
-- group's head when it has none (ready at that place, returns 1), else parked behind it (returns 0).
local function join_group(meta, ready, n, gid, order)
  local k_groups, k_parked = group_keys(meta)
  redis.call('HSET', k_groups, n, order .. ' ' .. gid)
  if redis.call('HSETNX', k_groups, '=' .. gid, n) == 0 then
    redis.call('ZADD', k_parked, 0, parked_member(gid, n))
    return 0
  end
  redis.call('ZADD', ready, 9 * BAND + MID + order, n)
  return 1
end

-- The group id of message n, or nil.
local function group_of(n)
  if not grouped() then return nil end
  local entry = redis.call('HGET', (group_keys(K_META)), n)
  return entry and string.match(entry, '^%d+ (.*)$')
end

-- Remove every trace of message n from this queue.
local function forget(n)
  leave_group(n)
  redis.call('HDEL', K_MSGS, n)
  redis.call('HDEL', K_COUNTS, n)
  redis.call('HDEL', K_PRIO, n)
  redis.call('HDEL', K_ORIGIN, n, 'a' .. n)
  redis.call('ZREM', K_READY, n)
  redis.call('ZREM', K_DELAYED, n)
  redis.call('ZREM', K_LEASED, n)
  redis.call('ZREM', K_EXPIRES, n)
end

local function earliest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return nil
end

-- The deadline to index when `due` is about to join the timer set `key`, or -1: the queue's next deadline can only
-- drop to `due` if it comes before every entry of that set. Reading one set instead of all three may index a
-- deadline later than another set's: harmless, as the index entry only ever moves down (ZADD LT) and a wake-up
-- with nothing due sets it right (timer_cas.lua); a needed one is never left out.
local function lowered(key, due)
  local first = earliest(key)
  if first == nil or due < first then return due end
  return -1
end

-- The queue's next timer deadline (lease, delay or ttl), or -1 when it has none.
local function next_deadline()
  local best = -1
  for _, key in ipairs({K_DELAYED, K_LEASED, K_EXPIRES}) do
    local t = earliest(key)
    if t and (best < 0 or t < best) then best = t end
  end
  return best
end

local function max_deliveries()
  return tonumber(redis.call('HGET', K_META, 'max_deliveries') or '0')
end

-- Move message n to the dead-letter queue (KEYS[10..18]); returns 1 when that queue must be listed.
-- ARGV[1] is this queue's name, DEAD_NAME the dead-letter queue's name ('' when there is none).
local function dead_letter(n, queue, dead_name, now)
  if dead_name == '' then return 0 end
  local value = redis.call('HGET', K_MSGS, n)
  local group = group_of(n)  -- kept in the dead letter's history; the dead-letter queue itself has no groups
  local count = tonumber(redis.call('HGET', K_COUNTS, n) or '0')
  local p = priority_of(n)
  local attrs = redis.call('HGET', K_ORIGIN, 'a' .. n)  -- a message's attributes go with it
  forget(n)
  redis.call('HINCRBY', K_META, 'dead', 1)
  if not value then return 0 end
  local d_meta, d_msgs, d_ready, d_origin = KEYS[10], KEYS[11], KEYS[12], KEYS[18]
  init_seq(d_meta, redis.call('HGET', K_META, 'base') or '0')
  local m = redis.call('HINCRBY', d_meta, 'seq', 1)
  redis.call('HSET', d_msgs, m, value)
  if attrs then redis.call('HSET', d_origin, 'a' .. m, attrs) end
  if p > 0 then redis.call('HSET', KEYS[16], m, p) end
  push_tail(d_meta, d_ready, m, p)
  redis.call('HSET', d_origin, m, cjson.encode({queue = queue, key = queue .. ':' .. n, count = count, dead_at = now, group = group}))
  redis.call('HINCRBY', d_meta, 'added', 1)
  return redis.call('HSETNX', d_meta, 'listed', '1')
end

-- Promote due delayed messages and take back expired leases (bounded work per call).
-- Returns {moved, dead_listed}.
local function housekeep(queue, dead_name, now)
  local moved, listed = 0, 0
  if redis.call('EXISTS', K_DELAYED, K_LEASED) == 0 then return {0, 0} end  -- the common case: no timers
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, 200)
  for _, n in ipairs(due) do
    redis.call('ZREM', K_DELAYED, n)
    push_tail(K_META, K_READY, n, priority_of(n))
    moved = moved + 1
  end
  local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, 200)
  -- Each push_head goes in front of the previous one: push the newest first so that leases that
  -- expire together return in their original order (ZRANGEBYSCORE ties sort members as strings).
  table.sort(expired, function(a, b) return tonumber(a) > tonumber(b) end)
  local maxd = max_deliveries()
  for _, n in ipairs(expired) do
    redis.call('ZREM', K_LEASED, n)
    redis.call('HINCRBY', K_META, 'redelivered', 1)
    if maxd > 0 and tonumber(redis.call('HGET', K_COUNTS, n) or '0') >= maxd and dead_name ~= '' then
      if dead_letter(n, queue, dead_name, now) == 1 then listed = 1 end
    else
      push_head(n)
      moved = moved + 1
    end
  end
  return {moved, listed}
end

-- Where a leased message stands for a caller that settles it: 'leased' (its lease runs), or 'missing' (no such
-- message), 'stale' (delivered again since the caller's count) or 'not_leased' (lease expired or never taken);
-- and its delivery count.
local function lease_state(n, expected, now)
  if redis.call('HEXISTS', K_MSGS, n) == 0 then return 'missing', 0 end
  local count = tonumber(redis.call('HGET', K_COUNTS, n) or '0')
  if expected ~= '' and tonumber(expected) ~= count then return 'stale', count end
  local deadline = redis.call('ZSCORE', K_LEASED, n)
  if not deadline or tonumber(deadline) <= now then return 'not_leased', count end
  return 'leased', count
end

-- An ack: a leased message is in no ready or delayed set; its origin is kept only in a dead-letter queue (which
-- has no dead_name of its own).
local function remove_leased(n, dead_name)
  leave_group(n)
  redis.call('HDEL', K_MSGS, n)
  redis.call('HDEL', K_COUNTS, n)
  redis.call('HDEL', K_PRIO, n)
  redis.call('ZREM', K_LEASED, n)
  redis.call('ZREM', K_EXPIRES, n)
  redis.call('HDEL', K_ORIGIN, 'a' .. n)  -- its attributes (any queue)
  if dead_name == '' then redis.call('HDEL', K_ORIGIN, n) end
end

-- Deliver up to `want` messages from the head of the ready set, appending n, value, count of each to `out`; `out[2]`
-- becomes 1 when a dead-letter queue must be listed. take removes a message; lease hides it until now + lease_ms;
-- peek (the original soft get) leaves it at the head and only raises its delivery count. Returns how many.
local function deliver(queue, dead_name, mode, want, lease_ms, now, has_ttl, maxd, out)
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
        redis.call('HDEL', K_ORIGIN, 'a' .. n)  -- its attributes
        if dead_name == '' then redis.call('HDEL', K_ORIGIN, n) end  -- a dead letter's history
        leave_group(n)  -- its group's next message becomes ready: a batch take may deliver it too, in order
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
  return delivered
end
