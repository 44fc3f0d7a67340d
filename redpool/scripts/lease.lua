-- lease.lua: take, renew or give up a single-holder lease (the sink's).
--
-- KEYS[1]  lease key   redpool:{NAME}:sink
-- ARGV[1]  holder id
-- ARGV[2]  lease length in ms; 0 gives the lease up
--
-- Takes or renews the lease when it is free or already ours; never touches another
-- holder's. Returns 1 when we hold it (or gave it up), 0 when someone else holds it.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
