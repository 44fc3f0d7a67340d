-- ack.lua: the sink has written the results it holds; forget them and count them.
--
-- KEYS[1]  sinking list   redpool:{NAME}:sinking
-- KEYS[2]  stats hash     redpool:{NAME}:stats
-- ARGV[1]  how many items the sink holds
-- ARGV[2]  the first item it holds (with ARGV[1], the fence against acking twice)
-- ARGV[3]  how many of them answer a task a producer submitted (they count toward the end
--          of the stream; a stray payload pushed by hand does not)
--
-- Returns 1 when acknowledged, 0 when the fence did not match (already acknowledged).
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1])
    or redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'drained', ARGV[3])
return 1
