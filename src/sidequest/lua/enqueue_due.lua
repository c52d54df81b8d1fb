-- Move due jobs from a sorted set (schedule or retry) to their queues, atomically per job,
-- in one call for a whole batch (a script call costs Redis more than the commands in it).
-- KEYS[1]  schedule | retry     KEYS[2]  queues     KEYS[3..]  queue:<name> of the jobs
-- ARGV     fours: the member as read, the payload to push (fresh enqueued_at), the index in
--          KEYS of the job's queue, and the queue's name
-- Returns how many moved. A member another process took first (ZREM 0) is skipped: the ZREM
-- and the LPUSH happen together or not at all, so a crash can neither lose nor double a job.
local moved = 0
for i = 1, #ARGV, 4 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local at = tonumber(ARGV[i + 2])
    redis.call('LPUSH', KEYS[at], ARGV[i + 1])
    redis.call('SADD', KEYS[2], ARGV[i + 3])
    moved = moved + 1
  end
end
return moved
