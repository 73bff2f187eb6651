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
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// The tests of backend.AcquireOptions.

// minTokenFloor is far above any token a test server hands out by itself
// (a Redis counter, a ZooKeeper zxid), and far enough below the largest
// int64 that a counter raised to it can still count.
const minTokenFloor int64 = 1 << 50

func testMinToken(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, key := h.locker(t), h.locker(t), h.key()

	// A floor below the tokens handed out so far changes nothing.
	first := mustAcquire(ctx, t, a, key, "holder-a", h.TTL)
	if err := a.Release(ctx, first); err != nil {
		t.Fatalf("Release: %v", err)
	}
	second, err := a.Acquire(ctx, key, "holder-a", h.TTL, backend.WithMinToken(first.Token))
	if err != nil {
		t.Fatalf("Acquire with MinToken %d, the last token: %v", first.Token, err)
	}
	if second.Token <= first.Token {
		t.Fatalf("Acquire with MinToken %d returned token %d; want above it", first.Token, second.Token)
	}
	if err := a.Release(ctx, second); err != nil {
		t.Fatalf("Release: %v", err)
	}

	// A floor above them: a token above it, or ErrFencingRegressed and
	// nothing held.
	lease, err := b.Acquire(ctx, key, "holder-b", h.TTL, backend.WithMinToken(minTokenFloor))
	switch {
	case errors.Is(err, backend.ErrFencingRegressed):
		if lease != (backend.Lease{}) {
			t.Errorf("Acquire failing with ErrFencingRegressed returned the lease %+v; want none", lease)
		}
		wantFree(ctx, t, a, key)
		// Nothing queued either: another holder gets the lock at once.
		other := mustAcquire(ctx, t, a, key, "holder-c", h.TTL)
		if err := a.Release(ctx, other); err != nil {
			t.Fatalf("Release: %v", err)
		}
		return
	case err != nil:
		t.Fatalf("Acquire with MinToken %d: err = %v; want a lease or ErrFencingRegressed", minTokenFloor, err)
	case lease.Token <= minTokenFloor:
		t.Fatalf("Acquire with MinToken %d returned token %d; want above it", minTokenFloor, lease.Token)
	}
	wantHeldBy(ctx, t, a, key, "holder-b")

	// Re-acquiring keeps the hold and its token whatever the floor.
	for _, floor := range []int64{0, lease.Token - 1, lease.Token, lease.Token + 1, math.MaxInt64} {
		again, err := b.Acquire(ctx, key, "holder-b", h.TTL, backend.WithMinToken(floor))
		if err != nil {
			t.Fatalf("re-Acquire by the holder with MinToken %d: %v", floor, err)
		}
		if again.Token != lease.Token {
			t.Fatalf("re-Acquire by the holder with MinToken %d returned token %d; want the hold's token %d",
				floor, again.Token, lease.Token)
		}
	}
	if err := b.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// acquireQueued asks for the lock with the Queue option while another
// holder has it. It reports whether the backend kept a place in line.
func acquireQueued(ctx context.Context, t *testing.T, l backend.Locker, key, holder string, ttl time.Duration) (backend.Lease, bool) {
	t.Helper()
	lease, err := l.Acquire(ctx, key, holder, ttl, backend.WithQueue())
	if !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire(%q, %q) with Queue while another holder has the lock: err = %v; want ErrNotAcquired", key, holder, err)
	}
	if !lease.Queued {
		if lease != (backend.Lease{}) {
			t.Fatalf("Acquire(%q, %q) with Queue returned %+v without a place in line; want the zero Lease", key, holder, lease)
		}
		return lease, false
	}
	if lease.Key != key || lease.Holder != holder || lease.Token <= 0 {
		t.Fatalf("Acquire(%q, %q) with Queue returned the queued lease %+v; want its key, holder and a token > 0", key, holder, lease)
	}
	return lease, true
}

func testQueueNotOvertaken(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, c, key := h.locker(t), h.locker(t), h.locker(t), h.key()
	held := mustAcquire(ctx, t, a, key, "holder-a", h.TTL)
	place, queued := acquireQueued(ctx, t, b, key, "holder-b", h.TTL)
	// A place in line is not a hold.
	wantHeldBy(ctx, t, c, key, "holder-a")
	if queued {
		again, stillQueued := acquireQueued(ctx, t, b, key, "holder-b", h.TTL)
		if !stillQueued || again.Token != place.Token {
			t.Fatalf("a second Acquire with Queue returned %+v; want the same place in line %+v", again, place)
		}
	}
	if err := a.Release(ctx, held); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if queued {
		// holder-b was in line first: holder-c must wait behind it.
		if lease, err := c.Acquire(ctx, key, "holder-c", h.TTL); !errors.Is(err, backend.ErrNotAcquired) {
			t.Fatalf("Acquire by a third holder after the holder released, with holder-b queued: lease %+v, err = %v; "+
				"want ErrNotAcquired (holder-b comes first)", lease, err)
		}
	} else {
		t.Logf("the backend keeps no place in line; the overtaking check does not apply")
	}
	lease, err := b.Acquire(ctx, key, "holder-b", h.TTL, backend.WithQueue())
	if err != nil {
		t.Fatalf("Acquire with Queue by holder-b after the holder released: %v", err)
	}
	if lease.Queued || lease.Token <= held.Token {
		t.Fatalf("holder-b's lease after the holder released = %+v; want a hold with a token > %d", lease, held.Token)
	}
	wantHeldBy(ctx, t, c, key, "holder-b")
	if err := b.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantFree(ctx, t, c, key)
}

func testReleaseQueuedPlace(t *testing.T, h Harness) {
	ctx := ctxFor(t, 30*time.Second)
	a, b, c, key := h.locker(t), h.locker(t), h.locker(t), h.key()
	held := mustAcquire(ctx, t, a, key, "holder-a", h.TTL)
	placeB, queuedB := acquireQueued(ctx, t, b, key, "holder-b", h.TTL)
	_, queuedC := acquireQueued(ctx, t, c, key, "holder-c", h.TTL)
	if queuedB {
		if err := b.Release(ctx, placeB); err != nil {
			t.Fatalf("Release of holder-b's place in line: %v", err)
		}
		if err := b.Release(ctx, placeB); err != nil {
			t.Fatalf("second Release of the same place: %v; want nil", err)
		}
	}
	wantHeldBy(ctx, t, a, key, "holder-a")
	if err := a.Release(ctx, held); err != nil {
		t.Fatalf("Release: %v", err)
	}
	lease, err := c.Acquire(ctx, key, "holder-c", h.TTL, backend.WithQueue())
	if err != nil {
		t.Fatalf("Acquire by holder-c (queued %v) after holder-b gave up its place and the holder released: %v", queuedC, err)
	}
	if lease.Token <= held.Token {
		t.Errorf("holder-c's token = %d; want > %d", lease.Token, held.Token)
	}
	if _, err := b.Acquire(ctx, key, "holder-b", h.TTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire by holder-b, which gave up its place, while holder-c holds: err = %v; want ErrNotAcquired", err)
	}
	if err := c.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}
