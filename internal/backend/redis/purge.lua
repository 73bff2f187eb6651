-- purge.lua removes the fencing counter of a lock that nobody holds.
--
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter key (KEYS[1] .. ":fencing")
--
-- Returns 0, deleting nothing, when the lock key exists (held by us or by an
-- outside program); else deletes the counter and returns 1.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2])
return 1
