-- holder.lua: what a holder's settle is fenced on, read in one step (reads only).
--
-- KEYS[1]  the holding list    redpool:{NAME}:inflight:<worker>:<slot> | redpool:{NAME}:sinking
-- KEYS[2]  its take's token    redpool:{NAME}:held:<holding list>
--
-- Returns {the token (or false), the length of the holding list}.
return {redis.call('GET', KEYS[2]), redis.call('LLEN', KEYS[1])}
