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
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/go-cmp/cmp"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/conformance"
	"github.com/distlock/distlock/internal/backend/zookeeper"
	"github.com/distlock/distlock/internal/testservers"
)

const testTTL = 3 * time.Second

// ctxFor returns a context that ends after d or with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect connects a Locker to srv and closes it when the test ends.
func connect(t *testing.T, srv *testservers.ZooKeeper, cfg backend.Config) backend.Locker {
	t.Helper()
	cfg.Servers = []string{srv.Addr}
	l, err := zookeeper.New(ctxFor(t, 15*time.Second), cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", srv.Addr, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// zkLogger routes go-zookeeper's logging to the test log.
type zkLogger struct{ t testing.TB }

func (l zkLogger) Printf(format string, args ...any) { l.t.Logf("zk: "+format, args...) }

// rawConn opens a plain go-zookeeper session to srv, authenticated with
// auth ("user:password") unless it is empty, as an outside program would.
func rawConn(t *testing.T, srv *testservers.ZooKeeper, auth string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect([]string{srv.Addr}, 10*time.Second, zk.WithLogger(zkLogger{t}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zk.Connect(%s): %v", srv.Addr, err)
	}
	t.Cleanup(conn.Close)
	timeout := time.After(15 * time.Second)
	for ready := false; !ready; {
		select {
		case ev := <-events:
			ready = ev.State == zk.StateHasSession
		case <-timeout:
			t.Fatalf("no ZooKeeper session with %s within 15s (state %v)", srv.Addr, conn.State())
		}
	}
	if auth != "" {
		if err := conn.AddAuth("digest", []byte(auth)); err != nil {
			t.Fatalf("AddAuth: %v", err)
		}
	}
	return conn
}

var keySeq atomic.Int64

// newKey returns a lock path no other test uses.
func newKey(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("/distlock-test/%s/key-%d", name, keySeq.Add(1))
}

// lockChildren lists the children of key, lowest sequence number (the
// last 10 characters of a sequential node's name) first.
func lockChildren(t *testing.T, conn *zk.Conn, key string) []string {
	t.Helper()
	children, _, err := conn.Children(key)
	if err != nil {
		t.Fatalf("Children(%s): %v", key, err)
	}
	seq := func(name string) string { return name[max(len(name)-10, 0):] }
	slices.SortFunc(children, func(a, b string) int { return strings.Compare(seq(a), seq(b)) })
	return children
}

// withoutHandle returns lease with its Handle cleared, to compare the
// rest.
func withoutHandle(lease backend.Lease) backend.Lease {
	lease.Handle = ""
	return lease
}

// exists reports whether the node at path exists.
func exists(t *testing.T, conn *zk.Conn, path string) bool {
	t.Helper()
	ok, _, err := conn.Exists(path)
	if err != nil {
		t.Fatalf("Exists(%s): %v", path, err)
	}
	return ok
}

// shared is the server of the tests that neither stop nor pause it.
var shared struct {
	srv *testservers.ZooKeeper
}

func sharedServer(t *testing.T) *testservers.ZooKeeper {
	t.Helper()
	if shared.srv == nil {
		t.Fatal("the shared ZooKeeper server was not started")
	}
	return shared.srv
}

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	srv, err := testservers.StartZooKeeper(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.srv = srv
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func TestRegistered(t *testing.T) {
	factory, ok := backend.Lookup("zookeeper")
	if !ok || factory == nil {
		t.Fatalf("backend.Lookup(%q) = %v, %v; want the zookeeper factory", "zookeeper", factory, ok)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := testservers.NewZooKeeper(t)
	conformance.Run(t, conformance.Harness{
		NewLocker: func(t *testing.T) backend.Locker {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			l, err := zookeeper.New(ctx, backend.Config{Servers: []string{srv.Addr}})
			if err != nil {
				t.Fatalf("New(%s): %v", srv.Addr, err)
			}
			return l
		},
		KeyPrefix: "/conformance/",
		Server:    srv,
		TTL:       testTTL,
		// TTL nodes are deleted lazily, by the container manager, which the
		// test server runs every second.
		ExpiryGrace: 3 * time.Second,
	})
}

var (
	protectedName = regexp.MustCompile(`^_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-lock-\d{10}$`)
	zkLockName    = regexp.MustCompile(`^_c_[0-9a-f]{32}-lock-\d{10}$`)
)

func TestNodesAreCuratorProtectedTTLNodesUnderContainers(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, other, observer := connect(t, srv, backend.Config{}), connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)

	lease, err := l.Acquire(ctx, key, "ns/pod-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	children := lockChildren(t, observer, key)
	if len(children) != 1 || !protectedName.MatchString(children[0]) {
		t.Fatalf("children of %s = %q; want one node named like Curator's protected nodes, _c_<uuid>-lock-<10 digits>", key, children)
	}
	node := key + "/" + children[0]
	data, stat, err := observer.Get(node)
	if err != nil {
		t.Fatalf("Get(%s): %v", node, err)
	}
	if string(data) != "ns/pod-a" {
		t.Errorf("data of %s = %q; want the holder %q", node, data, "ns/pod-a")
	}
	if stat.Czxid != lease.Token {
		t.Errorf("Czxid of %s = %d; want the fencing token %d", node, stat.Czxid, lease.Token)
	}
	if stat.EphemeralOwner != 0 {
		t.Errorf("EphemeralOwner of %s = %#x; want 0 (not tied to a session)", node, stat.EphemeralOwner)
	}

	// The UUID is derived from the holder: the same holder gets the same
	// prefix from another connection, a different holder another one.
	if _, err := other.Acquire(ctx, key, "ns/pod-b", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire by another holder: err = %v; want ErrNotAcquired", err)
	} else if !strings.Contains(err.Error(), children[0]) || !strings.Contains(err.Error(), `"ns/pod-a"`) {
		t.Errorf("Acquire error %q does not name the holding node %s and its holder", err, children[0])
	}
	if after := lockChildren(t, observer, key); !slices.Equal(after, children) {
		t.Errorf("children after a refused Acquire = %q; want only the holder's node %q (no node left behind)", after, children)
	}
	adopted, err := other.Acquire(ctx, key, "ns/pod-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire for the same holder from another connection: %v", err)
	}
	if adopted.Token != lease.Token {
		t.Errorf("adopted token = %d; want %d", adopted.Token, lease.Token)
	}
	if after := lockChildren(t, observer, key); !slices.Equal(after, children) {
		t.Errorf("children after adopting = %q; want the same node %q", after, children)
	}

	// The lock node is a container marked as distlock's; the release of
	// its last hold deletes it at once, without waiting for the server's
	// container manager.
	if data, _, err := observer.Get(key); err != nil || string(data) != "distlock container" {
		t.Errorf("data of the lock node %s = %q, %v; want the mark %q", key, data, err, "distlock container")
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if exists(t, observer, key) {
		t.Fatalf("the lock node %s still exists right after the release of its last hold; want it deleted with the hold", key)
	}
	// Its ancestors are containers too, which the server deletes by itself
	// once they are empty (the test server checks every second).
	parent := key[:strings.LastIndex(key, "/")]
	deadline := time.Now().Add(10 * time.Second)
	for exists(t, observer, parent) {
		if time.Now().After(deadline) {
			t.Fatalf("the empty ancestor %s still exists 10s after the release; want it deleted as a container", parent)
		}
		time.Sleep(100 * time.Millisecond) // waiting for the container manager
	}
}

func TestGoZookeeperLockHoldsOffAcquire(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, outside := connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)

	// zk.Lock creates the parent itself, as a persistent node.
	lock := zk.NewLock(outside, key, zk.WorldACL(zk.PermAll))
	if err := lock.Lock(); err != nil {
		t.Fatalf("zk.Lock.Lock on a free lock: %v", err)
	}
	children := lockChildren(t, outside, key)
	if len(children) != 1 || !zkLockName.MatchString(children[0]) {
		t.Fatalf("children after zk.Lock.Lock = %q; want one node _c_<32 hex>-lock-<seq>", children)
	}
	_, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire while zk.Lock holds the lock: err = %v; want ErrNotAcquired", err)
	}
	if !strings.Contains(err.Error(), children[0]) {
		t.Errorf("Acquire error %q does not name zk.Lock's node %s", err, children[0])
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	_, stat, err := outside.Get(key + "/" + children[0])
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want := (backend.State{Held: true, Holder: children[0], Token: stat.Czxid}); !cmp.Equal(st, want) {
		t.Fatalf("Inspect while zk.Lock holds = %+v; want %+v", st, want)
	}
	if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Purge while zk.Lock holds: err = %v; want ErrNotAcquired", err)
	}

	if err := lock.Unlock(); err != nil {
		t.Fatalf("zk.Lock.Unlock: %v", err)
	}
	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire after zk.Lock released: %v", err)
	}
	if lease.Token <= stat.Czxid {
		t.Errorf("token after zk.Lock's hold = %d; want > its Czxid %d", lease.Token, stat.Czxid)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func TestHoldMakesGoZookeeperLockWait(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, outside := connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)

	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	ours := lockChildren(t, outside, key)
	if len(ours) != 1 {
		t.Fatalf("children after Acquire = %q; want one", ours)
	}
	_, _, watch, err := outside.ChildrenW(key)
	if err != nil {
		t.Fatalf("ChildrenW: %v", err)
	}

	lock := zk.NewLock(outside, key, zk.WorldACL(zk.PermAll))
	locked := make(chan error, 1)
	go func() { locked <- lock.Lock() }()
	t.Cleanup(func() { _ = lock.Unlock() })

	// Wait until zk.Lock has queued its node behind ours.
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeChildrenChanged {
			t.Fatalf("children watch fired with %+v; want EventNodeChildrenChanged", ev)
		}
	case err := <-locked:
		t.Fatalf("zk.Lock.Lock returned (%v) while we hold the lock", err)
	case <-ctx.Done():
		t.Fatal("zk.Lock did not create its node")
	}
	children := lockChildren(t, outside, key)
	if len(children) != 2 || children[0] != ours[0] || !zkLockName.MatchString(children[1]) {
		t.Fatalf("children while zk.Lock waits = %q; want our node %s first, then zk.Lock's", children, ours[0])
	}
	if _, err := l.Renew(ctx, lease, testTTL); err != nil {
		t.Fatalf("Renew while zk.Lock waits: %v", err)
	}
	select {
	case err := <-locked:
		t.Fatalf("zk.Lock.Lock returned (%v) while we hold the lock", err)
	default:
	}

	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	select {
	case err := <-locked:
		if err != nil {
			t.Fatalf("zk.Lock.Lock after our release: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("zk.Lock.Lock did not return within 5s of our release")
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if !st.Held || st.Holder != children[1] {
		t.Fatalf("Inspect after zk.Lock took over = %+v; want held through %s", st, children[1])
	}
	if _, err := l.Acquire(ctx, key, "holder-a", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire while zk.Lock holds: err = %v; want ErrNotAcquired", err)
	}
}

func TestForeignChildrenAreIgnored(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, outside := connect(t, srv, backend.Config{}), rawConn(t, srv, "")
	key := newKey(t)

	// Persistent nodes all the way down, as an outside program might make.
	for i := 1; i <= len(key); i++ {
		if i == len(key) || key[i] == '/' {
			if _, err := outside.Create(key[:i], nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatalf("Create(%s): %v", key[:i], err)
			}
		}
	}
	for _, name := range []string{"readme", "_c_0123-lock-notanumber"} {
		if _, err := outside.Create(key+"/"+name, nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire beside children that are not lock nodes: %v", err)
	}
	if st, err := l.Inspect(ctx, key); err != nil || !st.Held || st.Holder != "holder-a" {
		t.Fatalf("Inspect = %+v, %v; want held by holder-a", st, err)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if st, err := l.Inspect(ctx, key); err != nil || st.Held {
		t.Fatalf("Inspect after Release = %+v, %v; want free", st, err)
	}
	// The lock is free, but Purge must not delete other programs' nodes.
	if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Purge of a lock node with other children: err = %v; want ErrNotAcquired", err)
	}
	if ok, _, err := outside.Exists(key + "/readme"); err != nil || !ok {
		t.Fatalf("Exists(readme) after Purge = %v, %v; want it kept", ok, err)
	}
}

func TestHoldSurvivesControllerRestart(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	observer := rawConn(t, srv, "")
	key := newKey(t)

	before := connect(t, srv, backend.Config{})
	lease, err := before.Acquire(ctx, key, "ns/pod-a", 30*time.Second)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	nodes := lockChildren(t, observer, key)
	// Closing the connection ends its session: ephemeral nodes would be
	// gone now.
	if err := before.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if after := lockChildren(t, observer, key); !slices.Equal(after, nodes) {
		t.Fatalf("children after the session closed = %q; want the hold %q kept", after, nodes)
	}

	after := connect(t, srv, backend.Config{})
	if _, err := after.Acquire(ctx, key, "ns/pod-b", testTTL); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire by another holder after the restart: err = %v; want ErrNotAcquired", err)
	}
	// The old lease is still good on the new connection...
	if _, err := after.Renew(ctx, lease, 30*time.Second); err != nil {
		t.Fatalf("Renew of the old lease from the new connection: %v", err)
	}
	// ...and the holder gets its hold back.
	adopted, err := after.Acquire(ctx, key, "ns/pod-a", 30*time.Second)
	if err != nil {
		t.Fatalf("Acquire for the same holder after the restart: %v", err)
	}
	if adopted.Token != lease.Token {
		t.Fatalf("token after the restart = %d; want the old token %d", adopted.Token, lease.Token)
	}
	if err := after.Release(ctx, adopted); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if exists(t, observer, key) {
		t.Fatalf("the lock node %s exists after the release of its last hold; want it deleted", key)
	}
}

func TestInvalidArguments(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 10*time.Second)
	l := connect(t, srv, backend.Config{})
	for _, key := range []string{"", "relative/key", "/", "/trailing/", "/a//b", "/a/./b", "/a/../b", "/zookeeper/quota"} {
		if _, err := l.Acquire(ctx, key, "holder-a", testTTL); err == nil {
			t.Errorf("Acquire(%q) succeeded; want an invalid key error", key)
		}
		if _, err := l.Inspect(ctx, key); err == nil {
			t.Errorf("Inspect(%q) succeeded; want an invalid key error", key)
		}
	}
	key := newKey(t)
	if _, err := l.Acquire(ctx, key, "", testTTL); err == nil {
		t.Errorf("Acquire with an empty holder succeeded")
	}
	if _, err := l.Acquire(ctx, key, "holder-a", 0); err == nil {
		t.Errorf("Acquire with TTL 0 succeeded")
	}
	if _, err := l.Acquire(ctx, key, "holder-a", zookeeper.MaxTTL+time.Millisecond); err == nil {
		t.Errorf("Acquire with a TTL above the maximum succeeded")
	}
}

func TestStaleLeaseOfTheSameHolder(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	l, key := connect(t, srv, backend.Config{}), newKey(t)

	old, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if err := l.Release(ctx, old); err != nil {
		t.Fatalf("Release: %v", err)
	}
	current, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err != nil {
		t.Fatalf("Acquire again: %v", err)
	}
	if current.Token <= old.Token {
		t.Fatalf("token of the second hold = %d; want > %d", current.Token, old.Token)
	}
	// The first lease names the same holder, hence the same node prefix,
	// but another node: it must neither renew nor release the new hold.
	if _, err := l.Renew(ctx, old, testTTL); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("Renew of the first lease: err = %v; want ErrNotHeld", err)
	}
	if err := l.Release(ctx, old); err != nil {
		t.Fatalf("Release of the first lease: %v", err)
	}
	if st, err := l.Inspect(ctx, key); err != nil || !st.Held || st.Token != current.Token {
		t.Fatalf("Inspect after releasing the first lease = %+v, %v; want the second hold (token %d) kept", st, err, current.Token)
	}
	if _, err := l.Renew(ctx, current, testTTL); err != nil {
		t.Fatalf("Renew of the second lease: %v", err)
	}
}

func TestConcurrentAcquireHasOneWinnerAndLeavesNoNodes(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	observer := rawConn(t, srv, "")
	const contenders = 8
	lockers := make([]backend.Locker, contenders)
	for i := range lockers {
		lockers[i] = connect(t, srv, backend.Config{})
	}
	for round := range 5 {
		key := newKey(t)
		type outcome struct {
			lease backend.Lease
			err   error
		}
		outcomes := make(chan outcome, contenders)
		start := make(chan struct{})
		for i, l := range lockers {
			go func() {
				<-start
				lease, err := l.Acquire(ctx, key, fmt.Sprintf("holder-%d", i), testTTL)
				outcomes <- outcome{lease, err}
			}()
		}
		close(start)
		var winners []backend.Lease
		for range contenders {
			o := <-outcomes
			switch {
			case o.err == nil:
				winners = append(winners, o.lease)
			case !errors.Is(o.err, backend.ErrNotAcquired):
				t.Fatalf("round %d: Acquire: %v", round, o.err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d contenders acquired the lock: %+v; want exactly one", round, len(winners), winners)
		}
		children := lockChildren(t, observer, key)
		if len(children) != 1 {
			t.Fatalf("round %d: children after the race = %q; want only the winner's node", round, children)
		}
		if _, stat, err := observer.Get(key + "/" + children[0]); err != nil || stat.Czxid != winners[0].Token {
			t.Fatalf("round %d: the remaining node %s is not the winner's (token %d): %v", round, children[0], winners[0].Token, err)
		}
	}
}
