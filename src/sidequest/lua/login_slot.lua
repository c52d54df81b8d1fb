-- The dashboard's login limiter: when may this login attempt be checked? One queue of slots
-- shared by every dashboard process and client address (a generic cell rate algorithm), so
-- that no choice of addresses or headers gets more guesses than the cap.
-- KEYS[1]  sq:web:login (when the next slot is free, float seconds, Redis's clock)
-- KEYS[2]  sq:web:login:<address> (recent failures of this client address)
-- ARGV[1]  seconds between slots   ARGV[2]  attempts allowed at once   ARGV[3]  longest wait
-- Returns {"ok", seconds to wait, failures} or {"full", seconds until a slot frees, failures}
-- (numbers as strings: Redis would truncate Lua floats). An odd value in either key counts
-- as none (pcall, tonumber) rather than failing every login.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local failures = tonumber(redis.pcall('GET', KEYS[2])) or 0
local free_at = tonumber(redis.pcall('GET', KEYS[1])) or now
if free_at < now then free_at = now end
local wait = free_at - (burst - 1) * interval - now
if wait < 0 then wait = 0 end
if wait > max_wait then
  return {'full', tostring(wait - max_wait), tostring(failures)}
end
free_at = free_at + interval
local ttl_ms = math.ceil((free_at - now) * 1000) + 1000
redis.call('SET', KEYS[1], tostring(free_at), 'PX', ttl_ms)
return {'ok', tostring(wait), tostring(failures)}
