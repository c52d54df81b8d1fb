-- Delete a lock only if it is still held by ARGV[1]: a lock that expired may have been taken
-- since by another holder, whose it now is. Used for a unique job's lock (its holder: the
-- job's jid) and the quarantine lock (the holder: a process identity).
-- KEYS[1]  the lock                ARGV[1]  its holder
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
