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

package backendpool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// The tests below use a fake backend for the pool's own rules; the proof
// against a real server is in redis_test.go.

const fakeName = "backendpool-fake"

// fakes maps a fake server address (backend.Config.Servers[0]) to its
// *fakeServer, so that each test has its own behaviour behind the one
// registered factory.
var fakes sync.Map

func init() {
	backend.Register(fakeName, func(ctx context.Context, cfg backend.Config) (backend.Locker, error) {
		v, ok := fakes.Load(cfg.Servers[0])
		if !ok {
			return nil, fmt.Errorf("no fake server %q", cfg.Servers[0])
		}
		return v.(*fakeServer).dial(ctx)
	})
}

// fakeServer counts dials and can hold them (block) or fail them (fail).
type fakeServer struct {
	addr    string
	dials   atomic.Int32
	started chan struct{} // one value per dial that started (while room)

	mu      sync.Mutex
	gate    chan struct{} // when not nil, dials wait until it is closed
	err     error         // when not nil, dials fail with it
	lockers []*fakeLocker // every connection handed out, in order
}

var fakeSeq atomic.Int64

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{
		addr:    fmt.Sprintf("fake-%s-%d:1", t.Name(), fakeSeq.Add(1)),
		started: make(chan struct{}, 100),
	}
	fakes.Store(f.addr, f)
	t.Cleanup(func() { fakes.Delete(f.addr) })
	return f
}

func (f *fakeServer) cfg() backend.Config { return backend.Config{Servers: []string{f.addr}} }

// block makes dials wait until the returned function is called.
func (f *fakeServer) block() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

func (f *fakeServer) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeServer) dial(ctx context.Context) (backend.Locker, error) {
	f.dials.Add(1)
	f.mu.Lock()
	gate, err := f.gate, f.err
	f.mu.Unlock()
	select {
	case f.started <- struct{}{}:
	default:
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("fake dial: %w: %w", backend.ErrUnreachable, ctx.Err())
		}
	}
	if err != nil {
		return nil, err
	}
	l := &fakeLocker{closed: make(chan struct{})}
	f.mu.Lock()
	f.lockers = append(f.lockers, l)
	f.mu.Unlock()
	return l, nil
}

// waitStarted waits until a dial has started.
func (f *fakeServer) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-f.started:
	case <-time.After(5 * time.Second):
		t.Fatalf("no dial of %s started within 5s", f.addr)
	}
}

// fakeLocker records Close calls; the pool calls nothing else.
type fakeLocker struct {
	backend.Locker
	closes atomic.Int32
	closed chan struct{} // closed by the first Close
}

var _ backend.Locker = &fakeLocker{}

func (l *fakeLocker) Close() error {
	if l.closes.Add(1) == 1 {
		close(l.closed)
	}
	return nil
}

func lockerOf(t *testing.T, r *Ref) *fakeLocker {
	t.Helper()
	l, ok := r.Locker().(*fakeLocker)
	if !ok {
		t.Fatalf("Locker() is a %T; want *fakeLocker", r.Locker())
	}
	return l
}

// settle waits until the pool has no dial and no backend Close in flight,
// so that a connection that is not closed afterwards will not be closed by
// anything already started. Only for tests without a dial in flight.
func settle(p *Pool) { p.bg.Wait() }

// refsOf returns the reference count of the connection behind r.
func refsOf(p *Pool, r *Ref) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.conn.refs
}

// clock is a manual clock for Pool.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustGet(t *testing.T, p *Pool, fingerprint string, f *fakeServer) *Ref {
	t.Helper()
	r, err := p.Get(ctxFor(t, 5*time.Second), fingerprint, fakeName, f.cfg())
	if err != nil {
		t.Fatalf("Get(%s): %v", fingerprint, err)
	}
	return r
}

func TestBackoff(t *testing.T) {
	const minB, maxB = 2 * time.Second, 30 * time.Second
	tests := map[string]struct {
		failures   int
		minB, maxB time.Duration
		r          float64
		want       time.Duration
	}{
		"the first failure is remembered for the minimum": {
			failures: 1, minB: minB, maxB: maxB, want: 2 * time.Second},
		"each further failure in a row doubles it": {
			failures: 3, minB: minB, maxB: maxB, want: 8 * time.Second},
		"the fourth failure is still under the cap": {
			failures: 4, minB: minB, maxB: maxB, want: 16 * time.Second},
		"the fifth failure reaches the cap": {
			failures: 5, minB: minB, maxB: maxB, want: 30 * time.Second},
		"a hundred failures stay at the cap without overflowing": {
			failures: 100, minB: minB, maxB: maxB, want: 30 * time.Second},
		"jitter shortens by r/5 of the period": {
			failures: 1, minB: minB, maxB: maxB, r: 0.5, want: 1800 * time.Millisecond},
		"jitter never shortens by more than a fifth": {
			failures: 5, minB: minB, maxB: maxB, r: 0.999999, want: 24*time.Second + 6*time.Microsecond},
		"a minimum above the maximum is capped too": {
			failures: 1, minB: time.Minute, maxB: maxB, want: 30 * time.Second},
		"zero failures count as the first": {
			failures: 0, minB: minB, maxB: maxB, want: 2 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := backoff(tc.failures, tc.minB, tc.maxB, tc.r); got != tc.want {
				t.Errorf("backoff(%d, %v, %v, %v) = %v; want %v", tc.failures, tc.minB, tc.maxB, tc.r, got, tc.want)
			}
		})
	}
}

func TestShouldClose(t *testing.T) {
	const idle = time.Minute
	tests := map[string]struct {
		refs      int
		forgotten bool
		idleFor   time.Duration
		want      bool
	}{
		"a referenced connection stays open however long it is idle": {
			refs: 1, idleFor: time.Hour, want: false},
		"a referenced forgotten connection stays open": {
			refs: 2, forgotten: true, want: false},
		"an unreferenced forgotten connection is closed at once": {
			refs: 0, forgotten: true, want: true},
		"an unreferenced connection idle for the timeout is closed": {
			refs: 0, idleFor: idle, want: true},
		"an unreferenced connection idle for less stays open": {
			refs: 0, idleFor: idle - time.Nanosecond, want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := shouldClose(tc.refs, tc.forgotten, tc.idleFor, idle); got != tc.want {
				t.Errorf("shouldClose(%d, %v, %v, %v) = %v; want %v", tc.refs, tc.forgotten, tc.idleFor, idle, got, tc.want)
			}
		})
	}
}

func TestDecideGet(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		hasConn, dialing bool
		retryAt          time.Time
		want             getAction
	}{
		"an open connection is shared": {
			hasConn: true, want: useConn},
		"a dial in flight is joined": {
			dialing: true, want: joinDial},
		"a dial in flight is joined even during a back-off (Forget started it)": {
			dialing: true, retryAt: now.Add(time.Second), want: joinDial},
		"a remembered failure answers until its retry time": {
			retryAt: now.Add(time.Nanosecond), want: failFast},
		"at the retry time a new dial starts": {
			retryAt: now, want: startDial},
		"without anything known a dial starts": {
			want: startDial},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := decideGet(tc.hasConn, tc.dialing, tc.retryAt, now); got != tc.want {
				t.Errorf("decideGet(%v, %v, %v) = %v; want %v", tc.hasConn, tc.dialing, tc.retryAt, got, tc.want)
			}
		})
	}
}

func TestASlowDialForOneFingerprintDoesNotDelayAGetForAnother(t *testing.T) {
	slow, healthy := newFakeServer(t), newFakeServer(t)
	release := slow.block()
	defer release()
	p := &Pool{}
	defer p.Close()

	slowDone := make(chan error, 1)
	go func() {
		r, err := p.Get(ctxFor(t, 10*time.Second), "A", fakeName, slow.cfg())
		if err == nil {
			r.Close()
		}
		slowDone <- err
	}()
	slow.waitStarted(t)

	// The dial for A cannot finish before release(), so B succeeding at all
	// proves it did not wait behind A; the deadline only bounds a failure.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	r, err := p.Get(ctx, "B", fakeName, healthy.cfg())
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Get(B) while A is dialling: %v", err)
	}
	r.Close()
	t.Logf("Get(B) while A's dial hangs took %v", took)
	select {
	case err := <-slowDone:
		t.Fatalf("Get(A) returned (%v) before its dial was released", err)
	default:
	}

	// Another caller for A is bounded by its own deadline, not by the dial.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	_, err = p.Get(ctx2, "A", fakeName, slow.cfg())
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("Get(A) with a 50ms deadline during a hung dial: err = %v; want DeadlineExceeded and ErrUnreachable", err)
	}

	release()
	if err := <-slowDone; err != nil {
		t.Fatalf("Get(A) after its dial was released: %v", err)
	}
	if got := slow.dials.Load(); got != 1 {
		t.Errorf("A was dialled %d times; want 1 (the second caller joined the dial in flight)", got)
	}
}

func TestConcurrentGetsForOneFingerprintShareOneDial(t *testing.T) {
	f := newFakeServer(t)
	release := f.block()
	defer release()
	p := &Pool{}
	defer p.Close()

	const callers = 10
	refs := make(chan *Ref, callers)
	errs := make(chan error, callers)
	for range callers {
		go func() {
			r, err := p.Get(ctxFor(t, 10*time.Second), "A", fakeName, f.cfg())
			if err != nil {
				errs <- err
				return
			}
			refs <- r
		}()
	}
	// Wait until every caller waits on the one dial in flight.
	deadline := time.Now().Add(5 * time.Second)
	for waiters(p, "A") < callers {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d callers wait for the dial after 5s", waiters(p, "A"), callers)
		}
		time.Sleep(time.Millisecond)
	}
	release()

	var got []*Ref
	for range callers {
		select {
		case r := <-refs:
			got = append(got, r)
		case err := <-errs:
			t.Fatalf("Get: %v", err)
		}
	}
	if n := f.dials.Load(); n != 1 {
		t.Fatalf("%d concurrent Gets dialled %d times; want 1", callers, n)
	}
	for _, r := range got[1:] {
		if r.Locker() != got[0].Locker() {
			t.Fatalf("concurrent Gets got different connections")
		}
	}
	if n := refsOf(p, got[0]); n != callers {
		t.Errorf("the shared connection has %d references; want %d", n, callers)
	}
	for _, r := range got {
		r.Close()
	}
	settle(p)
	if n := lockerOf(t, got[0]).closes.Load(); n != 0 {
		t.Errorf("the connection was closed %d times once unreferenced but not idle; want 0", n)
	}
}

// waiters returns how many Gets wait for the dial in flight for fingerprint.
func waiters(p *Pool, fingerprint string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.slots[fingerprint]; s != nil && s.dial != nil {
		return s.dial.waiters
	}
	return 0
}

func TestADialOutlivesACallerThatGaveUpAndServesTheNextGet(t *testing.T) {
	f := newFakeServer(t)
	release := f.block()
	defer release()
	p := &Pool{}
	defer p.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, "A", fakeName, f.cfg()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with a 20ms deadline during a hung dial: err = %v; want DeadlineExceeded", err)
	}
	release()
	r := mustGet(t, p, "A", f)
	defer r.Close()
	if n := f.dials.Load(); n != 1 {
		t.Errorf("dialled %d times; want 1 (the dial went on without its caller and served the next Get)", n)
	}
	if n := refsOf(p, r); n != 1 {
		t.Errorf("the connection has %d references; want 1 (the caller that gave up holds none)", n)
	}
}

func TestAFailedDialIsRememberedForTheBackoffAndRetriedAfter(t *testing.T) {
	f := newFakeServer(t)
	refused := fmt.Errorf("fake: %w", backend.ErrUnauthorized)
	f.fail(refused)
	clk := newClock()
	p := &Pool{Now: clk.Now, IdleTimeout: time.Hour}
	defer p.Close()
	ctx := ctxFor(t, 5*time.Second)

	get := func() (*Ref, *DialError, time.Duration) {
		t.Helper()
		start := time.Now()
		r, err := p.Get(ctx, "A", fakeName, f.cfg())
		took := time.Since(start)
		if err == nil {
			return r, nil, took
		}
		var de *DialError
		if !errors.As(err, &de) {
			t.Fatalf("Get: err = %v (%T); want a *DialError", err, err)
		}
		if !errors.Is(err, backend.ErrUnauthorized) {
			t.Fatalf("Get: err = %v; want it to wrap backend.ErrUnauthorized", err)
		}
		return nil, de, took
	}
	inBackoff := func(de *DialError, failures int, lo, hi time.Duration) {
		t.Helper()
		if de.Failures != failures {
			t.Errorf("Failures = %d; want %d", de.Failures, failures)
		}
		if wait := de.RetryAt.Sub(clk.Now()); wait < lo || wait > hi {
			t.Errorf("RetryAt is %v ahead; want between %v and %v", wait, lo, hi)
		}
	}

	_, first, _ := get()
	inBackoff(first, 1, 1600*time.Millisecond, 2*time.Second)
	if msg := first.Error(); !strings.Contains(msg, f.addr) || !strings.Contains(msg, "next attempt at 2026-11-25T12:00:0") {
		t.Errorf("error %q does not name the server and the next attempt", msg)
	}

	clk.Advance(1500 * time.Millisecond)
	_, again, took := get()
	if again != first || f.dials.Load() != 1 {
		t.Fatalf("a Get within the back-off dialled again (dials=%d) or returned another error", f.dials.Load())
	}
	t.Logf("a Get answered from the remembered failure took %v", took)

	clk.Advance(time.Second) // 2.5s after the failure: past any jittered 2s back-off
	_, second, _ := get()
	if f.dials.Load() != 2 {
		t.Fatalf("a Get after the back-off did not dial again (dials=%d)", f.dials.Load())
	}
	inBackoff(second, 2, 3200*time.Millisecond, 4*time.Second)

	f.fail(nil)
	clk.Advance(4 * time.Second)
	r, _, _ := get()
	if r == nil {
		t.Fatalf("a Get after the second back-off did not connect")
	}
	r.Close()
	p.mu.Lock()
	s := p.slots["A"]
	reset := s != nil && s.failures == 0 && s.failure == nil
	p.mu.Unlock()
	if !reset {
		t.Errorf("a successful dial did not reset the remembered failures")
	}
}

func TestForgetAndANewFingerprintBypassTheBackoff(t *testing.T) {
	f := newFakeServer(t)
	f.fail(fmt.Errorf("fake: %w", backend.ErrUnreachable))
	p := &Pool{}
	defer p.Close()
	ctx := ctxFor(t, 5*time.Second)

	for range 2 {
		if _, err := p.Get(ctx, "old-credentials", fakeName, f.cfg()); !errors.Is(err, backend.ErrUnreachable) {
			t.Fatalf("Get: err = %v; want ErrUnreachable", err)
		}
	}
	if n := f.dials.Load(); n != 1 {
		t.Fatalf("dials = %d after two Gets within the back-off; want 1", n)
	}
	if _, err := p.Get(ctx, "new-credentials", fakeName, f.cfg()); err == nil {
		t.Fatalf("Get with the failing fake succeeded")
	}
	if n := f.dials.Load(); n != 2 {
		t.Fatalf("dials = %d; want 2 (a new fingerprint dials at once)", n)
	}
	p.Forget("old-credentials")
	f.fail(nil)
	r := mustGet(t, p, "old-credentials", f)
	r.Close()
	if n := f.dials.Load(); n != 3 {
		t.Fatalf("dials = %d; want 3 (Forget drops the remembered failure)", n)
	}
}

func TestReferencesKeepAForgottenConnectionOpenUntilTheLastClose(t *testing.T) {
	f := newFakeServer(t)
	p := &Pool{}
	defer p.Close()

	first := mustGet(t, p, "A", f)
	keeper := first.Clone()
	old := lockerOf(t, first)

	p.Forget("A")
	settle(p)
	if n := old.closes.Load(); n != 0 {
		t.Fatalf("Forget closed a referenced connection (%d Close calls)", n)
	}
	fresh := mustGet(t, p, "A", f)
	defer fresh.Close()
	if fresh.Locker() == first.Locker() || f.dials.Load() != 2 {
		t.Fatalf("Get after Forget reused the forgotten connection (dials=%d)", f.dials.Load())
	}

	first.Close()
	first.Close() // idempotent: must not drop the keeper's reference
	settle(p)
	if n := old.closes.Load(); n != 0 {
		t.Fatalf("the forgotten connection was closed while the keeper still references it (%d Close calls)", n)
	}
	keeper.Close()
	settle(p)
	if n := old.closes.Load(); n != 1 {
		t.Fatalf("the forgotten connection was closed %d times after its last reference; want 1", n)
	}
	if n := lockerOf(t, fresh).closes.Load(); n != 0 {
		t.Errorf("the new connection was closed %d times; want 0", n)
	}

	defer func() {
		if recover() == nil {
			t.Errorf("Clone of a closed Ref did not panic")
		}
	}()
	first.Clone()
}

func TestIdleConnectionsWithReferencesAreNotClosed(t *testing.T) {
	held, unused, other := newFakeServer(t), newFakeServer(t), newFakeServer(t)
	clk := newClock()
	p := &Pool{Now: clk.Now, IdleTimeout: time.Minute}
	defer p.Close()

	keeper := mustGet(t, p, "held", held)
	r := mustGet(t, p, "unused", unused)
	r.Close()

	clk.Advance(2 * time.Minute)
	mustGet(t, p, "other", other).Close() // a Get sweeps
	settle(p)
	if n := lockerOf(t, keeper).closes.Load(); n != 0 {
		t.Fatalf("a connection with a reference was closed as idle (%d Close calls)", n)
	}
	if n := lockerOf(t, r).closes.Load(); n != 1 {
		t.Fatalf("an unreferenced connection idle for 2m was closed %d times; want 1", n)
	}
	again := mustGet(t, p, "unused", unused)
	again.Close()
	if n := unused.dials.Load(); n != 2 {
		t.Errorf("a Get after the idle close dialled %d times in all; want 2", n)
	}

	// Idle time counts from the last reference's Close, not from the Get.
	keeper.Close()
	clk.Advance(time.Minute - time.Nanosecond)
	mustGet(t, p, "other", other).Close()
	settle(p)
	if n := lockerOf(t, keeper).closes.Load(); n != 0 {
		t.Fatalf("a connection was closed %d times before it was idle for IdleTimeout", n)
	}
	clk.Advance(time.Nanosecond)
	mustGet(t, p, "other", other).Close()
	settle(p)
	if n := lockerOf(t, keeper).closes.Load(); n != 1 {
		t.Fatalf("a connection idle for IdleTimeout after its last reference was closed %d times; want 1", n)
	}
}

func TestAnIdleConnectionIsClosedWithoutAnotherGet(t *testing.T) {
	f := newFakeServer(t)
	p := &Pool{IdleTimeout: 20 * time.Millisecond}
	defer p.Close()

	r := mustGet(t, p, "A", f)
	l := lockerOf(t, r)
	r.Close()
	select {
	case <-l.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("an unreferenced connection was not closed within 5s of a 20ms idle timeout")
	}
}

func TestCloseClosesEverythingAndCancelsDials(t *testing.T) {
	referenced, idle, forgotten, hung := newFakeServer(t), newFakeServer(t), newFakeServer(t), newFakeServer(t)
	p := &Pool{}

	ref := mustGet(t, p, "referenced", referenced)
	r := mustGet(t, p, "idle", idle)
	r.Close()
	fref := mustGet(t, p, "forgotten", forgotten)
	p.Forget("forgotten")
	release := hung.block()
	defer release()
	hungDone := make(chan error, 1)
	go func() {
		_, err := p.Get(ctxFor(t, 10*time.Second), "hung", fakeName, hung.cfg())
		hungDone <- err
	}()
	hung.waitStarted(t)

	p.Close()
	for name, l := range map[string]*fakeLocker{
		"referenced": lockerOf(t, ref), "idle": lockerOf(t, r), "forgotten": lockerOf(t, fref),
	} {
		if n := l.closes.Load(); n != 1 {
			t.Errorf("the %s connection was closed %d times by Pool.Close; want 1", name, n)
		}
	}
	if err := <-hungDone; !errors.Is(err, ErrClosed) {
		t.Errorf("a Get waiting for a dial got %v from Pool.Close; want ErrClosed", err)
	}
	if _, err := p.Get(t.Context(), "referenced", fakeName, referenced.cfg()); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: err = %v; want ErrClosed", err)
	}
	ref.Close()
	fref.Close()
	p.Close()
	if n := lockerOf(t, ref).closes.Load(); n != 1 {
		t.Errorf("closing a Ref after Pool.Close closed its connection again (%d Close calls)", n)
	}
}

func TestGetReportsAnUnknownBackend(t *testing.T) {
	p := &Pool{}
	defer p.Close()
	_, err := p.Get(t.Context(), "x", "no-such-backend", backend.Config{Servers: []string{"127.0.0.1:1"}})
	if err == nil || !strings.Contains(err.Error(), "no-such-backend") {
		t.Errorf("Get with an unregistered backend: err = %v; want one naming it", err)
	}
}
