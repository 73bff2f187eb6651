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

// Package backendpool shares backend connections (backend.Locker) among
// the locks that use the same server configuration, and keeps one sick
// server from delaying the locks on healthy ones.
//
// A connection is named by a fingerprint that the caller derives from
// everything in its backend.Config (addresses, credentials, TLS material),
// so that any change names a different connection. The pool follows these
// rules:
//
//   - Dialling is per fingerprint. No pool-wide lock is held while a
//     connection is dialled: concurrent Gets for one fingerprint share one
//     dial, and Gets for other fingerprints never wait behind it. Each
//     caller waits only as long as its own context allows. The dial itself
//     is detached from its callers (it keeps the first caller's context
//     values, not its deadline; Pool.DialTimeout and Pool.Close bound it),
//     so a connection that takes longer than one caller's patience still
//     serves the next Get, and a dead address is tried once per back-off
//     period however short the callers' deadlines are.
//   - A failed dial is remembered per fingerprint. For MinBackoff after the
//     first failure, doubling with every further failure in a row up to
//     MaxBackoff (each period shortened by up to a fifth at random, so that
//     fingerprints do not retry in step), Get fails at once with the same
//     *DialError: it wraps the dial's error, so errors.Is(err,
//     backend.ErrUnreachable) and errors.Is(err, backend.ErrUnauthorized)
//     still work, and it says when the next dial will be made. A successful
//     dial resets the schedule. Forget, or a new fingerprint (new
//     credentials), dials at once.
//   - Get returns a *Ref: one counted reference to the connection. A user
//     that keeps the connection beyond the call (a renewal loop) takes its
//     own reference with Ref.Clone; every reference is closed by whoever
//     got it. A connection is closed only once no reference is left and
//     either Forget was called for its fingerprint or it has had no
//     reference for IdleTimeout. Forget makes the next Get dial anew; the
//     references to the old connection keep working until they are closed.
//   - Pool.Close is for shutdown, after the users of references have
//     stopped: it closes every connection, referenced or not, cancels the
//     dials in flight, and waits for all of that to finish.
//   - Nothing slow runs under the pool's lock: dials and backend Close calls
//     (closing a ZooKeeper session can take a second) run on goroutines of
//     their own, and the lock only guards the bookkeeping.
//
// The zero Pool is ready to use.
package backendpool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// Defaults for the Pool fields left zero.
const (
	// DefaultIdleTimeout is how long a connection without references stays
	// open.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMinBackoff is how long the first failed dial of a fingerprint
	// is remembered.
	DefaultMinBackoff = 2 * time.Second
	// DefaultMaxBackoff caps how long a failed dial is remembered.
	DefaultMaxBackoff = 30 * time.Second
	// DefaultDialTimeout bounds one dial. It is a backstop: the backends
	// bound their dials more tightly themselves (backend.Config.DialTimeout).
	DefaultDialTimeout = 30 * time.Second
)

// minTimerDelay keeps the idle-sweep timer from spinning.
const minTimerDelay = 10 * time.Millisecond

// Pool keeps backend connections by fingerprint; see the package
// documentation for its rules. It is safe for concurrent use. The fields
// must be set before the first Get.
type Pool struct {
	// IdleTimeout is how long a connection without references stays open;
	// zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MinBackoff is how long the first failed dial of a fingerprint is
	// remembered; zero means DefaultMinBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps how long a failed dial is remembered; zero means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
	// DialTimeout bounds each dial; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// Wrap, when set, wraps every Locker the pool dials (with the backend's
	// name), e.g. to time and count its calls (internal/metrics).
	Wrap func(name string, l backend.Locker) backend.Locker
	// Now returns the current time; nil means time.Now. It drives idle
	// timeouts and back-off (tests set it); the timer that closes idle
	// connections without a Get runs on the real clock.
	Now func() time.Time

	mu     sync.Mutex
	slots  map[string]*slot   // by fingerprint
	conns  map[*conn]struct{} // every open connection, current or forgotten
	dials  map[*dial]struct{} // every dial in flight, current or forgotten
	timer  *time.Timer        // the next idle sweep, when one is due
	closed bool               // Close was called
	bg     sync.WaitGroup     // dials and backend Close calls in flight
}

// slot is what the pool knows about one fingerprint.
type slot struct {
	conn     *conn      // the connection Get hands out, or nil
	dial     *dial      // the dial in flight, or nil
	failures int        // failed dials in a row
	failure  *DialError // the last failed dial, until a success or Forget
}

// retryAt is when the next dial may be made; zero when there is no failure.
func (s *slot) retryAt() time.Time {
	if s.failure == nil {
		return time.Time{}
	}
	return s.failure.RetryAt
}

// conn is one open backend connection.
type conn struct {
	fingerprint string
	locker      backend.Locker
	refs        int       // open Refs
	lastUsed    time.Time // the last Get, or when refs last dropped to 0
	forgotten   bool      // Forget was called; no longer handed out
	closed      bool      // its Close has been started
}

// dial is one connection attempt, shared by the Gets that wait for it.
type dial struct {
	done    chan struct{} // closed, under the pool's lock, once conn or err is set
	waiters int           // Gets waiting; each is given one reference on success
	cancel  context.CancelFunc
	conn    *conn
	err     error
}

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("backendpool: the pool is closed")

func (p *Pool) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Get returns a reference to the connection for fingerprint, dialling with
// the factory registered as name (backend.Lookup) when there is none. The
// fingerprint must change whenever anything in cfg changes. The caller must
// Close the returned Ref when done with it.
//
// Get waits for a dial at most until ctx ends, but the dial goes on without
// it and its outcome serves later Gets. Errors: a *DialError when the dial
// failed, now or within the back-off period; an error wrapping ctx.Err()
// (and backend.ErrUnreachable when the deadline passed) when ctx ended
// first; ErrClosed after Close; and an error naming the registered backends
// when name is unknown.
func (p *Pool) Get(ctx context.Context, fingerprint, name string, cfg backend.Config) (*Ref, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	now := p.now()
	p.sweepLocked(now)
	s := p.slots[fingerprint]
	if s == nil {
		s = &slot{}
		if p.slots == nil {
			p.slots = map[string]*slot{}
		}
		p.slots[fingerprint] = s
	}
	var d *dial
	switch decideGet(s.conn != nil, s.dial != nil, s.retryAt(), now) {
	case useConn:
		c := s.conn
		c.refs++
		c.lastUsed = now
		p.mu.Unlock()
		return &Ref{pool: p, conn: c}, nil
	case failFast:
		err := s.failure
		p.mu.Unlock()
		return nil, err
	case joinDial:
		d = s.dial
	case startDial:
		factory, ok := backend.Lookup(name)
		if !ok {
			p.mu.Unlock()
			return nil, fmt.Errorf("backendpool: no backend registered as %q (registered: %v)", name, backend.Names())
		}
		d = p.startDialLocked(ctx, fingerprint, name, cfg, factory)
		s.dial = d
	}
	d.waiters++
	p.mu.Unlock()
	return p.wait(ctx, d, name, cfg)
}

// startDialLocked starts dialling on a goroutine of its own.
func (p *Pool) startDialLocked(ctx context.Context, fingerprint, name string, cfg backend.Config,
	factory backend.Factory) *dial {
	dialCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(p.DialTimeout, DefaultDialTimeout))
	d := &dial{done: make(chan struct{}), cancel: cancel}
	if p.dials == nil {
		p.dials = map[*dial]struct{}{}
	}
	p.dials[d] = struct{}{}
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		defer cancel()
		locker, err := factory(dialCtx, cfg)
		if err == nil && p.Wrap != nil {
			locker = p.Wrap(name, locker)
		}
		p.finishDial(d, fingerprint, name, cfg, locker, err)
	}()
	return d
}

// finishDial records the outcome of d and hands it to its waiters.
func (p *Pool) finishDial(d *dial, fingerprint, name string, cfg backend.Config, locker backend.Locker, err error) {
	p.mu.Lock()
	now := p.now()
	delete(p.dials, d)
	s := p.slots[fingerprint]
	current := s != nil && s.dial == d // false once Forget or Close dropped the slot
	if current {
		s.dial = nil
	}
	var orphan backend.Locker
	switch {
	case p.closed:
		d.err = ErrClosed
		orphan = locker
	case err != nil || locker == nil:
		if err == nil {
			err = errors.New("the backend returned no connection")
		}
		failures := 1
		if current {
			failures = s.failures + 1
		}
		wait := backoff(failures, orDefault(p.MinBackoff, DefaultMinBackoff), orDefault(p.MaxBackoff, DefaultMaxBackoff),
			rand.Float64())
		derr := &DialError{
			Backend:  name,
			Servers:  slices.Clone(cfg.Servers),
			Err:      err,
			Failures: failures,
			RetryAt:  now.Add(wait),
		}
		if current {
			s.failures, s.failure = failures, derr
		}
		d.err = derr
	default:
		c := &conn{fingerprint: fingerprint, locker: locker, refs: d.waiters, lastUsed: now, forgotten: !current}
		if p.conns == nil {
			p.conns = map[*conn]struct{}{}
		}
		p.conns[c] = struct{}{}
		d.conn = c
		if current {
			s.conn, s.failures, s.failure = c, 0, nil
		}
		if shouldClose(c.refs, c.forgotten, 0, orDefault(p.IdleTimeout, DefaultIdleTimeout)) {
			p.closeLocked(c) // forgotten while dialling, and nobody waits for it
		}
		p.sweepLocked(now) // arms the idle timer if nobody took a reference
	}
	close(d.done)
	p.mu.Unlock()
	if orphan != nil {
		_ = orphan.Close() // the pool closed while dialling; this goroutine is counted in p.bg
	}
}

// wait waits for d on behalf of one Get.
func (p *Pool) wait(ctx context.Context, d *dial, name string, cfg backend.Config) (*Ref, error) {
	select {
	case <-d.done:
	case <-ctx.Done():
		p.mu.Lock()
		select {
		case <-d.done:
			// Finished meanwhile, with a reference counted for this caller:
			// take the result after all.
			p.mu.Unlock()
		default:
			d.waiters--
			p.mu.Unlock()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("backendpool: connecting to %s %v: no answer before the caller's deadline: %w: %w",
					name, cfg.Servers, backend.ErrUnreachable, ctx.Err())
			}
			return nil, fmt.Errorf("backendpool: connecting to %s %v: %w", name, cfg.Servers, ctx.Err())
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return &Ref{pool: p, conn: d.conn}, nil
}

// Forget drops the connection for fingerprint and its remembered dial
// failure, so that the next Get dials at once (after the server refused
// the credentials, say). The connection is closed as soon as no reference
// to it is left; until then the references keep working. A dial in flight
// still serves the Gets that wait for it, but no later one.
func (p *Pool) Forget(fingerprint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.slots[fingerprint]
	if s == nil {
		return
	}
	delete(p.slots, fingerprint)
	if c := s.conn; c != nil {
		c.forgotten = true
		if shouldClose(c.refs, c.forgotten, 0, orDefault(p.IdleTimeout, DefaultIdleTimeout)) {
			p.closeLocked(c)
		}
	}
}

// release drops one reference to c.
func (p *Pool) release(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.refs--
	if c.closed || c.refs > 0 {
		return
	}
	now := p.now()
	c.lastUsed = now
	if shouldClose(c.refs, c.forgotten, 0, orDefault(p.IdleTimeout, DefaultIdleTimeout)) {
		p.closeLocked(c)
		return
	}
	p.sweepLocked(now)
}

// Close closes every connection, referenced or not, and cancels the dials
// in flight; it returns once all of them have ended. Later Gets fail with
// ErrClosed; closing a Ref afterwards does nothing. It does not release
// holds. Close is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.timer != nil {
			p.timer.Stop()
		}
		for d := range p.dials {
			d.cancel()
		}
		for c := range p.conns {
			p.closeLocked(c)
		}
		p.slots = nil
	}
	p.mu.Unlock()
	p.bg.Wait()
}

// closeLocked starts closing c on a goroutine of its own.
func (p *Pool) closeLocked(c *conn) {
	c.closed = true
	delete(p.conns, c)
	if s := p.slots[c.fingerprint]; s != nil && s.conn == c {
		s.conn = nil
	}
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		_ = c.locker.Close() // nothing to do about a failure: the connection is dropped either way
	}()
}

// sweepLocked closes the connections idle for IdleTimeout, drops the
// remembered failures that nobody asked about for as long, and sets the
// timer for the next sweep.
func (p *Pool) sweepLocked(now time.Time) {
	idle := orDefault(p.IdleTimeout, DefaultIdleTimeout)
	var next time.Time
	for fp, s := range p.slots {
		if c := s.conn; c != nil {
			idleFor := now.Sub(c.lastUsed)
			switch {
			case shouldClose(c.refs, c.forgotten, idleFor, idle):
				p.closeLocked(c)
			case c.refs == 0:
				if due := c.lastUsed.Add(idle); next.IsZero() || due.Before(next) {
					next = due
				}
			}
		}
		if s.conn == nil && s.dial == nil && !now.Before(s.retryAt().Add(idle)) {
			delete(p.slots, fp)
		}
	}
	if next.IsZero() {
		if p.timer != nil {
			p.timer.Stop()
		}
		return
	}
	delay := max(next.Sub(now), minTimerDelay)
	if p.timer == nil {
		p.timer = time.AfterFunc(delay, p.sweepOnTimer)
		return
	}
	p.timer.Reset(delay)
}

func (p *Pool) sweepOnTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.sweepLocked(p.now())
	}
}
