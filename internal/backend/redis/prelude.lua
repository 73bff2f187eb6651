-- prelude.lua is prepended to every script of the package (scripts.go joins
-- them: Lua has no includes), so that the fencing counter and the
-- semaphore's bookkeeping are written once. It only defines local
-- functions; a script that does not call one pays nothing for it but the
-- definition.

-- greater compares two non-negative decimal integers without leading zeros
-- exactly (Lua numbers are doubles, exact only up to 2^53).
local function greater(a, b)
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end

-- next_token hands out a new hold's fencing token from the counter key: it
-- exceeds both the counter and the floor (a decimal string, '0' for none),
-- which the counter is first raised to (after a restart without
-- persistence, or a purge, the counter starts again from nothing). Without
-- a floor the counter is not read: INCR alone. It returns the token's
-- digits, or nil when the counter is at its maximum (nothing is changed
-- then).
local function next_token(counter, floor)
  if floor ~= '0' then
    local current = redis.call('GET', counter) or '0'
    if greater(floor, current) then
      if floor == '9223372036854775807' then
        return nil
      end
      redis.call('SET', counter, floor)
    end
  end
  local n = redis.pcall('INCR', counter)
  if type(n) == 'table' then
    if string.find(n.err or '', 'overflow', 1, true) then
      return nil
    end
    error(n.err)
  end
  -- Lua numbers are doubles: below 10^14 they print exactly; above, the
  -- counter's own digits are read back.
  if n < 1e14 then
    return string.format('%d', n)
  end
  return redis.call('GET', counter)
end

-- is_own reports whether value is a hold of the holder whose value prefix
-- is "<holder>;fence=": the prefix and then only the token's digits, so
-- that holder "a" never adopts the hold of holder "a;fence=1".
local function is_own(value, prefix)
  return string.sub(value, 1, #prefix) == prefix
    and string.match(string.sub(value, #prefix + 1), '^%d+$') ~= nil
end

-- now_ms is the server's clock in milliseconds: a semaphore's scores are
-- expiries on it, so that clients' clocks never matter. (Scripts are
-- replicated by their effects, so reading the clock is allowed.)
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- prune removes the expired holds of the semaphore at key (score at or
-- before now). Redis deletes a sorted set left empty.
local function prune(key, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now))
end

-- touch sets the expiry of the semaphore at key to that of its last hold,
-- so that the key goes away by itself when every hold has expired. Every
-- hold left is unexpired (the caller pruned), so the expiry is positive.
local function touch(key, now)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, string.format('%d', tonumber(last[2]) - now))
  end
end

-- put sets the expiry of member's hold on the semaphore at key to ttl
-- milliseconds (a decimal string) from now, and the key's own expiry.
local function put(key, member, ttl, now)
  redis.call('ZADD', key, string.format('%d', now + tonumber(ttl)), member)
  touch(key, now)
end

-- lookup reads the key: it returns 'string' and its value; 'zset', nil and
-- the server's clock in milliseconds, after pruning the semaphore's expired
-- holds; or 'none' (also when pruning left the semaphore empty). Any other
-- type raises the WRONGTYPE error. GET comes first: a mutex, the common
-- case, costs one command as it did before semaphores.
local function lookup(key)
  local value = redis.pcall('GET', key)
  if type(value) ~= 'table' then
    if value then
      return 'string', value
    end
    return 'none'
  end
  if redis.call('TYPE', key).ok ~= 'zset' then
    error(value)
  end
  local now = now_ms()
  prune(key, now)
  if redis.call('EXISTS', key) == 0 then
    return 'none'
  end
  return 'zset', nil, now
end
