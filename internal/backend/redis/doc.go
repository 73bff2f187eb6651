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

// Package redis is the Redis lock backend: the classic single-instance
// recipe (SET NX PX, compare-and-delete) with fencing tokens, in the style
// of bsm/redislock, and a semaphore of n holders in a sorted set.
//
// The lock key K holds, with an expiry of the lease TTL, the value
//
//	<holder>;fence=<token>
//
// where token is the fencing token: an INCR of K's fencing counter key,
// taken in the same script that sets K, and only when the lock is actually
// taken. Every operation is one Lua script, so it is atomic on the server
// and safe to repeat. (The scripts share their common parts through
// prelude.lua, which scripts.go puts before each.)
//
// The counter lives in the server's memory: a restart without persistence,
// or a failover that loses writes, starts it again from nothing. The
// caller that remembers the highest token it has seen passes it as
// backend.WithMinToken; the acquire script then raises the counter to that
// floor before it increments it, so a new hold's token is always above it.
// Redis keeps no queue: backend.WithQueue is ignored.
//
// Programs outside the cluster can share a lock with distlock by using the
// same recipe on the same key: take it with `SET K <unique value> NX PX
// <ttl>` and release it with a compare-and-delete script (`if GET K ==
// value then DEL K`). They then exclude distlock's holders and are excluded
// by them. Inspect reports such a hold with Holder set to the raw value and
// Token 0. A value that happens to have the form "<x>;fence=<digits>" is
// taken to be distlock's hold for holder x. Outside programs of the mutex
// never touch the counter (those of the semaphore do, below).
//
// # Semaphores
//
// With backend.WithLimit(n), n >= 2, Acquire takes one of n permits of the
// semaphore at K instead. The semaphore is a sorted set at K itself: each
// hold is the member
//
//	<holder>;fence=<token>
//
// (the mutex's value format, its token from the same counter, with the
// same floor) whose score is the hold's expiry in milliseconds of the
// server's clock (TIME inside the script, so that clients' clocks never
// matter). Every script first removes the expired members
// (ZREMRANGEBYSCORE K -inf <now>) and keeps K's own expiry at that of its
// last hold, so that K disappears by itself when every hold has expired.
// A new hold is added only while fewer than n members are left; a holder
// that already has a member keeps it and its token, its score pushed out.
// Lowering n never ends a hold: it only keeps new ones out until enough
// have gone. Renew and release are compare-and-set and compare-and-delete
// of the exact member (ZADD, ZREM).
//
// A mutex and a semaphore on the same key exclude each other: the
// semaphore's acquire refuses a key that holds a string (a mutex hold,
// distlock's or an outside program's SET K v NX PX), and the mutex's
// acquire, like SET NX, refuses a key that holds a sorted set with a live
// member. A Lease does not say which recipe took it: Renew, Release,
// Inspect and Purge look at the key's type inside their script. Inspect
// lists a semaphore's holds in State.Holds by token, lowest first (an
// outside program's tokenless hold, token 0, comes first). A mutex
// outsider's compare-and-delete script (GET, then DEL) fails with
// WRONGTYPE on a semaphore's key and deletes nothing.
//
// # Outside programs and semaphores
//
// A program outside the cluster shares a semaphore with distlock by
// running OutsideSemaphoreAcquire, OutsideSemaphoreRenew and
// OutsideSemaphoreRelease (in outside.go; the tests run them verbatim) with
// EVAL:
//
//	EVAL <OutsideSemaphoreAcquire> 2 K K:fencing <id> <ttl-ms> <limit>  -> "<id>;fence=<token>" or nil
//	EVAL <OutsideSemaphoreRenew>   1 K <member> <ttl-ms>                -> 1, or 0 when lost
//	EVAL <OutsideSemaphoreRelease> 1 K <member>                         -> 1, or 0 when already gone
//
// The acquire script prunes expired members, refuses a key that is not a
// sorted set (a mutex holds it), counts the members against the program's
// own limit, INCRs the counter and adds the member "<id>;fence=<token>"
// with the expiry as its score, and sets K's expiry to that of its last
// member. Taking the token from the counter is recommended: the program
// then has a fencing token that orders its hold among distlock's, for the
// resources it protects, and Inspect shows its id and token. A member
// without the ";fence=<digits>" form still counts as a hold, a tokenless
// one: Inspect reports it with Holder set to the raw member and Token 0.
// Every party must agree on the limit: each admits a new hold only while
// fewer members than its own limit exist. On a Redis Cluster the counter
// is named as below ("{K}:fencing" for a key without a hash tag).
//
// The backend talks to one of three deployments, chosen by backend.Config:
//
//   - a single Redis server (Servers[0]);
//   - the master that a set of Redis Sentinels monitor (SentinelMaster set;
//     Servers are the Sentinels, contacted with SentinelUsername and
//     SentinelPassword when the Sentinels require credentials of their own);
//     go-redis follows the master through failovers;
//   - a Redis Cluster (Cluster set; Servers are seed nodes). go-redis learns
//     the slot map from them and follows MOVED and ASK redirections, and
//     batched renewals are split into one pipeline per node.
//
// The counter of K is named K+":fencing" on a single server and behind
// Sentinels. On a Redis Cluster the acquire script touches both keys, so
// they must hash to the same slot: the counter of a key with a hash tag
// (a non-empty {...}, see the Redis Cluster specification) is still
// K+":fencing", which has the same tag; the counter of a key without one is
// "{"+K+"}:fencing", whose tag is K itself. A key that contains '}' but no
// hash tag cannot be given a counter in its slot that way, and Acquire
// refuses it with ErrClusterKeyWithoutHashTag (the CRD rejects such a
// spec.key already). Moving a lock between a single server and a cluster
// thus renames the counter of an untagged key; the controller's
// backend.WithMinToken keeps its tokens rising all the same.
//
// Redis replicates asynchronously: a failover (Sentinel, or Cluster) can
// lose the last writes to the old master, among them a hold or a counter
// increment. A renewal of a lost hold reports backend.ErrNotHeld; it never
// takes the lock again.
//
// The package registers itself as backend "redis" in an init function.
package redis
