-- Take a unique job's lock and push the job, in one atomic step: no crash can leave the
-- lock without its job, and a duplicate writes nothing at all.
-- KEYS[1] the lock, KEYS[2] the target (queue:<name> or schedule), KEYS[3] queues
-- ARGV[1] jid, ARGV[2] lock TTL in ms, ARGV[3] payload, ARGV[4] score ('' = queue now),
-- ARGV[5] queue name
local lock, target, queues = KEYS[1], KEYS[2], KEYS[3]
if not redis.call('SET', lock, ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
if ARGV[4] == '' then
  redis.call('SADD', queues, ARGV[5])
  redis.call('LPUSH', target, ARGV[3])
else
  redis.call('ZADD', target, ARGV[4], ARGV[3])
end
return 1
