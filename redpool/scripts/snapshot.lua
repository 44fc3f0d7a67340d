-- snapshot.lua: one consistent reading of a pipeline, for `redpool status`, the sink's and
-- the workers' "is everything done?". It only reads, so Redis runs it at maxmemory too.
--
-- KEYS[1]  tasks list       KEYS[2]  delayed zset     KEYS[3]  results list
-- KEYS[4]  dead list        KEYS[5]  producers hash   KEYS[6]  stats hash
-- KEYS[7]  leases zset      KEYS[8]  workers hash
-- ARGV[1]  the in-flight key prefix, redpool:{NAME}:inflight:
--
-- The in-flight lists of every registered worker host (inflight:<host>:<child>, one per
-- process its description names) are read in the same step as the queue, the retries and
-- the results, so a task moving between them is never missed or counted twice.
--
-- Returns {backlog, delayed, results, dead, producers' values, stats (field, value, ...),
-- leases (host, expiry ms, ...), workers (host, description, ...), Redis TIME, tasks in
-- flight}.
local workers = redis.call('HGETALL', KEYS[8])
local in_flight = 0
for i = 1, #workers, 2 do
  local ok, info = pcall(cjson.decode, workers[i + 1])
  local n = ok and type(info) == 'table' and tonumber(info['processes']) or 0
  for slot = 0, math.min(n, 4096) - 1 do
    in_flight = in_flight + redis.call('LLEN', ARGV[1] .. workers[i] .. ':' .. slot)
  end
end
return {
  redis.call('LLEN', KEYS[1]),
  redis.call('ZCARD', KEYS[2]),
  redis.call('LLEN', KEYS[3]),
  redis.call('LLEN', KEYS[4]),
  redis.call('HVALS', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
  redis.call('ZRANGE', KEYS[7], 0, -1, 'WITHSCORES'),
  workers,
  redis.call('TIME'),
  in_flight,
}
