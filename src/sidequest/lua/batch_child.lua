-- Make the child batch a job derives from its own jid (Batch(parent=self.batch) in a job),
-- or find the one an earlier run of that job made: retried after its block raised, or run
-- again after its process died inside it. Made anew each run, the earlier child was never
-- sealed and its parent waited for it for good.
-- KEYS[1] the child's hash  KEYS[2] sq:batches  KEYS[3..5] the parent's pending, ran and
-- failed sets  KEYS[6] the parent's hash
-- ARGV[1] seconds kept  ARGV[2] now  ARGV[3] the child's bid  ARGV[4..] its fields, in pairs
-- Returns "made"; "open" (an earlier run's child, not sealed: this run fills it on and seals
-- it); "sealed" (an earlier run's child, sealed: it ends on its own, make another).
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'sealed') == '1' then
    return 'sealed'
  end
  return 'open'
end
local keep = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], keep)
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - keep)
-- The parent waits for this batch as for one of its jobs (batch.add_member).
redis.call('SADD', KEYS[3], 'b:' .. ARGV[3])
redis.call('HINCRBY', KEYS[6], 'total', 1)
for i = 3, 5 do
  redis.call('EXPIRE', KEYS[i], keep)
end
return 'made'
