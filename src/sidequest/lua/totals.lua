-- The two dashboard totals that need one read per queue or process, summed inside Redis so
-- that a poll costs one command however many queues and processes there are.
-- KEYS[1]  queues     KEYS[2]  processes
-- A key of the wrong type counts 0 (pcall) rather than failing the whole poll.
-- Returns {jobs enqueued in all queues, jobs running in all processes}.
local enqueued = 0
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  enqueued = enqueued + (tonumber(redis.pcall('LLEN', 'queue:' .. name)) or 0)
end
local busy = 0
for _, identity in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  busy = busy + (tonumber(redis.pcall('HGET', identity, 'busy')) or 0)
end
return {enqueued, busy}
