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

package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

func TestDistributedLockIsStoredByTheAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := newTestNamespace(ctx, t)

	lock := &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reports"},
		Spec: locksv1alpha1.DistributedLockSpec{
			Backend: locksv1alpha1.BackendSpec{
				Redis: &locksv1alpha1.RedisBackend{Address: "127.0.0.1:6379"},
			},
		},
	}
	if err := k8sClient.Create(ctx, lock); err != nil {
		t.Fatalf("creating the lock: %v", err)
	}

	var got locksv1alpha1.DistributedLock
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(lock), &got); err != nil {
		t.Fatalf("reading the lock back: %v", err)
	}
	want := locksv1alpha1.DistributedLockSpec{
		Backend: locksv1alpha1.BackendSpec{
			Redis: &locksv1alpha1.RedisBackend{Address: "127.0.0.1:6379"},
		},
		// The API server applies the CRD's defaults.
		LeaseDuration: &metav1.Duration{Duration: 30 * time.Second},
		MaxHolders:    1,
		QueueOrder:    locksv1alpha1.QueueFIFO,
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("spec read back differs (-want +got):\n%s", diff)
	}
	if got.UID == "" || got.ResourceVersion == "" {
		t.Errorf("the object read back has no UID or resourceVersion: %+v", got.ObjectMeta)
	}
}

func redisAt(addr string) locksv1alpha1.BackendSpec {
	return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: addr}}
}

func zkAt(servers ...string) locksv1alpha1.BackendSpec {
	return locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: servers}}
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// TestDistributedLockAdmissionRejectsMalformedSpecs is the table of every
// malformed spec tried, with the message the API server answers. The same
// table is in docs/api.md.
func TestDistributedLockAdmissionRejectsMalformedSpecs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := newTestNamespace(ctx, t)

	tests := map[string]struct {
		// name, when set, names the lock (else the API server generates one).
		name        string
		spec        locksv1alpha1.DistributedLockSpec
		wantMessage string
	}{
		"a lock name longer than a label value may be (63)": {
			name:        strings.Repeat("a", 64),
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379")},
			wantMessage: "metadata.name must be at most 63 characters: pods name the lock in the label distlock.io/lock",
		},
		"an unknown ZooKeeper node naming": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{
				Servers: []string{"zk:2181"}, NodeNames: "Zookeeper",
			}}},
			wantMessage: `spec.backend.zookeeper.nodeNames: Unsupported value: "Zookeeper": supported values: "Curator", "Kazoo"`,
		},
		"a lock with no backend": {
			spec:        locksv1alpha1.DistributedLockSpec{},
			wantMessage: "exactly one of backend.redis or backend.zookeeper must be set",
		},
		"a lock with both backends": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{
				Redis:     &locksv1alpha1.RedisBackend{Address: "127.0.0.1:6379"},
				ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{"127.0.0.1:2181"}},
			}},
			wantMessage: "exactly one of backend.redis or backend.zookeeper must be set",
		},
		"a redis backend with neither address, sentinel nor cluster": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{}}},
			wantMessage: "set exactly one of redis.address (one server), redis.sentinel (a master found through Sentinels) or redis.cluster (a Redis Cluster)",
		},
		"a redis backend with both address and sentinel": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Address:  "redis:6379",
				Sentinel: &locksv1alpha1.RedisSentinel{MasterName: "mymaster", Addresses: []string{"sentinel:26379"}},
			}}},
			wantMessage: "set exactly one of redis.address (one server), redis.sentinel (a master found through Sentinels) or redis.cluster (a Redis Cluster)",
		},
		"a redis backend with both address and cluster": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Address: "redis:6379",
				Cluster: &locksv1alpha1.RedisCluster{Addresses: []string{"redis-0:6379"}},
			}}},
			wantMessage: "set exactly one of redis.address (one server), redis.sentinel (a master found through Sentinels) or redis.cluster",
		},
		"a redis cluster with a database other than 0": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Cluster: &locksv1alpha1.RedisCluster{Addresses: []string{"redis-0:6379"}}, DB: 1,
			}}},
			wantMessage: "redis.db must be 0 or unset with redis.cluster: a Redis Cluster has only database 0",
		},
		"a redis cluster address without a port": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Cluster: &locksv1alpha1.RedisCluster{Addresses: []string{"redis-0:6379", "redis-1"}},
			}}},
			wantMessage: "every cluster address must be host:port, for example redis-cluster-0.infra.svc:6379",
		},
		"a redis cluster without addresses": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Cluster: &locksv1alpha1.RedisCluster{Addresses: []string{}},
			}}},
			wantMessage: "spec.backend.redis.cluster.addresses: Invalid value: 0: spec.backend.redis.cluster.addresses in body should have at least 1 items",
		},
		"a Redis Cluster key with a '}' but no hash tag (its counter could not share its slot)": {
			spec: locksv1alpha1.DistributedLockSpec{
				Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
					Cluster: &locksv1alpha1.RedisCluster{Addresses: []string{"redis-0:6379"}},
				}},
				Key: "billing:a}b",
			},
			wantMessage: "spec.key for a Redis Cluster lock contains '}' but no hash tag",
		},
		"a redis address without a port": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis.infra.svc")},
			wantMessage: "redis.address must be host:port, for example redis.infra.svc:6379",
		},
		"a redis address given as a URL": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis://redis:6379")},
			wantMessage: "redis.address must be host:port",
		},
		"a sentinel address without a port": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Sentinel: &locksv1alpha1.RedisSentinel{MasterName: "mymaster", Addresses: []string{"sentinel"}},
			}}},
			wantMessage: "every sentinel address must be host:port",
		},
		"a sentinel without a master name": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Sentinel: &locksv1alpha1.RedisSentinel{Addresses: []string{"sentinel:26379"}},
			}}},
			wantMessage: "spec.backend.redis.sentinel.masterName: Invalid value: \"\": spec.backend.redis.sentinel.masterName in body should be at least 1 chars long",
		},
		"a redis database number out of range": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Address: "redis:6379", DB: 16,
			}}},
			wantMessage: "spec.backend.redis.db: Invalid value: 16: spec.backend.redis.db in body should be less than or equal to 15",
		},
		"a credentials Secret reference without a name": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Address: "redis:6379", CredentialsSecretRef: &locksv1alpha1.SecretReference{},
			}}},
			wantMessage: "spec.backend.redis.credentialsSecretRef.name in body should be at least 1 chars long",
		},
		"a zookeeper backend with no servers": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: zkAt()},
			wantMessage: "spec.backend.zookeeper.servers: Required value",
		},
		"a zookeeper server without a port": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: zkAt("zk-0:2181", "zk-1")},
			wantMessage: "every zookeeper server must be host:port",
		},
		"a zookeeper session timeout too short": {
			spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{
				Servers: []string{"zk:2181"}, SessionTimeout: duration(time.Second),
			}}},
			wantMessage: "sessionTimeout must be between 2s and 60s",
		},
		"a zookeeper key that is not an absolute path": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: zkAt("zk:2181"), Key: "locks/reports"},
			wantMessage: "spec.key for a ZooKeeper lock must be an absolute znode path",
		},
		"a zookeeper key that ends with a slash": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: zkAt("zk:2181"), Key: "/locks/reports/"},
			wantMessage: "spec.key for a ZooKeeper lock must be an absolute znode path",
		},
		"a zookeeper key with an empty segment": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: zkAt("zk:2181"), Key: "/locks//reports"},
			wantMessage: "spec.key for a ZooKeeper lock must be an absolute znode path",
		},
		"a key with a space": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379"), Key: "nightly report"},
			wantMessage: "spec.key must be printable ASCII without spaces",
		},
		"a lease shorter than 10s (a failover of the manager must fit in it)": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379"), LeaseDuration: duration(5 * time.Second)},
			wantMessage: "leaseDuration must be between 10s and 1h",
		},
		"a lease longer than 1h": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379"), LeaseDuration: duration(2 * time.Hour)},
			wantMessage: "leaseDuration must be between 10s and 1h",
		},
		"a maximum hold shorter than the lease": {
			spec: locksv1alpha1.DistributedLockSpec{
				Backend: redisAt("redis:6379"), LeaseDuration: duration(time.Minute), MaxHoldDuration: duration(30 * time.Second),
			},
			wantMessage: "spec.maxHoldDuration must be at least spec.leaseDuration",
		},
		"more holders than status can list": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379"), MaxHolders: 65},
			wantMessage: "spec.maxHolders: Invalid value: 65: spec.maxHolders in body should be less than or equal to 64",
		},
		"a negative number of holders": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379"), MaxHolders: -1},
			wantMessage: "spec.maxHolders: Invalid value: -1: spec.maxHolders in body should be greater than or equal to 1",
		},
		"an unknown queue order": {
			spec:        locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379"), QueueOrder: "LIFO"},
			wantMessage: `spec.queueOrder: Unsupported value: "LIFO": supported values: "FIFO", "Priority"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lock := &locksv1alpha1.DistributedLock{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-", Name: tc.name},
				Spec:       tc.spec,
			}
			err := k8sClient.Create(ctx, lock)
			if err == nil {
				t.Fatalf("the API server accepted the spec %+v; want it rejected with %q", tc.spec, tc.wantMessage)
			}
			if !strings.Contains(err.Error(), tc.wantMessage) {
				t.Errorf("rejected with %q; want a message containing %q", err, tc.wantMessage)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

func TestDistributedLockKeyCannotChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := newTestNamespace(ctx, t)
	for name, tc := range map[string]struct{ from, to string }{
		"setting a key":  {"", "other/key"},
		"changing a key": {"a/key", "other/key"},
		"removing a key": {"a/key", ""},
	} {
		t.Run(name, func(t *testing.T) {
			lock := &locksv1alpha1.DistributedLock{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "immutable-"},
				Spec:       locksv1alpha1.DistributedLockSpec{Backend: redisAt("redis:6379"), Key: tc.from},
			}
			if err := k8sClient.Create(ctx, lock); err != nil {
				t.Fatalf("creating: %v", err)
			}
			lock.Spec.Key = tc.to
			err := k8sClient.Update(ctx, lock)
			if err == nil || !strings.Contains(err.Error(), "spec.key is immutable") {
				t.Errorf("update from key %q to %q: err = %v; want 'spec.key is immutable'", tc.from, tc.to, err)
			}
		})
	}
}
