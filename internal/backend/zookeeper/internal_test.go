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
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/testservers"
)

func TestSortContenders(t *testing.T) {
	t.Parallel()
	children := []string{
		"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-lock-0000000012", // ours or Curator's
		"readme",
		"_c_00112233445566778899aabbccddeeff-lock-0000000003", // zk.Lock
		"lock-0000000007", // ZooKeeper's own recipe
		"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-lock-", // no sequence number
		"_c_x-lock-12ab",
		"_c_x-lock-000000001", // 9 digits: not a sequence number
		"00112233445566778899aabbccddeeff__lock__0000000001",  // kazoo Lock
		"00112233445566778899aabbccddeeff__rlock__0000000010", // kazoo ReadLock
		"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-__READ__0000000005",
		"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-__WRIT__0000000002",
		"0011__lock__0000000004x",                                  // something after the sequence number
		"leases",                                                   // Curator semaphore
		"9f1e2d3c4b5a59688776a5b4c3d2e1f0",                         // kazoo semaphore lease
		"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-lease-0000000000", // Curator semaphore lease
		"lock--000000001",                                          // a sequence counter that wrapped past 2^31
	}
	type node struct {
		name   string
		marker string
	}
	var got []node
	for _, n := range sortContenders(children) {
		got = append(got, node{n.name, n.marker})
	}
	want := []node{
		{"lock--000000001", curatorLock},
		{"00112233445566778899aabbccddeeff__lock__0000000001", kazooLock},
		{"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-__WRIT__0000000002", curatorWrite},
		{"_c_00112233445566778899aabbccddeeff-lock-0000000003", curatorLock},
		{"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-__READ__0000000005", curatorRead},
		{"lock-0000000007", curatorLock},
		{"00112233445566778899aabbccddeeff__rlock__0000000010", kazooRead},
		{"_c_0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0-lock-0000000012", curatorLock},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sortContenders =\n%q\nwant\n%q", got, want)
	}
}

// nodeOf names a node of holder o in naming n with sequence number seq and
// a fixed random part.
func nodeOf(o owner, n naming, seq string) string {
	return o.nodeName(n, [6]byte{0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5}) + seq
}

func TestNodeNamesOfAHolder(t *testing.T) {
	t.Parallel()
	a, again, b := newOwner("ns/pod-a"), newOwner("ns/pod-a"), newOwner("ns/pod-b")
	if a != again {
		t.Errorf("newOwner is not deterministic: %+v, %+v", a, again)
	}
	if a.curator == b.curator || a.kazoo == b.kazoo {
		t.Errorf("two holders share a prefix: %+v, %+v", a, b)
	}
	// Fixed values: a change would orphan the holds that exist when a new
	// controller version starts. The holder's part is the start of the
	// UUID of the names before the random part came in,
	// a1338cc3-6d55-5e42-9576-3de5b1a6026a.
	tests := map[string]struct {
		got, want string
	}{
		"Curator naming is _c_<UUID>-lock-, the UUID's last group random": {
			nodeOf(a, curatorNaming, ""), "_c_a1338cc3-6d55-5e42-9576-f0e1d2c3b4a5-lock-"},
		"Kazoo naming is the same UUID as 32 hex digits, then __lock__": {
			nodeOf(a, kazooNaming, ""), "a1338cc36d555e429576f0e1d2c3b4a5__lock__"},
	}
	for name, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %q; want %q", name, tc.got, tc.want)
		}
	}
	for _, n := range []naming{curatorNaming, kazooNaming} {
		if x, y := a.newNodeName(n), a.newNodeName(n); x == y {
			t.Errorf("two new node names of one holder are the same, %q: the random part is missing", x)
		}
	}
	owns := map[string]bool{
		"_c_a1338cc3-6d55-5e42-9576-f0e1d2c3b4a5-lock-0000000001": true,
		"a1338cc36d555e429576f0e1d2c3b4a5__lock__0000000001":      true,
		// Nodes made before the random part came in.
		"_c_a1338cc3-6d55-5e42-9576-3de5b1a6026a-lock-0000000001": true,
		"a1338cc36d555e4295763de5b1a6026a__lock__0000000001":      true,
		nodeOf(b, curatorNaming, "0000000001"):                    false,
		nodeOf(b, kazooNaming, "0000000001"):                      false,
		"_c_a1338cc36d555e4295763de5b1a6026a-lock-0000000001":     false, // zk.Lock-style prefix
	}
	for name, want := range owns {
		if got := a.owns(name); got != want {
			t.Errorf("owns(%q) = %v; want %v", name, got, want)
		}
		if _, ok := parseContender(name); !ok {
			t.Errorf("parseContender(%q) does not recognise the node", name)
		}
	}
}

func TestParseNaming(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		want    naming
		wantErr bool
	}{
		"":        {want: curatorNaming},
		"Curator": {want: curatorNaming},
		"Kazoo":   {want: kazooNaming},
		"kazoo":   {wantErr: true},
		"Python":  {wantErr: true},
	}
	for in, tc := range tests {
		got, err := parseNaming(in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("parseNaming(%q) = %v, %v; want %v, error %v", in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestWatchTarget(t *testing.T) {
	t.Parallel()
	own := newOwner("holder-a")
	other := newOwner("holder-b")
	nodes := func(names ...string) []contender { return sortContenders(names) }
	tests := map[string]struct {
		nodes  []contender
		want   string
		wantOK bool
	}{
		"nothing to wait for when nobody holds": {nodes: nil},
		"nothing to wait for when the holder's node is first": {
			nodes: nodes(nodeOf(own, curatorNaming, "0000000001"), nodeOf(other, curatorNaming, "0000000002"))},
		"the predecessor of the holder's node": {
			nodes: nodes(nodeOf(other, curatorNaming, "0000000001"), "x__lock__0000000002", nodeOf(own, kazooNaming, "0000000003"),
				"y__lock__0000000004"),
			want:   "x__lock__0000000002",
			wantOK: true},
		"the first contender when the holder has no node": {
			nodes:  nodes("y__lock__0000000004", nodeOf(other, curatorNaming, "0000000001")),
			want:   nodeOf(other, curatorNaming, "0000000001"),
			wantOK: true},
	}
	for name, tc := range tests {
		got, ok := watchTarget(tc.nodes, own)
		if ok != tc.wantOK || got.name != tc.want {
			t.Errorf("%s: watchTarget = %q, %v; want %q, %v", name, got.name, ok, tc.want, tc.wantOK)
		}
	}
}

func TestCallIsBoundedByTheContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	undone := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := call(ctx, func() (string, error) {
		<-release
		return "/lock/_c_x-lock-0000000001", nil
	}, func(path string) { undone <- path })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call with a blocked request: err = %v; want context.DeadlineExceeded", err)
	}
	if !errors.Is(wrap("acquire", "/lock", err), backend.ErrUnreachable) {
		t.Errorf("a call that ran out of time is not classified as ErrUnreachable")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("call took %v; want it to return when its 50ms context ends", took)
	}
	select {
	case path := <-undone:
		t.Fatalf("abandoned(%q) called before the request finished", path)
	default:
	}
	// The request succeeds after the caller gave up: it is undone.
	close(release)
	select {
	case path := <-undone:
		if path != "/lock/_c_x-lock-0000000001" {
			t.Errorf("abandoned(%q); want the request's result", path)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("abandoned was not called for a request that succeeded after the caller gave up")
	}

	// A request that the caller waits for is not undone.
	v, err := call(context.Background(), func() (int, error) { return 7, nil }, func(int) { t.Error("abandoned called for a delivered result") })
	if v != 7 || err != nil {
		t.Fatalf("call = %v, %v; want 7, nil", v, err)
	}
}

// proxy forwards TCP connections to a server until it is cut, which
// simulates a network partition between the controller and ZooKeeper.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); s.Close() }()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
	}
}

// cut closes every forwarded connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func TestHoldSurvivesSessionExpiry(t *testing.T) {
	t.Parallel()
	// Session timeouts may be as short as two ticks.
	srv := testservers.NewZooKeeper(t, testservers.WithZooKeeperTickTime(500*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := newProxy(t, srv.Addr)
	bl, err := New(ctx, backend.Config{Servers: []string{p.addr()}, SessionTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer bl.Close()
	l := bl.(*locker)
	observer, err := New(ctx, backend.Config{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer observer.Close()
	watch := observer.(*locker).conn

	const key = "/session-expiry/lock"
	lease, err := l.Acquire(ctx, key, "holder-a", 30*time.Second)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	// An ephemeral node shows when the server has expired the session.
	const probe = "/session-expiry-probe"
	if _, err := l.conn.Create(probe, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("Create ephemeral %s: %v", probe, err)
	}
	session := l.conn.SessionID()

	p.cut()
	callCtx, callCancel := context.WithTimeout(ctx, time.Second)
	_, err = l.Renew(callCtx, lease, 30*time.Second)
	callCancel()
	if !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("Renew while cut off: err = %v; want ErrUnreachable", err)
	}
	for {
		ok, _, err := watch.Exists(probe)
		if err != nil {
			t.Fatalf("Exists(%s): %v", probe, err)
		}
		if !ok {
			break // the session expired
		}
		if ctx.Err() != nil {
			t.Fatal("the session did not expire while the locker was cut off")
		}
		time.Sleep(100 * time.Millisecond) // waiting for the session to time out
	}
	if _, err := observer.Acquire(ctx, key, "holder-b", testTTLInternal); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire by another holder after the session expired: err = %v; want ErrNotAcquired", err)
	}

	p.heal()
	for {
		renewed, err := l.Renew(ctx, lease, 30*time.Second)
		if err == nil {
			if renewed.Token != lease.Token {
				t.Fatalf("token after the new session = %d; want %d", renewed.Token, lease.Token)
			}
			break
		}
		if !errors.Is(err, backend.ErrUnreachable) || ctx.Err() != nil {
			t.Fatalf("Renew after the partition healed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if now := l.conn.SessionID(); now == session || now == 0 {
		t.Errorf("session id after the expiry = %#x; want a new session (was %#x)", now, session)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

const testTTLInternal = 3 * time.Second
