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

// Package conformance is the one test suite that every lock backend passes
// against a real server. A backend's own test calls Run with a Harness that
// starts the server and connects Lockers to it.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// Harness connects the suite to one backend and its server.
type Harness struct {
	// NewLocker connects a new, independent Locker to the server under test.
	// The suite closes it.
	NewLocker func(t *testing.T) backend.Locker
	// KeyPrefix is prepended to the keys the suite uses (a ZooKeeper path
	// must start with "/").
	KeyPrefix string
	// Server is the server under test, as internal/testservers runs it. Its
	// data must survive Kill (Redis: appendonly with appendfsync always).
	Server Server
	// TTL is the lease duration the suite uses; ExpiryGrace is how long after
	// the TTL the server may take to drop an unrenewed hold.
	TTL         time.Duration
	ExpiryGrace time.Duration
}

// Server is a backend server that the suite can crash and bring back.
type Server interface {
	// Kill stops the server at once, keeping its data.
	Kill() error
	// Restart starts the server again (stopping it first if it runs) on the
	// same address with the same data, and returns once it answers.
	Restart(ctx context.Context) error
}

// restartServer brings the server back. It uses a context of its own: it may
// run from a cleanup, after the test's context has ended.
func (h Harness) restartServer(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Server.Restart(ctx); err != nil {
		t.Fatalf("restarting the server: %v", err)
	}
}

var keySeq atomic.Int64

func (h Harness) key() string {
	return fmt.Sprintf("%sconformance-%d-%d", h.KeyPrefix, time.Now().UnixNano(), keySeq.Add(1))
}

func (h Harness) locker(t *testing.T) backend.Locker {
	t.Helper()
	l := h.NewLocker(t)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Run runs every conformance test against the harness's backend.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"acquiring a free lock makes the caller its holder", testAcquireFree},
		{"acquiring again as the same holder keeps the hold and its token", testAcquireIdempotent},
		{"another holder is excluded while the lock is held", testExclusion},
		{"release removes only the caller's own hold and may be repeated", testCompareAndDelete},
		{"renewal keeps a hold alive past its first expiry", testRenewal},
		{"an unrenewed hold expires and a late renewal reports it lost without re-taking it", testExpiry},
		{"fencing tokens increase with every new hold", testFencingTokens},
		{"purge refuses a held lock and clears a free one", testPurge},
		{"a hold survives a server restart", testServerRestart},
		{"an unreachable server gives ErrUnreachable and the locker recovers when it is back", testUnreachable},
		{"a new hold's token exceeds MinToken or Acquire says ErrFencingRegressed, " +
			"and a holder re-acquiring keeps its token whatever MinToken", testMinToken},
		{"with Queue, a queued holder is not overtaken and gets the lock with a higher token", testQueueNotOvertaken},
		{"releasing a queued place lets the next one in", testReleaseQueuedPlace},
		{"a batch of renewals renews every live hold and reports the released one lost", testRenewBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
	t.Run("semaphore", func(t *testing.T) { runSemaphore(t, h) })
}

func mustAcquire(ctx context.Context, t *testing.T, l backend.Locker, key, holder string, ttl time.Duration) backend.Lease {
	t.Helper()
	lease, err := l.Acquire(ctx, key, holder, ttl)
	if err != nil {
		t.Fatalf("Acquire(%q, %q): %v", key, holder, err)
	}
	if lease.Holder != holder || lease.Key != key {
		t.Fatalf("Acquire(%q, %q) returned a lease for %q/%q", key, holder, lease.Key, lease.Holder)
	}
	if lease.Token <= 0 {
		t.Fatalf("Acquire(%q, %q) returned fencing token %d; want > 0", key, holder, lease.Token)
	}
	return lease
}

func wantHeldBy(ctx context.Context, t *testing.T, l backend.Locker, key, holder string) backend.State {
	t.Helper()
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect(%q): %v", key, err)
	}
	if !st.Held || st.Holder != holder {
		t.Fatalf("Inspect(%q) = %+v; want held by %q", key, st, holder)
	}
	return st
}

func wantFree(ctx context.Context, t *testing.T, l backend.Locker, key string) {
	t.Helper()
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect(%q): %v", key, err)
	}
	if st.Held {
		t.Fatalf("Inspect(%q) = %+v; want free", key, st)
	}
}

func testAcquireFree(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	l, key := h.locker(t), h.key()
	wantFree(ctx, t, l, key)
	lease := mustAcquire(ctx, t, l, key, "holder-a", h.TTL)
	st := wantHeldBy(ctx, t, l, key, "holder-a")
	if st.Token != lease.Token {
		t.Errorf("Inspect token = %d; want the lease's token %d", st.Token, lease.Token)
	}
	if lease.TTL <= 0 || lease.TTL > h.TTL {
		t.Errorf("lease TTL = %v; want in (0, %v]", lease.TTL, h.TTL)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantFree(ctx, t, l, key)
}

func testAcquireIdempotent(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	l, key := h.locker(t), h.key()
	first := mustAcquire(ctx, t, l, key, "holder-a", h.TTL)
	again := mustAcquire(ctx, t, l, key, "holder-a", h.TTL)
	if again.Token != first.Token {
		t.Errorf("second Acquire by the same holder returned token %d; want the first token %d", again.Token, first.Token)
	}
	// A second client acting for the same holder (a restarted controller)
	// finds the same hold too.
	other := h.locker(t)
	adopted := mustAcquire(ctx, t, other, key, "holder-a", h.TTL)
	if adopted.Token != first.Token {
		t.Errorf("Acquire from a new client for the same holder returned token %d; want %d", adopted.Token, first.Token)
	}
	if err := other.Release(ctx, adopted); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantFree(ctx, t, l, key)
}

func testExclusion(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	lease := mustAcquire(ctx, t, a, key, "holder-a", h.TTL)
	if _, err := b.Acquire(ctx, key, "holder-b", h.TTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire by a second holder while held: err = %v; want ErrNotAcquired", err)
	}
	wantHeldBy(ctx, t, b, key, "holder-a")
	if err := a.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	mustAcquire(ctx, t, b, key, "holder-b", h.TTL)
	wantHeldBy(ctx, t, a, key, "holder-b")
}

func testCompareAndDelete(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	leaseA := mustAcquire(ctx, t, a, key, "holder-a", h.TTL)

	// A release in holder-b's name must leave holder-a's hold in place.
	forged := leaseA
	forged.Holder = "holder-b"
	if err := b.Release(ctx, forged); err != nil {
		t.Fatalf("Release of a hold that is not the caller's: %v; want nil (nothing to release)", err)
	}
	wantHeldBy(ctx, t, a, key, "holder-a")

	if err := a.Release(ctx, leaseA); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantFree(ctx, t, a, key)
	if err := a.Release(ctx, leaseA); err != nil {
		t.Fatalf("second Release of the same lease: %v; want nil", err)
	}

	// An old lease must not release a newer hold of the same holder name
	// made by someone else after the lock changed hands.
	leaseB := mustAcquire(ctx, t, b, key, "holder-b", h.TTL)
	if err := a.Release(ctx, leaseA); err != nil {
		t.Fatalf("Release of a stale lease: %v", err)
	}
	wantHeldBy(ctx, t, a, key, "holder-b")
	if err := b.Release(ctx, leaseB); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func testRenewal(t *testing.T, h Harness) {
	ctx := ctxFor(t, 4*(h.TTL+h.ExpiryGrace)+30*time.Second)
	l, key := h.locker(t), h.key()
	lease := mustAcquire(ctx, t, l, key, "holder-a", h.TTL)
	deadline := time.Now().Add(2*h.TTL + h.ExpiryGrace)
	for renewals := 0; time.Now().Before(deadline); renewals++ {
		time.Sleep(h.TTL / 4) // the passage of time is what is under test
		renewed, err := l.Renew(ctx, lease, h.TTL)
		if err != nil {
			t.Fatalf("Renew #%d: %v", renewals+1, err)
		}
		if renewed.Token != lease.Token {
			t.Fatalf("Renew changed the fencing token from %d to %d", lease.Token, renewed.Token)
		}
		lease = renewed
	}
	wantHeldBy(ctx, t, l, key, "holder-a")
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func testExpiry(t *testing.T, h Harness) {
	ctx := ctxFor(t, 2*(h.TTL+h.ExpiryGrace)+30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	acquiredAt := time.Now()
	lease := mustAcquire(ctx, t, a, key, "holder-a", h.TTL)
	wantHeldBy(ctx, t, b, key, "holder-a")

	deadline := acquiredAt.Add(h.TTL + h.ExpiryGrace)
	for {
		st, err := b.Inspect(ctx, key)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if !st.Held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold with TTL %v still present %v after it was taken; want it expired within %v",
				h.TTL, time.Since(acquiredAt), h.TTL+h.ExpiryGrace)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if held := time.Since(acquiredAt); held < h.TTL {
		t.Fatalf("hold expired after %v; want it kept for its TTL %v", held, h.TTL)
	}

	if _, err := a.Renew(ctx, lease, h.TTL); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("Renew after expiry: err = %v; want ErrNotHeld", err)
	}
	wantFree(ctx, t, b, key) // the failed renewal did not take the lock again
	mustAcquire(ctx, t, b, key, "holder-b", h.TTL)
}

func testFencingTokens(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	var last int64
	for i, step := range []struct {
		l      backend.Locker
		holder string
	}{{a, "holder-a"}, {b, "holder-b"}, {a, "holder-a"}, {a, "holder-c"}} {
		lease := mustAcquire(ctx, t, step.l, key, step.holder, h.TTL)
		if lease.Token <= last {
			t.Fatalf("hold #%d (%s) got fencing token %d; want > %d", i+1, step.holder, lease.Token, last)
		}
		last = lease.Token
		if err := step.l.Release(ctx, lease); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
}

func testPurge(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	l, key := h.locker(t), h.key()
	lease := mustAcquire(ctx, t, l, key, "holder-a", h.TTL)
	if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Purge of a held lock: err = %v; want ErrNotAcquired", err)
	}
	wantHeldBy(ctx, t, l, key, "holder-a")
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := l.Purge(ctx, key); err != nil {
		t.Fatalf("Purge of a free lock: %v", err)
	}
	if err := l.Purge(ctx, key); err != nil {
		t.Fatalf("second Purge: %v", err)
	}
	wantFree(ctx, t, l, key)
}

// eventually retries fn until it succeeds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testServerRestart(t *testing.T, h Harness) {
	ctx := ctxFor(t, 2*time.Minute)
	l, key := h.locker(t), h.key()
	lease := mustAcquire(ctx, t, l, key, "holder-a", 4*h.TTL)

	h.restartServer(t)

	var renewed backend.Lease
	eventually(t, 30*time.Second, "renewing after the server restarted", func() error {
		var err error
		renewed, err = l.Renew(ctx, lease, 4*h.TTL)
		if errors.Is(err, backend.ErrNotHeld) {
			t.Fatalf("the hold did not survive the restart: %v", err)
		}
		return err
	})
	if renewed.Token != lease.Token {
		t.Errorf("token after restart = %d; want %d", renewed.Token, lease.Token)
	}
	other := h.locker(t)
	if _, err := other.Acquire(ctx, key, "holder-b", h.TTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire by another holder after the restart: err = %v; want ErrNotAcquired", err)
	}
	if err := l.Release(ctx, renewed); err != nil {
		t.Fatalf("Release: %v", err)
	}
	next := mustAcquire(ctx, t, other, key, "holder-b", h.TTL)
	if next.Token <= lease.Token {
		t.Errorf("token after the restart = %d; want > %d (fencing tokens must survive a restart)", next.Token, lease.Token)
	}
	if err := other.Release(ctx, next); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func testUnreachable(t *testing.T, h Harness) {
	ctx := ctxFor(t, 2*time.Minute)
	l, key := h.locker(t), h.key()
	// Connect and use the locker while the server is up.
	wantFree(ctx, t, l, key)

	if err := h.Server.Kill(); err != nil {
		t.Fatalf("killing the server: %v", err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			h.restartServer(t)
		}
	})

	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	start := time.Now()
	_, err := l.Acquire(callCtx, key, "holder-a", h.TTL)
	cancel()
	if !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("Acquire with the server down: err = %v; want ErrUnreachable", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Acquire with the server down took %v; want it bounded by the context (10s)", took)
	}

	h.restartServer(t)
	stopped = false
	var lease backend.Lease
	eventually(t, 60*time.Second, "acquiring after the server came back", func() error {
		var err error
		lease, err = l.Acquire(ctx, key, "holder-a", h.TTL)
		return err
	})
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}
