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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/outsiders"
)

func TestKazooLockAndKazooNamingExcludeEachOther(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l := connect(t, srv, backend.Config{NodeNames: backend.NodeNamesKazoo})
	outside, observer := rawConn(t, srv, ""), rawConn(t, srv, "")
	key := newKey(t)

	// kazoo holds: we are excluded.
	k := outsiders.NewKazooLock(outside, key)
	if ok, err := k.Acquire(ctx, false); err != nil || !ok {
		t.Fatalf("kazoo acquire on a free lock = %v, %v; want true", ok, err)
	}
	if _, err := l.Acquire(ctx, key, "holder-a", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire while kazoo holds: err = %v; want ErrNotAcquired", err)
	} else if !strings.Contains(err.Error(), k.Node()) || !strings.Contains(err.Error(), "kazoo Lock") {
		t.Errorf("Acquire error %q does not name kazoo's node %s and its recipe", err, k.Node())
	}
	if st, err := l.Inspect(ctx, key); err != nil || !st.Held || st.Holder != k.Node() {
		t.Fatalf("Inspect while kazoo holds = %+v, %v; want held through %s", st, err, k.Node())
	}
	if err := k.Release(); err != nil {
		t.Fatalf("kazoo release: %v", err)
	}

	// We hold, with kazoo's naming: kazoo is excluded.
	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire after kazoo released: %v", err)
	}
	ours := lockChildren(t, observer, key)
	if len(ours) != 1 || !outsiders.KazooNodeName.MatchString(ours[0]) {
		t.Fatalf("children while we hold = %q; want one node <32 hex>__lock__<seq>", ours)
	}
	waiter := outsiders.NewKazooLock(outside, key)
	if ok, err := waiter.Acquire(ctx, false); err != nil || ok {
		t.Fatalf("non-blocking kazoo acquire while we hold = %v, %v; want false", ok, err)
	}
	if after := lockChildren(t, observer, key); !slices.Equal(after, ours) {
		t.Fatalf("children after kazoo gave up = %q; want only ours %q", after, ours)
	}
	acquired := make(chan error, 1)
	go func() {
		ok, err := waiter.Acquire(ctx, true)
		if err == nil && !ok {
			err = errors.New("blocking acquire returned false")
		}
		acquired <- err
	}()
	waitForChildren(ctx, t, observer, key, 2)
	select {
	case err := <-acquired:
		t.Fatalf("blocking kazoo acquire returned (%v) while we hold", err)
	default:
	}
	if _, err := l.Renew(ctx, lease, testTTL); err != nil {
		t.Fatalf("Renew while kazoo waits: %v", err)
	}
	released := time.Now()
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	select {
	case err := <-acquired:
		if err != nil {
			t.Fatalf("blocking kazoo acquire: %v", err)
		}
		t.Logf("kazoo acquired %v after our release", time.Since(released))
	case <-time.After(5 * time.Second):
		t.Fatal("kazoo did not acquire within 5s of our release")
	}
	if st, err := l.Inspect(ctx, key); err != nil || st.Holder != waiter.Node() {
		t.Fatalf("Inspect after kazoo took over = %+v, %v; want held through %s", st, err, waiter.Node())
	}
}

// kazoo's Lock counts only "__lock__" names by default: it does not see
// nodes in Curator naming and takes the lock beside them, unless it is
// given extra_lock_patterns=["-lock-"]. We see kazoo's nodes either way.
func TestKazooLockSeesCuratorNamingOnlyWithExtraLockPatterns(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, outside := connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)

	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	blind := outsiders.NewKazooLock(outside, key)
	if ok, err := blind.Acquire(ctx, false); err != nil || !ok {
		t.Fatalf("kazoo acquire with its default patterns while we hold (Curator naming) = %v, %v; "+
			"want true: kazoo does not see Curator-named nodes (the documented reason for NodeNames Kazoo)", ok, err)
	}
	if err := blind.Release(); err != nil {
		t.Fatal(err)
	}
	seeing := outsiders.NewKazooLock(outside, key, "-lock-")
	if ok, err := seeing.Acquire(ctx, false); err != nil || ok {
		t.Fatalf("kazoo acquire with extra_lock_patterns=[\"-lock-\"] while we hold = %v, %v; want false", ok, err)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}

	// We see kazoo's nodes whatever our naming.
	if ok, err := blind.Acquire(ctx, false); err != nil || !ok {
		t.Fatalf("kazoo acquire on a free lock = %v, %v; want true", ok, err)
	}
	if _, err := l.Acquire(ctx, key, "holder-a", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire (Curator naming) while kazoo holds: err = %v; want ErrNotAcquired", err)
	}
	if err := blind.Release(); err != nil {
		t.Fatal(err)
	}
}

// A holder's nodes are recognised in either naming, so a lock can switch
// naming while it is held (or queued).
func TestNamingCanChangeWhileHeld(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	curator := connect(t, srv, backend.Config{NodeNames: backend.NodeNamesCurator})
	kazoo := connect(t, srv, backend.Config{NodeNames: backend.NodeNamesKazoo})
	observer := rawConn(t, srv, "")
	key := newKey(t)

	held, err := curator.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire in Curator naming: %v", err)
	}
	again, err := kazoo.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil || again.Token != held.Token {
		t.Fatalf("Acquire in Kazoo naming by the holder = %+v, %v; want the Curator-named hold (token %d)", again, err, held.Token)
	}
	place, err := kazoo.Acquire(ctx, key, "holder-b", testTTL, backend.WithQueue())
	if !errors.Is(err, backend.ErrNotAcquired) || !place.Queued {
		t.Fatalf("Acquire with Queue in Kazoo naming by another holder = %+v, %v; want a queued lease", place, err)
	}
	children := lockChildren(t, observer, key)
	if len(children) != 2 || !protectedName.MatchString(children[0]) || !outsiders.KazooNodeName.MatchString(children[1]) {
		t.Fatalf("children = %q; want the Curator-named hold, then the Kazoo-named place", children)
	}
	if err := kazoo.Release(ctx, again); err != nil {
		t.Fatalf("Release of the hold from the Kazoo-naming locker: %v", err)
	}
	next, err := curator.Acquire(ctx, key, "holder-b", testTTL, backend.WithQueue())
	if err != nil || next.Token != place.Token {
		t.Fatalf("Acquire in Curator naming by the queued holder = %+v, %v; want its Kazoo-named place to hold (token %d)",
			next, err, place.Token)
	}
	if err := curator.Release(ctx, next); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// waitForChildren waits, with a children watch, until key has n children.
func waitForChildren(ctx context.Context, t *testing.T, conn *zk.Conn, key string, n int) {
	t.Helper()
	for {
		children, _, events, err := conn.ChildrenW(key)
		if err != nil {
			t.Fatalf("ChildrenW(%s): %v", key, err)
		}
		if len(children) == n {
			return
		}
		select {
		case <-events:
		case <-ctx.Done():
			t.Fatalf("%s has children %q, not %d, when the test's time ran out", key, children, n)
		}
	}
}
