-- The two dashboard totals that need one read per queue or process, summed inside Redis so
-- that a poll costs one command however many queues and processes there are.
-- KEYS[1..ARGV[1]]  queue:<name> of every queue     KEYS[ARGV[1] + 1 ..]  every process hash
-- A key of the wrong type counts 0 (pcall) rather than failing the whole poll.
-- Returns {jobs enqueued in all queues, jobs running in all processes}.
local queues = tonumber(ARGV[1])
local enqueued, busy = 0, 0
for i = 1, queues do
  enqueued = enqueued + (tonumber(redis.pcall('LLEN', KEYS[i])) or 0)
end
for i = queues + 1, #KEYS do
  busy = busy + (tonumber(redis.pcall('HGET', KEYS[i], 'busy')) or 0)
end
return {enqueued, busy}
