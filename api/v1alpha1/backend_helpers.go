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

package v1alpha1

// Backend names: the field names in spec.backend, the value of
// status.backend, and the names the backends register under.
const (
	BackendRedis     = "redis"
	BackendZooKeeper = "zookeeper"
)

// Name returns the name of the selected backend, or "" when none is set
// (admission rejects such a spec).
func (b BackendSpec) Name() string {
	switch {
	case b.Redis != nil:
		return BackendRedis
	case b.ZooKeeper != nil:
		return BackendZooKeeper
	default:
		return ""
	}
}

// Servers returns the host:port addresses the backend names: the Redis
// server, its Sentinels or the seed nodes of its cluster, or the ZooKeeper
// ensemble.
func (b BackendSpec) Servers() []string {
	switch {
	case b.ZooKeeper != nil:
		return b.ZooKeeper.Servers
	case b.Redis != nil && b.Redis.Sentinel != nil:
		return b.Redis.Sentinel.Addresses
	case b.Redis != nil && b.Redis.Cluster != nil:
		return b.Redis.Cluster.Addresses
	case b.Redis != nil:
		return []string{b.Redis.Address}
	default:
		return nil
	}
}
