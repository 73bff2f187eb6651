package testservers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newClusterClient returns a go-redis cluster client of c that is closed at
// the end of the test.
func newClusterClient(t *testing.T, c *RedisCluster) *redis.ClusterClient {
	t.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        c.Addrs(),
		Password:     c.Password,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// eventuallySet sets key through cl, retrying while the cluster settles
// after a failover.
func eventuallySet(ctx context.Context, t *testing.T, cl *redis.ClusterClient, key, value string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cl.Set(ctx, key, value, 0).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SET %s through the cluster client: %v", key, err)
		}
		// A crashed primary answers no MOVED: have the client ask for the
		// slot map again.
		cl.ReloadState(ctx)
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisClusterServesEverySlotAndFailsOver(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	start := time.Now()
	c := NewRedisCluster(t, WithRedisPassword("cluster-pw"))
	t.Logf("6 nodes up and joined in %v", time.Since(start).Round(time.Millisecond))
	cl := newClusterClient(t, c)

	// Keys land on all three primaries, and each primary has a replica.
	primaries := map[*Redis]string{}
	for i := range 30 {
		key := fmt.Sprintf("key-%d", i)
		eventuallySet(ctx, t, cl, key, "v")
		p, err := c.PrimaryFor(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		primaries[p] = key
	}
	if len(primaries) != clusterPrimaries {
		t.Fatalf("30 keys landed on %d primaries; want %d", len(primaries), clusterPrimaries)
	}
	for p := range primaries {
		if _, err := c.ReplicaOf(ctx, p); err != nil {
			t.Fatalf("primary %s: %v", p.Addr, err)
		}
	}

	steps := []struct {
		name string
		// failover fails key's primary over and returns the old and new
		// primary once the cluster is healthy.
		failover func(key string) (from, to *Redis, err error)
	}{
		{"CLUSTER FAILOVER on the replica swaps the roles", func(key string) (*Redis, *Redis, error) {
			return c.Failover(ctx, key)
		}},
		{"a killed primary is replaced by its replica", func(key string) (*Redis, *Redis, error) {
			killed, replica, err := c.KillPrimary(ctx, key)
			if err != nil {
				return nil, nil, err
			}
			if killed.Pid() != 0 {
				return nil, nil, fmt.Errorf("the killed primary %s still runs", killed.Addr)
			}
			return killed, replica, c.WaitHealthy(ctx)
		}},
	}
	for _, step := range steps {
		key := "key-0"
		started := time.Now()
		from, to, err := step.failover(key)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		t.Logf("%s: %s -> %s in %v", step.name, from.Addr, to.Addr, time.Since(started).Round(time.Millisecond))
		if p, err := c.PrimaryFor(ctx, key); err != nil || p != to {
			t.Fatalf("%s: primary of %s = %v, %v; want %s", step.name, key, p, err, to.Addr)
		}
		eventuallySet(ctx, t, cl, key, step.name)
		if got, err := cl.Get(ctx, key).Result(); err != nil || got != step.name {
			t.Fatalf("%s: GET %s = %q, %v; want %q", step.name, key, got, err, step.name)
		}
	}

	// The killed node comes back as a replica of its successor.
	var killed *Redis
	for _, node := range c.Nodes {
		if node.Pid() == 0 {
			killed = node
		}
	}
	if err := killed.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	primary, err := c.PrimaryFor(ctx, "key-0")
	if err != nil {
		t.Fatal(err)
	}
	if replica, err := c.ReplicaOf(ctx, primary); err != nil || replica != killed {
		t.Fatalf("replica of %s after the restart = %v, %v; want the restarted %s", primary.Addr, replica, err, killed.Addr)
	}
}

func TestRedisClusterKillAndRestartKeepPersistedData(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	c := NewRedisCluster(t, WithRedisConfig("appendonly", "yes"), WithRedisConfig("appendfsync", "always"))
	cl := newClusterClient(t, c)
	for i := range 10 {
		eventuallySet(ctx, t, cl, fmt.Sprintf("k%d", i), "kept")
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Get(ctx, "k0").Err(); err == nil {
		t.Fatal("GET succeeded with every node killed")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		key := fmt.Sprintf("k%d", i)
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := cl.Get(ctx, key).Result()
			if err == nil && got == "kept" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s after Kill and Restart = %q, %v; want kept", key, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
