#!lua flags=allow-oom
-- drain.lua: the sink's take when Redis is out of memory: move up to N elements of the
-- results list into the sinking list, under a new token, in one step. Allowed to run at
-- maxmemory (allow-oom): it only moves elements (memory stays about the same), and the
-- acknowledgement that follows (ack.lua) is what frees memory. Only called after a native
-- take was refused with OOM, so Redis < 7 and fakeredis, which lack flags, never see it.
--
-- KEYS[1]  results list   redpool:{NAME}:results
-- KEYS[2]  sinking list   redpool:{NAME}:sinking
-- KEYS[3]  its token      redpool:{NAME}:held:<sinking list>
-- ARGV[1]  N, the most elements to move (at most 5,000: Lua's unpack has a limit)
-- ARGV[2]  the take's token
--
-- Returns what the sinking list held before (a take whose reply was lost) followed by the
-- elements moved, oldest first: all of them are now held under the new token.
redis.call('SET', KEYS[3], ARGV[2])
local held = redis.call('LRANGE', KEYS[2], 0, -1)
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if items then
  redis.call('RPUSH', KEYS[2], unpack(items))
  for _, item in ipairs(items) do
    held[#held + 1] = item
  end
end
return held
