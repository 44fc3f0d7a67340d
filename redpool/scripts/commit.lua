-- commit.lua: a worker child's results for the batch it holds, in one atomic step.
--
-- KEYS[1]  inflight list of this child   redpool:{NAME}:inflight:<worker>:<slot>
-- KEYS[2]  results list                  redpool:{NAME}:results
-- KEYS[3]  dead list                     redpool:{NAME}:dead
-- KEYS[4]  delayed zset                  redpool:{NAME}:delayed
-- KEYS[5]  stats hash                    redpool:{NAME}:stats
-- KEYS[6]  last commit token             redpool:{NAME}:committed:inflight:<worker>:<slot>
-- ARGV[1]  how many items the child holds
-- ARGV[2]  the first item it holds (with ARGV[1], the fence)
-- ARGV[3]  this commit's token, unique to the child and the batch
-- ARGV[4]  number of results R     ARGV[5] number of dead letters D
-- ARGV[6]  number of retries T     ARGV[7] ok count     ARGV[8] failed count
-- ARGV[9 .. 9+R-1]                 results
-- then D dead letters, then T pairs (delay in ms, task envelope)
--
-- The fence: if the inflight list is no longer exactly what this child took, nothing is
-- written. That is what makes a task that ran twice still yield one result. Two cases look
-- alike from the list alone, so the token tells them apart: this same commit already ran and
-- only its reply was lost (returns 2), or a reaper gave the batch back after the lease ran
-- out (returns 0). Otherwise the inflight list is deleted, results / dead letters / retries
-- are written, the counters move, the token is kept for 10 minutes, and 1 is returned.
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1])
    or redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2] then
  if redis.call('GET', KEYS[6]) == ARGV[3] then
    return 2
  end
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[6], ARGV[3], 'PX', 600000)
local r, d, t = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local i = 9
if r > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, i + r - 1))
  i = i + r
end
if d > 0 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, i, i + d - 1))
  i = i + d
end
if t > 0 then
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  for j = 0, t - 1 do
    redis.call('ZADD', KEYS[4], ms + tonumber(ARGV[i + 2 * j]), ARGV[i + 2 * j + 1])
  end
  redis.call('HINCRBY', KEYS[5], 'retried', t)
end
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[5], 'ok', ARGV[7]) end
if tonumber(ARGV[8]) > 0 then redis.call('HINCRBY', KEYS[5], 'failed', ARGV[8]) end
return 1
