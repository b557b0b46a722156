-- wrk -s bench/post.lua http://HOST:PORT/q/QUEUE : one 100-byte message per request, as a form.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "value=" .. string.rep("m", 100)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
