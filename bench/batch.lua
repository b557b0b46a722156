-- wrk -s bench/batch.lua http://HOST:PORT/q/QUEUE : a JSON array of 100 messages of 100 bytes per request.
local messages = {}
for i = 1, 100 do
  messages[i] = '"' .. string.rep("m", 100) .. '"'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "[" .. table.concat(messages, ",") .. "]"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
