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
	"fmt"
	"strings"
	"time"
)

// Role is one word for what a replica is doing in the election.
type Role string

const (
	// RoleDisabled means leader election is off: the replica acts as the
	// only leader (Leading and MayRenewHolds are always true).
	RoleDisabled Role = "disabled"
	// RoleStandby means not leading, waiting to take the election Lease.
	RoleStandby Role = "standby"
	// RoleLeading means this replica renewed the election Lease less than
	// RenewDeadline ago.
	RoleLeading Role = "leading"
	// RoleOutage means not leading, because the API server cannot be
	// reached, but still the last known holder of the election Lease: holds
	// are renewed, nothing else is done.
	RoleOutage Role = "outage"
	// RoleDeposed means another replica was seen holding the election Lease
	// after this one held it.
	RoleDeposed Role = "deposed"
	// RoleSteppingDown means the elector is shutting down and will release
	// the election Lease shortly; nothing but renewals of holds is done.
	RoleSteppingDown Role = "stepping-down"
	// RoleStopped means the elector has stopped.
	RoleStopped Role = "stopped"
)

// maxErrorLen caps the error text kept in a Status, which ends up in
// conditions and Events.
const maxErrorLen = 256

// Status is a snapshot of an elector's state, for logs, conditions and
// Events. Times are read from the monotonic clock of this process.
type Status struct {
	// Role is one word for the state.
	Role Role
	// Identity is this replica's identity in the election Lease.
	Identity string
	// Lease is the election Lease as namespace/name (empty when disabled).
	Lease string
	// Holder is the identity the election Lease named when this replica
	// last learnt it; empty when it named nobody or is not known yet.
	Holder string
	// Leading and MayRenewHolds are the answers of Elector.Leading and
	// Elector.MayRenewHolds at At.
	Leading       bool
	MayRenewHolds bool
	// LastRenewal is the start of the last call that acquired or renewed
	// the election Lease; zero once the Lease is known to name somebody
	// else or nobody, and before the first.
	LastRenewal time.Time
	// LastAttempt is the start of the last call on the election Lease that
	// completed; zero if none has.
	LastAttempt time.Time
	// LastError is the error of that call, if it failed (capped in length).
	LastError string
	// At is when the snapshot was taken.
	At time.Time
}

// String describes the state in one line, e.g.
// "leading: renewed Lease ns/manager.distlock.io 312ms ago as host_1f2e…".
func (s Status) String() string {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return s.At.Sub(t).Round(time.Millisecond).String() + " ago"
	}
	holder := s.Holder
	if holder == "" {
		holder = "nobody"
	}
	var b strings.Builder
	switch s.Role {
	case RoleDisabled:
		b.WriteString("disabled: leader election is off; this replica acts as the only leader")
	case RoleLeading:
		fmt.Fprintf(&b, "leading: renewed Lease %s %s as %s", s.Lease, ago(s.LastRenewal), s.Identity)
	case RoleOutage:
		fmt.Fprintf(&b, "outage: cannot renew Lease %s (last renewed %s); renewing holds only, as %s",
			s.Lease, ago(s.LastRenewal), s.Identity)
	case RoleDeposed:
		fmt.Fprintf(&b, "deposed: Lease %s is held by %s; holds are left to it", s.Lease, holder)
	case RoleSteppingDown:
		fmt.Fprintf(&b, "stepping down: releasing Lease %s (last renewed %s)", s.Lease, ago(s.LastRenewal))
	case RoleStopped:
		fmt.Fprintf(&b, "stopped: not taking part in the election for Lease %s", s.Lease)
	default:
		fmt.Fprintf(&b, "%s: Lease %s is held by %s", s.Role, s.Lease, holder)
	}
	if s.LastError != "" {
		fmt.Fprintf(&b, " (last attempt %s: %s)", ago(s.LastAttempt), s.LastError)
	}
	return b.String()
}

// capError returns err's text, capped at maxErrorLen bytes.
func capError(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if len(msg) > maxErrorLen {
		msg = strings.ToValidUTF8(msg[:maxErrorLen], "") + "…"
	}
	return msg
}
