-- Clearing a queue or a set: rename it aside, to read its jobs from there and record that
-- they never run. Done again (redis-py resends a transaction whose reply was lost), it does
-- nothing: a second RENAME would have put jobs pushed meanwhile over the first one's, and
-- the jobs it set aside would be gone unrecorded.
-- KEYS[1] the queue or set   KEYS[2] where it is set aside (same hash tag)
-- ARGV[1] seconds the set-aside key is kept
-- Returns 1 when it is set aside (now or by the first sending), 0 when there was nothing.
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
