-- renew.lua extends a hold, but only while the caller still has it. It never
-- takes the lock again.
--
-- KEYS[1]  the lock key
-- ARGV[1]  the caller's exact value, "<holder>;fence=<token>"
-- ARGV[2]  the TTL in milliseconds
--
-- Returns the remaining TTL in milliseconds (> 0) after the extension, or 0
-- when the key is gone or holds another value.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return redis.call('PTTL', KEYS[1])
end
return 0
