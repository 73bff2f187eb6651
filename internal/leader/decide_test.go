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
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecide(t *testing.T) {
	const d = DefaultRenewDeadline
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(s float64) time.Time { return now.Add(-time.Duration(s * float64(time.Second))) }

	cases := map[string]struct {
		in   inputs
		want verdict
	}{
		"a replica that has not asked yet stands by": {
			in:   inputs{},
			want: verdict{role: RoleStandby},
		},
		"a replica that renewed 1s ago leads": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(1), lastAttempt: ago(1), outcome: outcomeRenewed},
			want: verdict{leading: true, mayRenewHolds: true, role: RoleLeading},
		},
		"a replica that renewed exactly RenewDeadline ago no longer leads": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(2), lastAttempt: ago(2), outcome: outcomeRenewed},
			want: verdict{role: RoleStandby},
		},
		"a renewal that started after now (clocks mixed up) counts for nothing": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(-1), lastAttempt: ago(-1), outcome: outcomeRenewed},
			want: verdict{role: RoleStandby},
		},
		"failed calls after a fresh renewal do not end leadership before RenewDeadline": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(1.9), lastAttempt: ago(0.1), outcome: outcomeRejected},
			want: verdict{leading: true, mayRenewHolds: true, role: RoleLeading},
		},
		"unreachable API server after the renewal ran out: renew holds only": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(5), lastAttempt: ago(0.5), outcome: outcomeUnreachable},
			want: verdict{mayRenewHolds: true, role: RoleOutage},
		},
		"the Lease read as still ours after the renewal ran out: renew holds only": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(5), lastAttempt: ago(0.5), outcome: outcomeOwnRecord},
			want: verdict{mayRenewHolds: true, role: RoleOutage},
		},
		"an outage answer older than RenewDeadline (a pause) allows nothing": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(5), lastAttempt: ago(2.5), outcome: outcomeUnreachable},
			want: verdict{role: RoleStandby},
		},
		"a rejected call (the API server is up) ends the outage": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(5), lastAttempt: ago(0.1), outcome: outcomeRejected},
			want: verdict{role: RoleStandby},
		},
		"a replica that saw another holder after holding the Lease is deposed": {
			in:   inputs{holder: holderOther, deposed: true, lastAttempt: ago(0.1), outcome: outcomeOtherHolder},
			want: verdict{role: RoleDeposed},
		},
		"a deposed replica cut off from the API server renews nothing": {
			in:   inputs{holder: holderOther, deposed: true, lastAttempt: ago(0.1), outcome: outcomeUnreachable},
			want: verdict{role: RoleDeposed},
		},
		"a standby that never led renews nothing in an outage": {
			in:   inputs{holder: holderOther, lastAttempt: ago(0.1), outcome: outcomeUnreachable},
			want: verdict{role: RoleStandby},
		},
		"a replica that released the Lease stands by": {
			in:   inputs{holder: holderNone, lastAttempt: ago(0.1), outcome: outcomeReleased},
			want: verdict{role: RoleStandby},
		},
		"stepping down with a fresh renewal: no longer leading, still renewing holds": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(0.5), lastAttempt: ago(0.5), outcome: outcomeRenewed, steppingDown: true},
			want: verdict{mayRenewHolds: true, role: RoleSteppingDown},
		},
		"stepping down in an outage: still renewing holds": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(5), lastAttempt: ago(0.1), outcome: outcomeUnreachable, steppingDown: true},
			want: verdict{mayRenewHolds: true, role: RoleSteppingDown},
		},
		"a stopped elector allows nothing": {
			in:   inputs{holder: holderSelf, lastRenewal: ago(0.1), lastAttempt: ago(0.1), outcome: outcomeRenewed, stopped: true},
			want: verdict{role: RoleStopped},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := decide(tc.in, now, d)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(verdict{})); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNextChange(t *testing.T) {
	const d = DefaultRenewDeadline
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		in   inputs
		want time.Time
	}{
		"nothing known: nothing changes with time": {
			in: inputs{},
		},
		"a fresh renewal runs out RenewDeadline after it": {
			in:   inputs{lastRenewal: now.Add(-time.Second), lastAttempt: now.Add(-time.Second)},
			want: now.Add(time.Second),
		},
		"an outage answer runs out after the renewal did": {
			in:   inputs{lastRenewal: now.Add(-5 * time.Second), lastAttempt: now.Add(-500 * time.Millisecond)},
			want: now.Add(1500 * time.Millisecond),
		},
		"the earlier of two future instants comes first": {
			in:   inputs{lastRenewal: now.Add(-1500 * time.Millisecond), lastAttempt: now.Add(-100 * time.Millisecond)},
			want: now.Add(500 * time.Millisecond),
		},
		"instants in the past are no change to wait for": {
			in: inputs{lastRenewal: now.Add(-5 * time.Second), lastAttempt: now.Add(-3 * time.Second)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := nextChange(tc.in, now, d); !got.Equal(tc.want) {
				t.Errorf("nextChange = %v, want %v", got, tc.want)
			}
		})
	}
}
