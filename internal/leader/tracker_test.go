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
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

// newTestTracker returns a tracker for identity "me" on a fake clock.
func newTestTracker() (*tracker, *clocktesting.FakePassiveClock) {
	c := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	return newTracker(c, "me", "ns/lease", DefaultRenewDeadline, false), c
}

func step(c *clocktesting.FakePassiveClock, d time.Duration) time.Time {
	c.SetTime(c.Now().Add(d))
	return c.Now()
}

func TestTrackerAnswerThatStartedBeforeAPauseDoesNotMakeTheReplicaLead(t *testing.T) {
	tr, c := newTestTracker()
	tr.record(c.Now(), outcomeRenewed, "me", nil)
	started := step(c, 500*time.Millisecond)
	// Paused for 5s between the start of a renewal and its answer.
	step(c, 5*time.Second)
	if v := tr.verdict(); v.leading || v.mayRenewHolds {
		t.Fatalf("on resume: %+v", v)
	}
	tr.record(started, outcomeRenewed, "me", nil)
	if v := tr.verdict(); v.leading || v.mayRenewHolds {
		t.Errorf("after an answer to a call from before the pause: %+v", v)
	}
	tr.record(started, outcomeUnreachable, "", errors.New("timeout"))
	if v := tr.verdict(); v.leading || v.mayRenewHolds {
		t.Errorf("after a time-out of a call from before the pause: %+v", v)
	}
	tr.record(c.Now(), outcomeRenewed, "me", nil)
	if v := tr.verdict(); !v.leading {
		t.Errorf("after a renewal started after the pause: %+v", v)
	}
}

func TestTrackerEvents(t *testing.T) {
	cases := map[string]struct {
		record func(tr *tracker, c *clocktesting.FakePassiveClock)
		want   []event
	}{
		"acquiring the Lease starts leading once, renewing it does not again": {
			record: func(tr *tracker, c *clocktesting.FakePassiveClock) {
				tr.record(c.Now(), outcomeVacant, "", nil)
				tr.record(c.Now(), outcomeRenewed, "me", nil)
				tr.record(step(c, time.Second), outcomeRenewed, "me", nil)
			},
			want: []event{{kind: eventStartedLeading}},
		},
		"leading again after an outage starts leading again": {
			record: func(tr *tracker, c *clocktesting.FakePassiveClock) {
				tr.record(c.Now(), outcomeRenewed, "me", nil)
				tr.record(step(c, 3*time.Second), outcomeUnreachable, "", errors.New("refused"))
				tr.record(step(c, time.Second), outcomeRenewed, "me", nil)
			},
			want: []event{{kind: eventStartedLeading}, {kind: eventStartedLeading}},
		},
		"seeing another holder after holding the Lease is a deposal": {
			record: func(tr *tracker, c *clocktesting.FakePassiveClock) {
				tr.record(c.Now(), outcomeRenewed, "me", nil)
				tr.record(step(c, 5*time.Second), outcomeOtherHolder, "you", nil)
				tr.record(step(c, time.Second), outcomeOtherHolder, "you", nil)
			},
			want: []event{{kind: eventStartedLeading}, {kind: eventDeposed, holder: "you"}},
		},
		"the Lease deleted and then taken by another replica after this one held it is a deposal": {
			record: func(tr *tracker, c *clocktesting.FakePassiveClock) {
				tr.record(c.Now(), outcomeRenewed, "me", nil)
				tr.record(step(c, time.Second), outcomeVacant, "", nil)
				tr.record(step(c, time.Second), outcomeOtherHolder, "you", nil)
			},
			want: []event{{kind: eventStartedLeading}, {kind: eventDeposed, holder: "you"}},
		},
		"a standby seeing the leader is not deposed": {
			record: func(tr *tracker, c *clocktesting.FakePassiveClock) {
				tr.record(c.Now(), outcomeOtherHolder, "you", nil)
				tr.record(step(c, time.Second), outcomeOtherHolder, "you", nil)
			},
		},
		"a replica that released the Lease is not deposed by the next leader": {
			record: func(tr *tracker, c *clocktesting.FakePassiveClock) {
				tr.record(c.Now(), outcomeRenewed, "me", nil)
				tr.record(step(c, time.Second), outcomeReleased, "", nil)
				tr.record(step(c, time.Second), outcomeOtherHolder, "you", nil)
			},
			want: []event{{kind: eventStartedLeading}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tr, c := newTestTracker()
			tc.record(tr, c)
			if diff := cmp.Diff(tc.want, tr.takeEvents(), cmp.AllowUnexported(event{})); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTrackerChangedIsClosedWhenTheRoleChangesAlsoByTheClock(t *testing.T) {
	tr, c := newTestTracker()
	ch := tr.changes()
	tr.record(c.Now(), outcomeRenewed, "me", nil)
	select {
	case <-ch:
	default:
		t.Fatal("not closed when the replica started leading")
	}
	ch = tr.changes()
	next, changed := tr.refresh()
	if changed || !next.Equal(c.Now().Add(DefaultRenewDeadline)) {
		t.Errorf("refresh = %v, %v; want no change and the next at RenewDeadline", next, changed)
	}
	step(c, DefaultRenewDeadline)
	if _, changed := tr.refresh(); !changed {
		t.Fatal("refresh saw no change when the renewal ran out")
	}
	select {
	case <-ch:
	default:
		t.Fatal("not closed when Leading ran out")
	}
	if got := tr.status().Role; got != RoleStandby {
		t.Errorf("role %s, want %s", got, RoleStandby)
	}
}

func TestStatusString(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	base := Status{Identity: "me", Lease: "ns/lease", At: at}
	with := func(f func(*Status)) Status { s := base; f(&s); return s }
	cases := map[string]struct {
		status Status
		want   string
	}{
		"leading": {
			status: with(func(s *Status) { s.Role, s.LastRenewal = RoleLeading, at.Add(-312*time.Millisecond) }),
			want:   "leading: renewed Lease ns/lease 312ms ago as me",
		},
		"outage": {
			status: with(func(s *Status) {
				s.Role, s.LastRenewal, s.LastAttempt = RoleOutage, at.Add(-4*time.Second), at.Add(-100*time.Millisecond)
				s.LastError = "connection refused"
			}),
			want: "outage: cannot renew Lease ns/lease (last renewed 4s ago); renewing holds only, as me " +
				"(last attempt 100ms ago: connection refused)",
		},
		"deposed": {
			status: with(func(s *Status) { s.Role, s.Holder = RoleDeposed, "you" }),
			want:   "deposed: Lease ns/lease is held by you; holds are left to it",
		},
		"standby before the first read": {
			status: with(func(s *Status) { s.Role = RoleStandby }),
			want:   "standby: Lease ns/lease is held by nobody",
		},
		"stepping down": {
			status: with(func(s *Status) { s.Role, s.LastRenewal = RoleSteppingDown, at.Add(-time.Second) }),
			want:   "stepping down: releasing Lease ns/lease (last renewed 1s ago)",
		},
		"stopped": {
			status: with(func(s *Status) { s.Role = RoleStopped }),
			want:   "stopped: not taking part in the election for Lease ns/lease",
		},
		"disabled": {
			status: Status{Role: RoleDisabled},
			want:   "disabled: leader election is off; this replica acts as the only leader",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.status.String(); got != tc.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestCapErrorKeepsStatusShort(t *testing.T) {
	long := errors.New(string(make([]byte, 10*maxErrorLen)))
	if got := capError(long); len(got) > maxErrorLen+len("…") {
		t.Errorf("capped to %d bytes, want at most %d", len(got), maxErrorLen+len("…"))
	}
	if got := capError(nil); got != "" {
		t.Errorf("capError(nil) = %q", got)
	}
}
