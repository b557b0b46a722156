-- deadline: a queue's next timer deadline (lease, delay or ttl): the reaper's second look after its index write.
-- KEYS[1..9] the queue's message keys.  Reply: the deadline in ms, or -1 when it has no timers.
return next_deadline()
