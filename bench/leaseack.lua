-- wrk -s bench/leaseack.lua http://HOST:PORT/q/QUEUE : lease+ack cycles. Each connection alternates
-- GET /q/QUEUE?lease=30 (take a message under a 30 s lease) and DELETE /q/QUEUE/<key>?count=<n> (ack
-- it); a cycle is two requests. Keys taken but not yet acked wait in a per-thread list, so any of the
-- thread's connections may ack them.
local pending = {}
local take = nil

function init(args)
  take = wrk.format("GET", wrk.path .. "?lease=30")
end

function request()
  local ack = table.remove(pending)
  if ack then
    return wrk.format("DELETE", ack)
  end
  return take
end

function response(status, headers, body)
  -- only a lease answers with an object that starts with its key; an ack answers {"queue": ...}
  if status == 200 and body:sub(1, 8) == '{"key":"' then
    local key, count = body:match('^{"key":"([^"]+)".-"count":(%d+)')
    pending[#pending + 1] = wrk.path .. "/" .. key .. "?count=" .. count
  end
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
