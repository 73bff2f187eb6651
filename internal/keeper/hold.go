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

package keeper

import (
	"context"
	"sync"
	"time"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/metrics"
)

// kept is one hold and the goroutine that renews it.
type kept struct {
	opts Options

	// ctx ends when the hold is no longer kept; it also cancels a renewal
	// in flight.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	batchers *batchers

	mu   sync.Mutex
	st   Status
	conn Conn
	// renew renews over conn (in batches where the backend can); unref
	// lets go of the batcher.
	renew renewFunc
	unref func()
	// updated wakes the loop when the hold was updated.
	updated chan struct{}
}

func newKept(h Hold, opts Options, bs *batchers) *kept {
	ctx, cancel := context.WithCancel(context.Background())
	renew, unref := bs.renewFor(h.Conn.Locker())
	return &kept{
		opts:     opts,
		batchers: bs,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		conn:     h.Conn,
		renew:    renew,
		unref:    unref,
		st: Status{
			Lock: h.Lock, Pod: h.Pod, PodUID: h.PodUID, AcquiredAt: h.AcquiredAt,
			Lease: h.Lease, TTL: h.TTL, Backend: h.Backend, Phase: Renewing,
			ValidUntil: h.ConfirmedAt.Add(confirmedTTL(h.Lease, h.TTL)),
			RenewedAt:  h.ConfirmedAt,
		},
		updated: make(chan struct{}, 1),
	}
}

// confirmedTTL is how long the backend promised to keep a hold: the TTL it
// reported, never more than the TTL asked for.
func confirmedTTL(lease backend.Lease, ttl time.Duration) time.Duration {
	if lease.TTL > 0 && lease.TTL < ttl {
		return lease.TTL
	}
	return ttl
}

func (kh *kept) sameHold(l backend.Lease) bool {
	kh.mu.Lock()
	defer kh.mu.Unlock()
	return kh.st.Lease.Key == l.Key && kh.st.Lease.Holder == l.Holder && kh.st.Lease.Token == l.Token
}

func (kh *kept) phase() Phase {
	kh.mu.Lock()
	defer kh.mu.Unlock()
	return kh.st.Phase
}

func (kh *kept) status() Status {
	kh.mu.Lock()
	defer kh.mu.Unlock()
	return kh.st
}

// update replaces the connection and lease duration of the same hold.
func (kh *kept) update(h Hold) {
	kh.mu.Lock()
	old, oldUnref := kh.conn, kh.unref
	kh.conn = h.Conn
	kh.renew, kh.unref = kh.batchers.renewFor(h.Conn.Locker())
	kh.st.TTL = h.TTL
	kh.mu.Unlock()
	oldUnref()
	if old != nil && old != h.Conn {
		old.Close()
	}
	select {
	case kh.updated <- struct{}{}:
	default:
	}
}

// stopRenewing ends the loop and waits for it, keeping the connection open.
func (kh *kept) stopRenewing() {
	kh.cancel()
	<-kh.done
}

// stop ends the loop and lets go of the connection.
func (kh *kept) stop() {
	kh.stopRenewing()
	kh.detach()
}

// detach lets go of the connection and its batcher.
func (kh *kept) detach() {
	kh.mu.Lock()
	conn, unref := kh.conn, kh.unref
	kh.mu.Unlock()
	unref()
	conn.Close()
}

// run renews the hold until it is lost or no longer kept.
func (kh *kept) run() {
	defer close(kh.done)
	st := kh.status()
	// due is when the current renewal was due (its lag is measured from
	// it); next is when to try, later than due after a failure or while
	// the gate is closed.
	due := alignDown(st.RenewedAt.Add(RenewInterval(st.TTL)))
	next := due
	for {
		timer := time.NewTimer(time.Until(next))
		select {
		case <-kh.ctx.Done():
			timer.Stop()
			return
		case <-kh.updated:
			timer.Stop()
			st := kh.status()
			due = alignDown(st.RenewedAt.Add(RenewInterval(st.TTL)))
			next = due
			continue
		case <-timer.C:
		}
		if !kh.opts.Gate() {
			kh.checkValidity(time.Now())
			next = time.Now().Add(gateRetry)
			continue
		}
		var renewed, lost bool
		next, renewed, lost = kh.renewOnce(due)
		if lost {
			return
		}
		if renewed {
			due = next
		}
	}
}

// renewOnce makes one renewal call, due at due, and records its outcome. It
// returns when to renew next, whether the renewal succeeded, and whether the
// hold is lost (or no longer kept).
func (kh *kept) renewOnce(due time.Time) (next time.Time, ok, lost bool) {
	kh.mu.Lock()
	lock, lease, ttl, renew, backendName := kh.st.Lock, kh.st.Lease, kh.st.TTL, kh.renew, kh.st.Backend
	kh.mu.Unlock()

	start := time.Now()
	ctx, cancel := context.WithTimeout(kh.ctx, min(kh.opts.CallTimeout, RenewInterval(ttl)))
	confirmed, err := renew(ctx, lease, ttl)
	cancel()
	if kh.ctx.Err() != nil {
		return time.Time{}, false, true // no longer kept; the outcome does not matter
	}

	kh.mu.Lock()
	prev := kh.st.Phase
	switch {
	case err == nil:
		kh.st.Phase = Renewing
		kh.st.Err = nil
		kh.st.RenewedAt = start
		kh.st.ValidUntil = start.Add(confirmedTTL(confirmed, ttl))
	case IsLost(err):
		kh.st.Phase = Lost
		kh.st.Err = err
	default:
		kh.st.Err = err
	}
	phase := kh.st.Phase
	kh.mu.Unlock()

	switch {
	case phase == Lost:
		kh.opts.Log.Info("the backend no longer has a hold this manager kept",
			"lock", lease.Key, "token", lease.Token, "error", err.Error())
		kh.opts.Notify(lock)
		return time.Time{}, false, true
	case err != nil:
		metrics.RenewalFailuresTotal.WithLabelValues(backendName).Inc()
		kh.opts.Log.Info("renewing a hold failed; retrying", "lock", lease.Key, "token", lease.Token, "error", err.Error())
		kh.checkValidity(time.Now())
		return time.Now().Add(RetryInterval(ttl)), false, false
	default:
		metrics.RenewalLagSeconds.WithLabelValues(backendName).Observe(max(time.Since(due), 0).Seconds())
		if prev != Renewing {
			kh.opts.Notify(lock)
		}
		return alignDown(start.Add(RenewInterval(ttl))), true, false
	}
}

// checkValidity marks the hold Uncertain once it is no longer sure to last.
func (kh *kept) checkValidity(now time.Time) {
	kh.mu.Lock()
	changed := kh.st.Phase == Renewing && !now.Before(kh.st.ValidUntil)
	if changed {
		kh.st.Phase = Uncertain
	}
	lock := kh.st.Lock
	kh.mu.Unlock()
	if changed {
		kh.opts.Notify(lock)
	}
}
