-- push.lua: a producer's batch of tasks, exactly once.
--
-- KEYS[1]  tasks list       redpool:{NAME}:tasks
-- KEYS[2]  producers hash   redpool:{NAME}:producers   (producer id -> last batch | "closed")
-- KEYS[3]  stats hash       redpool:{NAME}:stats
-- KEYS[4]  pace hash        redpool:{NAME}:pace        (task name -> microseconds per task)
-- ARGV[1]  producer id
-- ARGV[2]  batch number, 1, 2, 3 ... for this producer
-- ARGV[3]  how many tasks the batch holds (its elements are single tasks or chunks)
-- ARGV[4]  the task name whose pace the producer wants back
-- ARGV[5 ..] task elements
--
-- A batch number not above the last one recorded is a retry whose first try went through
-- (its reply was lost with the connection): nothing is pushed twice. Counts the tasks in
-- stats.submitted, the number the sink waits for.
-- Returns {length of the tasks list (for backpressure), the task's pace or false}, or an
-- error once this producer closed.
local last = redis.call('HGET', KEYS[2], ARGV[1])
if last == 'closed' then
  return redis.error_reply('STREAMCLOSED producer ' .. ARGV[1] .. ' already closed its stream')
end
if (not last) or tonumber(last) < tonumber(ARGV[2]) then
  for i = 5, #ARGV, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  redis.call('HINCRBY', KEYS[3], 'submitted', ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return {redis.call('LLEN', KEYS[1]), redis.call('HGET', KEYS[4], ARGV[4])}
