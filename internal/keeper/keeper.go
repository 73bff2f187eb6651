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

// Package keeper keeps the backend holds that this manager owns alive: it
// renews each one on its own timer, over the connection it was taken with,
// independent of the reconcile work queue, of the API server and of the
// Secret that held the credentials. Reconcile decides who holds a lock; the
// keeper keeps it held and reports a hold it could not keep.
//
// This is the watchdog of Redisson (one renewal schedule per held lock) and
// the renew loop of client-go's leader election, applied to every hold:
//
//   - A hold is renewed every TTL/3, so two renewals may fail before it
//     expires. Each renewal is one compare-and-extend on the exact hold
//     (identity and fencing token): it can never create a hold or take one
//     over, so renewing is safe even from a replica that has just lost its
//     leadership, and a lost hold is reported, never silently re-taken.
//   - A hold is "Renewing" while the last renewal succeeded: the backend
//     keeps it at least until ValidUntil (the start of that renewal plus the
//     TTL the backend confirmed). When renewals fail (the backend does not
//     answer) the keeper retries quickly and, once ValidUntil has passed,
//     reports the hold "Uncertain": it can no longer tell whether the backend
//     still has it, and keeps trying. When the backend answers that the hold
//     is gone, it reports it "Lost" and stops.
//   - Each hold renews in its own goroutine with its own deadline, so a
//     backend that hangs delays only the holds on that backend.
//   - A Gate (leadership) can pause renewals: a replica that may no longer
//     renew stops touching backends at once.
//
// Every change of phase is reported through Notify, so that the reconciler
// can bring the lock's status in line.
package keeper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/distlock/distlock/internal/backend"
)

// Defaults of Options.
const (
	DefaultCallTimeout = 5 * time.Second
	// minRetry and maxRetry bound how soon a failed renewal is tried again.
	minRetry = 200 * time.Millisecond
	maxRetry = 2 * time.Second
	// gateRetry is how often a paused hold checks the Gate again.
	gateRetry = 100 * time.Millisecond
)

// Phase is what the keeper knows about a hold.
type Phase int

const (
	// Renewing means the last renewal (or the acquire) succeeded; the backend
	// keeps the hold at least until ValidUntil.
	Renewing Phase = iota
	// Uncertain means renewals have failed for longer than the hold was sure to
	// last; the backend may or may not still have it. The keeper keeps
	// trying.
	Uncertain
	// Lost means the backend answered that the hold is gone. The keeper no longer
	// renews it.
	Lost
)

func (p Phase) String() string {
	switch p {
	case Renewing:
		return "Renewing"
	case Uncertain:
		return "Uncertain"
	case Lost:
		return "Lost"
	default:
		return fmt.Sprintf("Phase(%d)", int(p))
	}
}

// Conn is a counted reference to a backend connection. The keeper closes it
// when it stops keeping the hold.
type Conn interface {
	Locker() backend.Locker
	Close()
}

// Key names a kept hold: the lock and the holder pod. The keeper keeps at
// most one hold per lock and pod (a semaphore has one per holder).
type Key struct {
	Lock types.NamespacedName
	Pod  types.UID
}

// Hold is a hold to keep.
type Hold struct {
	// Lock is the DistributedLock the hold is for.
	Lock types.NamespacedName
	// Pod and PodUID name the holder pod, and AcquiredAt when it was granted
	// the lock; the keeper only reports them back.
	Pod        string
	PodUID     types.UID
	AcquiredAt time.Time
	// Lease is the hold in the backend; TTL the lease duration to renew with.
	Lease backend.Lease
	TTL   time.Duration
	// Backend names the backend ("redis", "zookeeper") in metrics.
	Backend string
	// ConfirmedAt is when the backend last confirmed the hold (the start of
	// the Acquire or Renew call that returned Lease).
	ConfirmedAt time.Time
	// Conn is the connection to renew over. Keep takes ownership of it.
	Conn Conn
}

// Key is the key of the hold.
func (h Hold) Key() Key { return Key{Lock: h.Lock, Pod: h.PodUID} }

// Status is what the keeper reports about a hold.
type Status struct {
	Lock       types.NamespacedName
	Pod        string
	PodUID     types.UID
	AcquiredAt time.Time
	Lease      backend.Lease
	TTL        time.Duration
	Backend    string
	Phase      Phase
	// ValidUntil is a time before which the backend will not drop the hold
	// (the start of the last successful renewal plus the TTL it confirmed).
	ValidUntil time.Time
	// RenewedAt is the start of the last successful renewal or acquire.
	RenewedAt time.Time
	// Err is the error of the last renewal, if it failed.
	Err error
}

// Options configure a Keeper.
type Options struct {
	// Gate, when set, is asked before every renewal; while it returns false
	// the keeper does not touch the backend (a replica that may no longer
	// renew holds, see internal/leader).
	Gate func() bool
	// Notify is called, without blocking, when a hold changes phase.
	Notify func(types.NamespacedName)
	// CallTimeout bounds each renewal call (and never exceeds a third of
	// the TTL). Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// Log receives renewal failures.
	Log logr.Logger
}

// Keeper renews holds. The zero value is not usable; use New.
type Keeper struct {
	opts     Options
	batchers *batchers

	mu    sync.Mutex
	holds map[Key]*kept
	// byLock indexes holds by lock, so that Holds costs what the lock has.
	byLock map[types.NamespacedName]map[types.UID]*kept
}

// New returns a Keeper.
func New(opts Options) *Keeper {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.Gate == nil {
		opts.Gate = func() bool { return true }
	}
	if opts.Notify == nil {
		opts.Notify = func(types.NamespacedName) {}
	}
	return &Keeper{opts: opts, batchers: &batchers{timeout: opts.CallTimeout}, holds: map[Key]*kept{},
		byLock: map[types.NamespacedName]map[types.UID]*kept{}}
}

// putLocked records kh under key (k.mu held).
func (k *Keeper) putLocked(key Key, kh *kept) {
	k.holds[key] = kh
	if k.byLock[key.Lock] == nil {
		k.byLock[key.Lock] = map[types.UID]*kept{}
	}
	k.byLock[key.Lock][key.Pod] = kh
}

// takeLocked removes and returns the hold under key, or nil (k.mu held).
func (k *Keeper) takeLocked(key Key) *kept {
	kh := k.holds[key]
	delete(k.holds, key)
	if pods := k.byLock[key.Lock]; pods != nil {
		delete(pods, key.Pod)
		if len(pods) == 0 {
			delete(k.byLock, key.Lock)
		}
	}
	return kh
}

// Keep starts keeping h. A hold already kept for the same lock and pod with
// the same fencing token is updated (its connection replaced, e.g. after
// new credentials); one with another token is dropped without being
// released.
func (k *Keeper) Keep(h Hold) {
	if h.ConfirmedAt.IsZero() {
		h.ConfirmedAt = time.Now()
	}
	k.mu.Lock()
	old := k.holds[h.Key()]
	if old != nil && old.sameHold(h.Lease) && old.phase() != Lost {
		k.mu.Unlock()
		old.update(h)
		return
	}
	kh := newKept(h, k.opts, k.batchers)
	k.putLocked(h.Key(), kh)
	k.mu.Unlock()
	if old != nil {
		old.stop()
	}
	go kh.run()
}

// Status reports the hold kept under key.
func (k *Keeper) Status(key Key) (Status, bool) {
	k.mu.Lock()
	kh := k.holds[key]
	k.mu.Unlock()
	if kh == nil {
		return Status{}, false
	}
	return kh.status(), true
}

// Holds reports every hold kept for lock, oldest fencing token first.
func (k *Keeper) Holds(lock types.NamespacedName) []Status {
	k.mu.Lock()
	of := make([]*kept, 0, len(k.byLock[lock]))
	for _, kh := range k.byLock[lock] {
		of = append(of, kh)
	}
	k.mu.Unlock()
	holds := make([]Status, 0, len(of))
	for _, kh := range of {
		holds = append(holds, kh.status())
	}
	slices.SortFunc(holds, func(a, b Status) int { return cmp.Compare(a.Lease.Token, b.Lease.Token) })
	return holds
}

// Drop stops keeping the hold under key without releasing it: the backend
// drops it after its TTL unless someone else renews it (a new leader).
func (k *Keeper) Drop(key Key) {
	k.mu.Lock()
	kh := k.takeLocked(key)
	k.mu.Unlock()
	if kh != nil {
		kh.stop()
	}
}

// Release stops keeping the hold under key and releases it in the backend
// (compare-and-delete). It reports whether a hold was kept. When the release
// fails the hold is no longer renewed and expires after its TTL.
func (k *Keeper) Release(ctx context.Context, key Key) (bool, error) {
	k.mu.Lock()
	kh := k.takeLocked(key)
	k.mu.Unlock()
	if kh == nil {
		return false, nil
	}
	kh.stopRenewing()
	defer kh.detach()
	lease := kh.status().Lease
	if err := kh.conn.Locker().Release(ctx, lease); err != nil {
		return true, fmt.Errorf("releasing %q (fencing token %d): %w", lease.Key, lease.Token, err)
	}
	return true, nil
}

// DropAll stops keeping every hold without releasing any (the replica lost
// its leadership, or is shutting down: the holds stay in the backend for the
// next leader to adopt).
func (k *Keeper) DropAll() {
	k.mu.Lock()
	holds := k.holds
	k.holds, k.byLock = map[Key]*kept{}, map[types.NamespacedName]map[types.UID]*kept{}
	k.mu.Unlock()
	for _, kh := range holds {
		kh.stop()
	}
}

// Len is the number of holds kept.
func (k *Keeper) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.holds)
}

// Start implements manager.Runnable: it returns when ctx ends, after
// dropping every hold (without releasing them).
func (k *Keeper) Start(ctx context.Context) error {
	<-ctx.Done()
	k.DropAll()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: the keeper
// runs on every replica and is gated by Options.Gate instead.
func (k *Keeper) NeedLeaderElection() bool { return false }

// RenewInterval is how often a hold with the given TTL is renewed: a third
// of it, so that two renewals can fail before it expires.
func RenewInterval(ttl time.Duration) time.Duration { return ttl / 3 }

// RetryInterval is how soon a failed renewal of a hold with the given TTL is
// tried again.
func RetryInterval(ttl time.Duration) time.Duration {
	return min(max(ttl/10, minRetry), maxRetry)
}

// IsLost reports whether err says the hold is gone.
func IsLost(err error) bool { return errors.Is(err, backend.ErrNotHeld) }
