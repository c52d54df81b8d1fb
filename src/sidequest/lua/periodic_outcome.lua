-- Record how the last pushed job of a periodic entry ended, if it is still the last one.
-- KEYS[1] sq:periodic:state:<name>   ARGV[1] jid   ARGV[2] outcome   ARGV[3] time (epoch s)
-- A removed entry (no state hash) is not brought back; an older jid does not overwrite.
if redis.call('HGET', KEYS[1], 'jid') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'outcome', ARGV[2], 'outcome_at', ARGV[3])
return 1
