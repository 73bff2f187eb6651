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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// fakeLock is a resourcelock.Interface whose calls are function fields.
type fakeLock struct {
	get    func(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error)
	update func(ctx context.Context, record rl.LeaderElectionRecord) error
	create func(ctx context.Context, record rl.LeaderElectionRecord) error
}

var _ rl.Interface = &fakeLock{}

func (f *fakeLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	return f.get(ctx)
}
func (f *fakeLock) Create(ctx context.Context, r rl.LeaderElectionRecord) error {
	return f.create(ctx, r)
}
func (f *fakeLock) Update(ctx context.Context, r rl.LeaderElectionRecord) error {
	return f.update(ctx, r)
}
func (f *fakeLock) RecordEvent(string) {}
func (f *fakeLock) Identity() string   { return "me" }
func (f *fakeLock) Describe() string   { return "ns/lease" }

func holding(name string) func(context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	return func(context.Context) (*rl.LeaderElectionRecord, []byte, error) {
		return &rl.LeaderElectionRecord{HolderIdentity: name}, []byte(name), nil
	}
}

func succeed(context.Context, rl.LeaderElectionRecord) error { return nil }

func failWith(err error) func(context.Context, rl.LeaderElectionRecord) error {
	return func(context.Context, rl.LeaderElectionRecord) error { return err }
}

// newObservedLock returns an observedLock around inner whose tracker (for
// identity "me", on the real clock) has just renewed the Lease 5s ago, so
// only the outcome of the next call decides MayRenewHolds.
func newObservedLock(inner *fakeLock) *observedLock {
	tr := newTracker(clock.RealClock{}, "me", "ns/lease", DefaultRenewDeadline, false)
	tr.record(time.Now().Add(-5*time.Second), outcomeRenewed, "me", nil)
	return &observedLock{inner: inner, tracker: tr, clock: clock.RealClock{}, timeout: 50 * time.Millisecond, hooks: &testHooks{}}
}

var leases = schema.GroupResource{Group: coordinationv1.GroupName, Resource: "leases"}

func TestObservedLockClassifiesFailedRenewals(t *testing.T) {
	cases := map[string]struct {
		err  error
		ctx  func() (context.Context, context.CancelFunc)
		hang bool
		// wantMayRenew is MayRenewHolds after the failed Update; wantRecorded
		// whether the call was recorded at all.
		wantMayRenew bool
		wantRecorded bool
	}{
		"connection refused is an outage": {
			err:          &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")},
			wantMayRenew: true, wantRecorded: true,
		},
		"a 503 is an outage": {
			err:          apierrors.NewServiceUnavailable("etcd is down"),
			wantMayRenew: true, wantRecorded: true,
		},
		"a 504 time-out is an outage": {
			err:          apierrors.NewTimeoutError("etcd did not answer", 1),
			wantMayRenew: true, wantRecorded: true,
		},
		"no answer within the call time-out is an outage": {
			hang:         true,
			wantMayRenew: true, wantRecorded: true,
		},
		"a conflict shows the API server is up: no outage": {
			err:          apierrors.NewConflict(leases, "lease", errors.New("changed")),
			wantMayRenew: false, wantRecorded: true,
		},
		"forbidden shows the API server is up: no outage": {
			err:          apierrors.NewForbidden(leases, "lease", errors.New("RBAC")),
			wantMayRenew: false, wantRecorded: true,
		},
		"throttling (429) shows the API server is up: no outage": {
			err:          apierrors.NewTooManyRequests("slow down", 1),
			wantMayRenew: false, wantRecorded: true,
		},
		"a call its caller gave up says nothing": {
			err: context.Canceled,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantMayRenew: false, wantRecorded: false,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			update := failWith(tc.err)
			if tc.hang {
				update = func(ctx context.Context, _ rl.LeaderElectionRecord) error {
					<-ctx.Done()
					return ctx.Err()
				}
			}
			l := newObservedLock(&fakeLock{update: update})
			before := l.tracker.status().LastAttempt
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			if err := l.Update(ctx, rl.LeaderElectionRecord{HolderIdentity: "me"}); err == nil {
				t.Fatal("Update succeeded")
			}
			s := l.tracker.status()
			if recorded := !s.LastAttempt.Equal(before); recorded != tc.wantRecorded {
				t.Errorf("recorded = %v, want %v", recorded, tc.wantRecorded)
			}
			if s.MayRenewHolds != tc.wantMayRenew || s.Leading {
				t.Errorf("after the failed renewal: %s", s)
			}
		})
	}
}

func TestObservedLockClassifiesReads(t *testing.T) {
	cases := map[string]struct {
		get      func(context.Context) (*rl.LeaderElectionRecord, []byte, error)
		wantRole Role
		holder   string
	}{
		"a Lease naming this replica: the first half of a renewal": {get: holding("me"), wantRole: RoleOutage, holder: "me"},
		"a Lease naming another replica: deposed":                  {get: holding("you"), wantRole: RoleDeposed, holder: "you"},
		"a released Lease: standing by":                            {get: holding(""), wantRole: RoleStandby},
		"no Lease: standing by": {
			get: func(context.Context) (*rl.LeaderElectionRecord, []byte, error) {
				return nil, nil, apierrors.NewNotFound(leases, "lease")
			},
			wantRole: RoleStandby,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			l := newObservedLock(&fakeLock{get: tc.get})
			_, _, err := l.Get(context.Background())
			if err != nil && !apierrors.IsNotFound(err) {
				t.Fatalf("Get: %v", err)
			}
			if s := l.tracker.status(); s.Role != tc.wantRole || s.Holder != tc.holder {
				t.Errorf("role %s, holder %q; want %s, %q", s.Role, s.Holder, tc.wantRole, tc.holder)
			}
		})
	}
}

// client-go's release checks that the Lease is its own against the record it
// saw before a pause; the lock checks against the Lease as read just before.
func TestObservedLockReleasesOnlyALeaseThatNamesThisReplica(t *testing.T) {
	cases := map[string]struct {
		lastRead    func(context.Context) (*rl.LeaderElectionRecord, []byte, error)
		wantRelease bool
	}{
		"a Lease read as ours is released": {lastRead: holding("me"), wantRelease: true},
		"a Lease read as another's is not": {lastRead: holding("you")},
		"a Lease never read is not":        {},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			released := false
			l := newObservedLock(&fakeLock{get: tc.lastRead, update: func(_ context.Context, r rl.LeaderElectionRecord) error {
				released = r.HolderIdentity == ""
				return nil
			}})
			if tc.lastRead != nil {
				if _, _, err := l.Get(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			err := l.Update(context.Background(), rl.LeaderElectionRecord{})
			if released != tc.wantRelease || (err == nil) != tc.wantRelease {
				t.Errorf("released = %v, err = %v; want released = %v", released, err, tc.wantRelease)
			}
			if !tc.wantRelease && !errors.Is(err, errNotOurs) {
				t.Errorf("err = %v, want errNotOurs", err)
			}
		})
	}
}

// client-go restarts a standby's LeaseDuration countdown only when the raw
// record changes; its raw record has RenewTime in whole seconds.
func TestObservedLockShowsEveryRenewalToTheStandby(t *testing.T) {
	second := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var renewed time.Time
	l := newObservedLock(&fakeLock{get: func(context.Context) (*rl.LeaderElectionRecord, []byte, error) {
		// As resourcelock.LeaseLock makes it.
		r := &rl.LeaderElectionRecord{HolderIdentity: "you", LeaseDurationSeconds: 3, RenewTime: metav1.NewTime(renewed)}
		raw, err := json.Marshal(*r)
		return r, raw, err
	}})
	var raws [][]byte
	for _, at := range []time.Duration{100 * time.Millisecond, 600 * time.Millisecond, 600 * time.Millisecond} {
		renewed = second.Add(at)
		_, raw, err := l.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	if bytes.Equal(raws[0], raws[1]) {
		t.Errorf("two renewals 500ms apart in one second read the same: %s", raws[0])
	}
	if !bytes.Equal(raws[1], raws[2]) {
		t.Errorf("one renewal read twice differs: %s, %s", raws[1], raws[2])
	}
}

func TestObservedLockAfterACrashReachesNothing(t *testing.T) {
	called := false
	l := newObservedLock(&fakeLock{
		get:    func(context.Context) (*rl.LeaderElectionRecord, []byte, error) { called = true; return nil, nil, nil },
		update: func(context.Context, rl.LeaderElectionRecord) error { called = true; return nil },
		create: func(context.Context, rl.LeaderElectionRecord) error { called = true; return nil },
	})
	l.hooks.crashed.Store(true)
	_, _, getErr := l.Get(context.Background())
	createErr := l.Create(context.Background(), rl.LeaderElectionRecord{HolderIdentity: "me"})
	updateErr := l.Update(context.Background(), rl.LeaderElectionRecord{HolderIdentity: "me"})
	for _, err := range []error{getErr, createErr, updateErr} {
		if !errors.Is(err, errCrashed) {
			t.Errorf("err = %v, want errCrashed", err)
		}
	}
	if called {
		t.Error("a crashed lock reached the API server")
	}
}

func TestObservedLockCreateAcquires(t *testing.T) {
	l := newObservedLock(&fakeLock{create: succeed})
	if err := l.Create(context.Background(), rl.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	if !l.tracker.verdict().leading {
		t.Errorf("not leading after creating the Lease: %s", l.tracker.status())
	}
}
