-- Move one member of a sorted set (schedule, retry or dead) elsewhere, atomically.
-- KEYS[1]  the set holding the member     KEYS[2]  queues     KEYS[3]  dead
-- KEYS[4]  queue:<name> (for "queue")
-- ARGV[1]  the member as read             ARGV[2]  "queue" or "dead"
-- ARGV[3]  the payload to write there     ARGV[4]  queue name (for "queue")
-- ARGV[5]  now, float seconds             ARGV[6]  dead set size limit
-- ARGV[7]  dead set age limit, seconds
-- Moved to a queue, also: KEYS[5] its status key, ARGV[8] the time to write as updated_at
--          ('' for a job that stores no status), ARGV[9] the key's TTL in seconds;
--          a unique job: KEYS[6] its lock, ARGV[10] its jid, ARGV[11] the lock's TTL (ms)
-- Returns 1 if moved, 0 if the member was no longer there (someone else acted first), -1 if
-- not moved: a unique job whose lock another job holds (an identical one queued or running).
-- Checked first, and every write after the last step that could fail: a script's error
-- does not undo what it wrote before it.
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if ARGV[2] == 'queue' and KEYS[6] then
  -- Taken again as a push takes it: a job retried from the dead set released it when it
  -- died. A retrying or scheduled job holds it already, and keeps it as it is.
  local holder = redis.call('GET', KEYS[6])
  if holder and holder ~= ARGV[10] then return -1 end
  if not holder then redis.call('SET', KEYS[6], ARGV[10], 'PX', ARGV[11]) end
end
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] == 'queue' then
  redis.call('LPUSH', KEYS[4], ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
  if ARGV[8] and ARGV[8] ~= '' then
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
