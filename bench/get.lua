-- wrk -s bench/get.lua http://HOST:PORT/q/QUEUE : take one message per request (the queue must not run empty:
-- a 204 is not an error to wrk, so bench/run.py pre-fills the queue and checks it is still non-empty afterwards).
wrk.method = "GET"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")
