-- Put an entry's last run back as it was before an "Enqueue now" whose push was refused, if
-- the state still names that push's jid: a tick or a pause written meanwhile stands.
-- KEYS[1] sq:periodic:state:<name>   ARGV[1] the refused push's jid
-- ARGV[2..] field, value, ... of the last run before it (jid, at, outcome, outcome_at)
if redis.call('HGET', KEYS[1], 'jid') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'jid', 'at', 'outcome', 'outcome_at')
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return 1
