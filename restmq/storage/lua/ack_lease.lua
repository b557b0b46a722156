-- ack_lease: acknowledge leased messages, then lease up to COUNT more: a worker's "done with these, the next
-- please" (GET /q/<queue>?lease=S&ack=<key>) in one call instead of a settle per ack and a pop.
-- KEYS[1..9] the queue's message keys, KEYS[10..18] its dead-letter queue's (as pop.lua: only from a caller that has
-- seen the queue answer 'dead_keys'), then the queue's operations key, and it again on a repeat (see _lib.lua)
-- ARGV[1] queue name  ARGV[2] dead-letter queue name or ''  ARGV[3] count  ARGV[4] lease ms
-- ARGV[5..] the acks, in pairs: n, expected delivery count or '' (any); then the call's operation id
-- Reply: {status ('ok' | 'stop' | 'dead_keys'), dead listed (0|1), timer deadline to index or -1, A (acks),
--         outcome1, count1, ... (A pairs: ok | missing | not_leased | stale, as settle.lua answers an ack),
--         n1, value1, count1, ... (the leased messages, as pop.lua answers)}
-- Each ack is settle.lua's, on its own: one that fails changes nothing and never keeps the others or the lease
-- from running; the lease is pop.lua's lease mode, and runs whatever the acks found.
local queue, dead_name = ARGV[1], ARGV[2]
local want, lease_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local ops = #KEYS >= 19 and 19 or 10  -- the operations key follows the dead-letter queue's keys when they came
local done = replayed(KEYS[ops], KEYS[ops + 1])
if done then return done end
local meta = redis.call('HMGET', K_META, 'status', 'max_deliveries', 'grouped')
GROUPED = meta[3] == '1'  -- message groups (_lib.lua): the flag spares grouped() its EXISTS
local maxd = tonumber(meta[2] or '0')
-- as pop.lua: a queue with max_deliveries needs the dead-letter keys; answered before any ack changes anything
if maxd > 0 and dead_name ~= '' and ops == 10 then return {'dead_keys', 0, -1, 0} end
local now = now_ms()

local outcomes, acked = {}, 0
for i = 5, #ARGV - 1, 2 do
  local n = ARGV[i]
  local state, count = lease_state(n, ARGV[i + 1], now)
  if state == 'leased' then
    remove_leased(n, dead_name)
    state, acked = 'ok', acked + 1
  end
  outcomes[#outcomes + 1] = state
  outcomes[#outcomes + 1] = count
end
if acked > 0 then redis.call('HINCRBY', K_META, 'acked', acked) end

local timed = redis.call('EXISTS', K_DELAYED, K_LEASED, K_EXPIRES) > 0
local listed = 0
if timed then listed = housekeep(queue, dead_name, now)[2] end
local out = {'ok', listed, -1, #outcomes / 2}
for _, v in ipairs(outcomes) do out[#out + 1] = v end
local delivered = 0
if meta[1] == 'stop' then
  out[1] = 'stop'
else
  local has_ttl = timed and redis.call('EXISTS', K_EXPIRES) == 1
  local timer = lowered(K_LEASED, now + lease_ms)  -- every lease of this call has that deadline
  delivered = deliver(queue, dead_name, 'lease', want, lease_ms, now, has_ttl, maxd, out)
  if delivered > 0 then out[3] = timer end
end
-- a call that changed nothing may run again: nothing to remember
if acked > 0 or delivered > 0 or out[2] == 1 then return remember(KEYS[ops], out) end
return out
