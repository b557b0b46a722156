-- deadline: a queue's next timer deadline (lease, delay or ttl), for rebuilding the reaper's index.
-- KEYS[1..9] the queue's message keys.  Reply: the deadline in ms, or -1 when it has no timers.
return next_deadline()
