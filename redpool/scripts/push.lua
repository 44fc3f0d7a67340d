-- push.lua: a producer's batch of tasks, exactly once.
--
-- KEYS[1]  tasks list        redpool:{NAME}:tasks
-- KEYS[2]  producers hash    redpool:{NAME}:producers        (producer id -> state)
-- KEYS[3]  stats hash        redpool:{NAME}:stats
-- KEYS[4]  pace hash         redpool:{NAME}:pace             (task name -> µs per task)
-- KEYS[5]  producer leases   redpool:{NAME}:producer-leases  (producer id -> expiry, ms)
-- ARGV[1]  producer id
-- ARGV[2]  batch number, 1, 2, 3 ... for this producer
-- ARGV[3]  how many tasks the batch holds (its elements are single tasks or chunks)
-- ARGV[4]  the task name whose pace the producer wants back
-- ARGV[5]  the producer's lease, in ms (a push renews it)
-- ARGV[6 ..] task elements
--
-- A producer's state (see run.lua) is the number of its last batch while it is open. A
-- batch number not above it is a retry whose first try went through (its reply was lost
-- with the connection): nothing is pushed twice. Counts the tasks in stats.submitted, the
-- number the sink waits for.
-- Returns {length of the tasks list (for backpressure), the task's pace or false}, or a
-- STREAMCLOSED error when the producer is not open in the current run.
local last = redis.call('HGET', KEYS[2], ARGV[1])
if not (last and tonumber(last)) then
  local why = last or 'not part of the current run (it never joined, or that run ended)'
  return redis.error_reply('STREAMCLOSED producer ' .. ARGV[1] .. ': ' .. why)
end
if tonumber(last) < tonumber(ARGV[2]) then
  for i = 6, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  redis.call('HINCRBY', KEYS[3], 'submitted', ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[5], ms + tonumber(ARGV[5]), ARGV[1])
return {redis.call('LLEN', KEYS[1]), redis.call('HGET', KEYS[4], ARGV[4])}
