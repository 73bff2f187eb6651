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
// of bsm/redislock.
//
// The lock key K holds, with an expiry of the lease TTL, the value
//
//	<holder>;fence=<token>
//
// where token is the fencing token: an INCR of K's fencing counter key,
// taken in the same script that sets K, and only when the lock is actually
// taken. Every operation is one Lua script, so it is atomic on the server
// and safe to repeat.
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
// taken to be distlock's hold for holder x. Outside programs never touch the
// counter.
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
