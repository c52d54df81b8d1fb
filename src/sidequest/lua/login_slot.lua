-- The dashboard's login limiter: when may this login attempt be checked? One queue of slots
-- shared by every dashboard process and client address (a generic cell rate algorithm), so
-- that no choice of addresses or headers gets more guesses than the cap.
-- KEYS[1]  sq:web:login (when the next slot is free, float seconds, Redis's clock)
-- KEYS[2]  sq:web:login:<address> (recent failures of this client address)
-- KEYS[3]  sq:web:login-next:<address> (when its next attempt may be checked)
-- ARGV[1]  seconds between slots   ARGV[2]  attempts allowed at once   ARGV[3]  longest wait
-- ARGV[4]  failures without delay  ARGV[5]  first delay, seconds      ARGV[6]  longest delay
-- Returns {"ok", seconds to wait, failures}, {"full", seconds until a slot frees, failures},
-- or {"later", seconds until this address may try again, failures} (numbers as strings:
-- Redis would truncate Lua floats). An odd value in a key counts as none (pcall, tonumber)
-- rather than failing every login.
-- An address past its free failures waits its delay before each check, and has one attempt
-- waiting at a time: the others are refused before they take a shared slot, so one client
-- flooding the form cannot fill the queue every other address needs to log in.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local failures = tonumber(redis.pcall('GET', KEYS[2])) or 0
local delay = 0
local free, base, longest = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if failures >= free then delay = math.min(longest, base * 2 ^ math.min(failures - free, 32)) end
if delay > 0 then
  local next_at = tonumber(redis.pcall('GET', KEYS[3])) or 0
  if next_at > now then return {'later', tostring(next_at - now), tostring(failures)} end
end
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
if delay > wait then wait = delay end
if delay > 0 then
  redis.call('SET', KEYS[3], tostring(now + wait), 'PX', math.ceil(wait * 1000) + 1000)
end
return {'ok', tostring(wait), tostring(failures)}
