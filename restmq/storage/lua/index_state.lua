-- index_state: what the cross-slot indexes should hold for a queue (read by the background index repair).
-- KEYS[1..9] the queue's message keys.
-- Reply: {listed: 1 when the queue belongs in the registry, else 0; its next timer deadline in ms or -1}
return {redis.call('HEXISTS', K_META, 'listed'), next_deadline()}
