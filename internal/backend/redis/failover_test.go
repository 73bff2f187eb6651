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
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// What a failover of a replicated Redis (Sentinel, Cluster) does to the
// holds and fencing tokens of the backend, measured the same way for every
// deployment and failover kind.

const (
	// failoverHoldTTL is the lease of the holds taken around a failover:
	// long enough that no hold expires on its own during the test.
	failoverHoldTTL = 30 * time.Second
	// failoverBound bounds how long after the failover began a new hold
	// must be acquirable again, and how long renewals may stay unreachable.
	failoverBound = 30 * time.Second
	// failoverSettledHolds is the number of holds taken well before the
	// failover.
	failoverSettledHolds = 9
	// failoverTag is the hash tag of the first hold's key: its slot is the
	// one a cluster failover moves, and the holds taken during the failover
	// and the probe for a new hold after it are in the same slot.
	failoverTag = "{settled-0}"
)

// failover is one way to fail a deployment's master over.
type failover struct {
	// start begins the failover and returns what it did, for the log. It
	// may return before the deployment has settled.
	start func(ctx context.Context) (string, error)
	// settle waits until the deployment is fully healthy again.
	settle func(ctx context.Context) error
	// counter reads the value of the fencing counter of key straight from
	// the deployment (0 when it is absent).
	counter func(ctx context.Context, key string) (int64, error)
}

// failoverReport is what a failover did.
type failoverReport struct {
	// holds and inFlight count the holds taken well before the failover,
	// and while it happened (acknowledged by the server).
	holds, inFlight int
	// kept and lost count the holds whose renewal after the failover kept
	// them, or reported ErrNotHeld.
	kept, lost int
	// counterBehind counts the keys whose fencing counter ended below the
	// highest token handed out for the key before (the writes were lost).
	counterBehind int
	// started is how long starting the failover took (a coordinated or
	// forced failover returns once the new master is reported; a kill at
	// once); firstAcquire is how long after the failover began a new hold
	// was first acquired once it had started; longestGap is the longest
	// time without a new hold for a writer that kept acquiring throughout;
	// settled is how long after the failover began the deployment was
	// healthy again.
	started, firstAcquire, longestGap, settled time.Duration
	// minMargin is the smallest amount by which a new hold's token, taken
	// with WithMinToken of the key's highest earlier token, exceeded it.
	minMargin int64
}

func (r failoverReport) String() string {
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("%d holds taken before and %d during the failover; after it %d renewed with their token and %d reported "+
		"ErrNotHeld; %d fencing counters fell behind the highest token handed out; the failover call took %v, the first new hold "+
		"after it came %v after the failover began, the longest stretch without a new hold was %v, healthy again after %v; "+
		"new tokens with WithMinToken(highest) exceed it by at least %d",
		r.holds, r.inFlight, r.kept, r.lost, r.counterBehind, ms(r.started), ms(r.firstAcquire), ms(r.longestGap), ms(r.settled),
		r.minMargin)
}

// runFailover takes holds, fails the deployment over while a writer keeps
// taking more (on keys in the hash slot of the first hold, the one a
// cluster failover moves), and checks what the backend promises: every
// renewal afterwards keeps its hold with the same token or reports
// ErrNotHeld (and the lost hold is not silently taken again), a new hold
// can be acquired within failoverBound, and a new hold taken with
// WithMinToken of the highest token seen for its key gets a higher token,
// whatever the failover lost. keyPrefix begins every key.
func runFailover(t *testing.T, l backend.Locker, keyPrefix string, f failover) failoverReport {
	t.Helper()
	ctx := ctxFor(t, 3*failoverBound)
	var holds []backend.Lease
	for i := range failoverSettledHolds {
		key := fmt.Sprintf("%ssettled-%d", keyPrefix, i)
		if i%3 == 0 {
			key = fmt.Sprintf("%s{settled-%d}", keyPrefix, i)
		}
		lease, err := l.Acquire(ctx, key, "holder-a", failoverHoldTTL)
		if err != nil {
			t.Fatalf("Acquire(%q) before the failover: %v", key, err)
		}
		holds = append(holds, lease)
	}
	report := failoverReport{holds: len(holds)}

	stop := make(chan struct{})
	written := make(chan writerResult, 1)
	go func() { written <- keepAcquiring(ctx, l, keyPrefix+failoverTag+"in-flight-", stop) }()
	time.Sleep(50 * time.Millisecond)

	began := time.Now()
	what, err := f.start(ctx)
	if err != nil {
		close(stop)
		t.Fatalf("starting the failover: %v", err)
	}
	report.started = time.Since(began)
	t.Logf("failover: %s", what)
	report.firstAcquire = eventually(t, failoverBound, "acquiring a new hold after the failover", func() error {
		lease, err := l.Acquire(ctx, fmt.Sprintf("%s%sprobe-%d", keyPrefix, failoverTag, time.Now().UnixNano()), "holder-p", failoverHoldTTL)
		if err == nil {
			_ = l.Release(ctx, lease)
		}
		return err
	}).Sub(began)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	w := <-written
	report.inFlight, report.longestGap = len(w.leases), w.longestGap
	holds = append(holds, w.leases...)
	if err := f.settle(ctx); err != nil {
		t.Fatalf("waiting for the deployment to settle: %v", err)
	}
	report.settled = time.Since(began)

	report.minMargin = -1
	for _, lease := range holds {
		kept := renewAfterFailover(ctx, t, l, lease)
		if kept {
			report.kept++
		} else {
			report.lost++
		}
		n, err := f.counter(ctx, lease.Key)
		if err != nil {
			t.Fatalf("reading the fencing counter of %q: %v", lease.Key, err)
		}
		if n < lease.Token {
			report.counterBehind++
		}
		if kept {
			if err := l.Release(ctx, lease); err != nil {
				t.Fatalf("Release(%q): %v", lease.Key, err)
			}
		}
		next, err := l.Acquire(ctx, lease.Key, "holder-b", failoverHoldTTL, backend.WithMinToken(lease.Token))
		if err != nil {
			t.Fatalf("Acquire(%q) with MinToken %d after the failover: %v", lease.Key, lease.Token, err)
		}
		if next.Token <= lease.Token {
			t.Errorf("Acquire(%q) with MinToken %d after the failover: token %d; want above it", lease.Key, lease.Token, next.Token)
		}
		if margin := next.Token - lease.Token; report.minMargin < 0 || margin < report.minMargin {
			report.minMargin = margin
		}
	}
	return report
}

// renewAfterFailover renews lease until the deployment answers, and reports
// whether the hold was kept; any outcome but "kept with the same token" or
// ErrNotHeld fails the test, and so does a lost hold that still shows as
// the holder's.
func renewAfterFailover(ctx context.Context, t *testing.T, l backend.Locker, lease backend.Lease) bool {
	t.Helper()
	var renewed backend.Lease
	var renewErr error
	eventually(t, failoverBound, fmt.Sprintf("renewing %q after the failover", lease.Key), func() error {
		renewed, renewErr = l.Renew(ctx, lease, failoverHoldTTL)
		if errors.Is(renewErr, backend.ErrUnreachable) {
			return renewErr
		}
		return nil
	})
	st, err := l.Inspect(ctx, lease.Key)
	if err != nil {
		t.Fatalf("Inspect(%q): %v", lease.Key, err)
	}
	switch {
	case renewErr == nil:
		if renewed.Token != lease.Token || !st.Held || st.Holder != lease.Holder || st.Token != lease.Token {
			t.Fatalf("renewal of %q (token %d) after the failover = %+v, Inspect %+v; want the same hold", lease.Key, lease.Token, renewed, st)
		}
		return true
	case errors.Is(renewErr, backend.ErrNotHeld):
		if st.Held && st.Holder == lease.Holder && st.Token == lease.Token {
			t.Fatalf("renewal of %q said ErrNotHeld, but Inspect shows the hold: %+v", lease.Key, st)
		}
		return false
	default:
		t.Fatalf("renewal of %q (token %d) after the failover: %v; want the hold kept or ErrNotHeld", lease.Key, lease.Token, renewErr)
		return false
	}
}

// eventually calls fn until it succeeds, failing the test after within; it
// returns when fn succeeded.
func eventually(t *testing.T, within time.Duration, what string, fn func() error) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writerResult is what keepAcquiring did.
type writerResult struct {
	leases     []backend.Lease
	longestGap time.Duration
}

// keepAcquiring takes holds on fresh keys (prefix + a number) as fast as
// it can, with a short pause, until stop is closed, and returns them with
// the longest time that passed without a new hold.
func keepAcquiring(ctx context.Context, l backend.Locker, prefix string, stop <-chan struct{}) writerResult {
	var r writerResult
	last := time.Now()
	for i := 0; ; i++ {
		select {
		case <-stop:
			r.longestGap = max(r.longestGap, time.Since(last))
			return r
		default:
		}
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		lease, err := l.Acquire(callCtx, fmt.Sprintf("%s%d", prefix, i), "holder-c", failoverHoldTTL)
		cancel()
		if err == nil {
			r.leases = append(r.leases, lease)
			r.longestGap = max(r.longestGap, time.Since(last))
			last = time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
}
