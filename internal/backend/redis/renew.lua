-- renew.lua extends a hold, mutex or semaphore, but only while the caller
-- still has it. It never takes the lock again. (prelude.lua comes before
-- it.)
--
-- KEYS[1]  the lock key
-- ARGV[1]  the caller's exact value or member, "<holder>;fence=<token>"
-- ARGV[2]  the TTL in milliseconds
--
-- Returns the remaining TTL in milliseconds (> 0) after the extension, or 0
-- when the hold is gone (the key is gone or holds another value; the
-- member is gone or expired).
local kind, value, now = lookup(KEYS[1])
if kind == 'string' then
  if value == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return redis.call('PTTL', KEYS[1])
  end
elseif kind == 'zset' then
  -- Expired members were pruned: a score means a live hold.
  if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    put(KEYS[1], ARGV[1], ARGV[2], now)
    return tonumber(ARGV[2])
  end
end
return 0
