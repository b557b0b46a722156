-- history: the newest broadcast deliveries of a queue, newest first, for an SSE replay (Last-Event-ID).
-- KEYS[1] the queue's history list
-- ARGV[1] most entries  ARGV[2] most bytes of entries as stored (-1: no limit)
-- ARGV[3] the key a replay resumes after ('' when none)  ARGV[4] oldest broadcast time to include (ms)
-- Reply: {since_ms, entry1, entry2, ...}: entries as stored (JSON {key,value,count,t}), newest first, all
-- newer than the ARGV[3] entry; since_ms is that entry's broadcast time when the walk reached it, else -1.
-- The walk stops at the ARGV[3] entry (however old), at another entry older than ARGV[4], before the entry
-- that would pass either limit, or at the end of the list, so a replay never reads (or sends) more than it
-- may keep.
-- Only an entry's size and its "key" and "t" fields are read, by plain search: inside the stored JSON
-- every quote of a value is escaped, so '"key":"' and '"t":' only match the fields themselves.
local limit, max_bytes, since, oldest = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local marker = since ~= '' and ('"key":"' .. since .. '"') or nil
local out, bytes, index = {-1}, 0, 0
while index < limit do
  -- a few at a time: entries may be up to a message's size each, and most of them may not be needed
  local items = redis.call('LRANGE', KEYS[1], index, math.min(index + 8, limit) - 1)
  if #items == 0 then break end
  for _, item in ipairs(items) do
    local at = string.find(item, '"t":', 1, true)
    local t = at and tonumber(string.match(item, '^%d+', at + 4)) or 0
    -- the resume point first: reached even when older than ARGV[4] (nothing newer aged out before it)
    if marker and string.find(item, marker, 1, true) then
      out[1] = t
      return out
    end
    if t < oldest then return out end
    bytes = bytes + #item
    if max_bytes >= 0 and bytes > max_bytes then return out end
    out[#out + 1] = item
  end
  index = index + #items
end
return out
