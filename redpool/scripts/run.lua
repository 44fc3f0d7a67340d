-- run.lua: a pipeline's runs: a producer joins the current run or starts the next one
-- ('join'), and the sink marks a run ended once it drained it ('finish').
--
-- KEYS[1]  run hash          redpool:{NAME}:run              (id, state, started, ended)
-- KEYS[2]  producers hash    redpool:{NAME}:producers        (producer id -> state)
-- KEYS[3]  producer leases   redpool:{NAME}:producer-leases  (producer id -> expiry, ms)
-- KEYS[4]  stats hash        redpool:{NAME}:stats
-- KEYS[5]  last run          redpool:{NAME}:last-run         (JSON summary of the run before)
-- KEYS[6]  pace hash         redpool:{NAME}:pace
-- ARGV[1]  'join', 'follow' or 'finish'
-- ARGV[2]  join, follow: the producer id   finish: the run id the sink drained
-- ARGV[3]  join, follow: its lease, in ms  finish: '' or, on a sharded pipeline's head, how
--          many producers the head had when the sink found every shard drained (a producer
--          that joined since keeps the run going)
-- ARGV[4]  how long an ended run's bookkeeping stays, in ms
-- ARGV[5]  follow: the head's run id        finish: 'incomplete' when another shard's part
--          of the run ended incomplete, else ''
-- ARGV[6]  '1' on a sharded pipeline: a run ends by 'finish' only (the sink, which looked at
--          every shard), never by a join that finds this shard drained
--
-- A sharded pipeline's runs are its head's (the first shard): a producer joins the head,
-- then 'follow's the head's run on every other shard, which starts that run there (or opens
-- it again, when this shard's part of it had ended) and joins the producer to it.
-- A producer's state is the number of its last batch while it is open, else 'closed',
-- 'aborted: <why>' or 'abandoned' (its lease ran out). A run's state is 'running' until
-- every producer that joined has left and a result of every submitted task was drained;
-- then 'complete' when every producer closed, 'incomplete' when one aborted or was
-- abandoned. An ended run's keys expire after ARGV[4] ms, unless the next run starts first:
-- then its summary moves to last-run (expiring ARGV[4] ms after that run ended), and the
-- counters start at zero.
-- A producer that joins a run still going (even one whose producers all left while its
-- results drain) joins it.
--
-- Returns for 'join' {run id, 1 when this join started the run else 0}; for 'finish' the
-- run's state after the call ('running' when not yet drained, or when ARGV[2] is not the
-- current run).
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local keep = tonumber(ARGV[4])

local function outcome()
  -- 'complete' or 'incomplete' once the run has ended, else false
  local open, left, clean = 0, 0, true
  for _, state in ipairs(redis.call('HVALS', KEYS[2])) do
    if tonumber(state) then
      open = open + 1
    else
      left = left + 1
      clean = clean and state == 'closed'
    end
  end
  local submitted = tonumber(redis.call('HGET', KEYS[4], 'submitted') or '0')
  local drained = tonumber(redis.call('HGET', KEYS[4], 'drained') or '0')
  if open > 0 or left == 0 or drained < submitted then
    return false
  end
  return clean and 'complete' or 'incomplete'
end

local function finish(state)
  redis.call('HSET', KEYS[1], 'state', state, 'ended', ms)
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], keep)
  end
  redis.call('PEXPIRE', KEYS[6], keep)
end

local function since_looked()
  -- a producer joined a sharded head after the sink found every shard drained
  return ARGV[3] ~= '' and redis.call('HLEN', KEYS[2]) ~= tonumber(ARGV[3])
end

local id = tonumber(redis.call('HGET', KEYS[1], 'id'))
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'running' and (ARGV[1] == 'finish' or ARGV[6] ~= '1') then
  local ended = outcome()
  if ended and ARGV[1] == 'finish' and since_looked() then
    ended = false
  end
  if ended and ARGV[1] == 'finish' and ARGV[5] == 'incomplete' then
    ended = 'incomplete'
  end
  if ended then  -- drained, and no sink has said so yet
    finish(ended)
    state = ended
  end
end

if ARGV[1] == 'finish' then
  if id ~= tonumber(ARGV[2]) then
    return 'running'
  end
  return state or 'running'
end

local function start(next_id)
  -- the run before is summed up in last-run, and the counters start at zero
  if id then
    local summary = {id = id, state = state, producers = {}, stats = {}}
    for _, field in ipairs({'started', 'ended'}) do
      summary[field] = tonumber(redis.call('HGET', KEYS[1], field))
    end
    for _, state in ipairs(redis.call('HVALS', KEYS[2])) do
      local kind = string.match(state, '^%a+') or 'open'
      summary.producers[kind] = (summary.producers[kind] or 0) + 1
    end
    local stats = redis.call('HGETALL', KEYS[4])
    for i = 1, #stats, 2 do
      summary.stats[stats[i]] = tonumber(stats[i + 1])
    end
    -- kept for what is left of its 7 days since it ended
    local left = keep - (ms - (summary.ended or ms))
    if left > 0 then
      redis.call('SET', KEYS[5], cjson.encode(summary), 'PX', left)
    else
      redis.call('DEL', KEYS[5])
    end
  end
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[1], 'id', next_id, 'state', 'running', 'started', ms)
  redis.call('PERSIST', KEYS[6])
end

local started = 0
if ARGV[1] == 'follow' then
  local head = tonumber(ARGV[5])
  if id == head and state ~= 'running' then  -- this shard's part had ended: open it again
    redis.call('HSET', KEYS[1], 'state', 'running')
    redis.call('HDEL', KEYS[1], 'ended')
    for _, i in ipairs({1, 2, 3, 4, 6}) do
      redis.call('PERSIST', KEYS[i])
    end
  elseif not id or id < head then
    start(head)
    started = 1
  elseif id > head then
    return redis.error_reply('RUNAHEAD shard is at run ' .. id .. ', the head at ' .. head)
  end
  id = head
elseif not id or state ~= 'running' then
  start((id or 0) + 1)
  id = (id or 0) + 1
  started = 1
end
redis.call('HSETNX', KEYS[2], ARGV[2], 0)
redis.call('ZADD', KEYS[3], ms + tonumber(ARGV[3]), ARGV[2])
return {id, started}
