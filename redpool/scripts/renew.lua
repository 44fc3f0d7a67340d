-- renew.lua: renew an open producer's lease (its heartbeat).
--
-- KEYS[1]  producers hash    redpool:{NAME}:producers        (producer id -> state)
-- KEYS[2]  producer leases   redpool:{NAME}:producer-leases  (producer id -> expiry, ms)
-- ARGV[1]  producer id
-- ARGV[2]  lease length in ms
--
-- The expiry is on the Redis clock. A producer that has left (or was called abandoned
-- while it stalled) is not renewed: it learns so here, and its next push is refused.
-- Returns 1 when renewed, 0 when the producer is no longer open in this run.
local state = redis.call('HGET', KEYS[1], ARGV[1])
if not (state and tonumber(state)) then
  return 0
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[2], ms + tonumber(ARGV[2]), ARGV[1])
return 1
