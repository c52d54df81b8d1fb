-- Move one due job from a sorted set (schedule or retry) to its queue, atomically.
-- KEYS[1]  schedule | retry     KEYS[2]  queues     KEYS[3]  queue:<name>
-- ARGV[1]  the member as read   ARGV[2]  the payload to push (fresh enqueued_at)
-- ARGV[3]  queue name
-- Returns 1 if moved, 0 if another process took the member first: the ZREM and the LPUSH
-- happen together or not at all, so a crash can neither lose nor double the job.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
