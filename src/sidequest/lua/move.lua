-- Move one member of a sorted set (schedule, retry or dead) elsewhere, atomically.
-- KEYS[1]  the set holding the member     KEYS[2]  queues     KEYS[3]  dead
-- KEYS[4]  queue:<name> (for "queue")
-- ARGV[1]  the member as read             ARGV[2]  "queue" or "dead"
-- ARGV[3]  the payload to write there     ARGV[4]  queue name (for "queue")
-- ARGV[5]  now, float seconds             ARGV[6]  dead set size limit
-- ARGV[7]  dead set age limit, seconds
-- KEYS[5], ARGV[8], ARGV[9] (a job that stores its status, moved to a queue): its status
--          key, the time to write as updated_at, and the key's TTL in seconds
-- Returns 1 if moved, 0 if the member was no longer there (someone else acted first).
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'queue' then
  redis.call('LPUSH', KEYS[4], ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
  if KEYS[5] then
    -- It said "retrying", "dead" or "scheduled": "queued" again, in this step, so a worker
    -- that takes the job at once writes "running" after it, never before.
    redis.call('HSET', KEYS[5], 'state', 'queued', 'updated_at', ARGV[8])
    redis.call('EXPIRE', KEYS[5], ARGV[9])
  end
else
  local now = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[7]))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[6]) - 1)
end
return 1
