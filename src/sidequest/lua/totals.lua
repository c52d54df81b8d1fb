-- The dashboard totals that need one read per queue or process, summed inside Redis so that
-- a poll costs one command however many queues and processes there are.
-- KEYS: queue:<name> of every queue (ARGV[1] of them), then the hash of each Sidequest
-- process (ARGV[2] of them), then each one's lease in the same order, then the hash of each
-- other (Ruby) process.
-- A Sidequest process whose lease is gone is dead, though its hash outlives it until a reaper
-- recovers its jobs: its jobs are waiting to run elsewhere, not running, so it is left out
-- (as the Busy page leaves it out). Ruby processes hold no lease.
-- A key of the wrong type counts 0 (pcall) rather than failing the whole poll.
-- Returns {jobs enqueued in all queues, jobs running in live processes, live processes}.
local queues, ours = tonumber(ARGV[1]), tonumber(ARGV[2])
local enqueued, busy, alive = 0, 0, 0
for i = 1, queues do
  enqueued = enqueued + (tonumber(redis.pcall('LLEN', KEYS[i])) or 0)
end
local function count(i)  -- the process hash KEYS[i]
  local running = redis.pcall('HGET', KEYS[i], 'busy')
  if type(running) == 'string' then
    busy = busy + (tonumber(running) or 0)
    alive = alive + 1
  end
end
for i = 1, ours do
  if redis.call('EXISTS', KEYS[queues + ours + i]) == 1 then
    count(queues + i)
  end
end
for i = queues + 2 * ours + 1, #KEYS do
  count(i)
end
return {enqueued, busy, alive}
