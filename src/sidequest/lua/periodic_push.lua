-- Push one tick of a periodic entry, at most once across every process, atomically.
-- KEYS[1] sq:periodic   KEYS[2] sq:periodic:state:<name>   KEYS[3] sq:periodic:tick:<name>:<t>
-- KEYS[4] queues        KEYS[5] queue:<name>
-- ARGV[1] entry name    ARGV[2] tick (epoch s)    ARGV[3] handled: the tick, or for a
-- catch-up the end of the missed span (>= tick)   ARGV[4] payload   ARGV[5] queue name
-- ARGV[6] TTL (s) of the per-tick key             ARGV[7] jid       ARGV[8] push time
-- KEYS[6] (a unique job only) sq:unique:<digest>   ARGV[9] its lock TTL, milliseconds
-- Returns 1 pushed, 0 already pushed (by anyone), -1 entry removed, -2 entry paused, -3 not
-- pushed: a unique job whose lock an identical job holds (the last tick's, still queued or
-- running), the tick counting as handled.
-- The tick is named by its scheduled time, so processes whose clocks differ agree on it; the
-- per-tick key and the monotonic `tick` field together refuse a second push of it.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
local last = tonumber(redis.call('HGET', KEYS[2], 'tick') or '0') or 0
if tonumber(ARGV[2]) <= last then return 0 end
if redis.call('HGET', KEYS[2], 'paused') == '1' then
  -- A paused entry lets its ticks pass; resuming does not replay them.
  redis.call('HSET', KEYS[2], 'tick', ARGV[3])
  return -2
end
if not redis.call('SET', KEYS[3], ARGV[7], 'NX', 'EX', ARGV[6]) then return 0 end
if #KEYS > 5 and not redis.call('SET', KEYS[6], ARGV[7], 'NX', 'PX', ARGV[9]) then
  redis.call('HSET', KEYS[2], 'tick', ARGV[3])
  return -3
end
redis.call('LPUSH', KEYS[5], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('HSET', KEYS[2], 'tick', ARGV[3], 'last_tick', ARGV[2], 'jid', ARGV[7],
           'at', ARGV[8])
redis.call('HDEL', KEYS[2], 'outcome', 'outcome_at')
return 1
