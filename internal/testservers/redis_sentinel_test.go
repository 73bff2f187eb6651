package testservers

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newFailoverClient returns a go-redis client of the Sentinels' master,
// authenticated to the Sentinels with sentinelPassword, that is closed at
// the end of the test.
func newFailoverClient(t *testing.T, s *RedisSentinel, sentinelPassword string) *redis.Client {
	t.Helper()
	cl := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       s.MasterName,
		SentinelAddrs:    s.SentinelAddrs(),
		SentinelPassword: sentinelPassword,
		Password:         s.Password,
		DialTimeout:      2 * time.Second,
		ReadTimeout:      2 * time.Second,
		WriteTimeout:     2 * time.Second,
	})
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestRedisSentinelRequiresItsOwnPasswordAndFailsOver(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	const dataPassword, sentinelPassword = "data-pw", "sentinel-pw"
	start := time.Now()
	s := NewRedisSentinel(t,
		WithSentinelDataOptions(WithRedisPassword(dataPassword)),
		WithSentinelOptions(WithRedisPassword(sentinelPassword)),
	)
	t.Logf("master, replica and 3 sentinels up in %v", time.Since(start).Round(time.Millisecond))

	// The Sentinels refuse a client without their password.
	if err := newFailoverClient(t, s, "").Ping(ctx).Err(); err == nil {
		t.Fatal("PING through Sentinels that require a password succeeded without it")
	} else if !redis.IsAuthError(err) {
		t.Fatalf("PING through Sentinels without their password: %v; want an auth error", err)
	}
	cl := newFailoverClient(t, s, sentinelPassword)
	if err := cl.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatalf("SET through the Sentinels: %v", err)
	}

	steps := []struct {
		name     string
		failover func() (from, to *Redis, err error)
	}{
		{"SENTINEL FAILOVER swaps the roles", func() (*Redis, *Redis, error) { return s.Failover(ctx) }},
		{"a killed master is replaced by its replica", func() (*Redis, *Redis, error) {
			// The old master of the previous step must be a replica in
			// sync first, or there is nothing to promote.
			if err := s.WaitHealthy(ctx); err != nil {
				return nil, nil, err
			}
			killed, err := s.KillPrimary(ctx)
			if err != nil {
				return nil, nil, err
			}
			to, err := s.WaitNewPrimary(ctx, killed)
			return killed, to, err
		}},
	}
	for _, step := range steps {
		started := time.Now()
		from, to, err := step.failover()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		t.Logf("%s: %s -> %s in %v", step.name, from.Addr, to.Addr, time.Since(started).Round(time.Millisecond))
		if from == to {
			t.Fatalf("%s: the master stayed %s", step.name, from.Addr)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := cl.Set(ctx, "k", step.name, 0).Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: SET through the Sentinels after the failover: %v", step.name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
