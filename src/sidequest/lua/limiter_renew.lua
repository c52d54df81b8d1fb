-- Extend the slots this process still holds in a concurrent limiter (it is alive).
-- KEYS[1]  sq:limiter:<name>   ARGV[1]  lock timeout, ms   ARGV[2]  "renew" or "reclaim"
-- ARGV[3..]  tokens
-- renew: extend each token still there; returns those that are not. A slot lapses only if
-- its holder could not renew it for its whole lock timeout (Redis away that long), and an
-- acquire then dropped it and may have given it to another.
-- reclaim: write those tokens back (their holders still run): the limiter then counts every
-- job inside it, and admits no more until enough have left. Returns them.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local missing = {}
for i = 3, #ARGV do
  if ARGV[2] == 'reclaim' or redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
if ARGV[2] == 'reclaim' then
  local all = {}
  for i = 3, #ARGV do all[#all + 1] = ARGV[i] end
  return all
end
return missing
