-- schedule_reserve: enter a new schedule in this node's index, unless the index is full.
-- KEYS[1] rmq:schedules (this script uses none of the prelude's queue keys)
-- ARGV[1] schedule id  ARGV[2] its queue  ARGV[3] the most schedules the index may hold
-- Reply: 1 entered, 0 full.
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
