-- take.lua: move up to N items from a source list into a holding list, reliably.
--
-- Used by worker children (source = tasks, holding = the child's inflight list) and by the
-- sink (source = results, holding = sinking). A crash after this script loses nothing: the
-- items sit in the holding list until the holder commits, or until a supervisor / reaper
-- returns them.
--
-- KEYS[1]  source list            redpool:{NAME}:tasks | redpool:{NAME}:results
-- KEYS[2]  holding list           redpool:{NAME}:inflight:<worker>:<slot> | redpool:{NAME}:sinking
-- ARGV[1]  N, the most items to take
--
-- Reads and writes: LRANGE holding; LPOP source, RPUSH holding.
-- Returns: the items now held, oldest first. When the holding list is not empty (a reply lost
-- to a dropped connection, or a Redis restart that replayed a take) it returns what is already
-- held and takes nothing new, so the holder finishes that first.
local held = redis.call('LRANGE', KEYS[2], 0, -1)
if #held > 0 then
  return held
end
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if not items then
  return {}
end
redis.call('RPUSH', KEYS[2], unpack(items))
return items
