-- caller.lua: a caller's lease (a redpool.Pool or redpool.Executor), and its leaving.
--
-- KEYS[1]  callers zset      redpool:{NAME}:callers          (caller id -> expiry, ms)
-- KEYS[2]  reply list        redpool:{NAME}:replies:<caller>
-- KEYS[3]  replying list     redpool:{NAME}:replying:<caller>
-- KEYS[4]  its token         redpool:{NAME}:held:<replying list>
-- ARGV[1]  'renew', 'leave' or 'expire'
-- ARGV[2]  caller id
-- ARGV[3]  renew: the lease in ms
-- ARGV[4]  renew: 1 when the caller joins now (else a caller not in the set is gone)
--
-- 'renew' sets the caller's lease on the Redis clock (joining, or its heartbeat) and returns
-- 1, or 0 when the caller was called gone meanwhile (its answers were dropped: it must stop).
-- 'leave' drops the caller and every answer waiting for it. 'expire' does the same only if
-- its lease ran out (a reaper's call; 1 when it did).
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[2])
if ARGV[1] == 'renew' then
  local fresh = tonumber(ARGV[4] or '0') == 1
  if not expiry and not fresh then
    return 0
  end
  redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[2])
  return 1
end
if ARGV[1] == 'expire' and not (expiry and tonumber(expiry) <= ms) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return 1
