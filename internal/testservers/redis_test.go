package testservers

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newRedisClient returns a go-redis client for r that is closed at the end
// of the test.
func newRedisClient(t *testing.T, r *Redis, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{
		Addr:         r.Addr,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
		MaxRetries:   -1,
	}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisSetNXIsExclusiveBetweenClients(t *testing.T) {
	t.Parallel()
	r := NewRedis(t)
	ctx := t.Context()
	first, second := newRedisClient(t, r), newRedisClient(t, r)

	steps := []struct {
		name   string
		client *redis.Client
		value  string
		wantOK bool
	}{
		{"the first client takes the free key", first, "v1", true},
		{"a competing client cannot take the held key", second, "v2", false},
		{"the holder cannot take it a second time either", first, "v3", false},
	}
	for _, s := range steps {
		ok, err := s.client.SetNX(ctx, "k", s.value, 10*time.Second).Result()
		if err != nil {
			t.Fatalf("%s: SET k %s NX PX 10000: %v", s.name, s.value, err)
		}
		if ok != s.wantOK {
			t.Fatalf("%s: SET k %s NX PX 10000 set=%v, want %v", s.name, s.value, ok, s.wantOK)
		}
	}
	// Check the raw reply too: a failed SET NX answers nil.
	if err := second.Do(ctx, "SET", "k", "v2", "NX", "PX", 10000).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("competing raw SET k v2 NX PX 10000: err=%v, want redis.Nil", err)
	}
	if got, err := second.Get(ctx, "k").Result(); err != nil || got != "v1" {
		t.Fatalf("GET k = %q, %v; want v1", got, err)
	}
	if ttl, err := second.PTTL(ctx, "k").Result(); err != nil || ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("PTTL k = %v, %v; want within (0, 10s]", ttl, err)
	}
}

func TestRedisRestartComesBackOnSameAddress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	tests := []struct {
		name  string
		opts  []RedisOption
		crash bool // Kill before Restart instead of a graceful restart
		// wantKept says whether data written before the restart survives.
		wantKept bool
	}{
		{name: "a graceful restart without persistence loses the data", wantKept: false},
		{name: "a crash and restart without persistence loses the data", crash: true, wantKept: false},
		{
			name:     "a crash and restart with appendonly keeps the data",
			opts:     []RedisOption{WithRedisConfig("appendonly", "yes"), WithRedisConfig("appendfsync", "always")},
			crash:    true,
			wantKept: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewRedis(t, tt.opts...)
			addr, pid := r.Addr, r.Pid()
			c := newRedisClient(t, r)
			if err := c.Set(ctx, "survivor", "yes", 0).Err(); err != nil {
				t.Fatalf("SET before restart: %v", err)
			}
			if tt.crash {
				if err := r.Kill(); err != nil {
					t.Fatalf("Kill: %v", err)
				}
				if err := c.Ping(ctx).Err(); err == nil {
					t.Fatal("PING succeeded after Kill")
				}
				if r.Pid() != 0 {
					t.Fatalf("Pid after Kill = %d, want 0", r.Pid())
				}
			}
			if err := r.Restart(ctx); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if r.Addr != addr {
				t.Fatalf("Addr changed from %s to %s", addr, r.Addr)
			}
			if r.Pid() == pid || r.Pid() == 0 {
				t.Fatalf("Pid after restart = %d, old pid %d: not a new process", r.Pid(), pid)
			}
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatalf("PING after restart: %v", err)
			}
			got, err := c.Get(ctx, "survivor").Result()
			switch {
			case tt.wantKept && (err != nil || got != "yes"):
				t.Fatalf("GET survivor = %q, %v; want yes", got, err)
			case !tt.wantKept && !errors.Is(err, redis.Nil):
				t.Fatalf("GET survivor = %q, %v; want redis.Nil", got, err)
			}
		})
	}
}

func TestRedisAuthentication(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := NewRedis(t, WithRedisPassword("s3cret \"quoted\""), WithRedisACLUser("locker", "p w"))

	tests := []struct {
		name     string
		username string
		password string
		wantErr  string // substring; "" means PING must succeed
	}{
		{name: "without credentials the server refuses", wantErr: "NOAUTH"},
		{name: "the default user needs the requirepass password", password: r.Password},
		{name: "a wrong password is rejected", password: "wrong", wantErr: "WRONGPASS"},
		{name: "the ACL user logs in with its own password", username: r.Username, password: r.UserPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRedisClient(t, r, func(o *redis.Options) {
				o.Username, o.Password = tt.username, tt.password
			})
			err := c.Ping(ctx).Err()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("PING: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("PING error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRedisPauseMakesServerUnresponsive(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := NewRedis(t)
	c := newRedisClient(t, r)
	impatient := newRedisClient(t, r, func(o *redis.Options) {
		o.ReadTimeout = 300 * time.Millisecond
		o.DialTimeout = 300 * time.Millisecond
	})
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING before Pause: %v", err)
	}
	if err := r.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := impatient.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded while the server was paused")
	}
	if err := r.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
	// Stop must also work on a paused server (SIGTERM alone would not be
	// delivered to a stopped process).
	if err := r.Pause(); err != nil {
		t.Fatalf("second Pause: %v", err)
	}
	start := time.Now()
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop of a paused server: %v", err)
	}
	if d := time.Since(start); d > stopGrace {
		t.Errorf("Stop of a paused server took %v; SIGCONT was not delivered", d)
	}
}

func TestRedisStopEndsProcessAndRemovesDir(t *testing.T) {
	t.Parallel()
	r, err := StartRedis(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pid := r.Pid()
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if processAlive(pid) {
		t.Errorf("redis-server pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Errorf("Dir %s still there after Stop (stat: %v)", r.Dir, err)
	}
	if err := r.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := r.Restart(t.Context()); !errors.Is(err, ErrStopped) {
		t.Errorf("Restart after Stop: %v, want ErrStopped", err)
	}
	if err := r.Pause(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Pause after Stop: %v, want ErrNotRunning", err)
	}
}

// Not parallel: it changes the environment.
func TestRedisMissingBinarySaysWhatToInstall(t *testing.T) {
	t.Setenv("DISTLOCK_REDIS_SERVER", "/nonexistent/redis-server")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, err := StartRedis(ctx)
	if err == nil {
		r.Stop()
		t.Fatal("StartRedis succeeded with a missing binary")
	}
	if !strings.Contains(err.Error(), "make test-deps") || !strings.Contains(err.Error(), "redis-server") {
		t.Errorf("error %q does not say what to install", err)
	}
	if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("error %v does not wrap a not-found error", err)
	}
}
