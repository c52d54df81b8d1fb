-- Acknowledge finished jobs and fetch new ones for one process, in one round trip.
-- KEYS[1]      sq:inprogress:<identity>   the process's in-progress list
-- KEYS[2]      sq:processes               owners of in-progress lists, for the reapers
-- KEYS[3..]    queue:<name> ...            queues in the order to try (strict or shuffled)
-- ARGV[1]      the process identity
-- ARGV[2]      how many jobs to fetch (0: only acknowledge)
-- ARGV[3]      weighted queues: one byte per job, the position (1 = KEYS[3]) of the queue
--              that job tries first, drawn by weight; the others follow in KEYS order.
--              Empty: every job tries the queues in KEYS order (strict).
-- ARGV[4..]    raw payloads of finished jobs to remove from the in-progress list
-- Returns a flat array: queue key, payload, queue key, payload, ...
-- A job moves atomically from its queue into the in-progress list (LMOVE), so at every
-- moment it is in Redis; the in-progress list is recovered if the process dies.
local inprogress = KEYS[1]
-- From the tail: jobs are pushed at the head, so the finished ones are near the tail and
-- LREM stops after a few entries instead of walking the whole list (a deep prefetch made the
-- acknowledgement the costliest command of a run).
for i = 4, #ARGV do
  redis.call('LREM', inprogress, -1, ARGV[i])
end
local want = tonumber(ARGV[2])
local out = {}
if want <= 0 then return out end
-- Registered on every fetch, so a reaper that removed us during an outage cannot
-- leave the jobs we fetch afterwards without an owner it knows of.
redis.call('SADD', KEYS[2], ARGV[1])
local plan = ARGV[3]
if plan == '' then
  for k = 3, #KEYS do
    while want > 0 do
      local job = redis.call('LMOVE', KEYS[k], inprogress, 'RIGHT', 'LEFT')
      if not job then break end
      out[#out + 1] = KEYS[k]
      out[#out + 1] = job
      want = want - 1
    end
    if want == 0 then break end
  end
  return out
end
-- Weighted: each job draws its own first queue, as when each thread fetches for itself, so
-- a batch mixes the queues by weight instead of emptying the first one drawn.
local empty = {}
local function take(k)
  if empty[k] then return nil end
  local job = redis.call('LMOVE', KEYS[k], inprogress, 'RIGHT', 'LEFT')
  if not job then empty[k] = true end
  return job
end
for n = 1, want do
  local first = 2 + (string.byte(plan, n) or 1)
  if first < 3 or first > #KEYS then first = 3 end
  local key, job = first, take(first)
  if not job then
    for k = 3, #KEYS do
      if k ~= first then
        job = take(k)
        if job then key = k; break end
      end
    end
  end
  if not job then break end
  out[#out + 1] = KEYS[key]
  out[#out + 1] = job
end
return out
