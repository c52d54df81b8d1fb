-- Push a unique job only if no identical one holds its lock, in one atomic step: a duplicate
-- writes nothing, and a lock never exists without the job that took it. A job pushed in a
-- batch becomes its member in the same step, so a refused duplicate is never one.
-- KEYS[1]  sq:unique:<digest>   the lock       KEYS[2]  queues
-- KEYS[3]  queue:<name> (to run now) or schedule (to run at ARGV[4])
-- KEYS[4..7]  only for a job of a batch: sq:batch:<bid>, :pending, :ran, :failed
-- ARGV[1]  the job's jid (the lock's value)    ARGV[2]  lock TTL, milliseconds
-- ARGV[3]  the payload                        ARGV[4]  run-at epoch seconds, or "" for now
-- ARGV[5]  the queue name                     ARGV[6]  seconds to keep a batch's sets
-- Returns 1 if pushed, 0 if an identical job holds the lock.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
-- As batch.add_member does for a job pushed without a lock; not into a batch that expired
-- meanwhile, whose record would come back without an expiry.
if #KEYS > 3 and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('SADD', KEYS[5], ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'total', 1)
  redis.call('EXPIRE', KEYS[5], ARGV[6])
  redis.call('EXPIRE', KEYS[6], ARGV[6])
  redis.call('EXPIRE', KEYS[7], ARGV[6])
end
if ARGV[4] == '' then
  redis.call('SADD', KEYS[2], ARGV[5])
  redis.call('LPUSH', KEYS[3], ARGV[3])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
end
return 1
