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

package conformance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// The tests of semaphores (backend.WithLimit). None uses backend.WithQueue.

// semLimit is the limit of the semaphores under test.
const semLimit = 3

// runSemaphore runs the semaphore tests, each as a subtest of t.
func runSemaphore(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"concurrent acquirers never hold more permits than the limit", testSemaphoreConcurrent},
		{"each new hold's token exceeds every earlier one on the key", testSemaphoreTokens},
		{"acquiring again as the same holder keeps the hold and its token", testSemaphoreReacquire},
		{"release frees a permit, and renewing a released hold says ErrNotHeld", testSemaphoreRelease},
		{"an unrenewed hold expires and frees its permit", testSemaphoreExpiry},
		{"lowering the limit keeps new holds out and never ends a hold", testSemaphoreLowerLimit},
		{"inspect lists every hold, lowest token first", testSemaphoreInspect},
		{"a mutex hold keeps semaphore holders out", testMutexExcludesSemaphore},
		{"a semaphore hold keeps mutex holders out", testSemaphoreExcludesMutex},
		{"a batch of renewals renews mutex and semaphore holds alike", testSemaphoreRenewBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// acquirePermit takes a permit of the semaphore at key for holder, failing
// the test if it cannot.
func acquirePermit(ctx context.Context, t *testing.T, l backend.Locker, key, holder string, ttl time.Duration, limit int) backend.Lease {
	t.Helper()
	lease, err := l.Acquire(ctx, key, holder, ttl, backend.WithLimit(limit))
	if err != nil {
		t.Fatalf("Acquire(%q, %q, limit %d): %v", key, holder, limit, err)
	}
	if lease.Holder != holder || lease.Key != key || lease.Queued {
		t.Fatalf("Acquire(%q, %q, limit %d) returned %+v", key, holder, limit, lease)
	}
	if lease.Token <= 0 || lease.TTL <= 0 || lease.TTL > ttl {
		t.Fatalf("Acquire(%q, %q, limit %d) returned token %d, TTL %v; want a token > 0 and a TTL in (0, %v]",
			key, holder, limit, lease.Token, lease.TTL, ttl)
	}
	return lease
}

// wantNoPermit checks that holder cannot take a permit of the semaphore at
// key with the given limit.
func wantNoPermit(ctx context.Context, t *testing.T, l backend.Locker, key, holder string, limit int) {
	t.Helper()
	lease, err := l.Acquire(ctx, key, holder, time.Minute, backend.WithLimit(limit))
	if !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire(%q, %q, limit %d) = %+v, %v; want ErrNotAcquired", key, holder, limit, lease, err)
	}
}

// wantHolds checks that the semaphore at key has exactly the holds of
// leases, by holder and token.
func wantHolds(ctx context.Context, t *testing.T, l backend.Locker, key string, leases ...backend.Lease) backend.State {
	t.Helper()
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect(%q): %v", key, err)
	}
	got := make([]string, 0, len(st.Holds))
	for _, hold := range st.Holds {
		got = append(got, fmt.Sprintf("%s/%d", hold.Holder, hold.Token))
	}
	want := make([]string, 0, len(leases))
	for _, lease := range leases {
		want = append(want, fmt.Sprintf("%s/%d", lease.Holder, lease.Token))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || st.Held != (len(leases) > 0) {
		t.Fatalf("Inspect(%q) = held %v, holds %v; want holds %v", key, st.Held, got, want)
	}
	return st
}

// release releases lease, failing the test if it cannot.
func release(ctx context.Context, t *testing.T, l backend.Locker, lease backend.Lease) {
	t.Helper()
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release(%q, %q): %v", lease.Key, lease.Holder, err)
	}
}

func testSemaphoreConcurrent(t *testing.T, h Harness) {
	const workers, rounds = 8, 15
	ctx := ctxFor(t, 2*time.Minute)
	key := h.key()
	inspector := h.locker(t)
	lockers := make([]backend.Locker, workers)
	for i := range lockers {
		lockers[i] = h.locker(t)
	}

	var (
		live, most, taken atomic.Int64
		mu                sync.Mutex
		tokens            = map[int64]string{}
		wg                sync.WaitGroup
	)
	// work is one worker's rounds: it stops at its first failure.
	work := func(l backend.Locker, holder string) {
		for range rounds {
			lease, err := l.Acquire(ctx, key, holder, time.Minute, backend.WithLimit(semLimit))
			if errors.Is(err, backend.ErrNotAcquired) {
				continue
			}
			if err != nil {
				t.Errorf("Acquire by %s: %v", holder, err)
				return
			}
			// live counts holds from after Acquire returned until before
			// Release is sent: never more than exist.
			raiseTo(&most, live.Add(1))
			taken.Add(1)
			mu.Lock()
			other, dup := tokens[lease.Token]
			tokens[lease.Token] = holder
			mu.Unlock()
			if dup {
				t.Errorf("token %d handed to %s and to %s", lease.Token, other, holder)
			}
			st, err := l.Inspect(ctx, key)
			live.Add(-1)
			if err != nil || len(st.Holds) > semLimit {
				t.Errorf("Inspect while %s holds: %d holds %+v, %v; want at most %d", holder, len(st.Holds), st.Holds, err, semLimit)
			}
			if err := l.Release(ctx, lease); err != nil {
				t.Errorf("Release by %s: %v", holder, err)
				return
			}
		}
	}
	done := make(chan struct{})
	for i, l := range lockers {
		wg.Go(func() { work(l, fmt.Sprintf("holder-%d", i)) })
	}
	go func() { wg.Wait(); close(done) }()
	// Watch the semaphore from outside while the workers run.
	for watching := true; watching; {
		select {
		case <-done:
			watching = false
		case <-ctx.Done():
			t.Errorf("the workers did not finish: %v", ctx.Err())
			<-done // their calls fail now
			watching = false
		default:
			if st, err := inspector.Inspect(ctx, key); err == nil && len(st.Holds) > semLimit {
				t.Errorf("Inspect found %d holds: %+v; want at most %d", len(st.Holds), st.Holds, semLimit)
			}
		}
	}
	if m := most.Load(); m > semLimit {
		t.Errorf("%d holders held a permit at once; want at most %d", m, semLimit)
	}
	if taken.Load() == 0 {
		t.Errorf("no worker ever took a permit")
	}
	t.Logf("%d workers, %d rounds each: %d holds taken, at most %d at once", workers, rounds, taken.Load(), most.Load())
	wantFree(ctx, t, inspector, key)
}

func testSemaphoreTokens(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	var highest int64
	next := func(l backend.Locker, holder string) backend.Lease {
		t.Helper()
		lease := acquirePermit(ctx, t, l, key, holder, h.TTL, semLimit)
		if lease.Token <= highest {
			t.Fatalf("new hold of %s got token %d; want > %d, the highest before it", holder, lease.Token, highest)
		}
		highest = lease.Token
		return lease
	}
	h1, h2 := next(a, "holder-1"), next(b, "holder-2")
	h3 := next(a, "holder-3")
	release(ctx, t, b, h2)
	h4 := next(b, "holder-4")
	release(ctx, t, a, h1)
	release(ctx, t, a, h3)
	h5 := next(a, "holder-1") // a holder that held before gets a new token
	wantHolds(ctx, t, b, key, h4, h5)
	release(ctx, t, b, h4)
	release(ctx, t, a, h5)
	// A mutex on the same key after the semaphore goes on counting.
	m := mustAcquire(ctx, t, a, key, "holder-6", h.TTL)
	if m.Token <= highest {
		t.Fatalf("mutex hold after the semaphore's got token %d; want > %d", m.Token, highest)
	}
	release(ctx, t, a, m)
}

func testSemaphoreReacquire(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	first := acquirePermit(ctx, t, a, key, "holder-a", h.TTL, semLimit)
	other := acquirePermit(ctx, t, b, key, "holder-b", h.TTL, semLimit)
	again := acquirePermit(ctx, t, a, key, "holder-a", h.TTL, semLimit)
	if again.Token != first.Token {
		t.Errorf("second Acquire by the same holder returned token %d; want the first token %d", again.Token, first.Token)
	}
	// A second client acting for the same holder finds the same hold, even
	// when the semaphore is full.
	third := acquirePermit(ctx, t, b, key, "holder-c", h.TTL, semLimit)
	adopted := acquirePermit(ctx, t, b, key, "holder-a", h.TTL, semLimit)
	if adopted.Token != first.Token {
		t.Errorf("Acquire from a new client for the same holder returned token %d; want %d", adopted.Token, first.Token)
	}
	wantHolds(ctx, t, a, key, first, other, third)
	release(ctx, t, b, adopted)
	release(ctx, t, b, other)
	release(ctx, t, b, third)
	wantFree(ctx, t, a, key)
}

func testSemaphoreRelease(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	leases := make([]backend.Lease, 0, semLimit)
	for i := range semLimit {
		leases = append(leases, acquirePermit(ctx, t, a, key, fmt.Sprintf("holder-%d", i), h.TTL, semLimit))
	}
	wantNoPermit(ctx, t, b, key, "holder-x", semLimit)

	// A forged release (another holder's name) removes nothing.
	forged := leases[0]
	forged.Holder = "holder-x"
	if err := b.Release(ctx, forged); err != nil {
		t.Fatalf("Release of a hold that is not the caller's: %v; want nil", err)
	}
	wantNoPermit(ctx, t, b, key, "holder-x", semLimit)

	release(ctx, t, a, leases[1])
	release(ctx, t, a, leases[1]) // again: nothing left to release
	if _, err := a.Renew(ctx, leases[1], h.TTL); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("Renew of a released hold: err = %v; want ErrNotHeld", err)
	}
	x := acquirePermit(ctx, t, b, key, "holder-x", h.TTL, semLimit)
	wantHolds(ctx, t, a, key, leases[0], leases[2], x)

	renewed, err := a.Renew(ctx, leases[0], h.TTL)
	if err != nil || renewed.Token != leases[0].Token || renewed.TTL <= 0 {
		t.Fatalf("Renew of a live hold = %+v, %v; want its token %d and a TTL", renewed, err, leases[0].Token)
	}
	for _, lease := range []backend.Lease{renewed, leases[2], x} {
		release(ctx, t, a, lease)
	}
	wantFree(ctx, t, a, key)
}

func testSemaphoreExpiry(t *testing.T, h Harness) {
	ctx := ctxFor(t, 2*(h.TTL+h.ExpiryGrace)+30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	long := 10 * (h.TTL + h.ExpiryGrace)
	acquiredAt := time.Now()
	short := acquirePermit(ctx, t, a, key, "holder-short", h.TTL, semLimit)
	stay1 := acquirePermit(ctx, t, a, key, "holder-stay-1", long, semLimit)
	stay2 := acquirePermit(ctx, t, a, key, "holder-stay-2", long, semLimit)
	wantNoPermit(ctx, t, b, key, "holder-next", semLimit)

	deadline := acquiredAt.Add(h.TTL + h.ExpiryGrace)
	var next backend.Lease
	for {
		lease, err := b.Acquire(ctx, key, "holder-next", long, backend.WithLimit(semLimit))
		if err == nil {
			next = lease
			break
		}
		if !errors.Is(err, backend.ErrNotAcquired) {
			t.Fatalf("Acquire while waiting for the expiry: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no permit freed %v after a hold with TTL %v was taken; want within %v",
				time.Since(acquiredAt), h.TTL, h.TTL+h.ExpiryGrace)
		}
		time.Sleep(50 * time.Millisecond) // polling: the passage of time is under test
	}
	if held := time.Since(acquiredAt); held < h.TTL {
		t.Fatalf("the hold's permit was freed after %v; want it kept for its TTL %v", held, h.TTL)
	}
	if _, err := a.Renew(ctx, short, h.TTL); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("Renew after expiry: err = %v; want ErrNotHeld", err)
	}
	wantHolds(ctx, t, b, key, stay1, stay2, next) // the late renewal took nothing
	for _, lease := range []backend.Lease{stay1, stay2, next} {
		release(ctx, t, a, lease)
	}
}

func testSemaphoreLowerLimit(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	leases := make([]backend.Lease, 0, semLimit)
	for i := range semLimit {
		leases = append(leases, acquirePermit(ctx, t, a, key, fmt.Sprintf("holder-%d", i), h.TTL, semLimit))
	}
	const lower = semLimit - 1
	wantNoPermit(ctx, t, b, key, "holder-x", lower)
	// Every hold lives on past the lower limit.
	for i, lease := range leases {
		renewed, err := a.Renew(ctx, lease, h.TTL)
		if err != nil {
			t.Fatalf("Renew of hold %d after an Acquire with a lower limit: %v", i, err)
		}
		leases[i] = renewed
	}
	wantHolds(ctx, t, b, key, leases...)

	release(ctx, t, a, leases[0])
	wantNoPermit(ctx, t, b, key, "holder-x", lower) // 2 holds, limit 2
	release(ctx, t, a, leases[1])
	x := acquirePermit(ctx, t, b, key, "holder-x", h.TTL, lower)
	wantNoPermit(ctx, t, b, key, "holder-y", lower)
	wantHolds(ctx, t, a, key, leases[2], x)
	release(ctx, t, a, leases[2])
	release(ctx, t, b, x)
}

func testSemaphoreInspect(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	wantFree(ctx, t, b, key)
	l1 := acquirePermit(ctx, t, a, key, "holder-1", h.TTL, semLimit)
	l2 := acquirePermit(ctx, t, b, key, "holder-2", h.TTL, semLimit)
	l3 := acquirePermit(ctx, t, a, key, "holder-3", h.TTL, semLimit)
	st := wantHolds(ctx, t, b, key, l1, l2, l3)
	if !slices.IsSortedFunc(st.Holds, func(x, y backend.Hold) int { return cmp.Compare(x.Token, y.Token) }) {
		t.Errorf("Inspect holds %+v; want them by token, lowest first", st.Holds)
	}
	for _, hold := range st.Holds {
		// Zero: a TTL the backend cannot report (backend.State.TTL).
		if hold.TTL < 0 || hold.TTL > h.TTL {
			t.Errorf("Inspect hold %+v; want a TTL in [0, %v]", hold, h.TTL)
		}
	}
	first := st.Holds[0]
	if st.Holder != first.Holder || st.Token != first.Token || st.TTL != first.TTL {
		t.Errorf("Inspect = holder %q, token %d, TTL %v; want the first hold's, %+v", st.Holder, st.Token, st.TTL, first)
	}
	if err := b.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Purge of a held semaphore: err = %v; want ErrNotAcquired", err)
	}
	release(ctx, t, a, l1)
	st = wantHolds(ctx, t, b, key, l2, l3)
	if st.Holder != "holder-2" || st.Token != l2.Token {
		t.Errorf("Inspect after the first hold's release = %q/%d; want holder-2/%d first", st.Holder, st.Token, l2.Token)
	}
	release(ctx, t, b, l2)
	release(ctx, t, a, l3)
	wantFree(ctx, t, b, key)
	if err := b.Purge(ctx, key); err != nil {
		t.Fatalf("Purge of a free semaphore: %v", err)
	}
}

func testMutexExcludesSemaphore(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	mutex := mustAcquire(ctx, t, a, key, "holder-m", h.TTL)
	wantNoPermit(ctx, t, b, key, "holder-s", semLimit)
	st := wantHeldBy(ctx, t, b, key, "holder-m")
	if st.Holds != nil {
		t.Errorf("Inspect of a mutex = %+v; want no Holds", st)
	}
	release(ctx, t, a, mutex)
	sem := acquirePermit(ctx, t, b, key, "holder-s", h.TTL, semLimit)
	if sem.Token <= mutex.Token {
		t.Errorf("semaphore hold after the mutex's got token %d; want > %d", sem.Token, mutex.Token)
	}
	release(ctx, t, b, sem)
}

func testSemaphoreExcludesMutex(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()
	sem := acquirePermit(ctx, t, a, key, "holder-s", h.TTL, semLimit)
	for _, limit := range []int{0, 1} {
		if lease, err := b.Acquire(ctx, key, "holder-m", h.TTL, backend.WithLimit(limit)); !errors.Is(err, backend.ErrNotAcquired) {
			t.Fatalf("mutex Acquire (limit %d) while a semaphore hold exists = %+v, %v; want ErrNotAcquired", limit, lease, err)
		}
	}
	// Not even the semaphore's own holder takes the mutex.
	if lease, err := b.Acquire(ctx, key, "holder-s", h.TTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("mutex Acquire by the semaphore's holder = %+v, %v; want ErrNotAcquired", lease, err)
	}
	wantHolds(ctx, t, b, key, sem)
	release(ctx, t, a, sem)
	mutex := mustAcquire(ctx, t, b, key, "holder-m", h.TTL)
	wantNoPermit(ctx, t, a, key, "holder-s", semLimit)
	release(ctx, t, b, mutex)
	wantFree(ctx, t, a, key)
}

func testSemaphoreRenewBatch(t *testing.T, h Harness) {
	ctx := ctxFor(t, time.Minute)
	l := h.locker(t)
	batcher, ok := l.(backend.BatchRenewer)
	if !ok {
		t.Skipf("the locker (%T) does not implement backend.BatchRenewer", l)
	}
	semKey := h.key()
	mutexA := mustAcquire(ctx, t, l, h.key(), "holder-a", h.TTL)
	sem1 := acquirePermit(ctx, t, l, semKey, "holder-1", h.TTL, semLimit)
	mutexB := mustAcquire(ctx, t, l, h.key(), "holder-b", h.TTL)
	sem2 := acquirePermit(ctx, t, l, semKey, "holder-2", h.TTL, semLimit)
	sem3 := acquirePermit(ctx, t, l, semKey, "holder-3", h.TTL, semLimit)
	release(ctx, t, l, sem2)
	release(ctx, t, l, mutexB)

	leases := []backend.Lease{mutexA, sem1, mutexB, sem2, sem3}
	lost := map[int]bool{2: true, 3: true}
	renewals := make([]backend.Renewal, len(leases))
	for i, lease := range leases {
		renewals[i] = backend.Renewal{Lease: lease, TTL: h.TTL}
	}
	batcher.RenewBatch(ctx, renewals)
	for i, rn := range renewals {
		switch {
		case lost[i]:
			if !errors.Is(rn.Err, backend.ErrNotHeld) {
				t.Errorf("renewal %d of a released hold (%s): err = %v; want ErrNotHeld", i, rn.Lease.Holder, rn.Err)
			}
		case rn.Err != nil:
			t.Errorf("renewal %d (%s): %v", i, rn.Lease.Holder, rn.Err)
		case rn.Renewed.Token != rn.Lease.Token || rn.Renewed.Holder != rn.Lease.Holder || rn.Renewed.TTL <= 0:
			t.Errorf("renewal %d = %+v; want %s's hold with token %d and a TTL", i, rn.Renewed, rn.Lease.Holder, rn.Lease.Token)
		}
	}
	wantHolds(ctx, t, l, semKey, sem1, sem3) // the lost renewal took nothing
	wantFree(ctx, t, l, mutexB.Key)
	wantHeldBy(ctx, t, l, mutexA.Key, "holder-a")
	for _, lease := range []backend.Lease{mutexA, sem1, sem3} {
		release(ctx, t, l, lease)
	}
}

// raiseTo raises v to n if it is below.
func raiseTo(v *atomic.Int64, n int64) {
	for {
		m := v.Load()
		if n <= m || v.CompareAndSwap(m, n) {
			return
		}
	}
}
