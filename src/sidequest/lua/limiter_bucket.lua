-- Count one call in a bucket limiter: at most N per fixed interval, on Redis's clock.
-- KEYS[1]  sq:limiter:<name>   HASH w (the interval's number), c (calls in it)
-- KEYS[2]  sq:limiters         the registry (see limiter_concurrent.lua)
-- ARGV[1]  limit N   ARGV[2]  interval, ms   ARGV[3]  registry member
-- Returns {1, 0, now} when allowed, {0, ms until the next interval, now} when over.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[2])
local w = math.floor(now / interval)
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600000)
-- Bounded however many names are made: the newest 10,000, lapsing an hour after the last use.
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -10001)
redis.call('PEXPIRE', KEYS[2], 3600000)
if tonumber(redis.call('HGET', KEYS[1], 'w') or -1) ~= w then
  redis.call('HSET', KEYS[1], 'w', w, 'c', 0)
end
if tonumber(redis.call('HGET', KEYS[1], 'c')) < tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[1], 'c', 1)
  redis.call('PEXPIRE', KEYS[1], interval + 1000)
  return {1, 0, now}
end
return {0, (w + 1) * interval - now, now}
