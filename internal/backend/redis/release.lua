-- release.lua is a compare-and-delete of a hold, mutex or semaphore: it
-- removes the mutex key only while it holds the caller's exact value, and
-- the caller's exact member from a semaphore. (prelude.lua comes before
-- it.)
--
-- KEYS[1]  the lock key
-- ARGV[1]  the caller's exact value or member, "<holder>;fence=<token>"
--
-- Returns 1 if the hold was removed, 0 if there was nothing of the caller's
-- to remove.
local kind, value, now = lookup(KEYS[1])
if kind == 'string' then
  if value == ARGV[1] then
    return redis.call('DEL', KEYS[1])
  end
elseif kind == 'zset' then
  local removed = redis.call('ZREM', KEYS[1], ARGV[1])
  if removed == 1 then
    touch(KEYS[1], now) -- the key may now expire sooner
  end
  return removed
end
return 0
