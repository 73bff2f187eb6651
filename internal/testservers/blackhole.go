package testservers

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// Blackhole is a TCP listener on 127.0.0.1 that accepts every connection,
// reads and discards whatever the client sends, and never answers: a server
// that is up at the TCP level but hung above it. Clients get past connect
// and then wait for a reply until their own timeouts fire. Its methods are
// safe for concurrent use.
type Blackhole struct {
	// Addr is the listener's address, "127.0.0.1:port".
	Addr string

	ln net.Listener

	mu       sync.Mutex
	conns    map[net.Conn]struct{} // open accepted connections
	accepted int                   // connections accepted so far
	changed  chan struct{}         // closed and replaced on every accept
	closed   bool
	wg       sync.WaitGroup // the accept loop and one reader per connection
}

// StartBlackhole listens on a free port of 127.0.0.1. The caller must call
// Close.
func StartBlackhole() (*Blackhole, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return nil, fmt.Errorf("blackhole: listening: %w", err)
	}
	b := &Blackhole{
		Addr:    ln.Addr().String(),
		ln:      ln,
		conns:   map[net.Conn]struct{}{},
		changed: make(chan struct{}),
	}
	b.wg.Add(1)
	go b.acceptLoop()
	return b, nil
}

// NewBlackhole starts a Blackhole for the test (see StartBlackhole) and
// closes it in t.Cleanup.
func NewBlackhole(t testing.TB) *Blackhole {
	t.Helper()
	b, err := StartBlackhole()
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func (b *Blackhole) acceptLoop() {
	defer b.wg.Done()
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return // the listener was closed
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			conn.Close()
			return
		}
		b.conns[conn] = struct{}{}
		b.accepted++
		close(b.changed)
		b.changed = make(chan struct{})
		b.wg.Add(1)
		b.mu.Unlock()
		go b.drain(conn)
	}
}

// drain reads and discards until the client or Close ends the connection,
// so that the client's writes never block on a full buffer.
func (b *Blackhole) drain(conn net.Conn) {
	defer b.wg.Done()
	_, _ = io.Copy(io.Discard, conn)
	conn.Close()
	b.mu.Lock()
	delete(b.conns, conn)
	b.mu.Unlock()
}

// Accepted returns how many connections have been accepted so far.
func (b *Blackhole) Accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

// WaitAccepted waits until at least n connections have been accepted, or
// ctx ends.
func (b *Blackhole) WaitAccepted(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		got, changed := b.accepted, b.changed
		b.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("blackhole %s: %d of %d connections accepted: %w", b.Addr, got, n, ctx.Err())
		}
	}
}

// Close stops listening, closes every accepted connection and waits for
// its goroutines to end. It is idempotent.
func (b *Blackhole) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		b.ln.Close()
		for conn := range b.conns {
			conn.Close()
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
}
