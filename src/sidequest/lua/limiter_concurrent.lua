-- Take one of N slots of a concurrent limiter, on Redis's clock.
-- KEYS[1]  sq:limiter:<name>   ZSET token -> expiry (ms); a holder's slot lapses at expiry
-- KEYS[2]  sq:limiters         ZSET "<kind>|<n>|<interval>|<name>" -> last use (ms)
-- ARGV[1]  limit N   ARGV[2]  lock timeout, ms   ARGV[3]  token   ARGV[4]  registry member
-- Returns {1, 0, now} when taken, {0, ms until the first slot lapses, now} when all are held.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600000)
-- Bounded however many names are made: the newest 10,000, lapsing an hour after the last use.
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -10001)
redis.call('PEXPIRE', KEYS[2], 3600000)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl + 1000)
  return {1, 0, now}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(first[2]) - now, now}
