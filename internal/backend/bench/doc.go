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

// Package bench measures distlock's lock backends against the lock libraries
// people would otherwise use on the same servers: bsm/redislock and redsync
// for Redis, go-zookeeper's zk.Lock for ZooKeeper.
//
// Every library is reduced to the same loop, a Client's Cycle: take the lock
// once and, when that worked, release it at once. Run drives a number of
// clients through that loop for a fixed time against one connection of the
// library (the way one process shares one connection between its callers)
// and counts cycles that held the lock, all attempts, and, when asked, the
// latency of each cycle. Clients either each use their own key (the
// throughput of a single client) or all contend on one key.
//
// Libraries that try once (distlock, redislock, redsync) report a failed
// attempt at once; zk.Lock has no try-once mode and waits in line instead
// (as does distlock's ZooKeeper backend with backend.WithQueue, measured as
// its own library so that like is compared with like).
//
// CountRedis and CountZooKeeper count the requests one cycle sends to the
// server: Redis through MONITOR, ZooKeeper through a proxy that decodes the
// request headers.
//
// The command hack/bench prints the comparison as a table (make bench); the
// Go benchmarks in this package's tests run single-client cycles for
// profiling:
//
//	go test ./internal/backend/bench -run '^$' -bench 'Redis/distlock' -cpuprofile cpu.out
package bench
