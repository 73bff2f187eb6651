-- inspect.lua reads a lock, mutex or semaphore, atomically. (prelude.lua
-- comes before it.)
--
-- KEYS[1]  the lock key
--
-- Returns {} when nothing holds the key; {value, pttl} for a mutex, with
-- pttl in milliseconds (-1 if the holder set no expiry); for a semaphore
-- {{member, ttl, member, ttl, ...}}, one pair per live hold in order of
-- expiry, with ttl in milliseconds.
local kind, value, now = lookup(KEYS[1])
if kind == 'string' then
  return {value, redis.call('PTTL', KEYS[1])}
end
if kind == 'none' then
  return {}
end
local holds = {}
local scored = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #scored, 2 do
  holds[#holds + 1] = scored[i]
  holds[#holds + 1] = tonumber(scored[i + 1]) - now
end
return {holds}
