-- forget.lua: drop a reaped worker host from the registry, unless it came back.
--
-- KEYS[1]  leases zset    redpool:{NAME}:leases
-- KEYS[2]  workers hash   redpool:{NAME}:workers
-- ARGV[1]  supervisor id
-- ARGV[2]  the expiry the reaper saw; a host that renewed its lease since is kept
--
-- Returns 1 if dropped, 0 if it renewed (or was already gone).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
