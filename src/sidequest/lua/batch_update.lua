-- Record one member's outcome in a batch and, when the batch is sealed and done, push its
-- callbacks, each exactly once (HSETNX of its time guards the push), then pass the batch's own
-- outcome up to its parent, and so on up the ancestry. A child batch's callbacks are jobs of
-- its parent (their payloads carry the parent's ancestry): each joins the parent's members as
-- it is pushed, so the parent's own callbacks wait for them.
-- KEYS[1]           schedule (callbacks are pushed there, due now; the scheduler queues them)
-- KEYS[4n-2..4n+1]  for level n (1 = the job's own batch, 2 = its parent, ...):
--                   sq:batch:<bid>, :pending, :ran, :failed
-- ARGV[1]  member ("" to only check): a jid, or "b:<bid>" of a child batch
-- ARGV[2]  "success", "failure" or "complete" (a child batch ran every job once); with no
--          member, "check", or "seal" (the end of the block that made the batch: it is filled)
-- ARGV[3]  now (float seconds)    ARGV[4]  seconds to keep a batch after its success
-- Returns the number of callbacks pushed.
local member, outcome = ARGV[1], ARGV[2]
local now, keep = tonumber(ARGV[3]), tonumber(ARGV[4])
local pushed = 0
local levels = (#KEYS - 1) / 4


-- The callback `cb` of the batch at level `lvl` joins the batch above it, if there is one and
-- the callback says it is a job of it (sq_batch): not one stored before callbacks joined their
-- parent, nor one for a job only a Ruby process defines (it would run uncounted).
local function join_parent(lvl, cb)
  if lvl >= levels or redis.call('EXISTS', KEYS[4 * lvl + 2]) == 0 then return end
  local item = cjson.decode(cb)
  if type(item['sq_batch']) ~= 'table' or type(item['jid']) ~= 'string' then return end
  if redis.call('SADD', KEYS[4 * lvl + 3], item['jid']) == 1 then
    redis.call('HINCRBY', KEYS[4 * lvl + 2], 'total', 1)
  end
end

for lvl = 1, levels do
  local h, p, r, f = KEYS[4 * lvl - 2], KEYS[4 * lvl - 1], KEYS[4 * lvl], KEYS[4 * lvl + 1]
  if redis.call('EXISTS', h) == 0 then break end
  if member ~= '' then
    -- A set added to here gets its batch hash's expiry: SADD makes :ran and :failed with
    -- none, and a batch that never succeeds would keep them forever. Given again at each
    -- change, so that a set an older version left is mended too.
    local left = redis.call('PTTL', h)
    if redis.call('HEXISTS', h, 'complete_at') == 0 then  -- else done with (below)
      redis.call('SADD', r, member)
      if left > 0 then redis.call('PEXPIRE', r, left) end
    end
    if outcome == 'success' then
      redis.call('SREM', p, member)
      redis.call('SREM', f, member)
    elseif outcome == 'failure' then
      redis.call('SADD', f, member)
      if left > 0 then redis.call('PEXPIRE', f, left) end
    end
  elseif outcome == 'seal' and lvl == 1 then
    -- Here, not by an HSET of the caller's: a batch that expired gets no hash without expiry.
    redis.call('HSET', h, 'sealed', 1)
  end
  if redis.call('HGET', h, 'sealed') ~= '1' then break end
  local total = tonumber(redis.call('HGET', h, 'total') or '0')
  local order = now + lvl / 1000  -- a child's callbacks sort before its parent's
  local complete, success = false, false
  if redis.call('SCARD', r) >= total and redis.call('HSETNX', h, 'complete_at', now) == 1 then
    complete = true
    -- The set served this one check: gone now, not kept for days (1.5 MB for 20,000 jobs).
    redis.call('DEL', r)
    local cb = redis.call('HGET', h, 'on_complete')
    if cb then
      redis.call('ZADD', KEYS[1], order, cb); join_parent(lvl, cb); pushed = pushed + 1
    end
  end
  if redis.call('SCARD', p) == 0 and redis.call('HSETNX', h, 'success_at', now) == 1 then
    success = true
    local cb = redis.call('HGET', h, 'on_success')
    if cb then
      redis.call('ZADD', KEYS[1], order + 0.0001, cb); join_parent(lvl, cb); pushed = pushed + 1
    end
    redis.call('EXPIRE', h, keep)
    redis.call('EXPIRE', p, keep)
    redis.call('EXPIRE', r, keep)
    redis.call('EXPIRE', f, keep)
  end
  if not (complete or success) then break end
  -- The record's own bid, else its key's: a record that lost its first fields (a failover
  -- that kept later writes but not the creation) still passes its outcome up.
  local bid = redis.call('HGET', h, 'bid') or string.match(h, 'sq:batch:([^:]+)$')
  if not bid then break end
  member = 'b:' .. bid
  if success then outcome = 'success' else outcome = 'complete' end
end
return pushed
