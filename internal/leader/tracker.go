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

package leader

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// eventKind names a notification for the callbacks.
type eventKind int

const (
	// eventStartedLeading: Leading turned true.
	eventStartedLeading eventKind = iota
	// eventDeposed: another holder was observed after this replica held
	// the election Lease.
	eventDeposed
)

// event is one notification for the callbacks.
type event struct {
	kind   eventKind
	holder string
}

// tracker keeps what the calls on the election Lease told, and answers
// from it. It is safe for concurrent use; it makes no calls itself.
type tracker struct {
	clock         clock.PassiveClock
	identity      string
	lease         string
	renewDeadline time.Duration

	mu         sync.Mutex
	disabled   bool
	in         inputs
	holderName string
	// held: this replica held the election Lease and has neither released
	// it nor seen another holder since; seeing one then is a deposal.
	held    bool
	lastErr string
	// role is the last role published; changed is closed and replaced when
	// it changes.
	role    Role
	changed chan struct{}
	// events wait for the dispatcher; eventsReady and kick (for the expiry
	// watcher) hold at most one pending signal each.
	events      []event
	eventsReady chan struct{}
	kick        chan struct{}
}

func newTracker(c clock.PassiveClock, identity, lease string, renewDeadline time.Duration, disabled bool) *tracker {
	t := &tracker{
		clock:         c,
		identity:      identity,
		lease:         lease,
		renewDeadline: renewDeadline,
		disabled:      disabled,
		role:          RoleStandby,
		changed:       make(chan struct{}),
		eventsReady:   make(chan struct{}, 1),
		kick:          make(chan struct{}, 1),
	}
	if disabled {
		t.role = RoleDisabled
	}
	return t
}

// verdictLocked is decide at now; t.mu must be held.
func (t *tracker) verdictLocked(now time.Time) verdict {
	if t.disabled {
		return verdict{leading: true, mayRenewHolds: true, role: RoleDisabled}
	}
	return decide(t.in, now, t.renewDeadline)
}

func (t *tracker) verdict() verdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.verdictLocked(t.clock.Now())
}

// record takes in the result of one call on the election Lease that
// started at start: its outcome, the holder the Lease named (for
// outcomeOtherHolder) and its error, if it failed.
func (t *tracker) record(start time.Time, o outcome, holderName string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.in.stopped || start.Before(t.in.lastAttempt) {
		return
	}
	now := t.clock.Now()
	before := t.verdictLocked(now)
	t.in.lastAttempt, t.in.outcome, t.lastErr = start, o, capError(err)
	switch o {
	case outcomeRenewed:
		t.in.holder, t.holderName, t.in.deposed, t.held = holderSelf, t.identity, false, true
		t.in.lastRenewal = start
	case outcomeOwnRecord:
		if t.in.holder != holderSelf {
			t.in.lastRenewal = time.Time{}
		}
		t.in.holder, t.holderName, t.held = holderSelf, t.identity, true
	case outcomeVacant:
		// Released by someone, or deleted: whoever takes it next deposes
		// this replica if it held the Lease.
		t.in.holder, t.holderName, t.in.deposed = holderNone, "", false
		t.in.lastRenewal = time.Time{}
	case outcomeReleased:
		t.in.holder, t.holderName, t.in.deposed, t.held = holderNone, "", false, false
		t.in.lastRenewal = time.Time{}
	case outcomeOtherHolder:
		if t.held {
			t.in.deposed, t.held = true, false
			t.queueLocked(event{kind: eventDeposed, holder: holderName})
		}
		t.in.holder, t.holderName = holderOther, holderName
		t.in.lastRenewal = time.Time{}
	case outcomeNone, outcomeRejected, outcomeUnreachable:
		// The Lease may have changed or not: keep what is known about it.
	}
	after := t.verdictLocked(now)
	if after.leading && !before.leading {
		t.queueLocked(event{kind: eventStartedLeading})
	}
	t.publishLocked(after.role)
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// startDisabled announces the start of a replica without election: it
// leads from now on.
func (t *tracker) startDisabled() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queueLocked(event{kind: eventStartedLeading})
}

// beginStepDown marks the start of the shutdown: Leading turns false at
// once. It reports whether the election Lease may name this replica (then
// the caller waits before releasing it).
func (t *tracker) beginStepDown() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.in.steppingDown = true
	t.publishLocked(t.verdictLocked(t.clock.Now()).role)
	return t.in.holder == holderSelf
}

// steppingDown reports whether beginStepDown was called.
func (t *tracker) steppingDown() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.in.steppingDown
}

// stop marks the end: from now on nothing is allowed and nothing recorded.
func (t *tracker) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.in.stopped = true
	t.publishLocked(t.verdictLocked(t.clock.Now()).role)
}

// refresh publishes the role at now, which may have changed by the passage
// of time, and returns the next instant at which it may change so (zero if
// none) and whether it changed now.
func (t *tracker) refresh() (next time.Time, changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	changed = t.publishLocked(t.verdictLocked(now).role)
	if t.disabled {
		return time.Time{}, changed
	}
	return nextChange(t.in, now, t.renewDeadline), changed
}

// publishLocked makes role the published role, waking the waiters on
// changed if it differs; t.mu must be held.
func (t *tracker) publishLocked(role Role) bool {
	if role == t.role {
		return false
	}
	t.role = role
	close(t.changed)
	t.changed = make(chan struct{})
	return true
}

// changes returns a channel that is closed when the published role next
// changes.
func (t *tracker) changes() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

func (t *tracker) queueLocked(ev event) {
	t.events = append(t.events, ev)
	select {
	case t.eventsReady <- struct{}{}:
	default:
	}
}

// takeEvents returns the pending events, oldest first, and forgets them.
func (t *tracker) takeEvents() []event {
	t.mu.Lock()
	defer t.mu.Unlock()
	evs := t.events
	t.events = nil
	return evs
}

// status returns a snapshot.
func (t *tracker) status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	v := t.verdictLocked(now)
	return Status{
		Role:          v.role,
		Identity:      t.identity,
		Lease:         t.lease,
		Holder:        t.holderName,
		Leading:       v.leading,
		MayRenewHolds: v.mayRenewHolds,
		LastRenewal:   t.in.lastRenewal,
		LastAttempt:   t.in.lastAttempt,
		LastError:     t.lastErr,
		At:            now,
	}
}
