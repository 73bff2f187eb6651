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

import "time"

// outcome is what one call on the election Lease told this replica.
type outcome int

const (
	// outcomeNone: no call has completed yet.
	outcomeNone outcome = iota
	// outcomeRenewed: a Create or Update naming this replica succeeded; it
	// acquired or renewed the Lease.
	outcomeRenewed
	// outcomeOwnRecord: a Get found the Lease naming this replica.
	outcomeOwnRecord
	// outcomeVacant: a Get found the Lease naming nobody, or no Lease.
	outcomeVacant
	// outcomeOtherHolder: a Get found the Lease naming another replica.
	outcomeOtherHolder
	// outcomeReleased: this replica's release (an Update naming nobody)
	// succeeded.
	outcomeReleased
	// outcomeRejected: the API server answered with an error that is not a
	// 5xx (a conflict, forbidden, not found on update, ...). The API server
	// is up, so somebody else may be able to write the Lease.
	outcomeRejected
	// outcomeUnreachable: no answer (connection refused or reset, the call's
	// own time-out) or a 5xx answer. Nobody can write the Lease through an
	// API server in that state.
	outcomeUnreachable
)

// holder is who the election Lease named when this replica last learnt it.
type holder int

const (
	// holderNone: nobody, or not known yet.
	holderNone holder = iota
	// holderSelf: this replica.
	holderSelf
	// holderOther: another replica.
	holderOther
)

// inputs is everything the verdict depends on besides the time. All times
// are the starts of calls, read from the monotonic clock: a call that
// started before a pause of the process is old news when its answer arrives
// after it, whatever that answer is.
type inputs struct {
	// lastRenewal is the start of the last call that acquired or renewed
	// the Lease; zero once the Lease is known to name somebody else or
	// nobody.
	lastRenewal time.Time
	// lastAttempt is the start of the last call that completed, and
	// outcome what it told.
	lastAttempt time.Time
	outcome     outcome
	// holder is who the Lease named when this replica last learnt it.
	holder holder
	// deposed: another holder was observed after this replica held the
	// Lease, and this replica has not led since.
	deposed bool
	// steppingDown: the elector is shutting down and about to release the
	// Lease; stopped: it has stopped.
	steppingDown bool
	stopped      bool
}

// verdict is what this replica may do at one instant.
type verdict struct {
	leading       bool
	mayRenewHolds bool
	role          Role
}

// decide returns what this replica may do at now. It is a pure function of
// its arguments:
//
//   - leading: the Lease names this replica and this replica renewed it
//     successfully less than renewDeadline ago, and it is not shutting down;
//   - mayRenewHolds: leading, or the Lease names this replica and the last
//     call, started less than renewDeadline ago, could not reach the API
//     server (or found the Lease still naming this replica, the first half of
//     a renewal);
//   - role: the one word for the state, for logs and status.
func decide(in inputs, now time.Time, renewDeadline time.Duration) verdict {
	if in.stopped {
		return verdict{role: RoleStopped}
	}
	fresh := func(t time.Time) bool {
		if t.IsZero() {
			return false
		}
		age := now.Sub(t)
		return age >= 0 && age < renewDeadline
	}
	ours := in.holder == holderSelf
	renewed := ours && fresh(in.lastRenewal)
	outage := ours && fresh(in.lastAttempt) &&
		(in.outcome == outcomeUnreachable || in.outcome == outcomeOwnRecord)

	v := verdict{
		leading:       renewed && !in.steppingDown,
		mayRenewHolds: renewed || outage,
	}
	switch {
	case in.steppingDown:
		v.role = RoleSteppingDown
	case v.leading:
		v.role = RoleLeading
	case v.mayRenewHolds:
		v.role = RoleOutage
	case in.deposed:
		v.role = RoleDeposed
	default:
		v.role = RoleStandby
	}
	return v
}

// nextChange returns the first instant after now at which decide's answer
// can change by the passage of time alone, or the zero time if it cannot.
func nextChange(in inputs, now time.Time, renewDeadline time.Duration) time.Time {
	var next time.Time
	for _, t := range []time.Time{in.lastRenewal, in.lastAttempt} {
		if t.IsZero() {
			continue
		}
		if expiry := t.Add(renewDeadline); expiry.After(now) && (next.IsZero() || expiry.Before(next)) {
			next = expiry
		}
	}
	return next
}
