-- acquire_semaphore.lua takes a permit of the semaphore at KEYS[1] for a
-- holder, or confirms that the holder already has one. (prelude.lua comes
-- before it.) The semaphore is a sorted set: member "<holder>;fence=<token>",
-- score the hold's expiry in milliseconds of the server's clock.
--
-- KEYS[1]  the semaphore key
-- KEYS[2]  the fencing counter key, as for acquire.lua
-- ARGV[1]  the holder's member prefix, "<holder>;fence="
-- ARGV[2]  the TTL in milliseconds
-- ARGV[3]  the fencing floor: a new hold's token must exceed it ("0": none)
-- ARGV[4]  the limit: how many holds the semaphore admits at once (>= 2)
--
-- Returns {taken, value, n}:
--   { 1, member, ttl}  the caller holds a permit afterwards (newly taken,
--                      or already its own, its expiry set to ttl from now)
--   { 0, '', holds}    every permit is taken: holds is how many there are
--   {-1, '', 0}        a permit is free but no token above the floor can
--                      be handed out (nothing is changed)
--   { 2, value, pttl}  the key is a mutex: value and pttl are its holder's

local key, prefix, ttl = KEYS[1], ARGV[1], ARGV[2]
local kind, value, now = lookup(key)
if kind == 'string' then
  return {2, value, redis.call('PTTL', key)}
end
now = now or now_ms()
if kind == 'zset' then
  -- The same holder keeps its hold and its token, whatever the floor and
  -- however many holds there are.
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if is_own(member, prefix) then
      put(key, member, ttl, now)
      return {1, member, tonumber(ttl)}
    end
  end
  local holds = redis.call('ZCARD', key)
  if holds >= tonumber(ARGV[4]) then
    return {0, '', holds}
  end
end
local token = next_token(KEYS[2], ARGV[3])
if not token then
  return {-1, '', 0}
end
local member = prefix .. token
put(key, member, ttl, now)
return {1, member, tonumber(ttl)}
