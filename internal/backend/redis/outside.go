/*
Copyright 2026 The distlock Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package redis

// The outside recipe of the semaphore: the scripts a program outside
// Kubernetes runs with EVAL (or EVALSHA) to share a semaphore with
// distlock's holders. The package doc describes the recipe; the package's
// tests run these very strings against a real server. They need Redis 5 or
// later (a script that reads TIME and then writes is replicated by its
// effects, the default since 5 and the only way since 7).

// OutsideSemaphoreAcquire takes a permit of the semaphore at KEYS[1]:
//
//	EVAL <script> 2 <key> <counter> <id> <ttl-ms> <limit>
//
// where counter is the lock's fencing counter (key+":fencing"; on a Redis
// Cluster, for a key without a hash tag, "{"+key+"}:fencing"), id is the
// program's own unique identity (not containing ";fence="), ttl-ms the
// hold's TTL in milliseconds and limit the program's own limit. It returns
// the member that is the program's hold, "<id>;fence=<token>", which it
// keeps to renew and release with; or a nil reply when no permit is free or
// a mutex holds the key. Each call takes a new permit: a program that may
// already hold one renews it instead.
const OutsideSemaphoreAcquire = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then
  return false -- a mutex (a string) holds the key
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return false
end
redis.call('INCR', KEYS[2])
local member = ARGV[1] .. ';fence=' .. redis.call('GET', KEYS[2])
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), member)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], string.format('%d', tonumber(last[2]) - now))
return member
`

// OutsideSemaphoreRenew extends the hold member (as the acquire script
// returned it) to ttl-ms from now:
//
//	EVAL <script> 1 <key> <member> <ttl-ms>
//
// It returns 1, or 0 when the hold is gone (expired or released): the
// program has lost its permit and must stop, and acquire again if it wants
// one. It never takes a permit again.
const OutsideSemaphoreRenew = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], string.format('%d', tonumber(last[2]) - now))
return 1
`

// OutsideSemaphoreRelease gives up the hold member:
//
//	EVAL <script> 1 <key> <member>
//
// It returns 1 if it removed the hold, 0 if the hold was already gone. It
// never removes another hold, nor a mutex's key.
const OutsideSemaphoreRelease = `
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then
  return 0
end
return redis.call('ZREM', KEYS[1], ARGV[1])
`
