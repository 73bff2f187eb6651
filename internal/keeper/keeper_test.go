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

package keeper_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/types"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/redis"
	"github.com/distlock/distlock/internal/keeper"
	"github.com/distlock/distlock/internal/testservers"
)

// conn is a keeper.Conn over one Locker, counting closes.
type conn struct {
	l      backend.Locker
	closed atomic.Int32
}

func (c *conn) Locker() backend.Locker { return c.l }
func (c *conn) Close()                 { c.closed.Add(1) }

// notifications records the locks the keeper notified about.
type notifications struct {
	mu   sync.Mutex
	seen []types.NamespacedName
	ch   chan struct{}
}

func newNotifications() *notifications { return &notifications{ch: make(chan struct{}, 100)} }

func (n *notifications) notify(lock types.NamespacedName) {
	n.mu.Lock()
	n.seen = append(n.seen, lock)
	n.mu.Unlock()
	select {
	case n.ch <- struct{}{}:
	default:
	}
}

var lockName = types.NamespacedName{Namespace: "ns", Name: "report"}

func connect(t *testing.T, srv *testservers.Redis) backend.Locker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := redis.New(ctx, backend.Config{Servers: []string{srv.Addr}, DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("connecting to %s: %v", srv.Addr, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// keepNew acquires key for holder and hands the hold to k.
func keepNew(t *testing.T, k *keeper.Keeper, l backend.Locker, key string, ttl time.Duration) (backend.Lease, *conn) {
	t.Helper()
	start := time.Now()
	lease, err := l.Acquire(context.Background(), key, "holder-a", ttl)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	c := &conn{l: l}
	k.Keep(keeper.Hold{Lock: lockName, Pod: "pod-a", Lease: lease, TTL: ttl, ConfirmedAt: start, Conn: c})
	return lease, c
}

// waitPhase polls the keeper until the hold is in phase, or fails.
func waitPhase(t *testing.T, k *keeper.Keeper, phase keeper.Phase, within time.Duration) keeper.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, ok := k.Status(keeper.Key{Lock: lockName})
		if ok && st.Phase == phase {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold not %v within %v: %+v (kept: %v)", phase, within, st, ok)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAKeptHoldOutlivesManyTTLs(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	k := keeper.New(keeper.Options{})
	t.Cleanup(k.DropAll)
	const ttl = 600 * time.Millisecond
	lease, _ := keepNew(t, k, l, "keep-alive", ttl)

	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer raw.Close()
	end := time.Now().Add(5 * ttl)
	for time.Now().Before(end) {
		st, err := l.Inspect(context.Background(), "keep-alive")
		if err != nil || !st.Held || st.Token != lease.Token {
			t.Fatalf("the hold was not kept: %+v, %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, _ := k.Status(keeper.Key{Lock: lockName})
	if st.Phase != keeper.Renewing || !st.ValidUntil.After(time.Now()) {
		t.Errorf("status = %+v; want Renewing with ValidUntil in the future", st)
	}
}

func TestAHoldDeletedBehindTheKeepersBackIsReportedLostAndNotRetaken(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	notes := newNotifications()
	k := keeper.New(keeper.Options{Notify: notes.notify})
	t.Cleanup(k.DropAll)
	const ttl = 900 * time.Millisecond
	keepNew(t, k, l, "fragile", ttl)

	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer raw.Close()
	if err := raw.Del(context.Background(), "fragile").Err(); err != nil {
		t.Fatal(err)
	}
	st := waitPhase(t, k, keeper.Lost, 2*ttl)
	if !errors.Is(st.Err, backend.ErrNotHeld) {
		t.Errorf("lost with error %v; want ErrNotHeld", st.Err)
	}
	select {
	case <-notes.ch:
	case <-time.After(time.Second):
		t.Fatalf("no notification for the lost hold")
	}
	time.Sleep(ttl) // a window in which a renewal must not re-create the key
	if n, err := raw.Exists(context.Background(), "fragile").Result(); err != nil || n != 0 {
		t.Fatalf("the lost hold was re-taken (exists=%d, err=%v)", n, err)
	}
}

func TestAnUnansweringBackendMakesTheHoldUncertainThenLostWhenItExpired(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	notes := newNotifications()
	k := keeper.New(keeper.Options{Notify: notes.notify, CallTimeout: 200 * time.Millisecond})
	t.Cleanup(k.DropAll)
	const ttl = time.Second
	keepNew(t, k, l, "paused", ttl)

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	st := waitPhase(t, k, keeper.Uncertain, 3*ttl)
	if since := time.Since(paused); since > 2*ttl {
		t.Errorf("reported Uncertain %v after the server stopped answering; want within about a TTL", since)
	}
	if st.Err == nil {
		t.Errorf("Uncertain without the renewal error")
	}
	// The server comes back after the hold's TTL: Redis has expired the key
	// by then, so the next renewal reports the hold lost.
	time.Sleep(ttl) // keep the server paused past the TTL: that is the input under test
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, k, keeper.Lost, 5*ttl)
}

func TestAShortOutageLeavesTheHoldRenewing(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	k := keeper.New(keeper.Options{CallTimeout: 100 * time.Millisecond})
	t.Cleanup(k.DropAll)
	const ttl = 3 * time.Second
	lease, _ := keepNew(t, k, l, "brief", ttl)
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl / 2) // an outage shorter than the TTL is the input under test
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(ttl)
	for {
		st, _ := k.Status(keeper.Key{Lock: lockName})
		if st.Phase == keeper.Renewing && st.Err == nil && time.Since(st.RenewedAt) < ttl/2 {
			break
		}
		if st.Phase != keeper.Renewing || time.Now().After(deadline) {
			t.Fatalf("after a short outage: %+v; want Renewing again", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := l.Inspect(context.Background(), "brief")
	if err != nil || got.Token != lease.Token {
		t.Fatalf("Inspect after the outage = %+v, %v; want the same hold", got, err)
	}
}

func TestAClosedGateStopsRenewals(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	var open atomic.Bool
	open.Store(true)
	k := keeper.New(keeper.Options{Gate: open.Load})
	t.Cleanup(k.DropAll)
	const ttl = 600 * time.Millisecond
	keepNew(t, k, l, "gated", ttl)

	open.Store(false)
	closedAt := time.Now()
	deadline := closedAt.Add(3 * ttl)
	for {
		st, err := l.Inspect(context.Background(), "gated")
		if err != nil {
			t.Fatal(err)
		}
		if !st.Held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hold was still renewed %v after the gate closed", time.Since(closedAt))
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitPhase(t, k, keeper.Uncertain, ttl)
}

func TestReleaseDeletesTheHoldAndDropDoesNot(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	k := keeper.New(keeper.Options{})
	t.Cleanup(k.DropAll)
	const ttl = 5 * time.Second

	_, c := keepNew(t, k, l, "released", ttl)
	if kept, err := k.Release(context.Background(), keeper.Key{Lock: lockName}); !kept || err != nil {
		t.Fatalf("Release = %v, %v; want a kept hold released", kept, err)
	}
	if st, _ := l.Inspect(context.Background(), "released"); st.Held {
		t.Errorf("held after Release: %+v", st)
	}
	if c.closed.Load() != 1 {
		t.Errorf("the connection reference was closed %d times; want 1", c.closed.Load())
	}

	lease, c := keepNew(t, k, l, "dropped", ttl)
	k.Drop(keeper.Key{Lock: lockName})
	if st, _ := l.Inspect(context.Background(), "dropped"); !st.Held || st.Token != lease.Token {
		t.Errorf("Drop released the hold: %+v", st)
	}
	if _, ok := k.Status(keeper.Key{Lock: lockName}); ok {
		t.Errorf("still kept after Drop")
	}
	if c.closed.Load() != 1 {
		t.Errorf("the connection reference was closed %d times; want 1", c.closed.Load())
	}
}

func TestKeepingTheSameHoldAgainSwapsTheConnection(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	k := keeper.New(keeper.Options{})
	t.Cleanup(k.DropAll)
	const ttl = 5 * time.Second
	lease, first := keepNew(t, k, l, "swap", ttl)
	second := &conn{l: connect(t, srv)}
	k.Keep(keeper.Hold{Lock: lockName, Lease: lease, TTL: ttl, Conn: second})
	if first.closed.Load() != 1 || second.closed.Load() != 0 {
		t.Errorf("closes: first %d, second %d; want 1 and 0", first.closed.Load(), second.closed.Load())
	}
	if k.Len() != 1 {
		t.Errorf("Len = %d; want 1", k.Len())
	}
}

func TestManyHoldsRenewIndependently(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	k := keeper.New(keeper.Options{})
	t.Cleanup(k.DropAll)
	const ttl = 600 * time.Millisecond
	const n = 50
	for i := range n {
		key := fmt.Sprintf("many-%d", i)
		lease, err := l.Acquire(context.Background(), key, "h", ttl)
		if err != nil {
			t.Fatal(err)
		}
		k.Keep(keeper.Hold{Lock: types.NamespacedName{Namespace: "ns", Name: key}, Lease: lease, TTL: ttl, Conn: &conn{l: l}})
	}
	time.Sleep(3 * ttl) // several TTLs must pass: the passage of time is under test
	for i := range n {
		st, err := l.Inspect(context.Background(), fmt.Sprintf("many-%d", i))
		if err != nil || !st.Held {
			t.Fatalf("hold %d not kept: %+v, %v", i, st, err)
		}
	}
}

func TestRetryIntervalIsBounded(t *testing.T) {
	for ttl, want := range map[time.Duration]time.Duration{
		time.Second:      200 * time.Millisecond,
		10 * time.Second: time.Second,
		time.Hour:        2 * time.Second,
	} {
		if got := keeper.RetryInterval(ttl); got != want {
			t.Errorf("RetryInterval(%v) = %v; want %v", ttl, got, want)
		}
	}
}

// batchLocker is a fake backend.Locker that renews only in batches and
// counts them: for the batching logic alone (the real Redis pipeline is
// tested in internal/backend/redis).
type batchLocker struct {
	backend.Locker
	mu      sync.Mutex
	batches []int
}

func (b *batchLocker) Renew(context.Context, backend.Lease, time.Duration) (backend.Lease, error) {
	panic("a batching backend is renewed in batches")
}

func (b *batchLocker) RenewBatch(_ context.Context, renewals []backend.Renewal) {
	b.mu.Lock()
	b.batches = append(b.batches, len(renewals))
	b.mu.Unlock()
	for i := range renewals {
		renewals[i].Renewed = renewals[i].Lease
		renewals[i].Renewed.TTL = renewals[i].TTL
	}
}

func (b *batchLocker) counts() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.batches...)
}

func TestHoldsOfOneConnectionDueTogetherAreRenewedInOneBatch(t *testing.T) {
	fake := &batchLocker{}
	k := keeper.New(keeper.Options{})
	t.Cleanup(k.DropAll)
	const ttl = 900 * time.Millisecond
	const n = 200
	start := time.Now()
	for i := range n {
		lease := backend.Lease{Key: fmt.Sprintf("k%d", i), Holder: "h", Token: int64(i + 1), TTL: ttl}
		// Acquired at slightly different times, as in a burst of grants.
		confirmed := start.Add(time.Duration(i) * 250 * time.Microsecond)
		k.Keep(keeper.Hold{Lock: types.NamespacedName{Namespace: "ns", Name: lease.Key}, Lease: lease, TTL: ttl,
			ConfirmedAt: confirmed, Conn: &conn{l: fake}})
	}
	deadline := time.Now().Add(2 * ttl)
	for {
		total := 0
		for _, c := range fake.counts() {
			total += c
		}
		if total >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed %d of %d holds in batches %v", total, n, fake.counts())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if batches := fake.counts(); len(batches) > 3 {
		t.Errorf("the first round of %d renewals took %d batches %v; want them together (at most 3)", n, len(batches), batches)
	}
	for i := range n {
		st, _ := k.Status(keeper.Key{Lock: types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("k%d", i)}})
		if st.Phase != keeper.Renewing || !st.RenewedAt.After(start) {
			t.Fatalf("hold %d: %+v; want renewed", i, st)
		}
	}
}

func TestASemaphoresHoldsAreKeptPerPod(t *testing.T) {
	srv := testservers.NewRedis(t)
	l := connect(t, srv)
	k := keeper.New(keeper.Options{})
	t.Cleanup(k.DropAll)
	const ttl = 5 * time.Second
	other := types.NamespacedName{Namespace: "ns", Name: "other"}
	var tokens []int64
	for _, h := range []struct {
		lock types.NamespacedName
		pod  string
	}{{lockName, "b"}, {lockName, "a"}, {other, "c"}} {
		lease, err := l.Acquire(context.Background(), h.lock.Name, "holder-"+h.pod, ttl, backend.WithLimit(3))
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		tokens = append(tokens, lease.Token)
		k.Keep(keeper.Hold{Lock: h.lock, Pod: h.pod, PodUID: types.UID("uid-" + h.pod), Lease: lease, TTL: ttl, Conn: &conn{l: l}})
	}
	pods := func(lock types.NamespacedName) []string {
		var names []string
		for _, st := range k.Holds(lock) {
			names = append(names, st.Pod)
		}
		return names
	}
	if got := pods(lockName); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("Holds(%s) = %v; want b, a (by token %v)", lockName, got, tokens)
	}
	if st, ok := k.Status(keeper.Key{Lock: lockName, Pod: "uid-a"}); !ok || st.Lease.Token != tokens[1] {
		t.Errorf("Status of a = %+v, %v; want token %d", st, ok, tokens[1])
	}
	k.Drop(keeper.Key{Lock: lockName, Pod: "uid-b"})
	if got := pods(lockName); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Holds after dropping b = %v; want a", got)
	}
	if got := pods(other); !slices.Equal(got, []string{"c"}) {
		t.Errorf("Holds(%s) = %v; want c", other, got)
	}
	if k.Len() != 2 {
		t.Errorf("Len = %d; want 2", k.Len())
	}
}
