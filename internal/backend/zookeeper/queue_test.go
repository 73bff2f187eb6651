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

package zookeeper_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// An outside program that releases and at once locks again (as a Curator
// or zk.Lock client in a loop does) overtakes a holder that does not queue,
// every time; a holder that queues gets its turn.
func TestQueueTakesTurnsWithAnOutsideProgramThatLocksAgainAtOnce(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	tests := map[string]struct {
		opts         []backend.AcquireOption
		wantOurTurn  bool
		wantChildren int // while the outside program holds and we asked
	}{
		"with Queue our place is kept and the outside program waits behind it": {
			opts: []backend.AcquireOption{backend.WithQueue()}, wantOurTurn: true, wantChildren: 2,
		},
		"without Queue the outside program wins again": {wantChildren: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t, 30*time.Second)
			l, outside, observer := connect(t, srv, backend.Config{}), rawConn(t, srv, ""), rawConn(t, srv, "")
			key := newKey(t)
			lock := zk.NewLock(outside, key, zk.WorldACL(zk.PermAll))
			if err := lock.Lock(); err != nil {
				t.Fatalf("zk.Lock.Lock on a free lock: %v", err)
			}
			first := lockChildren(t, observer, key)

			place, refused := l.Acquire(ctx, key, "pod-a", testTTL, tc.opts...)
			if !errors.Is(refused, backend.ErrNotAcquired) {
				t.Fatalf("Acquire while zk.Lock holds: err = %v; want ErrNotAcquired", refused)
			}
			children := lockChildren(t, observer, key)
			if len(children) != tc.wantChildren {
				t.Fatalf("children after our Acquire = %q; want %d", children, tc.wantChildren)
			}
			if tc.wantOurTurn {
				_, stat, err := observer.Get(key + "/" + children[1])
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				want := backend.Lease{Key: key, Holder: "pod-a", Token: stat.Czxid, TTL: testTTL, Queued: true}
				if got := withoutHandle(place); got != want || place.Handle == "" {
					t.Fatalf("queued lease = %+v; want %+v (the czxid of our waiting node) and a Handle", place, want)
				}
				if msg := refused.Error(); !strings.Contains(msg, children[1]) || !strings.Contains(msg, first[0]) {
					t.Errorf("queued Acquire error %q does not name the holder's node %s and our place %s", msg, first[0], children[1])
				}
			} else if place != (backend.Lease{}) {
				t.Fatalf("lease without Queue = %+v; want none", place)
			}

			// The outside program releases and locks again at once.
			if err := lock.Unlock(); err != nil {
				t.Fatalf("zk.Lock.Unlock: %v", err)
			}
			relocked := make(chan error, 1)
			go func() { relocked <- lock.Lock() }()
			t.Cleanup(func() { _ = lock.Unlock() })

			if !tc.wantOurTurn {
				select {
				case err := <-relocked:
					if err != nil {
						t.Fatalf("zk.Lock.Lock again: %v", err)
					}
				case <-ctx.Done():
					t.Fatal("zk.Lock.Lock did not get the free lock")
				}
				if _, err := l.Acquire(ctx, key, "pod-a", testTTL, tc.opts...); !errors.Is(err, backend.ErrNotAcquired) {
					t.Fatalf("Acquire after the outside program locked again: err = %v; want ErrNotAcquired (it won again)", err)
				}
				return
			}

			waitForChildren(ctx, t, observer, key, 2) // zk.Lock's new node, behind ours
			held, err := l.Acquire(ctx, key, "pod-a", testTTL, tc.opts...)
			if err != nil {
				t.Fatalf("Acquire after the outside program released: %v; want our turn", err)
			}
			if held.Queued || held.Token != place.Token {
				t.Fatalf("lease on our turn = %+v; want a hold with our place's token %d", held, place.Token)
			}
			if st, err := l.Inspect(ctx, key); err != nil || st.Holder != "pod-a" || st.Token != held.Token {
				t.Fatalf("Inspect on our turn = %+v, %v; want held by pod-a", st, err)
			}
			select {
			case err := <-relocked:
				t.Fatalf("zk.Lock.Lock returned (%v) while we hold: it overtook us", err)
			default:
			}
			released := time.Now()
			if err := l.Release(ctx, held); err != nil {
				t.Fatalf("Release: %v", err)
			}
			select {
			case err := <-relocked:
				if err != nil {
					t.Fatalf("zk.Lock.Lock after our release: %v", err)
				}
				t.Logf("zk.Lock took its turn %v after our release", time.Since(released))
			case <-time.After(5 * time.Second):
				t.Fatal("zk.Lock.Lock did not return within 5s of our release")
			}
		})
	}
}

func TestQueuedPlace(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	holder, l, observer := connect(t, srv, backend.Config{}), connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)
	held, err := holder.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	place, err := l.Acquire(ctx, key, "holder-b", testTTL, backend.WithQueue())
	if !errors.Is(err, backend.ErrNotAcquired) || !place.Queued {
		t.Fatalf("Acquire with Queue = %+v, %v; want a queued lease", place, err)
	}
	holderNode, placeNode := lockChildren(t, observer, key)[0], lockChildren(t, observer, key)[1]
	_, before, err := observer.Get(key + "/" + placeNode)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a later Acquire keeps the place and restarts its clock", func(t *testing.T) {
		again, err := l.Acquire(ctx, key, "holder-b", testTTL, backend.WithQueue())
		if !errors.Is(err, backend.ErrNotAcquired) || again != place {
			t.Fatalf("second Acquire with Queue = %+v, %v; want the same place %+v", again, err, place)
		}
		_, after, err := observer.Get(key + "/" + placeNode)
		if err != nil {
			t.Fatalf("Get of the place: %v", err)
		}
		if after.Mzxid <= before.Mzxid {
			t.Errorf("the place's node was not written (mzxid %d, before %d): its TTL clock did not restart", after.Mzxid, before.Mzxid)
		}
	})
	t.Run("a place in line is not a hold", func(t *testing.T) {
		if st, err := l.Inspect(ctx, key); err != nil || st.Holder != "holder-a" {
			t.Fatalf("Inspect = %+v, %v; want held by holder-a", st, err)
		}
		if _, err := l.Renew(ctx, place, testTTL); err == nil {
			t.Fatal("Renew of a queued lease succeeded; want an error")
		}
	})
	t.Run("the lowest of the holder's nodes is kept and the others are deleted", func(t *testing.T) {
		// An interrupted attempt left a second node of holder-b.
		extra, err := observer.CreateTTL(key+"/"+placeNode[:len(placeNode)-10], []byte("holder-b"),
			zk.FlagPersistentSequentialWithTTL, zk.WorldACL(zk.PermAll), testTTL)
		if err != nil {
			t.Fatalf("CreateTTL: %v", err)
		}
		again, err := l.Acquire(ctx, key, "holder-b", testTTL, backend.WithQueue())
		if !errors.Is(err, backend.ErrNotAcquired) || again.Token != place.Token {
			t.Fatalf("Acquire with Queue = %+v, %v; want the first place %+v", again, err, place)
		}
		if exists(t, observer, extra) {
			t.Fatalf("the holder's second node %s survived; want it deleted", extra)
		}
	})
	t.Run("Acquire without Queue gives the place up", func(t *testing.T) {
		if _, err := l.Acquire(ctx, key, "holder-b", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
			t.Fatalf("Acquire without Queue: err = %v; want ErrNotAcquired", err)
		}
		if children := lockChildren(t, observer, key); !slices.Equal(children, []string{holderNode}) {
			t.Fatalf("children = %q; want only the holder's %s", children, holderNode)
		}
	})
	t.Run("Release of a queued lease removes the place", func(t *testing.T) {
		place, err := l.Acquire(ctx, key, "holder-b", testTTL, backend.WithQueue())
		if !place.Queued {
			t.Fatalf("Acquire with Queue = %+v, %v; want a queued lease", place, err)
		}
		if err := l.Release(ctx, place); err != nil {
			t.Fatalf("Release of the place: %v", err)
		}
		if children := lockChildren(t, observer, key); !slices.Equal(children, []string{holderNode}) {
			t.Fatalf("children = %q; want only the holder's %s", children, holderNode)
		}
		if st, err := l.Inspect(ctx, key); err != nil || st.Token != held.Token {
			t.Fatalf("Inspect = %+v, %v; want the hold (token %d) untouched", st, err, held.Token)
		}
	})
}

func TestMinTokenAboveTheZxidFailsAndLeavesNothing(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, other, observer := connect(t, srv, backend.Config{}), connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	const floor = 1 << 50 // far above this server's zxids (epoch << 32 | counter)

	t.Run("on a free lock", func(t *testing.T) {
		key := newKey(t)
		lease, err := l.Acquire(ctx, key, "holder-a", testTTL, backend.WithMinToken(floor))
		if !errors.Is(err, backend.ErrFencingRegressed) || lease != (backend.Lease{}) {
			t.Fatalf("Acquire with MinToken %d = %+v, %v; want ErrFencingRegressed", int64(floor), lease, err)
		}
		if exists(t, observer, key) {
			t.Fatalf("%s exists after the refused Acquire (children %q); want nothing left", key, lockChildren(t, observer, key))
		}
	})
	t.Run("with Queue behind another holder", func(t *testing.T) {
		key := newKey(t)
		held, err := other.Acquire(ctx, key, "holder-b", testTTL)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		lease, err := l.Acquire(ctx, key, "holder-a", testTTL, backend.WithQueue(), backend.WithMinToken(floor))
		if !errors.Is(err, backend.ErrFencingRegressed) || lease != (backend.Lease{}) {
			t.Fatalf("Acquire with Queue and MinToken %d = %+v, %v; want ErrFencingRegressed and no place", int64(floor), lease, err)
		}
		if children := lockChildren(t, observer, key); len(children) != 1 {
			t.Fatalf("children = %q; want only holder-b's hold", children)
		}
		// The floor is checked when a node is created: a hold the holder
		// has keeps its token whatever the floor.
		again, err := other.Acquire(ctx, key, "holder-b", testTTL, backend.WithMinToken(floor))
		if err != nil || again.Token != held.Token {
			t.Fatalf("re-Acquire by the holder with MinToken %d = %+v, %v; want its hold (token %d)", int64(floor), again, err, held.Token)
		}
	})
	t.Run("a floor below the zxid is passed", func(t *testing.T) {
		key := newKey(t)
		first, err := l.Acquire(ctx, key, "holder-a", testTTL)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		if err := l.Release(ctx, first); err != nil {
			t.Fatal(err)
		}
		next, err := l.Acquire(ctx, key, "holder-a", testTTL, backend.WithMinToken(first.Token))
		if err != nil || next.Token <= first.Token {
			t.Fatalf("Acquire with MinToken %d = %+v, %v; want a token above it", first.Token, next, err)
		}
	})
}
