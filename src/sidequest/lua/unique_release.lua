-- Release a unique job's lock only if this job still holds it: after the TTL ran out an
-- identical job may hold it now, and that lock is not ours to drop.
-- KEYS[1] the lock; ARGV[1] the jid of the job releasing it
local lock = KEYS[1]
if redis.call('GET', lock) == ARGV[1] then
  return redis.call('DEL', lock)
end
return 0
