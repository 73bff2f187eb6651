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
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// Locks on the Redis deployments that outgrow one server: a Redis Cluster,
// and a master behind Sentinels that require a password of their own.

func TestALockOnARedisClusterIsGrantedWithItsCounterInTheKeysSlot(t *testing.T) {
	cluster := testservers.NewRedisCluster(t)
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	onCluster := backendCase{spec: func() locksv1alpha1.BackendSpec {
		// Three seeds of six nodes: the controller learns the rest.
		return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
			Cluster: &locksv1alpha1.RedisCluster{Addresses: cluster.Addrs()[:3]},
		}}
	}}
	newLock(ctx, t, ns, "reports", onCluster)
	newPod(ctx, t, ns, "worker-0", "reports")

	lock := waitLock(ctx, t, ns, "reports", "held by worker-0", holderIs("worker-0"))
	key, token := lock.Status.Key, lock.Status.Holders[0].FencingToken
	raw := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cluster.Addrs()})
	defer raw.Close()
	value, err := raw.Get(ctx, key).Result()
	if err != nil || !strings.HasSuffix(value, fmt.Sprintf(";fence=%d", token)) {
		t.Fatalf("GET %q on the cluster = %q, %v; want the hold with token %d", key, value, err, token)
	}
	counter := "{" + key + "}:fencing"
	if n, err := raw.Get(ctx, counter).Int64(); err != nil || n != token {
		t.Fatalf("GET %q on the cluster = %d, %v; want the counter at %d", counter, n, err, token)
	}
	keySlot, err1 := raw.ClusterKeySlot(ctx, key).Result()
	counterSlot, err2 := raw.ClusterKeySlot(ctx, counter).Result()
	if err1 != nil || err2 != nil || keySlot != counterSlot {
		t.Fatalf("CLUSTER KEYSLOT: key %d (%v), counter %d (%v); want the same slot", keySlot, err1, counterSlot, err2)
	}
}

func TestALockBehindSentinelsWithTheirOwnPasswordIsGranted(t *testing.T) {
	const dataPassword, sentinelPassword = "data-s3cret", "sentinel-s3cret"
	sentinels := testservers.NewRedisSentinel(t,
		testservers.WithSentinelDataOptions(testservers.WithRedisPassword(dataPassword)),
		testservers.WithSentinelOptions(testservers.WithRedisPassword(sentinelPassword)),
	)
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	behindSentinels := func(secret string) backendCase {
		return backendCase{spec: func() locksv1alpha1.BackendSpec {
			return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
				Sentinel: &locksv1alpha1.RedisSentinel{
					MasterName: sentinels.MasterName,
					Addresses:  sentinels.SentinelAddrs(),
				},
				CredentialsSecretRef: &locksv1alpha1.SecretReference{Name: secret},
			}}
		}}
	}
	newSecret(ctx, t, ns, "both-passwords", map[string]string{"password": dataPassword, "sentinelPassword": sentinelPassword})
	newSecret(ctx, t, ns, "servers-only", map[string]string{"password": dataPassword})

	newLock(ctx, t, ns, "reports", behindSentinels("both-passwords"))
	newLock(ctx, t, ns, "no-sentinel-password", behindSentinels("servers-only"))
	newPod(ctx, t, ns, "worker-0", "reports")
	newPod(ctx, t, ns, "worker-1", "no-sentinel-password")

	waitLock(ctx, t, ns, "reports", "held by worker-0", holderIs("worker-0"))
	lock := waitLock(ctx, t, ns, "no-sentinel-password", "refused by the Sentinels",
		conditionReason(locksv1alpha1.ConditionBackendReachable, locksv1alpha1.ReasonUnauthorized))
	if len(lock.Status.Holders) != 0 {
		t.Errorf("a lock whose Sentinels refused the credentials has holders: %+v", lock.Status.Holders)
	}
}

func TestRedisClusterKeysNeedAHashTagOnlyWhenTheyContainABrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := newTestNamespace(ctx, t)
	tests := map[string]struct {
		key    string
		accept bool
	}{
		"a key without braces":                          {key: ns + ":reports", accept: true},
		"a key with a hash tag":                         {key: ns + ":{reports}:nightly", accept: true},
		"a key with a hash tag and a '}' after it":      {key: ns + ":{reports}:a}b", accept: true},
		"a key with an unclosed '{'":                    {key: ns + ":a{b", accept: true},
		"a key with a '}' and no hash tag":              {key: ns + ":a}b"},
		"a key whose first '{...}' is empty":            {key: ns + ":{}:a}b"},
		"a key with a '}' before its only '{...}' pair": {key: ns + ":a}{b}", accept: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lock := &locksv1alpha1.DistributedLock{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "cluster-"},
				Spec: locksv1alpha1.DistributedLockSpec{
					Backend: locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{
						Cluster: &locksv1alpha1.RedisCluster{Addresses: []string{"redis-0:6379"}},
					}},
					Key: tc.key,
				},
			}
			err := k8sClient.Create(ctx, lock)
			switch {
			case tc.accept && err != nil:
				t.Fatalf("the API server refused spec.key %q on a cluster: %v", tc.key, err)
			case !tc.accept && (err == nil || !strings.Contains(err.Error(), "no hash tag")):
				t.Fatalf("creating a cluster lock with spec.key %q: %v; want it refused for want of a hash tag", tc.key, err)
			}
		})
	}
}
