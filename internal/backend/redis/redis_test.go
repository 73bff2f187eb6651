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
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/conformance"
	"github.com/distlock/distlock/internal/backend/redis"
	"github.com/distlock/distlock/internal/testservers"
)

const testTTL = 2 * time.Second

// ctxFor returns a context that ends after d or with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect connects a Locker to srv with the server's own credentials and
// closes it when the test ends.
func connect(t *testing.T, srv *testservers.Redis) backend.Locker {
	t.Helper()
	l, err := redis.New(ctxFor(t, 10*time.Second), backend.Config{
		Servers:  []string{srv.Addr},
		Username: srv.Username,
		Password: srv.Password + srv.UserPassword,
	})
	if err != nil {
		t.Fatalf("New(%s): %v", srv.Addr, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

var keySeq atomic.Int64

// newKey returns a lock key no other test uses.
func newKey(t *testing.T) string {
	return fmt.Sprintf("test-%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), keySeq.Add(1))
}

func TestRegistered(t *testing.T) {
	factory, ok := backend.Lookup("redis")
	if !ok || factory == nil {
		t.Fatalf("backend.Lookup(%q) = %v, %v; want the redis factory", "redis", factory, ok)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t,
		testservers.WithRedisConfig("appendonly", "yes"),
		testservers.WithRedisConfig("appendfsync", "always"),
	)
	conformance.Run(t, conformance.Harness{
		NewLocker: func(t *testing.T) backend.Locker {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := redis.New(ctx, backend.Config{Servers: []string{srv.Addr}})
			if err != nil {
				t.Fatalf("New(%s): %v", srv.Addr, err)
			}
			return l
		},
		KeyPrefix:   "distlock/",
		Server:      srv,
		TTL:         testTTL,
		ExpiryGrace: time.Second,
	})
}

// outsider is a program outside the cluster that uses the classic recipe on
// the same keys: SET NX PX with a random value, and a compare-and-delete.
type outsider struct {
	client *goredis.Client
	value  string
}

var compareAndDelete = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

func newOutsider(t *testing.T, srv *testservers.Redis) *outsider {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Password: srv.Password})
	t.Cleanup(func() { _ = c.Close() })
	return &outsider{client: c, value: base64.StdEncoding.EncodeToString(b)}
}

// take runs SET key value NX PX 10000 and reports whether it set the key.
func (o *outsider) take(ctx context.Context, t *testing.T, key string) bool {
	t.Helper()
	err := o.client.SetArgs(ctx, key, o.value, goredis.SetArgs{Mode: "NX", TTL: 10 * time.Second}).Err()
	switch {
	case err == nil:
		return true
	case errors.Is(err, goredis.Nil):
		return false
	default:
		t.Fatalf("outside SET %s NX PX: %v", key, err)
		return false
	}
}

// release runs the compare-and-delete with the outsider's value and returns
// the number of keys deleted.
func (o *outsider) release(ctx context.Context, t *testing.T, key string) int64 {
	t.Helper()
	n, err := compareAndDelete.Run(ctx, o.client, []string{key}, o.value).Int64()
	if err != nil {
		t.Fatalf("outside compare-and-delete of %s: %v", key, err)
	}
	return n
}

func TestOutsideProgramExcludesUs(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, o, key := connect(t, srv), newOutsider(t, srv), newKey(t)

	if !o.take(ctx, t, key) {
		t.Fatalf("outside SET NX on a free key did not set it")
	}
	_, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire while an outside program holds the key: err = %v; want ErrNotAcquired", err)
	}
	if !strings.Contains(err.Error(), o.value) {
		t.Errorf("Acquire error %q does not name the outside holder %q", err, o.value)
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if !st.Held || st.Holder != o.value || st.Token != 0 {
		t.Fatalf("Inspect = %+v; want held by %q with token 0", st, o.value)
	}
	if st.TTL <= 0 || st.TTL > 10*time.Second {
		t.Errorf("Inspect TTL = %v; want in (0, 10s]", st.TTL)
	}
	if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Purge while an outside program holds the key: err = %v; want ErrNotAcquired", err)
	}

	if n := o.release(ctx, t, key); n != 1 {
		t.Fatalf("outside compare-and-delete deleted %d keys; want 1", n)
	}
	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire after the outside program released: %v", err)
	}
	if lease.Token <= 0 {
		t.Errorf("lease token = %d; want > 0", lease.Token)
	}
}

func TestWeExcludeOutsideProgram(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, o, key := connect(t, srv), newOutsider(t, srv), newKey(t)

	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if o.take(ctx, t, key) {
		t.Fatalf("outside SET NX succeeded while we hold %s", key)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !o.take(ctx, t, key) {
		t.Fatalf("outside SET NX failed after our Release")
	}
	if v, err := o.client.Get(ctx, key).Result(); err != nil || v != o.value {
		t.Fatalf("GET %s = %q, %v; want the outsider's value %q", key, v, err, o.value)
	}
}

func TestOutsideReleaseNeverDeletesOurHold(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, o, key := connect(t, srv), newOutsider(t, srv), newKey(t)

	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	for range 2 {
		if n := o.release(ctx, t, key); n != 0 {
			t.Fatalf("outside compare-and-delete with its own value deleted %d keys; want 0", n)
		}
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if !st.Held || st.Holder != "holder-a" || st.Token != lease.Token {
		t.Fatalf("Inspect = %+v; want still held by holder-a with token %d", st, lease.Token)
	}
	if _, err := l.Renew(ctx, lease, testTTL); err != nil {
		t.Fatalf("Renew after the outside release attempts: %v", err)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	const password, user, userPassword = "s3cret-default", "distlock", "s3cret-user"
	srv := testservers.NewRedis(t,
		testservers.WithRedisPassword(password),
		testservers.WithRedisACLUser(user, userPassword),
	)
	tests := []struct {
		name               string
		username, password string
		wantErr            error
	}{
		{"right password", "", password, nil},
		{"right ACL user and password", user, userPassword, nil},
		{"wrong password", "", "wrong", backend.ErrUnauthorized},
		{"ACL user with the wrong password", user, password, backend.ErrUnauthorized},
		{"unknown ACL user", "nobody", userPassword, backend.ErrUnauthorized},
		{"no password", "", "", backend.ErrUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxFor(t, 10*time.Second)
			l, err := redis.New(ctx, backend.Config{
				Servers:  []string{srv.Addr},
				Username: tc.username,
				Password: tc.password,
			})
			if tc.wantErr != nil {
				if l != nil {
					_ = l.Close()
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("New: err = %v; want %v", err, tc.wantErr)
				}
				if errors.Is(err, backend.ErrUnreachable) {
					t.Errorf("New: err = %v; must not also claim the server is unreachable", err)
				}
				msg := err.Error()
				for _, want := range []string{srv.Addr, "refused the credentials"} {
					if !strings.Contains(msg, want) {
						t.Errorf("New: error %q does not mention %q", msg, want)
					}
				}
				if tc.password != "" && strings.Contains(msg, tc.password) {
					t.Errorf("New: error %q contains the password", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer l.Close()
			key := newKey(t)
			lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			if err := l.Release(ctx, lease); err != nil {
				t.Fatalf("Release: %v", err)
			}
		})
	}
}

func TestNewUnreachable(t *testing.T) {
	t.Parallel()
	// A port that nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	start := time.Now()
	l, err := redis.New(ctxFor(t, 10*time.Second), backend.Config{Servers: []string{addr}})
	if l != nil {
		_ = l.Close()
	}
	if !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("New(%s) with nothing listening: err = %v; want ErrUnreachable", addr, err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address %s", err, addr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("New with nothing listening took %v; want it to fail fast", took)
	}

	if _, err := redis.New(t.Context(), backend.Config{}); err == nil {
		t.Errorf("New without servers succeeded; want an error")
	}
}

func TestHungServerIsUnreachable(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, key := connect(t, srv), newKey(t)
	if _, err := l.Inspect(ctx, key); err != nil {
		t.Fatalf("Inspect: %v", err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	t.Cleanup(func() {
		if paused {
			_ = srv.Resume()
		}
	})
	callCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	start := time.Now()
	_, err := l.Acquire(callCtx, key, "holder-a", testTTL)
	cancel()
	if !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("Acquire on a hung server: err = %v; want ErrUnreachable", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Acquire on a hung server took %v; want it bounded by its 500ms context", took)
	}

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	paused = false
	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire after the server resumed: %v", err)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// A holder whose name looks like one of our values must not be confused
// with the shorter holder name.
func TestHolderNamesContainingTheSeparator(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, key := connect(t, srv), newKey(t)

	const tricky = "holder-a;fence=1"
	lease, err := l.Acquire(ctx, key, tricky, testTTL)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", tricky, err)
	}
	if _, err := l.Acquire(ctx, key, "holder-a", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire(%q) while %q holds: err = %v; want ErrNotAcquired", "holder-a", tricky, err)
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if st.Holder != tricky || st.Token != lease.Token {
		t.Fatalf("Inspect = %+v; want holder %q with token %d", st, tricky, lease.Token)
	}
	again, err := l.Acquire(ctx, key, tricky, testTTL)
	if err != nil || again.Token != lease.Token {
		t.Fatalf("Acquire(%q) again = %+v, %v; want the same hold", tricky, again, err)
	}
}

func TestPurgeKeepsTheFencingCounterSoTokensGoOnRising(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, key := connect(t, srv), newKey(t)
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = raw.Close() })

	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if v, err := raw.Get(ctx, key).Result(); err != nil || v != fmt.Sprintf("holder-a;fence=%d", lease.Token) {
		t.Fatalf("GET %s = %q, %v; want %q", key, v, err, fmt.Sprintf("holder-a;fence=%d", lease.Token))
	}
	if pttl, err := raw.PTTL(ctx, key).Result(); err != nil || pttl <= 0 || pttl > testTTL {
		t.Fatalf("PTTL %s = %v, %v; want in (0, %v]", key, pttl, err, testTTL)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if n, err := raw.Exists(ctx, key+":fencing").Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS %s:fencing after Release = %d, %v; want 1", key, n, err)
	}
	if err := l.Purge(ctx, key); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if n, err := raw.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS %s after Purge = %d, %v; want 0", key, n, err)
	}
	next, err := l.Acquire(ctx, key, "holder-b", testTTL)
	if err != nil {
		t.Fatalf("Acquire after Purge: %v", err)
	}
	if next.Token <= lease.Token {
		t.Fatalf("token after Purge = %d; want > %d (a lock created again on the key must go on counting)", next.Token, lease.Token)
	}
}

// ExampleNew shows how to hold a lock. It needs a Redis server, so it is
// compiled but not run.
func ExampleNew() {
	ctx := context.Background()
	locker, err := redis.New(ctx, backend.Config{
		Servers:  []string{"127.0.0.1:6379"},
		Password: "secret",
	})
	if err != nil {
		fmt.Println("connect:", err) // wraps backend.ErrUnreachable or backend.ErrUnauthorized
		return
	}
	defer locker.Close()

	lease, err := locker.Acquire(ctx, "locks/reports", "pod-a", 10*time.Second)
	if errors.Is(err, backend.ErrNotAcquired) {
		st, _ := locker.Inspect(ctx, "locks/reports")
		fmt.Println("busy, held by", st.Holder)
		return
	} else if err != nil {
		fmt.Println("acquire:", err)
		return
	}
	fmt.Println("holding with fencing token", lease.Token)

	// Renew well before the TTL runs out; ErrNotHeld means the lock is lost.
	if lease, err = locker.Renew(ctx, lease, 10*time.Second); errors.Is(err, backend.ErrNotHeld) {
		fmt.Println("lost the lock")
		return
	}
	_ = locker.Release(ctx, lease)
}
