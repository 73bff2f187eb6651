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
	"net"
	"slices"
	"sync"
)

// wireTap watches the bytes that go-zookeeper exchanges with the server,
// through the connections its dialer (zk.WithDialer) returns, for two things
// that go-zookeeper v1.0.4's API does not show:
//
//   - When a request is on its way to the server. A session's requests are
//     executed in the order they arrive, and go-zookeeper writes them in the
//     order they were queued, one goroutine at a time: a request queued once
//     another one has been handed to the connection runs after it. So
//     dependent requests (create the lock node, create the hold in it, list
//     its children) can go out back to back, answered in one round trip.
//   - The Stat that the server returns for a created TTL node or container
//     (its Create2Response: path, then Stat). go-zookeeper decodes only the
//     path; the Stat's Czxid is the hold's fencing token, which would
//     otherwise cost an exists request, and pins a lock node this package
//     created (see classifyLockNode).
//
// Both only save time. A caller that sees nothing (a request written while
// the connection was being replaced, say) waits for the answer or asks the
// server, as it would without the tap. The tap never changes a byte.
type wireTap struct {
	mu sync.Mutex
	// sent are the callers waiting for a request to be written, by path.
	sent map[string][]sentWaiter
	// created are the creations whose Stat a caller waits for, by the path
	// in the request (for a sequential node, the created node's path
	// without its sequence number).
	created map[string]*createdStat
}

// sentWaiter is a caller waiting for a request with opcode op.
type sentWaiter struct {
	op int32
	ch chan struct{}
}

// createdStat is what the tap saw of one TTL creation's answer.
type createdStat struct {
	path  string
	czxid int64
}

func newWireTap() *wireTap {
	return &wireTap{sent: map[string][]sentWaiter{}, created: map[string]*createdStat{}}
}

// wrap returns conn with the tap on it: the dialer that New gives
// go-zookeeper calls it for every connection it opens.
func (w *wireTap) wrap(conn net.Conn) net.Conn {
	return &tappedConn{Conn: conn, tap: w, creates: map[int32]string{}}
}

// expectSent returns a channel that is closed once a request with opcode op
// and path is handed to the connection, and a function that stops waiting.
// Call it before queueing the request.
func (w *wireTap) expectSent(op int32, path string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	w.sent[path] = append(w.sent[path], sentWaiter{op, ch})
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		waiting := slices.DeleteFunc(w.sent[path], func(s sentWaiter) bool { return s.ch == ch })
		if len(waiting) == 0 {
			delete(w.sent, path)
		} else {
			w.sent[path] = waiting
		}
	}
}

// expectCreated registers interest in the Stat of the creation (a TTL node
// or a container) whose request names path. take returns the creation zxid
// of the node created at created (the path go-zookeeper returned), or false
// when the tap did not see it; done unregisters. Call it before queueing
// the request. One caller at a time may wait for a path: another one gets
// a take that always reports false (TTL node requests are unique anyway:
// the node names carry a random part).
func (w *wireTap) expectCreated(path string) (take func(created string) (int64, bool), done func()) {
	slot := &createdStat{}
	w.mu.Lock()
	_, taken := w.created[path]
	if !taken {
		w.created[path] = slot
	}
	w.mu.Unlock()
	if taken {
		return func(string) (int64, bool) { return 0, false }, func() {}
	}
	take = func(created string) (int64, bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if slot.path != created || slot.czxid <= 0 {
			return 0, false
		}
		return slot.czxid, true
	}
	done = func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.created[path] == slot {
			delete(w.created, path)
		}
	}
	return take, done
}

// onRequest is called with each request frame before it is written. It
// reports whether the request is a creation whose answer someone waits
// for.
func (w *wireTap) onRequest(op int32, path []byte) (watchAnswer bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if waiting, ok := w.sent[string(path)]; ok {
		rest := slices.DeleteFunc(waiting, func(s sentWaiter) bool {
			if s.op == op {
				close(s.ch)
				return true
			}
			return false
		})
		switch {
		case len(rest) == 0:
			delete(w.sent, string(path))
		case len(rest) < len(waiting):
			w.sent[string(path)] = rest
		}
	}
	_, watchAnswer = w.created[string(path)]
	return (op == opCreateTTL || op == opCreateContainer) && watchAnswer
}

// onCreated records the answer to a creation whose request named
// requestPath.
func (w *wireTap) onCreated(requestPath string, created []byte, czxid int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if slot, ok := w.created[requestPath]; ok {
		slot.path, slot.czxid = string(created), czxid
	}
}

// tappedConn is one connection seen by the tap.
type tappedConn struct {
	net.Conn
	tap *wireTap

	outMu sync.Mutex
	out   frames

	inMu sync.Mutex
	in   frames

	xidMu sync.Mutex
	// creates maps the xids of creations in flight whose answers are
	// watched to their request paths.
	creates map[int32]string
}

// Write parses the frames in b, then writes b. Parsing first means the tap
// knows a request before its answer can arrive; "sent" is then told before
// the bytes leave, which keeps the order: go-zookeeper writes a later
// request only after this Write returned.
func (c *tappedConn) Write(b []byte) (int, error) {
	c.outMu.Lock()
	c.out.feed(b, c.onRequest)
	c.outMu.Unlock()
	return c.Conn.Write(b) //nolint:wrapcheck // a transparent connection: go-zookeeper sees the original error
}

// Read reads from the connection and parses what it read before
// go-zookeeper sees it, so a watched answer is recorded before the request
// returns.
func (c *tappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.inMu.Lock()
		c.in.feed(p[:n], c.onResponse)
		c.inMu.Unlock()
	}
	return n, err //nolint:wrapcheck // a transparent connection: go-zookeeper sees the original error
}

func (c *tappedConn) onRequest(body []byte) {
	xid, op, path, ok := parseRequest(body)
	if !ok {
		return
	}
	if c.tap.onRequest(op, path) {
		c.xidMu.Lock()
		c.creates[xid] = string(path)
		c.xidMu.Unlock()
	}
}

func (c *tappedConn) onResponse(body []byte) {
	xid, ok := responseXid(body)
	if !ok {
		return
	}
	c.xidMu.Lock()
	path, watched := c.creates[xid]
	delete(c.creates, xid)
	c.xidMu.Unlock()
	if !watched {
		return
	}
	if created, czxid, ok := parseCreated(body); ok {
		c.tap.onCreated(path, created, czxid)
	}
}
