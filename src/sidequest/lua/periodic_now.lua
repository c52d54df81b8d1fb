-- "Enqueue now": name the push's jid as the entry's last run, in one step with reading the
-- last run it replaces (for lua/periodic_restore.lua, should the push be refused), so that a
-- tick written between the two is not taken for the earlier run and put back over.
-- Nothing for a removed entry (no definition left): its state is not brought back.
-- KEYS[1] sq:periodic   KEYS[2] sq:periodic:state:<name>
-- ARGV[1] the entry's name   ARGV[2] the push's jid   ARGV[3] its time (epoch seconds)
-- Returns nil for a removed entry, else the field, value, ... pairs of the last run before.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return nil end
local fields = {'jid', 'at', 'outcome', 'outcome_at'}
local values = redis.call('HMGET', KEYS[2], unpack(fields))
local before = {}
for i, field in ipairs(fields) do
  if values[i] then
    before[#before + 1] = field
    before[#before + 1] = values[i]
  end
end
redis.call('HSET', KEYS[2], 'jid', ARGV[2], 'at', ARGV[3])
redis.call('HDEL', KEYS[2], 'outcome', 'outcome_at')
return before
