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

package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/testservers"
)

// Bounds of the failover test. The session outlives the failover by far;
// the holds (TTL nodes) would outlive even the session.
const (
	ensembleSessionTimeout = 10 * time.Second
	ensembleTTL            = 30 * time.Second
	// renewWithin bounds the time from the leader's death to the first
	// renewal of every hold through another member: the ensemble elects a
	// new leader and the session moves, within the session timeout.
	renewWithin = ensembleSessionTimeout
	// acquireWithin bounds a new acquisition once the ensemble serves
	// again.
	acquireWithin = 5 * time.Second
)

// connectToLeader connects a Locker to every member of ens, and tries
// again until its session is on the leader, so that killing the leader
// also moves the session. It reports whether it got there.
func connectToLeader(ctx context.Context, t *testing.T, ens *testservers.ZooKeeperEnsemble, leader string) (*locker, bool) {
	t.Helper()
	for try := 1; ; try++ {
		bl, err := New(ctx, backend.Config{Servers: ens.Servers(), SessionTimeout: ensembleSessionTimeout})
		if err != nil {
			t.Fatalf("New(%v): %v", ens.Servers(), err)
		}
		l := bl.(*locker)
		if l.conn.Server() == leader || try == 20 {
			t.Cleanup(func() { _ = l.Close() })
			return l, l.conn.Server() == leader
		}
		_ = l.Close()
	}
}

// intruder tries, from its own client, to take held locks until stopped,
// and records every success (and every error other than ErrNotAcquired or
// ErrUnreachable).
type intruder struct {
	tries atomic.Int64
	stop  chan struct{}
	done  chan struct{}

	mu         sync.Mutex
	intrusions []string
}

func startIntruder(ctx context.Context, l backend.Locker, keys []string) *intruder {
	in := &intruder{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		for {
			for _, key := range keys {
				select {
				case <-in.stop:
					return
				default:
				}
				callCtx, cancel := context.WithTimeout(ctx, time.Second)
				lease, err := l.Acquire(callCtx, key, "intruder", 2*time.Second)
				cancel()
				in.tries.Add(1)
				if err == nil || !errors.Is(err, backend.ErrNotAcquired) && !errors.Is(err, backend.ErrUnreachable) {
					in.mu.Lock()
					in.intrusions = append(in.intrusions, fmt.Sprintf("%s: lease %+v, err %v", key, lease, err))
					in.mu.Unlock()
				}
			}
		}
	}()
	return in
}

// finish lets the intruder try n more times, stops it and returns what it
// got.
func (in *intruder) finish(ctx context.Context, n int64) []string {
	for after := in.tries.Load() + n; in.tries.Load() < after && ctx.Err() == nil; {
		time.Sleep(10 * time.Millisecond) // waiting for the intruder's attempts
	}
	close(in.stop)
	<-in.done
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.intrusions
}

// renewThroughFailover renews lease until it succeeds, failing the test
// on anything but ErrUnreachable or once renewWithin has passed since
// killed.
func renewThroughFailover(ctx context.Context, t *testing.T, l backend.Locker, lease backend.Lease, killed time.Time) backend.Lease {
	t.Helper()
	for {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		renewed, err := l.Renew(callCtx, lease, ensembleTTL)
		cancel()
		switch {
		case err == nil:
			if renewed.Token != lease.Token {
				t.Fatalf("token of %s after the failover = %d; want %d", lease.Key, renewed.Token, lease.Token)
			}
			return renewed
		case !errors.Is(err, backend.ErrUnreachable):
			t.Fatalf("Renew(%s) during the failover: %v; want success or ErrUnreachable", lease.Key, err)
		case time.Since(killed) > renewWithin:
			t.Fatalf("Renew(%s) still failing %v after the leader died: %v", lease.Key, time.Since(killed), err)
		}
		time.Sleep(100 * time.Millisecond) // waiting for the ensemble to serve again
	}
}

// acquireAfterFailover takes the free lock at key within acquireWithin and
// releases it; its token must be above highest.
func acquireAfterFailover(ctx context.Context, t *testing.T, l backend.Locker, key string, highest int64) {
	t.Helper()
	start := time.Now()
	lease, err := l.Acquire(ctx, key, "successor", ensembleTTL)
	for errors.Is(err, backend.ErrUnreachable) && time.Since(start) < acquireWithin {
		time.Sleep(100 * time.Millisecond) // the client's session may still be moving
		lease, err = l.Acquire(ctx, key, "successor", ensembleTTL)
	}
	if err != nil {
		t.Fatalf("Acquire(%s) after the failover: %v (after %v)", key, err, time.Since(start))
	}
	if lease.Token <= highest {
		t.Errorf("token of a new hold on %s after the failover = %d; want above %d (tokens never go back)", key, lease.Token, highest)
	}
	t.Logf("%s acquired %v after asking", key, time.Since(start))
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release(%s): %v", key, err)
	}
}

// TestHoldsSurviveTheLossOfTheEnsembleLeader kills the leader of a 3-node
// ensemble, the member the holder's session is on, while several locks are
// held, and checks the failover: the holds stay (renewals succeed once the
// session has moved to another member, within the session timeout, with
// the same tokens), nobody else gets a held lock meanwhile, and afterwards
// new holds work at once with higher tokens.
func TestHoldsSurviveTheLossOfTheEnsembleLeader(t *testing.T) {
	t.Parallel()
	ens := testservers.NewZooKeeperEnsemble(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	leader, err := ens.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, onLeader := connectToLeader(ctx, t, ens, leader.Addr)
	if !onLeader {
		t.Logf("the session is on %s, not the leader %s: killing the leader moves no session", l.conn.Server(), leader.Addr)
	}
	other, err := New(ctx, backend.Config{Servers: ens.Servers(), SessionTimeout: ensembleSessionTimeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = other.Close() })

	// Holds on several paths; the last one is released after the
	// failover.
	const held = 4
	leases := make([]backend.Lease, held)
	var highest int64
	for i := range leases {
		key := fmt.Sprintf("/ensemble/lock-%d", i)
		if leases[i], err = l.Acquire(ctx, key, fmt.Sprintf("holder-%d", i), ensembleTTL); err != nil {
			t.Fatalf("Acquire(%s): %v", key, err)
		}
		highest = max(highest, leases[i].Token)
	}
	kept := leases[:held-1]
	session := l.conn.SessionID()
	in := startIntruder(ctx, other, []string{kept[0].Key, kept[1].Key, kept[2].Key})

	killed := time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatalf("Kill(leader, server %d): %v", leader.ID, err)
	}
	for i := range leases {
		leases[i] = renewThroughFailover(ctx, t, l, leases[i], killed)
	}
	t.Logf("every hold renewed %v after the leader died; the session is on %s", time.Since(killed), l.conn.Server())
	if onLeader && l.conn.Server() == leader.Addr {
		t.Errorf("the session is still on the killed leader %s", leader.Addr)
	}
	if now := l.conn.SessionID(); now != session {
		t.Errorf("session after the failover = %#x; want the same session %#x, moved", now, session)
	}

	// A lock freed after the failover is taken at once, with a higher
	// token; so is a lock never used before.
	if err := l.Release(ctx, leases[held-1]); err != nil {
		t.Fatalf("Release(%s): %v", leases[held-1].Key, err)
	}
	acquireAfterFailover(ctx, t, other, leases[held-1].Key, highest)
	acquireAfterFailover(ctx, t, other, "/ensemble/fresh", highest)

	// Two more rounds of intrusions on the ensemble as it is now.
	if intrusions := in.finish(ctx, 2*int64(len(kept))); len(intrusions) > 0 {
		t.Fatalf("another client took a held lock during the failover:\n%v", intrusions)
	}
	t.Logf("the other client tried %d times to take a held lock; it never did", in.tries.Load())
	for _, lease := range kept {
		st, err := l.Inspect(ctx, lease.Key)
		if err != nil || !st.Held || st.Holder != lease.Holder || st.Token != lease.Token {
			t.Fatalf("Inspect(%s) after the failover = %+v, %v; want held by %s with token %d", lease.Key, st, err, lease.Holder, lease.Token)
		}
		if err := l.Release(ctx, lease); err != nil {
			t.Fatalf("Release(%s): %v", lease.Key, err)
		}
	}
}
