-- Return jobs from an in-progress list to the front of their queues, each only if it is
-- still in the list (so a job acknowledged meanwhile is not run twice).
-- KEYS[1]  sq:inprogress:<identity>    KEYS[2]  queues
-- KEYS[2 + i]  queue:<name> of the i-th job (sq:quarantine for a suspect taken from there)
-- ARGV     queue name, payload, queue name, payload, ... (the i-th pair is the i-th job)
local moved = 0
for i = 1, #ARGV / 2 do
  local queue, job = ARGV[2 * i - 1], ARGV[2 * i]
  if redis.call('LREM', KEYS[1], 1, job) == 1 then
    redis.call('RPUSH', KEYS[2 + i], job)
    redis.call('SADD', KEYS[2], queue)
    moved = moved + 1
  end
end
return moved
