-- A member joins a batch, before its job is written (batch.add_member), only if the batch
-- still exists: SADD and HINCRBY on an expired batch would make a hash with no expiry, a batch
-- that reads as existing forever. Its job then runs outside any batch (its outcome finds no
-- batch to record in, lua/batch_update.lua).
-- KEYS[1]  sq:batch:<bid>    KEYS[2]  sq:batch:<bid>:pending
-- ARGV[1]  the member: a jid, or "b:<bid>" of a child batch    ARGV[2]  seconds to keep the set
-- Returns 1 if it joined, 0 if the batch is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'total', 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
