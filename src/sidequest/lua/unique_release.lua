-- Release a unique job's lock, only if it still belongs to that job (its jid): after the
-- lock expired, an identical job pushed since holds a lock of its own.
-- KEYS[1]  sq:unique:<digest>     ARGV[1]  the jid that took it
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
