-- commit.lua: a worker child's results for the batch it holds, in one atomic step.
--
-- KEYS[1]  inflight list of this child   redpool:{NAME}:inflight:<worker>:<slot>
-- KEYS[2]  results list                  redpool:{NAME}:results
-- KEYS[3]  dead list                     redpool:{NAME}:dead
-- KEYS[4]  delayed zset                  redpool:{NAME}:delayed
-- KEYS[5]  stats hash                    redpool:{NAME}:stats
-- ARGV[1]  how many items the child holds
-- ARGV[2]  the first item it holds (with ARGV[1], the fence)
-- ARGV[3]  number of results R     ARGV[4] number of dead letters D
-- ARGV[5]  number of retries T     ARGV[6] ok count     ARGV[7] failed count
-- ARGV[8 .. 8+R-1]                 results
-- then D dead letters, then T pairs (delay in ms, task envelope)
--
-- The fence: if the inflight list is no longer exactly what this child took (a reaper
-- returned it after the lease ran out, or this same commit already ran and its reply was
-- lost), nothing is written and 0 is returned. That is what makes a task that ran twice
-- still yield one result. Otherwise the inflight list is deleted, results / dead letters /
-- retries are written, the counters move, and 1 is returned.
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1])
    or redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
local r, d, t = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local i = 8
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
if tonumber(ARGV[6]) > 0 then redis.call('HINCRBY', KEYS[5], 'ok', ARGV[6]) end
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[5], 'failed', ARGV[7]) end
return 1
