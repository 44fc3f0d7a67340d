-- heartbeat.lua: renew a worker host's lease and describe it.
--
-- KEYS[1]  leases zset    redpool:{NAME}:leases    (supervisor id -> lease expiry, ms)
-- KEYS[2]  workers hash   redpool:{NAME}:workers   (supervisor id -> JSON description)
-- ARGV[1]  supervisor id
-- ARGV[2]  lease length in ms
-- ARGV[3]  JSON description
--
-- The expiry is on the Redis clock, the one every host reads. Returns the Redis time in ms.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return ms
