-- inspect.lua reads the lock key's value and remaining TTL atomically.
--
-- KEYS[1]  the lock key
--
-- Returns {} when the key is absent, else {value, pttl} with pttl in
-- milliseconds (-1 if the holder set no expiry).
local value = redis.call('GET', KEYS[1])
if not value then
  return {}
end
return {value, redis.call('PTTL', KEYS[1])}
