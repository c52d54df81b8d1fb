-- Return jobs from an in-progress list to the front of their queues, each only if it is
-- still in the list (so a job acknowledged meanwhile is not run twice).
-- KEYS[1]  sq:inprogress:<identity>    KEYS[2]  queues
-- ARGV     queue name, payload, queue name, payload, ...
local moved = 0
for i = 1, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i + 1]) == 1 then
    redis.call('RPUSH', 'queue:' .. ARGV[i], ARGV[i + 1])
    redis.call('SADD', KEYS[2], ARGV[i])
    moved = moved + 1
  end
end
return moved
