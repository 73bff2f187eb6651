-- acquire.lua takes the lock at KEYS[1] for a holder, or confirms that the
-- holder already has it.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter key: KEYS[1] .. ":fencing", or on a Redis
--          Cluster a name in the same hash slot (see counterKey in keys.go)
-- ARGV[1]  the holder's value prefix, "<holder>;fence="
-- ARGV[2]  the TTL in milliseconds
-- ARGV[3]  the fencing floor: a new hold's token must exceed it ("0": none)
--
-- Returns {taken, value, pttl}: taken is 1 when the caller holds the lock
-- afterwards (newly taken, or already its own), 0 when someone else does,
-- -1 when the lock is free but no token above the floor can be handed out
-- (nothing is changed then); value is the key's value (the caller's, or the
-- current holder's); pttl is the remaining TTL in milliseconds (-1 if the
-- holder set none).

-- greater compares two non-negative decimal integers without leading zeros
-- exactly (Lua numbers are doubles, exact only up to 2^53).
local function greater(a, b)
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end

local prefix = ARGV[1]
local current = redis.call('GET', KEYS[1])
if not current then
  -- A new hold: its token exceeds both the counter and the floor, which the
  -- counter is first raised to (after a restart without persistence, or a
  -- purge, the counter starts again from nothing). Without a floor the
  -- counter is not read: INCR alone.
  local floor = ARGV[3]
  if floor ~= '0' then
    local counter = redis.call('GET', KEYS[2]) or '0'
    if greater(floor, counter) then
      if floor == '9223372036854775807' then
        return {-1, '', 0}
      end
      redis.call('SET', KEYS[2], floor)
    end
  end
  local n = redis.pcall('INCR', KEYS[2])
  if type(n) == 'table' then
    if string.find(n.err or '', 'overflow', 1, true) then
      return {-1, '', 0} -- the counter is at its maximum: nothing changed
    end
    return n
  end
  -- Lua numbers are doubles: below 10^14 they print exactly; above, the
  -- counter's own digits are read back.
  local token
  if n < 1e14 then
    token = string.format('%d', n)
  else
    token = redis.call('GET', KEYS[2])
  end
  local value = prefix .. token
  redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
  return {1, value, tonumber(ARGV[2])}
end
-- The same holder: the prefix matches and only the token's digits follow,
-- so that holder "a" never adopts the hold of holder "a;fence=1". Its token
-- stays, whatever the floor.
if string.sub(current, 1, #prefix) == prefix
    and string.match(string.sub(current, #prefix + 1), '^%d+$') then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, current, tonumber(ARGV[2])}
end
return {0, current, redis.call('PTTL', KEYS[1])}
