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
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/zookeeper"
	"github.com/distlock/distlock/internal/testservers"
)

// watch calls Watch on l, which must implement backend.Watcher.
func watch(ctx context.Context, t *testing.T, l backend.Locker, key, holder string) <-chan struct{} {
	t.Helper()
	w, ok := l.(backend.Watcher)
	if !ok {
		t.Fatalf("the zookeeper Locker %T does not implement backend.Watcher", l)
	}
	changed, err := w.Watch(ctx, key, holder)
	if err != nil {
		t.Fatalf("Watch(%q, %q): %v", key, holder, err)
	}
	return changed
}

func wantOpen(t *testing.T, changed <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-changed:
		t.Fatalf("the watch fired %s", why)
	default:
	}
}

// wantClosed waits for changed to close and returns how long it took
// after since.
func wantClosed(t *testing.T, changed <-chan struct{}, since time.Time, why string) time.Duration {
	t.Helper()
	select {
	case <-changed:
		return time.Since(since)
	case <-time.After(5 * time.Second):
		t.Fatalf("the watch did not fire within 5s %s", why)
		return 0
	}
}

func TestWatchFiresAtOnceWhenThereIsNothingToWaitFor(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, other := connect(t, srv, backend.Config{}), connect(t, srv, backend.Config{})

	freeKey := newKey(t)
	emptied := newKey(t)
	lease, err := other.Acquire(ctx, emptied, "holder-b", testTTL)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := l.Acquire(ctx, emptied, "holder-a", testTTL, backend.WithQueue())
	if !queued.Queued {
		t.Fatalf("Acquire with Queue = %+v, %v; want a place", queued, err)
	}
	if err := other.Release(ctx, lease); err != nil {
		t.Fatal(err)
	}
	heldKey := newKey(t)
	if _, err := l.Acquire(ctx, heldKey, "holder-a", testTTL); err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{
		"no lock node":                      freeKey,
		"the holder's place has come first": emptied,
		"the holder holds":                  heldKey,
	} {
		select {
		case <-watch(ctx, t, l, key, "holder-a"):
		default:
			t.Errorf("%s: the channel is open; want it closed at once", name)
		}
	}
}

func TestWatchFiresWhenTheHoldGoes(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, other, outside := connect(t, srv, backend.Config{}), connect(t, srv, backend.Config{}), rawConn(t, srv, "")

	t.Run("a zk.Lock hold released", func(t *testing.T) {
		key := newKey(t)
		lock := zk.NewLock(outside, key, zk.WorldACL(zk.PermAll))
		if err := lock.Lock(); err != nil {
			t.Fatal(err)
		}
		changed := watch(ctx, t, l, key, "holder-a")
		wantOpen(t, changed, "while zk.Lock holds")
		unlocked := time.Now()
		if err := lock.Unlock(); err != nil {
			t.Fatal(err)
		}
		t.Logf("the watch fired %v after zk.Lock released", wantClosed(t, changed, unlocked, "after zk.Lock released"))
		if _, err := l.Acquire(ctx, key, "holder-a", testTTL); err != nil {
			t.Fatalf("Acquire after the watch fired: %v", err)
		}
	})
	t.Run("a distlock hold released", func(t *testing.T) {
		key := newKey(t)
		lease, err := other.Acquire(ctx, key, "holder-b", testTTL)
		if err != nil {
			t.Fatal(err)
		}
		changed := watch(ctx, t, l, key, "holder-a")
		if _, err := other.Renew(ctx, lease, testTTL); err != nil {
			t.Fatal(err)
		}
		released := time.Now()
		if err := other.Release(ctx, lease); err != nil {
			t.Fatal(err)
		}
		t.Logf("the watch fired %v after the release", wantClosed(t, changed, released, "after the release"))
	})
	t.Run("the holder's predecessor, not the head of the line, gives up its place", func(t *testing.T) {
		key := newKey(t)
		third := connect(t, srv, backend.Config{})
		head, err := other.Acquire(ctx, key, "holder-b", testTTL)
		if err != nil {
			t.Fatal(err)
		}
		middle, err := third.Acquire(ctx, key, "holder-c", testTTL, backend.WithQueue())
		if !middle.Queued {
			t.Fatalf("Acquire with Queue = %+v, %v; want a place", middle, err)
		}
		if place, err := l.Acquire(ctx, key, "holder-a", testTTL, backend.WithQueue()); !place.Queued {
			t.Fatalf("Acquire with Queue = %+v, %v; want a place", place, err)
		}
		changed := watch(ctx, t, l, key, "holder-a")
		gone := time.Now()
		if err := third.Release(ctx, middle); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, changed, gone, "after the predecessor gave up its place")
		// Now the head is the predecessor.
		changed = watch(ctx, t, l, key, "holder-a")
		wantOpen(t, changed, "while holder-b holds")
		if err := other.Release(ctx, head); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, changed, time.Now(), "after the holder released")
		if lease, err := l.Acquire(ctx, key, "holder-a", testTTL, backend.WithQueue()); err != nil || lease.Queued {
			t.Fatalf("Acquire after the watch fired = %+v, %v; want the hold", lease, err)
		}
	})
}

func TestWatchEndsWhenTheLockerCloses(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	other := connect(t, srv, backend.Config{})
	key := newKey(t)
	if _, err := other.Acquire(ctx, key, "holder-b", testTTL); err != nil {
		t.Fatal(err)
	}
	l, err := zookeeper.New(ctx, backend.Config{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	changed := watch(ctx, t, l, key, "holder-a")
	wantOpen(t, changed, "before Close")
	closed := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, changed, closed, "after the Locker was closed")
}

func TestWatchRejectsBadArguments(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 10*time.Second)
	l := connect(t, sharedServer(t), backend.Config{})
	w := l.(backend.Watcher)
	for name, args := range map[string][2]string{
		"a relative key":  {"relative", "holder-a"},
		"an empty holder": {newKey(t), ""},
	} {
		if _, err := w.Watch(ctx, args[0], args[1]); err == nil {
			t.Errorf("Watch with %s succeeded; want an error", name)
		}
	}
	// Bounded by its context like every call.
	srv := testservers.NewZooKeeper(t)
	hung := connect(t, srv, backend.Config{})
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	callCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := hung.(backend.Watcher).Watch(callCtx, newKey(t), "holder-a"); !errors.Is(err, backend.ErrUnreachable) {
		t.Errorf("Watch on a hung server: err = %v; want ErrUnreachable", err)
	}
}
