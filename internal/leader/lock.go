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
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

var (
	// errNotOurs refuses to release a Lease that names another holder.
	errNotOurs = errors.New("leader: not releasing the Lease: it does not name this replica")
	// errCrashed is returned by every call after a test simulated a crash.
	errCrashed = errors.New("leader: crashed (test hook)")
)

// testHooks let tests simulate what cannot be done to a goroutine: a pause
// of the whole process and a crash. The zero value does nothing.
type testHooks struct {
	// beforeCall, if set, runs after a call's start is stamped and before
	// the request goes out; afterCall after the answer came and before it
	// is recorded. Blocking in either is a pause of the process at the
	// worst moment. Set them before Start.
	beforeCall func(op string)
	afterCall  func(op string)
	// crashed makes every call fail at once without reaching the API
	// server, and without being recorded: the process is gone.
	crashed atomic.Bool
}

// observedLock is the resourcelock.Interface that client-go's
// LeaderElector drives. It passes every call to the Lease lock and tells
// the tracker what each call showed; it bounds each call with its own
// time-out; and it refuses to release a Lease that names someone else.
// Like the lock it wraps, it is used by one LeaderElector at a time.
type observedLock struct {
	inner   rl.Interface
	tracker *tracker
	clock   clock.PassiveClock
	timeout time.Duration
	hooks   *testHooks

	// holder is the identity the Lease named when this lock last read or
	// wrote it, if known.
	holder string
	known  bool
}

var _ rl.Interface = (*observedLock)(nil)

// Get reads the Lease.
func (l *observedLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	callCtx, cancel, start, err := l.begin(ctx, "get")
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	record, raw, err := l.inner.Get(callCtx)
	l.answered("get")
	switch {
	case err == nil:
		raw = preciseRaw(raw, record)
		l.holder, l.known = record.HolderIdentity, true
		l.tracker.record(start, l.outcomeOf(record.HolderIdentity), record.HolderIdentity, nil)
	case apierrors.IsNotFound(err):
		l.holder, l.known = "", true
		l.tracker.record(start, outcomeVacant, "", nil)
	default:
		l.failed(ctx, callCtx, start, err)
	}
	// client-go tells a missing Lease by this very error: pass it on as is.
	return record, raw, err //nolint:wrapcheck // a transparent decorator
}

// Create creates the Lease naming this replica.
func (l *observedLock) Create(ctx context.Context, record rl.LeaderElectionRecord) error {
	callCtx, cancel, start, err := l.begin(ctx, "create")
	if err != nil {
		return err
	}
	defer cancel()
	err = l.inner.Create(callCtx, record)
	l.answered("create")
	if err != nil {
		l.failed(ctx, callCtx, start, err)
		return err //nolint:wrapcheck // a transparent decorator
	}
	l.written(start, record)
	return nil
}

// Update writes the Lease: a renewal or acquisition when the record names
// this replica, a release when it names nobody. client-go releases after a
// term that ended without observing the Lease (a failed renewal, or a
// pause of the process), and its check that the Lease is ours then uses
// what it saw before; this lock refuses a release unless the Lease named
// this replica when it was last read, so that a replica resuming from a
// pause cannot clear the Lease of the replica that took over meanwhile.
func (l *observedLock) Update(ctx context.Context, record rl.LeaderElectionRecord) error {
	if record.HolderIdentity == "" && (!l.known || l.holder != l.Identity()) {
		return fmt.Errorf("%w (Lease %s names %q)", errNotOurs, l.Describe(), l.holder)
	}
	callCtx, cancel, start, err := l.begin(ctx, "update")
	if err != nil {
		return err
	}
	defer cancel()
	err = l.inner.Update(callCtx, record)
	l.answered("update")
	if err != nil {
		l.failed(ctx, callCtx, start, err)
		// client-go retries a release on this very conflict error.
		return err //nolint:wrapcheck // a transparent decorator
	}
	l.written(start, record)
	return nil
}

// RecordEvent passes an election event on.
func (l *observedLock) RecordEvent(s string) { l.inner.RecordEvent(s) }

// Identity is this replica's identity.
func (l *observedLock) Identity() string { return l.inner.Identity() }

// Describe names the Lease.
func (l *observedLock) Describe() string { return l.inner.Describe() }

// begin stamps a call's start and bounds it with the call time-out.
func (l *observedLock) begin(ctx context.Context, op string) (context.Context, context.CancelFunc, time.Time, error) {
	start := l.clock.Now()
	if l.hooks != nil {
		if l.hooks.crashed.Load() {
			return nil, nil, start, errCrashed
		}
		if l.hooks.beforeCall != nil {
			l.hooks.beforeCall(op)
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, l.timeout)
	return callCtx, cancel, start, nil
}

// preciseRaw returns the raw record that client-go compares with the one it
// saw before, to tell whether the leader renewed: it restarts its
// LeaseDuration countdown only when they differ. client-go's raw record
// holds RenewTime in whole seconds (metav1.Time), so a renewal in the same
// second as the one before looks like no renewal, and a standby's countdown
// can start up to a second before the leader's last renewal: with a 3s
// LeaseDuration and a 2s RenewDeadline, that is the whole margin between
// the old leader's last Leading instant and the standby's takeover. The
// Lease keeps RenewTime in microseconds; appending it makes every renewal
// visible.
func preciseRaw(raw []byte, record *rl.LeaderElectionRecord) []byte {
	precise := make([]byte, 0, len(raw)+40)
	precise = append(precise, raw...)
	precise = append(precise, " renewTime="...)
	return record.RenewTime.UTC().AppendFormat(precise, time.RFC3339Nano)
}

// answered runs the afterCall hook, if any.
func (l *observedLock) answered(op string) {
	if l.hooks != nil && l.hooks.afterCall != nil {
		l.hooks.afterCall(op)
	}
}

// written records a successful Create or Update of record.
func (l *observedLock) written(start time.Time, record rl.LeaderElectionRecord) {
	l.holder, l.known = record.HolderIdentity, true
	o := outcomeRenewed
	if record.HolderIdentity != l.Identity() {
		o = outcomeReleased
	}
	l.tracker.record(start, o, record.HolderIdentity, nil)
}

// failed records a failed call. A call given up by its caller (client-go's
// renew deadline, or shutdown) says nothing about the API server and is not
// recorded; one that ran out of its own time-out, or got no answer or a 5xx
// answer, is an outage; any other answer is a rejection.
func (l *observedLock) failed(parent, call context.Context, start time.Time, err error) {
	switch {
	case parent.Err() != nil:
		return
	case call.Err() != nil || unreachable(err):
		l.tracker.record(start, outcomeUnreachable, "", err)
	default:
		l.tracker.record(start, outcomeRejected, "", err)
	}
}

// outcomeOf classifies a Lease read that names holderName.
func (l *observedLock) outcomeOf(holderName string) outcome {
	switch holderName {
	case "":
		return outcomeVacant
	case l.Identity():
		return outcomeOwnRecord
	default:
		return outcomeOtherHolder
	}
}

// unreachable reports whether err means the API server did not answer, or
// answered with a server error (5xx): then no replica can write the Lease
// through it.
func unreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code >= http.StatusInternalServerError
	}
	return true
}
