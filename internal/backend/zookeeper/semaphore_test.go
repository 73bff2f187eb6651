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
	"fmt"
	"path"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/uuid"

	"github.com/distlock/distlock/internal/backend"
)

// leaseName is the name of a lease node of Curator's
// InterProcessSemaphoreV2: a protected node "_c_<UUID>-lease-<seq>".
var leaseName = regexp.MustCompile(`^_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-lease-\d{10}$`)

// curatorSemaphore follows Curator's InterProcessSemaphoreV2 on path with
// a plain go-zookeeper session: under a mutex at path/locks (zk.Lock, the
// same recipe as Curator's InterProcessMutex, "_c_<uuid>-lock-" nodes) it
// creates a protected EPHEMERAL_SEQUENTIAL lease node
// path/leases/_c_<random UUID>-lease-<seq> (its parents as containers, as
// creatingParentContainersIfNeeded does), lists path/leases and waits with
// a children watch until it has at most max children, then releases the
// mutex.
type curatorSemaphore struct {
	conn *zk.Conn
	path string
	max  int
}

// acquire takes a lease and returns its node's path.
func (c curatorSemaphore) acquire(ctx context.Context) (string, error) {
	lock := zk.NewLock(c.conn, c.path+"/locks", zk.WorldACL(zk.PermAll))
	if err := lock.Lock(); err != nil {
		return "", fmt.Errorf("locking %s/locks: %w", c.path, err)
	}
	defer func() { _ = lock.Unlock() }()
	leases := c.path + "/leases"
	prefix := leases + "/_c_" + uuid.NewString() + "-lease-"
	created, err := c.conn.Create(prefix, []byte("127.0.0.1"), zk.FlagEphemeralSequential, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		for _, p := range []string{c.path, leases} {
			if _, err := c.conn.CreateContainer(p, nil, zk.FlagContainer, zk.WorldACL(zk.PermAll)); err != nil &&
				!errors.Is(err, zk.ErrNodeExists) {
				return "", fmt.Errorf("creating %s: %w", p, err)
			}
		}
		created, err = c.conn.Create(prefix, []byte("127.0.0.1"), zk.FlagEphemeralSequential, zk.WorldACL(zk.PermAll))
	}
	if err != nil {
		return "", fmt.Errorf("creating a lease node: %w", err)
	}
	for {
		children, _, changed, err := c.conn.ChildrenW(leases)
		switch {
		case err != nil:
			return "", fmt.Errorf("listing %s: %w", leases, err)
		case !slices.Contains(children, path.Base(created)):
			return "", fmt.Errorf("lease node %s vanished", created)
		case len(children) <= c.max:
			return created, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			_ = c.conn.Delete(created, -1)
			return "", ctx.Err()
		}
	}
}

// critical counts the holders inside their critical section.
type critical struct {
	live, most atomic.Int32
}

func (c *critical) enter() {
	n := c.live.Add(1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *critical) leave() { c.live.Add(-1) }

// work is how long a holder keeps its permit: long enough for holds to
// overlap.
const work = 25 * time.Millisecond

// acquireWaiting takes a permit for holder with Acquire (WithQueue), waiting
// with Watch between attempts.
func acquireWaiting(ctx context.Context, l backend.Locker, key, holder string, limit int) (backend.Lease, error) {
	for {
		lease, err := l.Acquire(ctx, key, holder, testTTL, backend.WithLimit(limit), backend.WithQueue())
		if !errors.Is(err, backend.ErrNotAcquired) {
			return lease, err
		}
		changed, err := l.(backend.Watcher).Watch(ctx, key, holder)
		if err != nil {
			return backend.Lease{}, fmt.Errorf("Watch: %w", err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return backend.Lease{}, fmt.Errorf("waiting for a permit: %w", ctx.Err())
		}
	}
}

func TestSemaphoreSharedWithCuratorRecipe(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 2*time.Minute)
	key := newKey(t)
	const limit, workers, rounds = 3, 3, 8
	var cs critical
	var curatorPermits, distlockPermits atomic.Int32
	errs := make(chan error, 2*workers)
	var wg sync.WaitGroup
	for i := range workers {
		c := curatorSemaphore{conn: rawConn(t, srv, ""), path: key, max: limit}
		wg.Go(func() {
			for range rounds {
				lease, err := c.acquire(ctx)
				if err != nil {
					errs <- fmt.Errorf("Curator client %d: %w", i, err)
					return
				}
				cs.enter()
				curatorPermits.Add(1)
				time.Sleep(work) // the work done with the permit
				cs.leave()
				if err := c.conn.Delete(lease, -1); err != nil {
					errs <- fmt.Errorf("Curator client %d: returning lease %s: %w", i, lease, err)
					return
				}
			}
		})
		l, holder := connect(t, srv, backend.Config{}), fmt.Sprintf("ns/pod-%d", i)
		wg.Go(func() {
			for range rounds {
				lease, err := acquireWaiting(ctx, l, key, holder, limit)
				if err != nil {
					errs <- fmt.Errorf("distlock holder %s: %w", holder, err)
					return
				}
				cs.enter()
				distlockPermits.Add(1)
				time.Sleep(work) // the work done with the permit
				cs.leave()
				if err := l.Release(ctx, lease); err != nil {
					errs <- fmt.Errorf("distlock holder %s: Release: %w", holder, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most := cs.most.Load(); most > limit {
		t.Errorf("up to %d holders were inside their critical sections at once; want at most %d", most, limit)
	}
	if c, d := curatorPermits.Load(), distlockPermits.Load(); c != workers*rounds || d != workers*rounds {
		t.Errorf("permits: Curator clients %d, distlock holders %d; want %d each", c, d, workers*rounds)
	}
	t.Logf("at most %d holders at once; %d permits each side", cs.most.Load(), workers*rounds)
}

func TestSemaphoreNodesAreInCuratorsLayout(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, observer := connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)

	a, err := l.Acquire(ctx, key, "ns/pod-a", testTTL, backend.WithLimit(2))
	if err != nil {
		t.Fatalf("Acquire with limit 2: %v", err)
	}
	b, err := l.Acquire(ctx, key, "ns/pod-b", testTTL, backend.WithLimit(2))
	if err != nil {
		t.Fatalf("second Acquire with limit 2: %v", err)
	}
	leases := lockChildren(t, observer, key+"/leases")
	if len(leases) != 2 {
		t.Fatalf("children of %s/leases = %q; want the two holds' lease nodes", key, leases)
	}
	for i, lease := range []backend.Lease{a, b} {
		node := key + "/leases/" + leases[i]
		if !leaseName.MatchString(leases[i]) {
			t.Errorf("lease node %s is not named like Curator's, _c_<uuid>-lease-<10 digits>", node)
		}
		data, stat, err := observer.Get(node)
		switch {
		case err != nil:
			t.Fatalf("Get(%s): %v", node, err)
		case string(data) != lease.Holder:
			t.Errorf("data of %s = %q; want the holder %q", node, data, lease.Holder)
		case stat.Czxid != lease.Token:
			t.Errorf("Czxid of %s = %d; want the token %d", node, stat.Czxid, lease.Token)
		case stat.EphemeralOwner != 0:
			t.Errorf("EphemeralOwner of %s = %#x; want 0 (a TTL node, not tied to a session)", node, stat.EphemeralOwner)
		}
	}
	// The guard mutex is released once the hold is taken.
	if ok, _, err := observer.Exists(key + "/locks"); err != nil {
		t.Fatalf("Exists: %v", err)
	} else if ok {
		if children := lockChildren(t, observer, key+"/locks"); len(children) != 0 {
			t.Errorf("children of %s/locks after the holds were taken = %q; want none", key, children)
		}
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	want := []backend.Hold{{Holder: a.Holder, Token: a.Token}, {Holder: b.Holder, Token: b.Token}}
	if !st.Held || st.Holder != a.Holder || st.Token != a.Token || !slices.Equal(st.Holds, want) {
		t.Errorf("Inspect = %+v; want held by %+v, the first of them", st, want)
	}
	if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Errorf("Purge of a held semaphore: err = %v; want ErrNotAcquired", err)
	}
	for _, lease := range []backend.Lease{a, b} {
		if err := l.Release(ctx, lease); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if children := lockChildren(t, observer, key+"/leases"); len(children) != 0 {
		t.Errorf("children of %s/leases after the releases = %q; want none", key, children)
	}
	if err := l.Purge(ctx, key); err != nil {
		t.Fatalf("Purge of a free semaphore: %v", err)
	}
	if ok, _, err := observer.Exists(key + "/leases"); err != nil || ok {
		t.Errorf("%s/leases exists after Purge (%v); want it deleted", key, err)
	}
}

func TestMutexAndSemaphoreExcludeEachOther(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, other := connect(t, srv, backend.Config{}), connect(t, srv, backend.Config{})
	key := newKey(t)

	sem, err := l.Acquire(ctx, key, "sem-a", testTTL, backend.WithLimit(2))
	if err != nil {
		t.Fatalf("semaphore Acquire: %v", err)
	}
	if _, err := other.Acquire(ctx, key, "mutex-m", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("mutex Acquire while a semaphore hold exists: err = %v; want ErrNotAcquired", err)
	}
	queued, err := other.Acquire(ctx, key, "mutex-m", testTTL, backend.WithQueue())
	if !errors.Is(err, backend.ErrNotAcquired) || !queued.Queued {
		t.Fatalf("mutex Acquire with Queue while a semaphore hold exists = %+v, %v; want a queued Lease and ErrNotAcquired", queued, err)
	}
	// The waiting mutex holds new semaphore holds off; the one taken before
	// stays.
	if _, err := l.Acquire(ctx, key, "sem-b", testTTL, backend.WithLimit(2)); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("semaphore Acquire while a mutex waits: err = %v; want ErrNotAcquired", err)
	}
	again, err := l.Acquire(ctx, key, "sem-a", testTTL, backend.WithLimit(2))
	if err != nil || again.Token != sem.Token {
		t.Fatalf("semaphore Acquire again by its holder while a mutex waits = %+v, %v; want its hold, token %d", again, err, sem.Token)
	}
	changed, err := other.(backend.Watcher).Watch(ctx, key, "mutex-m")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	select {
	case <-changed:
		t.Fatalf("Watch of the mutex waiter closed while the semaphore hold exists")
	default:
	}
	if err := l.Release(ctx, again); err != nil {
		t.Fatalf("semaphore Release: %v", err)
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatalf("Watch of the mutex waiter not closed after the semaphore hold's release")
	}
	mutex, err := other.Acquire(ctx, key, "mutex-m", testTTL, backend.WithQueue())
	if err != nil {
		t.Fatalf("mutex Acquire after the semaphore hold's release: %v", err)
	}
	if mutex.Token <= sem.Token {
		t.Errorf("mutex token %d; want > the semaphore hold's %d", mutex.Token, sem.Token)
	}
	for _, holder := range []string{"sem-a", "sem-b"} {
		if _, err := l.Acquire(ctx, key, holder, testTTL, backend.WithLimit(2), backend.WithQueue()); !errors.Is(err, backend.ErrNotAcquired) {
			t.Fatalf("semaphore Acquire by %s while the mutex holds: err = %v; want ErrNotAcquired", holder, err)
		}
	}
	if err := other.Release(ctx, mutex); err != nil {
		t.Fatalf("mutex Release: %v", err)
	}
	after, err := l.Acquire(ctx, key, "sem-b", testTTL, backend.WithLimit(2))
	if err != nil {
		t.Fatalf("semaphore Acquire after the mutex's release: %v", err)
	}
	if after.Token <= mutex.Token {
		t.Errorf("semaphore token %d; want > the mutex's %d", after.Token, mutex.Token)
	}
	if err := l.Release(ctx, after); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func TestSemaphoreHoldFoundAfterRestart(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	key := newKey(t)
	before := connect(t, srv, backend.Config{})
	lease, err := before.Acquire(ctx, key, "ns/pod-a", testTTL, backend.WithLimit(3))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if err := before.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A new controller, a new session: the Lease rebuilt from a record has
	// no Handle.
	after := connect(t, srv, backend.Config{})
	rebuilt := backend.Lease{Key: lease.Key, Holder: lease.Holder, Token: lease.Token, TTL: lease.TTL}
	renewed, err := after.Renew(ctx, rebuilt, testTTL)
	if err != nil {
		t.Fatalf("Renew without Handle after a restart: %v", err)
	}
	if renewed.Token != lease.Token || renewed.Handle == "" {
		t.Errorf("Renew without Handle = %+v; want token %d and a Handle", renewed, lease.Token)
	}
	if _, err := after.Renew(ctx, renewed, testTTL); err != nil {
		t.Errorf("Renew with the returned Handle: %v", err)
	}
	stale := rebuilt
	stale.Token++
	if _, err := after.Renew(ctx, stale, testTTL); !errors.Is(err, backend.ErrNotHeld) {
		t.Errorf("Renew of another token: err = %v; want ErrNotHeld", err)
	}
	adopted, err := after.Acquire(ctx, key, "ns/pod-a", testTTL, backend.WithLimit(3))
	if err != nil || adopted.Token != lease.Token {
		t.Fatalf("Acquire by the holder after a restart = %+v, %v; want its hold, token %d", adopted, err, lease.Token)
	}
	if err := after.Release(ctx, rebuilt); err != nil {
		t.Fatalf("Release without Handle: %v", err)
	}
	if st, err := after.Inspect(ctx, key); err != nil || st.Held {
		t.Fatalf("Inspect after Release = %+v, %v; want free", st, err)
	}
	if _, err := after.Renew(ctx, renewed, testTTL); !errors.Is(err, backend.ErrNotHeld) {
		t.Errorf("Renew after Release: err = %v; want ErrNotHeld", err)
	}
}

func TestSemaphoreTokensIncrease(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l := connect(t, srv, backend.Config{})
	key := newKey(t)
	var last int64
	for i, limit := range []int{2, 3, 1, 2, 0, 3} {
		holder := fmt.Sprintf("holder-%d", i)
		lease, err := l.Acquire(ctx, key, holder, testTTL, backend.WithLimit(limit))
		if err != nil {
			t.Fatalf("Acquire %d (limit %d): %v", i, limit, err)
		}
		if lease.Token <= last {
			t.Fatalf("Acquire %d (limit %d): token %d; want > the previous hold's %d", i, limit, lease.Token, last)
		}
		last = lease.Token
		if err := l.Release(ctx, lease); err != nil {
			t.Fatalf("Release %d: %v", i, err)
		}
	}
	if _, err := l.Acquire(ctx, key, "holder-floor", testTTL, backend.WithLimit(2), backend.WithMinToken(last+1_000_000)); !errors.Is(err, backend.ErrFencingRegressed) {
		t.Fatalf("Acquire with a MinToken above every zxid: err = %v; want ErrFencingRegressed", err)
	}
	if st, err := l.Inspect(ctx, key); err != nil || st.Held {
		t.Fatalf("Inspect after a refused MinToken = %+v, %v; want free (nothing left held)", st, err)
	}
}

func TestSemaphoreQueueKeepsThePlace(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, observer := connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)
	a, err := l.Acquire(ctx, key, "holder-a", testTTL, backend.WithLimit(2))
	if err != nil {
		t.Fatalf("Acquire a: %v", err)
	}
	if _, err := l.Acquire(ctx, key, "holder-b", testTTL, backend.WithLimit(2)); err != nil {
		t.Fatalf("Acquire b: %v", err)
	}
	// Full: without Queue no place is kept, with Queue the first place in
	// line for the guard mutex.
	if _, err := l.Acquire(ctx, key, "holder-c", testTTL, backend.WithLimit(2)); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire of a full semaphore: err = %v; want ErrNotAcquired", err)
	}
	if ok, _, _ := observer.Exists(key + "/locks"); ok && len(lockChildren(t, observer, key+"/locks")) != 0 {
		t.Fatalf("places in %s/locks after an Acquire without Queue = %q; want none", key, lockChildren(t, observer, key+"/locks"))
	}
	queued, err := l.Acquire(ctx, key, "holder-c", testTTL, backend.WithLimit(2), backend.WithQueue())
	if !errors.Is(err, backend.ErrNotAcquired) || !queued.Queued || queued.Key != key {
		t.Fatalf("Acquire with Queue of a full semaphore = %+v, %v; want a queued Lease of %s and ErrNotAcquired", queued, err, key)
	}
	if places := lockChildren(t, observer, key+"/locks"); len(places) != 1 {
		t.Fatalf("places in %s/locks = %q; want holder-c's", key, places)
	}
	if _, err := l.Renew(ctx, queued, testTTL); err == nil {
		t.Errorf("Renew of a queued Lease succeeded; want it refused")
	}
	changed, err := l.(backend.Watcher).Watch(ctx, key, "holder-c")
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	select {
	case <-changed:
		t.Fatalf("Watch of a waiter closed while the semaphore is full")
	default:
	}
	if err := l.Release(ctx, a); err != nil {
		t.Fatalf("Release a: %v", err)
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatalf("Watch of the waiter not closed after a release made room")
	}
	c, err := l.Acquire(ctx, key, "holder-c", testTTL, backend.WithLimit(2), backend.WithQueue())
	if err != nil {
		t.Fatalf("Acquire of the waiter once there is room: %v", err)
	}
	if c.Queued || c.Token <= a.Token {
		t.Errorf("the waiter's hold = %+v; want a hold with a token above %d", c, a.Token)
	}

	// A queued Lease released gives its place up.
	d, err := l.Acquire(ctx, key, "holder-d", testTTL, backend.WithLimit(2), backend.WithQueue())
	if !errors.Is(err, backend.ErrNotAcquired) || !d.Queued {
		t.Fatalf("Acquire with Queue of a full semaphore = %+v, %v; want queued", d, err)
	}
	noPlaces := func(how string) {
		t.Helper()
		if ok, _, _ := observer.Exists(key + "/locks"); ok && len(lockChildren(t, observer, key+"/locks")) != 0 {
			t.Fatalf("places in %s/locks after the Release of the queued Lease %s = %q; want none",
				key, how, lockChildren(t, observer, key+"/locks"))
		}
	}
	if err := l.Release(ctx, d); err != nil {
		t.Fatalf("Release of the queued Lease: %v", err)
	}
	noPlaces("with its Handle")
	if d, err = l.Acquire(ctx, key, "holder-d", testTTL, backend.WithLimit(2), backend.WithQueue()); !d.Queued {
		t.Fatalf("Acquire with Queue again = %+v, %v; want queued", d, err)
	}
	if err := l.Release(ctx, backend.Lease{Key: d.Key, Holder: d.Holder, Token: d.Token, Queued: true}); err != nil {
		t.Fatalf("Release of the queued Lease without Handle: %v", err)
	}
	noPlaces("without Handle")
}
