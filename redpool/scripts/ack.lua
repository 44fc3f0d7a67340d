#!lua flags=allow-oom
-- ack.lua: the sink's settle when Redis is out of memory: what holding.settle does with a
-- transaction (MULTI is refused at maxmemory, even for reads), in one step. Allowed to run
-- at maxmemory (allow-oom): deleting the sinking list is what frees memory. Only called after
-- a native settle was refused with OOM (Redis < 7 and fakeredis lack script flags).
--
-- KEYS[1]  sinking list   redpool:{NAME}:sinking
-- KEYS[2]  its token      redpool:{NAME}:held:<sinking list>
-- KEYS[3]  counters       redpool:{NAME}:stats
-- KEYS[4]  output marks   redpool:{NAME}:outputs
-- ARGV[1]  the take's token
-- ARGV[2]  elements taken (the fence: the list must still be that long)
-- ARGV[3]  ms to keep the done token (for a repeated settle)
-- ARGV[4]  answers to count as drained     ARGV[5]  answers to count as sunk
-- ARGV[6]  output name ('' for none)       ARGV[7]  bytes of it that hold acknowledged results
--
-- Returns 1 when acknowledged now, 2 when this very settle had been done (a reply lost), 0
-- when the list was taken back meanwhile (nothing is written).
local token = redis.call('GET', KEYS[2])
if token ~= ARGV[1] or redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[2]) then
  if token == 'done:' .. ARGV[1] then
    return 2
  end
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], 'done:' .. ARGV[1], 'PX', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('HINCRBY', KEYS[3], 'drained', ARGV[4])
end
if tonumber(ARGV[5]) > 0 then
  redis.call('HINCRBY', KEYS[3], 'sunk', ARGV[5])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[6], ARGV[7])
end
return 1
