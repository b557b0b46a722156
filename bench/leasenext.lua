-- wrk -s bench/leasenext.lua http://HOST:PORT/q/QUEUE : lease+ack cycles with the ack carried on the next lease.
-- Each request is GET /q/QUEUE?lease=30&ack=<key>@<count>, acknowledging a message an earlier request leased
-- (GET /q/QUEUE?lease=30 alone when none waits): one request per cycle. Keys leased but not yet acked wait in
-- a per-thread list, so any of the thread's connections may ack them.
local pending = {}
local lease = nil

function init(args)
  lease = wrk.path .. "?lease=30"
end

function request()
  local ack = table.remove(pending)
  if ack then
    return wrk.format("GET", lease .. "&ack=" .. ack)
  end
  return wrk.format("GET", lease)
end

function response(status, headers, body)
  if status == 200 then
    local key, count = body:match('^{"key":"([^"]+)".-"count":(%d+)')
    if key then pending[#pending + 1] = key .. "@" .. count end
  end
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
