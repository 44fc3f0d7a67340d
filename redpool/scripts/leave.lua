-- leave.lua: a producer leaves the run: it closed, aborted, or its lease ran out.
--
-- KEYS[1]  producers hash    redpool:{NAME}:producers        (producer id -> state)
-- KEYS[2]  producer leases   redpool:{NAME}:producer-leases  (producer id -> expiry, ms)
-- ARGV[1]  producer id
-- ARGV[2]  its new state: 'closed', 'aborted: <why>' or 'abandoned'
-- ARGV[3]  '1': only if its lease has run out (on the Redis clock); '0': whatever the lease
--
-- Only an open producer leaves, once: whoever comes second (the producer's own close after
-- a reaper called it abandoned, a close repeated after a lost reply) changes nothing.
-- Returns 1 when it left now, 0 when it had left already, is not in this run, or renewed.
local state = redis.call('HGET', KEYS[1], ARGV[1])
if not (state and tonumber(state)) then
  return 0
end
if ARGV[3] == '1' then
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local expiry = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]))
  if expiry and expiry > ms then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
