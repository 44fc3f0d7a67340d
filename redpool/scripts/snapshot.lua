-- snapshot.lua: one consistent reading of a pipeline, for `redpool status`, the sink's and
-- the workers' "is everything done?". It only reads, so Redis runs it at maxmemory too.
--
-- KEYS[1]  tasks list       KEYS[2]  delayed zset     KEYS[3]  results list
-- KEYS[4]  dead list        KEYS[5]  producers hash   KEYS[6]  stats hash
-- KEYS[7]  leases zset      KEYS[8]  workers hash     KEYS[9]  run hash
-- KEYS[10] producer leases  KEYS[11] last-run string
-- KEYS[12...] in-flight lists the caller found by SCAN just before (none: the registered
--          hosts' lists alone)
-- ARGV[1]  the in-flight key prefix, redpool:{NAME}:inflight:
-- ARGV[2]  how many elements of a list to read to count its tasks (0: count elements only)
--
-- An element is a single task or a chunk whose "n" (first in its JSON) says how many tasks
-- it holds. Past ARGV[2] elements, the mean of those read stands for the rest, and the
-- reading says it is an estimate. The in-flight lists of every registered worker host
-- (inflight:<host>:<child>, one per process its description names) are read in the same step
-- as the queue, the retries and the results, so a task moving between them is never missed
-- or counted twice. The lists in KEYS[12...] that are not among those are counted too: an
-- orphan, filled after its host was reaped, holds tasks until a reaper gives them back.
--
-- Returns {elements, tasks} of the queue, the delayed count, {elements, tasks} of results,
-- dead letters, producers (id, state, ...), stats (field, value, ...), leases (host, expiry
-- ms, ...), workers (host, description, ...), Redis TIME, {elements, tasks} in flight, 1 when
-- every task count is exact (else 0), the run (field, value, ...), producer leases (id,
-- expiry ms, ...), the last run's summary (JSON, or false).
local cap = tonumber(ARGV[2])
local exact = 1
local function count(key)
  local len = redis.call('LLEN', key)
  if cap == 0 or len == 0 then
    return {len, len}
  end
  local read = redis.call('LRANGE', key, 0, cap - 1)
  local tasks = 0
  for _, element in ipairs(read) do
    tasks = tasks + (tonumber(string.match(element, '^{"n":(%d+),')) or 1)
  end
  if len > #read then
    exact = 0
    tasks = math.floor(tasks * len / #read + 0.5)
  end
  return {len, tasks}
end
local workers = redis.call('HGETALL', KEYS[8])
local held = {0, 0}
local counted = {}
local function hold(key)
  -- a key of another type where an in-flight list would be (a stray) is not counted
  if counted[key] then
    return
  end
  counted[key] = true
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'list' then
    local one = count(key)
    held[1], held[2] = held[1] + one[1], held[2] + one[2]
  end
end
for i = 1, #workers, 2 do
  local ok, info = pcall(cjson.decode, workers[i + 1])
  local n = ok and type(info) == 'table' and tonumber(info['processes']) or 0
  for slot = 0, math.min(n, 4096) - 1 do
    hold(ARGV[1] .. workers[i] .. ':' .. slot)
  end
end
for i = 12, #KEYS do
  hold(KEYS[i])
end
return {
  count(KEYS[1]),
  redis.call('ZCARD', KEYS[2]),
  count(KEYS[3]),
  redis.call('LLEN', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
  redis.call('ZRANGE', KEYS[7], 0, -1, 'WITHSCORES'),
  workers,
  redis.call('TIME'),
  held,
  exact,
  redis.call('HGETALL', KEYS[9]),
  redis.call('ZRANGE', KEYS[10], 0, -1, 'WITHSCORES'),
  redis.call('GET', KEYS[11]),
}
