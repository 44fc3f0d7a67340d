#!lua flags=allow-oom
-- mark.lua: record where an output's acknowledged results end, when Redis is out of memory
-- (a sink starting on a new file then: its size). Allowed to run at maxmemory (allow-oom):
-- the sink must start to free memory. Only called after a native HSET was refused with OOM.
--
-- KEYS[1]  output marks   redpool:{NAME}:outputs
-- ARGV[1]  output name
-- ARGV[2]  bytes of it that hold acknowledged results
--
-- Returns 1.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
