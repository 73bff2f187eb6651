-- acquire.lua takes the lock at KEYS[1] for a holder, or confirms that the
-- holder already has it.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter key (KEYS[1] .. ":fencing")
-- ARGV[1]  the holder's value prefix, "<holder>;fence="
-- ARGV[2]  the TTL in milliseconds
--
-- Returns {taken, value, pttl}: taken is 1 when the caller holds the lock
-- afterwards (newly taken, or already its own), 0 when someone else does;
-- value is the key's value (the caller's, or the current holder's); pttl is
-- the remaining TTL in milliseconds (-1 if the holder set none).
local prefix = ARGV[1]
local current = redis.call('GET', KEYS[1])
if not current then
  local token = redis.call('INCR', KEYS[2])
  local value = prefix .. string.format('%d', token)
  redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
  return {1, value, redis.call('PTTL', KEYS[1])}
end
-- The same holder: the prefix matches and only the token's digits follow,
-- so that holder "a" never adopts the hold of holder "a;fence=1".
if string.sub(current, 1, #prefix) == prefix
    and string.match(string.sub(current, #prefix + 1), '^%d+$') then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, current, redis.call('PTTL', KEYS[1])}
end
return {0, current, redis.call('PTTL', KEYS[1])}
