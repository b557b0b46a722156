-- index_state: what the cross-slot indexes should hold for one or more queues (read by the background index
-- repair; on a cluster, queues of one hash slot per call).
-- KEYS, for each queue in turn: its meta, delayed, leased and expires keys.
-- Reply: for each queue, {1 when it belongs in the registry (its meta's `listed` flag) else 0,
--                         its next timer deadline (delay, lease or ttl) in ms, or -1}
-- A queue whose keys hold the wrong type (written by hand, or by another program) reads as {0, -1}: one damaged
-- queue must not stop the repair of every other.
local function state(k)
  local best = -1
  if redis.call('EXISTS', KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]) > 0 then  -- most queues have no timers
    for j = k + 1, k + 3 do
      local t = earliest(KEYS[j])
      if t and (best < 0 or t < best) then best = t end
    end
  end
  return {redis.call('HEXISTS', KEYS[k], 'listed'), best}
end

local out = {}
for k = 1, #KEYS, 4 do
  local ok, found = pcall(state, k)
  out[#out + 1] = ok and found or {0, -1}
end
return out
