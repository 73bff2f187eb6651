-- acquire.lua takes the mutex at KEYS[1] for a holder, or confirms that the
-- holder already has it. (prelude.lua comes before it.)
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter key: KEYS[1] .. ":fencing", or on a Redis
--          Cluster a name in the same hash slot (see counterKey in keys.go)
-- ARGV[1]  the holder's value prefix, "<holder>;fence="
-- ARGV[2]  the TTL in milliseconds
-- ARGV[3]  the fencing floor: a new hold's token must exceed it ("0": none)
--
-- Returns {taken, value, n}:
--   { 1, value, pttl}  the caller holds the lock afterwards (newly taken,
--                      or already its own); value is its value
--   { 0, value, pttl}  another holder has it: value is the key's value,
--                      pttl its remaining TTL (-1 if the holder set none)
--   {-1, '', 0}        the lock is free but no token above the floor can
--                      be handed out (nothing is changed)
--   {-2, '', holds}    the key is a semaphore with that many live holds

local prefix = ARGV[1]
local kind, current = lookup(KEYS[1])
if kind == 'zset' then
  return {-2, '', redis.call('ZCARD', KEYS[1])}
end
if kind == 'none' then
  local token = next_token(KEYS[2], ARGV[3])
  if not token then
    return {-1, '', 0}
  end
  local value = prefix .. token
  redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
  return {1, value, tonumber(ARGV[2])}
end
-- The same holder keeps its hold and its token, whatever the floor.
if is_own(current, prefix) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, current, tonumber(ARGV[2])}
end
return {0, current, redis.call('PTTL', KEYS[1])}
