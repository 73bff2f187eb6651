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

// Package outsiders holds, for tests, the lock recipes of programs outside
// Kubernetes that share a lock with distlock, each written step by step as
// the library it copies does it: Python kazoo's Lock, and the plainest
// ZooKeeper recipe (one ephemeral node at the lock path). go-zookeeper's
// zk.Lock (Curator's layout) and the Redis SET NX PX recipe are used as they
// are. Tests use them to prove that distlock and these programs exclude each
// other both ways.
package outsiders
