-- Push every job of an in-progress list back to the front of its queue.
-- KEYS[1]  sq:inprogress:<identity>    KEYS[2]  sq:lease:<identity>
-- KEYS[3]  sq:poison                    KEYS[4]  queues
-- KEYS[5]  sq:processes                 ARGV[4]  the owner's identity
-- KEYS[6]  sq:quarantine                ARGV[5]  deaths from which a job is a suspect
-- ARGV[1]  "reap" (the owner died) or "stop" (the owner is shutting down)
-- ARGV[2]  deaths after which a job is poison (reap only)
-- ARGV[3]  seconds to remember a job's death count
-- Returns {requeued, poisoned}, or {-1, 0} when reaping a process whose lease is back.
-- When reaping, each job's death count goes up; a job at the limit, or one whose payload
-- cannot be read, goes to sq:poison, from which the reaper moves it to the dead set. A job
-- one death short of the limit is a suspect: it goes to sq:quarantine, where it runs alone
-- in a process, so that jobs that merely ran beside a crashing one are not blamed again.
local inprogress, lease, poison, queues = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local reap = ARGV[1] == 'reap'
if reap and redis.call('EXISTS', lease) == 1 then return {-1, 0} end
local limit, ttl, suspect_at = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local requeued, poisoned = 0, 0
while true do
  -- LPOP takes the newest first; RPUSH puts the oldest at the right end, next out.
  local job = redis.call('LPOP', inprogress)
  if not job then break end
  local ok, obj = pcall(cjson.decode, job)
  local queue = ok and type(obj) == 'table' and obj['queue'] or nil
  if type(queue) ~= 'string' or queue == '' then
    redis.call('RPUSH', poison, job)
    poisoned = poisoned + 1
  else
    local jid = obj['jid']
    if type(jid) ~= 'string' then jid = redis.sha1hex(job) end
    local deaths_key = 'sq:deaths:' .. jid
    local deaths
    if reap then
      deaths = redis.call('INCR', deaths_key)
      redis.call('EXPIRE', deaths_key, ttl)
    else
      -- A graceful stop is not a death, but a suspect stays a suspect.
      deaths = tonumber(redis.call('GET', deaths_key) or '0')
    end
    local is_poison = reap and deaths >= limit
    local is_suspect = deaths >= suspect_at
    if is_poison then
      redis.call('RPUSH', poison, job)
      poisoned = poisoned + 1
    elseif is_suspect then
      redis.call('LPUSH', KEYS[6], job)
      requeued = requeued + 1
    else
      redis.call('RPUSH', 'queue:' .. queue, job)
      redis.call('SADD', queues, queue)
      requeued = requeued + 1
    end
  end
end
-- The owner is gone and owns nothing now: forget it (a later fetch registers it again).
redis.call('SREM', KEYS[5], ARGV[4])
return {requeued, poisoned}
