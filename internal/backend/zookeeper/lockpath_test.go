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
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/go-cmp/cmp"

	"github.com/distlock/distlock/internal/backend"
)

// ensurePersistent creates path and its missing ancestors as persistent
// nodes, as an outside program's "ensure path" does.
func ensurePersistent(t *testing.T, conn *zk.Conn, path string) {
	t.Helper()
	for i := 1; i <= len(path); i++ {
		if i == len(path) || path[i] == '/' {
			if _, err := conn.Create(path[:i], nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatalf("Create(%s): %v", path[:i], err)
			}
		}
	}
}

func parentOf(path string) string { return path[:strings.LastIndex(path, "/")] }

// The plainest recipe: a program locks by creating one ephemeral node at
// the lock path and unlocks by deleting it.
func TestPlainEphemeralNodeAtTheLockPathExcludesBothWays(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, outside, observer := connect(t, srv, backend.Config{}), rawConn(t, srv, ""), rawConn(t, srv, "")
	key := newKey(t)
	ensurePersistent(t, outside, parentOf(key))
	plainLock := func() error {
		_, err := outside.Create(key, []byte("plain"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		return err
	}

	// While we hold, the plain program cannot lock...
	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if err := plainLock(); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("plain ephemeral create while we hold: err = %v; want zk.ErrNodeExists", err)
	}
	// ...and once we released, it can at once: the release removed the
	// lock node instead of leaving it to the server's container reaper.
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := plainLock(); err != nil {
		t.Fatalf("plain ephemeral create right after our Release: %v; want it to succeed at once", err)
	}
	_, stat, err := observer.Get(key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	holder := fmt.Sprintf("ephemeral node %s of session %#x", key, outside.SessionID())

	// While the plain program holds, we are excluded, and told by whom.
	if st, err := l.Inspect(ctx, key); err != nil || !cmp.Equal(st, backend.State{Held: true, Holder: holder, Token: stat.Czxid}) {
		t.Fatalf("Inspect while a plain ephemeral node holds = %+v, %v; want held by %q with token %d", st, err, holder, stat.Czxid)
	}
	for name, opts := range map[string][]backend.AcquireOption{
		"Acquire":                         nil,
		"Acquire with Queue":              {backend.WithQueue()},
		"Acquire with Queue and MinToken": {backend.WithQueue(), backend.WithMinToken(1)},
	} {
		got, err := l.Acquire(ctx, key, "holder-a", testTTL, opts...)
		if !errors.Is(err, backend.ErrNotAcquired) {
			t.Fatalf("%s while a plain ephemeral node holds: err = %v; want ErrNotAcquired", name, err)
		}
		if got != (backend.Lease{}) {
			t.Errorf("%s while a plain ephemeral node holds returned %+v; want no lease (nothing can queue under an ephemeral node)", name, got)
		}
		if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, fmt.Sprintf("%#x", outside.SessionID())) {
			t.Errorf("%s error %q does not name the ephemeral node %s and its session", name, msg, key)
		}
	}
	if _, err := l.Renew(ctx, lease, testTTL); !errors.Is(err, backend.ErrNotHeld) {
		t.Errorf("Renew of our old lease: err = %v; want ErrNotHeld", err)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Errorf("Release of our old lease: %v; want nil (nothing of ours to release)", err)
	}
	if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Errorf("Purge: err = %v; want ErrNotAcquired", err)
	}
	if _, after, err := observer.Get(key); err != nil || after.Czxid != stat.Czxid {
		t.Fatalf("the plain ephemeral node after Renew, Release and Purge: %+v, %v; want it untouched", after, err)
	}

	// A watch tells us when the plain program unlocks.
	changed, err := l.(backend.Watcher).Watch(ctx, key, "holder-a")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	select {
	case <-changed:
		t.Fatal("the watch fired while the plain ephemeral node still holds")
	default:
	}
	deleted := time.Now()
	if err := outside.Delete(key, -1); err != nil {
		t.Fatalf("plain unlock: %v", err)
	}
	select {
	case <-changed:
		latency := time.Since(deleted)
		t.Logf("watch fired %v after the plain ephemeral node was deleted", latency)
		if latency > time.Second {
			t.Errorf("watch fired %v after the deletion; want well within 1s", latency)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not fire within 5s of the deletion of the plain ephemeral node")
	}
	next, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire after the plain program unlocked: %v", err)
	}
	if next.Token <= stat.Czxid {
		t.Errorf("token after the plain program's hold = %d; want > its czxid %d", next.Token, stat.Czxid)
	}
	if err := l.Release(ctx, next); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// Only a session's ephemeral node at the lock path holds the lock by
// itself: the server reports the session as its EphemeralOwner, and 0 for
// the other kinds, which lock only through their children.
func TestOnlyAnEphemeralLockNodeHoldsByItself(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, outside := connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	acl := zk.WorldACL(zk.PermAll)
	tests := map[string]struct {
		create   func(path string) error
		wantHeld bool
	}{
		"an ephemeral node": {
			create:   func(p string) error { _, err := outside.Create(p, nil, zk.FlagEphemeral, acl); return err },
			wantHeld: true,
		},
		"a persistent node": {
			create: func(p string) error { _, err := outside.Create(p, nil, zk.FlagPersistent, acl); return err },
		},
		"a container node": {
			create: func(p string) error { _, err := outside.CreateContainer(p, nil, zk.FlagContainer, acl); return err },
		},
		"a TTL node": {
			create: func(p string) error { _, err := outside.CreateTTL(p, nil, zk.FlagTTL, acl, time.Minute); return err },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			key := newKey(t)
			ensurePersistent(t, outside, parentOf(key))
			if err := tc.create(key); err != nil {
				t.Fatalf("creating %s at %s: %v", name, key, err)
			}
			_, stat, err := outside.Get(key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if wantOwner := map[bool]int64{true: outside.SessionID()}[tc.wantHeld]; stat.EphemeralOwner != wantOwner {
				t.Errorf("the server reports EphemeralOwner %#x for %s; want %#x", stat.EphemeralOwner, name, wantOwner)
			}
			st, err := l.Inspect(ctx, key)
			if err != nil || st.Held != tc.wantHeld {
				t.Fatalf("Inspect of %s without children = %+v, %v; want held %v", name, st, err, tc.wantHeld)
			}
			lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
			if tc.wantHeld {
				if !errors.Is(err, backend.ErrNotAcquired) {
					t.Fatalf("Acquire on %s: err = %v; want ErrNotAcquired", name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Acquire under %s: %v", name, err)
			}
			if err := l.Release(ctx, lease); err != nil {
				t.Fatalf("Release: %v", err)
			}
		})
	}
}

// Release removes the lock node only when this package made it. (A
// container that someone else made, as Curator does, is kept the same way,
// by the same check of the mark; it is not a row here because the test
// server's container reaper, which runs every second, may delete it at any
// moment once it is empty.)
func TestReleaseRemovesOnlyOurOwnEmptiedLockNode(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, other, outside := connect(t, srv, backend.Config{}), connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	tests := map[string]struct {
		prepare    func(t *testing.T, key string)
		queueOther bool // another holder waits in line behind ours
		wantKept   bool
	}{
		"the container we created goes with our last node": {},
		"a persistent lock node someone else made stays (zk.Lock makes such nodes)": {
			prepare:  func(t *testing.T, key string) { ensurePersistent(t, outside, key) },
			wantKept: true,
		},
		"our container stays while another holder waits in it": {queueOther: true, wantKept: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			key := newKey(t)
			if tc.prepare != nil {
				tc.prepare(t, key)
			}
			lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			if tc.queueOther {
				if _, err := other.Acquire(ctx, key, "holder-b", testTTL, backend.WithQueue()); !errors.Is(err, backend.ErrNotAcquired) {
					t.Fatalf("Acquire with Queue by holder-b: err = %v; want ErrNotAcquired", err)
				}
			}
			if err := l.Release(ctx, lease); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if got := exists(t, outside, key); got != tc.wantKept {
				t.Fatalf("lock node exists after Release = %v; want %v", got, tc.wantKept)
			}
			// Purge refuses while another holder waits; else it succeeds.
			if err := l.Purge(ctx, key); tc.queueOther != errors.Is(err, backend.ErrNotAcquired) || (!tc.queueOther && err != nil) {
				t.Fatalf("Purge: %v", err)
			}
			if tc.prepare != nil && !exists(t, outside, key) {
				t.Fatalf("Purge deleted a lock node someone else made")
			}
		})
	}
}
