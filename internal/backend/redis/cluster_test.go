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

package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/conformance"
	"github.com/distlock/distlock/internal/backend/redis"
	"github.com/distlock/distlock/internal/testservers"
)

// connectCluster connects a Locker to the cluster c and closes it when the
// test ends.
func connectCluster(t *testing.T, c *testservers.RedisCluster) backend.Locker {
	t.Helper()
	l, err := redis.New(ctxFor(t, 10*time.Second), backend.Config{Servers: c.Addrs(), Cluster: true, Password: c.Password})
	if err != nil {
		t.Fatalf("New(cluster %v): %v", c.Addrs(), err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// newRawClusterClient returns a plain go-redis cluster client of c, closed
// when the test ends.
func newRawClusterClient(t *testing.T, c *testservers.RedisCluster) *goredis.ClusterClient {
	t.Helper()
	cl := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs(), Password: c.Password})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func TestClusterConformance(t *testing.T) {
	t.Parallel()
	c := testservers.NewRedisCluster(t,
		testservers.WithRedisConfig("appendonly", "yes"),
		testservers.WithRedisConfig("appendfsync", "always"),
	)
	conformance.Run(t, conformance.Harness{
		NewLocker: func(t *testing.T) backend.Locker {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := redis.New(ctx, backend.Config{Servers: c.Addrs(), Cluster: true})
			if err != nil {
				t.Fatalf("New(cluster %v): %v", c.Addrs(), err)
			}
			return l
		},
		KeyPrefix:   "distlock/",
		Server:      c,
		TTL:         testTTL,
		ExpiryGrace: time.Second,
	})
}

func TestClusterKeyAndCounterShareASlot(t *testing.T) {
	t.Parallel()
	c := testservers.NewRedisCluster(t)
	ctx := ctxFor(t, 60*time.Second)
	l, raw := connectCluster(t, c), newRawClusterClient(t, c)

	tests := map[string]struct {
		key     string
		counter string // "" when Acquire must refuse the key
	}{
		"the default layout, without a hash tag: the key is the counter's tag": {
			key: "distlock/ns/reports", counter: "{distlock/ns/reports}:fencing",
		},
		"a key with a hash tag: the counter keeps the tag": {
			key: "locks:{reports}:nightly", counter: "locks:{reports}:nightly:fencing",
		},
		"a key whose tag comes after a stray '}'": {
			key: "a}b{c}", counter: "a}b{c}:fencing",
		},
		"a key with an unclosed '{'": {
			key: "x{y", counter: "{x{y}:fencing",
		},
		"a key with a '}' and no hash tag is refused": {key: "a}b"},
		"a key whose first tag is empty is refused":   {key: "a{}b{c}"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lease, err := l.Acquire(ctx, tc.key, "holder-a", time.Minute)
			if tc.counter == "" {
				if !errors.Is(err, redis.ErrClusterKeyWithoutHashTag) || !strings.Contains(err.Error(), "needs a hash tag") {
					t.Fatalf("Acquire(%q) = %+v, %v; want ErrClusterKeyWithoutHashTag", tc.key, lease, err)
				}
				if n, err := raw.Exists(ctx, tc.key).Result(); err != nil || n != 0 {
					t.Fatalf("EXISTS %q after a refused Acquire = %d, %v; want 0", tc.key, n, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Acquire(%q): %v", tc.key, err)
			}
			keySlot, err := raw.ClusterKeySlot(ctx, tc.key).Result()
			if err != nil {
				t.Fatal(err)
			}
			counterSlot, err := raw.ClusterKeySlot(ctx, tc.counter).Result()
			if err != nil {
				t.Fatal(err)
			}
			if keySlot != counterSlot {
				t.Fatalf("CLUSTER KEYSLOT: key %q in %d, counter %q in %d", tc.key, keySlot, tc.counter, counterSlot)
			}
			if v, err := raw.Get(ctx, tc.counter).Int64(); err != nil || v != lease.Token {
				t.Fatalf("GET %q = %d, %v; want the token %d", tc.counter, v, err, lease.Token)
			}
			if v, err := raw.Get(ctx, tc.key).Result(); err != nil || v != fmt.Sprintf("holder-a;fence=%d", lease.Token) {
				t.Fatalf("GET %q = %q, %v; want holder-a's value", tc.key, v, err)
			}
			if err := l.Release(ctx, lease); err != nil {
				t.Fatalf("Release: %v", err)
			}
			next, err := l.Acquire(ctx, tc.key, "holder-b", time.Minute)
			if err != nil || next.Token != lease.Token+1 {
				t.Fatalf("Acquire(%q) after Release = %+v, %v; want token %d", tc.key, next, err, lease.Token+1)
			}
		})
	}
}

func TestClusterRenewBatchSpansNodes(t *testing.T) {
	t.Parallel()
	c := testservers.NewRedisCluster(t)
	ctx := ctxFor(t, 60*time.Second)
	l, raw := connectCluster(t, c), newRawClusterClient(t, c)
	batcher, ok := l.(backend.BatchRenewer)
	if !ok {
		t.Fatalf("the Redis locker does not renew in batches")
	}

	var renewals []backend.Renewal
	primaries := map[*testservers.Redis]bool{}
	for i := range 12 {
		key := fmt.Sprintf("%s-%d", newKey(t), i)
		lease, err := l.Acquire(ctx, key, "holder-a", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		renewals = append(renewals, backend.Renewal{Lease: lease, TTL: time.Minute})
		p, err := c.PrimaryFor(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		primaries[p] = true
	}
	if len(primaries) < 2 {
		t.Fatalf("12 keys landed on %d primaries; the batch must span nodes", len(primaries))
	}
	if err := raw.Del(ctx, renewals[1].Lease.Key).Err(); err != nil {
		t.Fatal(err)
	}
	// Every node forgets the scripts, as after a restart: the batch must
	// still go through.
	if err := raw.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
		return node.ScriptFlush(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	batcher.RenewBatch(ctx, renewals)
	for i, r := range renewals {
		switch {
		case i == 1 && !errors.Is(r.Err, backend.ErrNotHeld):
			t.Errorf("renewal of the deleted hold: err = %v; want ErrNotHeld", r.Err)
		case i != 1 && r.Err != nil:
			t.Errorf("renewal %d: %v", i, r.Err)
		case i != 1 && (r.Renewed.TTL <= 30*time.Second || r.Renewed.Token != r.Lease.Token):
			t.Errorf("renewal %d = %+v; want the same token with about a minute left", i, r.Renewed)
		}
	}
	if n, err := raw.Exists(ctx, renewals[1].Lease.Key).Result(); err != nil || n != 0 {
		t.Errorf("the batch re-created the deleted hold (exists=%d, err=%v)", n, err)
	}
}

// clusterCounter reads fencing counters straight from the cluster c: the
// counter of a test key with a hash tag is key+":fencing", of one without
// "{"+key+"}:fencing".
func clusterCounter(t *testing.T, c *testservers.RedisCluster) func(ctx context.Context, key string) (int64, error) {
	var raw *goredis.ClusterClient
	return func(ctx context.Context, key string) (int64, error) {
		if raw == nil {
			raw = newRawClusterClient(t, c) // after the failover: a fresh slot map
		}
		name := "{" + key + "}:fencing"
		if strings.Contains(key, "{") {
			name = key + ":fencing"
		}
		n, err := raw.Get(ctx, name).Int64()
		if errors.Is(err, goredis.Nil) {
			return 0, nil
		}
		return n, err
	}
}

func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := testservers.NewRedisCluster(t)
	l := connectCluster(t, c)
	const prefix = "distlock/failover/"
	// The primary failed over is the one serving the first hold's key.
	first := prefix + failoverTag

	rounds := []struct {
		name  string
		start func(ctx context.Context) (string, error)
	}{
		{"CLUSTER FAILOVER on the replica (coordinated)", func(ctx context.Context) (string, error) {
			from, to, err := c.Failover(ctx, first)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("CLUSTER FAILOVER: %s -> %s", from.Addr, to.Addr), nil
		}},
		{"the primary killed (kill -9) and its replica promoted", func(ctx context.Context) (string, error) {
			killed, replica, err := c.KillPrimary(ctx, first)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("kill -9 of primary %s; its replica %s takes over", killed.Addr, replica.Addr), nil
		}},
	}
	for i, round := range rounds {
		report := runFailover(t, l, fmt.Sprintf("%sround-%d/", prefix, i), failover{
			start:   round.start,
			settle:  c.WaitHealthy,
			counter: clusterCounter(t, c),
		})
		t.Logf("Redis Cluster, %s: %s", round.name, report)
	}
}
