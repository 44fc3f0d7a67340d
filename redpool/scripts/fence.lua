-- fence.lua: a worker child's take, undone when its host's lease is gone (runs right after
-- the moves, in the same transaction).
--
-- KEYS[1]  leases zset    redpool:{NAME}:leases    (worker host id -> lease expiry, ms)
-- KEYS[2]  holding list   redpool:{NAME}:inflight:<worker>:<slot>
-- KEYS[3]  tasks list     redpool:{NAME}:tasks
-- KEYS[4]  its token      redpool:{NAME}:held:<holding list>
-- ARGV[1]  the worker host id
--
-- A host whose lease ran out is reaped (or about to be) by another host: its children must
-- hold nothing, or what they take after the reap is in a list nobody looks at. Lua cannot
-- stop the moves queued before it in a MULTI, so this undoes them: every element of the
-- holding list goes back to the head of the queue, in its order, uncharged (none of it ran
-- yet: a take hands its elements to the child only after this), and the token is deleted.
-- Copying elements through Lua costs, but only on this rare path.
-- Returns 1 while the lease holds, else 0.
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if expiry and tonumber(expiry) > ms then
  return 1
end
while redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT') do
end
redis.call('DEL', KEYS[4])
return 0
