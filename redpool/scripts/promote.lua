-- promote.lua: move retries whose time has come from the delayed set to the head of tasks.
--
-- KEYS[1]  delayed zset   redpool:{NAME}:delayed   (score = due time, ms, Redis clock)
-- KEYS[2]  tasks list     redpool:{NAME}:tasks
-- ARGV[1]  the most to move in one call
--
-- Uses the Redis clock, so hosts with skewed clocks agree. Returns how many moved.
if redis.call('ZCARD', KEYS[1]) == 0 then
  return 0
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms, 'LIMIT', 0, tonumber(ARGV[1]))
if #due > 0 then
  redis.call('LPUSH', KEYS[2], unpack(due))
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
