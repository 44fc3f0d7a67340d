-- take.lua: move up to N elements from a source list into a holding list, in one step.
--
-- KEYS[1]  source list    redpool:{NAME}:tasks | redpool:{NAME}:results
-- KEYS[2]  holding list   redpool:{NAME}:inflight:<worker>:<slot> | redpool:{NAME}:sinking
-- ARGV[1]  N, the most elements to move (at most 5,000: Lua's unpack has a limit)
--
-- For many small elements (single tasks and their results) one script beats N native LMOVEs,
-- whose per-command cost then dominates; one big element (a chunk) moves with a native
-- LMOVE instead, as a script would copy it into Lua and back (see redpool/holding.py).
-- Returns the elements moved, oldest first.
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if not items then
  return {}
end
redis.call('RPUSH', KEYS[2], unpack(items))
return items
