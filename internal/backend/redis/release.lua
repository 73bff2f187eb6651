-- release.lua is a compare-and-delete: it removes the lock key only while it
-- holds the caller's exact value.
--
-- KEYS[1]  the lock key
-- ARGV[1]  the caller's exact value, "<holder>;fence=<token>"
--
-- Returns 1 if the key was deleted, 0 if there was nothing of the caller's
-- to delete.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
