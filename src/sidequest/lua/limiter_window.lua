-- Count one call in a sliding-window limiter: at most N in any interval, on Redis's clock.
-- KEYS[1]  sq:limiter:<name>   ZSET call id -> time (ms)
-- KEYS[2]  sq:limiters         the registry (see limiter_concurrent.lua)
-- ARGV[1]  limit N   ARGV[2]  interval, ms   ARGV[3]  call id   ARGV[4]  registry member
-- Returns {1, 0, now} when allowed, {0, ms until the oldest call leaves, now} when over.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - interval)
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600000)
-- Bounded however many names are made: the newest 10,000, lapsing an hour after the last use.
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -10001)
redis.call('PEXPIRE', KEYS[2], 3600000)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], interval + 1000)
  return {1, 0, now}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(first[2]) + interval - now, now}
