-- Push jobs of an in-progress list back to their queues, each only if it is still there.
-- KEYS[1]  sq:inprogress:<identity>    KEYS[2]  sq:lease:<identity>
-- KEYS[3]  sq:poison                    KEYS[4]  queues
-- KEYS[5]  sq:processes                 KEYS[6]  sq:quarantine
-- KEYS[7]  processes                    KEYS[8]  <identity> (Sidekiq's process hash)
-- KEYS[9]  <identity>:work              KEYS[10] <identity>:workers
-- KEYS[9 + 2i], KEYS[10 + 2i]  queue:<name> and sq:deaths:<jid> of the i-th job
-- ARGV[1]  "reap" (the owner's lease expired), "gone" (the owner is known dead), "stop"
--          (the owner is shutting down) or "retire" (the owner is shutting down because it
--          grew over max_memory: counted as a death, so a job that does that each time it
--          runs ends as a poison pill instead of being run again for good)
-- ARGV[2]  deaths after which a job is poison (reap and retire only)
-- ARGV[3]  seconds to remember a job's death count
-- ARGV[4]  the owner's identity         ARGV[5]  deaths from which a job is a suspect
-- ARGV[4 + 2i], ARGV[5 + 2i]  the i-th job's payload as listed, and its queue name ("" for
--          a payload that cannot be read)
-- Returns {requeued, poisoned, jobs left in the list}, or {-1, 0, 0} when reaping a process
-- whose lease is back. The caller reads the list and names every key here, so the script
-- touches only declared keys; a job listed but gone meanwhile (acknowledged, or taken by
-- another reaper) is skipped, so nothing is pushed twice.
-- When reaping, each job's death count goes up; a job at the limit, or one whose payload
-- cannot be read, goes to sq:poison, from which the reaper moves it to the dead set. A job
-- one death short of the limit is a suspect: it goes to sq:quarantine, where it runs alone
-- in a process, so that jobs that merely ran beside a crashing one are not blamed again.
-- Reaping also removes the owner from Sidekiq's process set (see below).
local inprogress, lease, poison, queues = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local processes, process, work, workers = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
-- "gone": the owner is known dead (its supervisor reaped the process), so its lease is not
-- waited for but deleted; otherwise as "reap".
local reap = ARGV[1] == 'reap' or ARGV[1] == 'gone'
local counted = reap or ARGV[1] == 'retire'
if ARGV[1] == 'reap' and redis.call('EXISTS', lease) == 1 then return {-1, 0, 0} end
if ARGV[1] == 'gone' then redis.call('DEL', lease) end
if reap then
  -- The owner is dead: without this its process hash and work hash would live out their
  -- 60 s TTL, and the Busy page, `sidequest status` and Sidekiq's API would show it running
  -- the very jobs requeued here. Done in this step, with the lease checked, so a heartbeat
  -- (which writes the lease and these keys in one MULTI) cannot fall in between; a process
  -- that was only cut off writes them all again at its next beat.
  redis.call('SREM', processes, ARGV[4])
  redis.call('DEL', process, work, workers)
end
local limit, ttl, suspect_at = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local requeued, poisoned = 0, 0
for i = 1, (#ARGV - 5) / 2 do
  local job, queue = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local queue_key, deaths_key = KEYS[9 + 2 * i], KEYS[10 + 2 * i]
  -- The list is read newest first; RPUSH in that order leaves the oldest next out.
  if redis.call('LREM', inprogress, 1, job) == 1 then
    if queue == '' then
      redis.call('RPUSH', poison, job)
      poisoned = poisoned + 1
    else
      local deaths
      if counted then
        deaths = redis.call('INCR', deaths_key)
        redis.call('EXPIRE', deaths_key, ttl)
      else
        -- A graceful stop is not a death, but a suspect stays a suspect.
        deaths = tonumber(redis.call('GET', deaths_key) or '0')
      end
      if counted and deaths >= limit then
        redis.call('RPUSH', poison, job)
        poisoned = poisoned + 1
      elseif deaths >= suspect_at then
        redis.call('LPUSH', KEYS[6], job)
        requeued = requeued + 1
      else
        redis.call('RPUSH', queue_key, job)
        redis.call('SADD', queues, queue)
        requeued = requeued + 1
      end
    end
  end
end
local left = redis.call('LLEN', inprogress)
-- The owner is gone and owns nothing now: forget it (a later fetch registers it again).
if left == 0 then redis.call('SREM', KEYS[5], ARGV[4]) end
return {requeued, poisoned, left}
