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
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/testservers"
)

// opNames name the requests the backend sends.
var opNames = map[int32]string{
	1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 8: "getChildren",
	12: "getChildren2", 14: "multi", 19: "createContainer", 21: "createTTL",
}

// countingProxy forwards one client's connections to a server and records
// the requests the client sends (pings, authentication and watch
// re-registration left out).
type countingProxy struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	sent []string
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *countingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() {
			var f frames
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					f.feed(buf[:n], p.record)
					if _, err := s.Write(buf[:n]); err != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			s.Close()
		}()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
	}
}

func (p *countingProxy) record(body []byte) {
	if len(body) < requestHeaderLen {
		return
	}
	op := int32(binary.BigEndian.Uint32(body[4:]))
	name, ok := opNames[op]
	if !ok {
		return
	}
	p.mu.Lock()
	p.sent = append(p.sent, name)
	p.mu.Unlock()
}

// take returns the requests recorded since the last take, sorted.
func (p *countingProxy) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := p.sent
	p.sent = nil
	slices.Sort(sent)
	return sent
}

// TestRequestsPerOperation pins down what each operation sends, in the
// cases that matter for speed. Requests in one round trip are sent back to
// back (see wireTap and inOrder); the comments count the round trips.
func TestRequestsPerOperation(t *testing.T) {
	t.Parallel()
	srv := testservers.NewZooKeeper(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := newCountingProxy(t, srv.Addr)
	bl, err := New(ctx, backend.Config{Servers: []string{p.ln.Addr().String()}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer bl.Close()
	l := bl.(*locker)
	outside, err := New(ctx, backend.Config{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer outside.Close()
	if _, err := l.conn.Create("/requests", nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	const key, ttl = "/requests/lock", 30 * time.Second
	first, err := l.Acquire(ctx, key, "holder-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, first); err != nil {
		t.Fatal(err)
	}
	p.take()

	var hold, outsideHold, place backend.Lease
	var watched <-chan struct{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	refused := func(_ backend.Lease, err error) {
		t.Helper()
		if !errors.Is(err, backend.ErrNotAcquired) {
			t.Fatalf("err = %v; want ErrNotAcquired", err)
		}
	}
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"Acquire of a free lock whose lock node the last Release deleted (1 round trip: " +
			"the node created right behind the lock node is its first child)",
			func() { hold, err = l.Acquire(ctx, key, "holder-a", ttl); must(err) },
			"createContainer createTTL"},
		{"Renew with the Lease's Handle (1)",
			func() { hold, err = l.Renew(ctx, hold, ttl); must(err) },
			"setData"},
		{"Acquire again by the holder (1)",
			func() { hold, err = l.Acquire(ctx, key, "holder-a", ttl); must(err) },
			"getChildren2 setData"},
		{"Release of the only hold, the lock node with it (1)",
			func() { must(l.Release(ctx, hold)) },
			"multi"},
		{"Acquire of a lock held elsewhere, trying once, the first time (3: the lock node was thought gone)",
			func() {
				outsideHold, err = outside.Acquire(ctx, key, "holder-x", ttl)
				must(err)
				p.take()
				refused(l.Acquire(ctx, key, "holder-b", ttl))
			},
			"createContainer createTTL delete getChildren2 getData"},
		{"the same once the locker knows the lock is held (1)",
			func() { refused(l.Acquire(ctx, key, "holder-b", ttl)) },
			"getChildren2"},
		{"Acquire with Queue behind the holder (1)",
			func() {
				place, err = l.Acquire(ctx, key, "holder-c", ttl, backend.WithQueue())
				if !place.Queued {
					t.Fatalf("Acquire with Queue = %+v, %v; want a place", place, err)
				}
			},
			"createTTL getChildren2"},
		{"Watch by the holder in line (1)",
			func() { watched, err = l.Watch(ctx, key, "holder-c"); must(err) },
			"getData"},
		{"its turn once the Watch saw the holder release (1: its place read)",
			func() {
				must(outside.Release(ctx, outsideHold))
				<-watched
				p.take()
				hold, err = l.Acquire(ctx, key, "holder-c", ttl, backend.WithQueue())
				must(err)
			},
			"exists"},
		{"Acquire with Queue behind it (1)",
			func() {
				place, err = l.Acquire(ctx, key, "holder-d", ttl, backend.WithQueue())
				if !place.Queued {
					t.Fatalf("Acquire with Queue = %+v, %v; want a place", place, err)
				}
			},
			"createTTL getChildren2"},
		{"Release of a hold with a place of this locker's behind it (1)",
			func() { must(l.Release(ctx, hold)) },
			"delete"},
		{"its turn, not watched (1: a listing)",
			func() { hold, err = l.Acquire(ctx, key, "holder-d", ttl, backend.WithQueue()); must(err) },
			"getChildren2"},
		{"Renew of a Lease without Handle, as after a restart (3: the lock node listed and read, the node's Stat, the write)",
			func() {
				rebuilt := backend.Lease{Key: key, Holder: "holder-d", Token: hold.Token}
				hold, err = l.Renew(ctx, rebuilt, ttl)
				must(err)
			},
			"exists getChildren2 getData setData"},
		{"Release of a Lease without Handle (3: listed and read, the node's Stat, the delete)",
			func() { must(l.Release(ctx, backend.Lease{Key: key, Holder: "holder-d", Token: hold.Token})) },
			"exists getChildren2 getData multi"},
	}
	for _, step := range steps {
		step.do()
		if got := strings.Join(p.take(), " "); got != step.want {
			t.Errorf("%s: sent %q; want %q", step.name, got, step.want)
		}
	}
}
