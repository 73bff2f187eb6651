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

// Package history checks what lock holders did, independently of the
// controller that granted the locks: holders record when they enter and
// leave their critical section and with which fencing token (Recorder, an
// O_APPEND file that does not go through the controller), waiters record
// when they asked and when they were granted, and a fault driver records
// when each fault was injected and healed. Check then reports every
// violation of what a lock promises:
//
//   - more live holders of one lock than it allows (two, for a mutex);
//   - a fencing token at or below an earlier one for the same lock;
//   - a waiter that asked but was never granted by the end of the history;
//   - for each healed fault, the time from the heal to the next grant.
//
// It is the checker of the fault tests, in the style of Jepsen's and etcd's
// robustness checkers: the history is the evidence, not the controller's
// own account.
package history

import "time"

// Kind is what an Event records.
type Kind string

// The kinds of Event.
const (
	// Enter: Holder entered its critical section on Lock with Token.
	Enter Kind = "enter"
	// Exit: Holder left it (finished, or learnt that its hold was lost).
	Exit Kind = "exit"
	// Request: Holder (a waiter) asked for Lock.
	Request Kind = "request"
	// Grant: Holder was granted Lock with Token.
	Grant Kind = "grant"
	// Cancel: Holder stopped waiting for Lock without being granted it
	// (its pod was deleted while it waited).
	Cancel Kind = "cancel"
	// Fault: a fault named Holder was injected; Heal: it was healed.
	Fault Kind = "fault"
	Heal  Kind = "heal"
)

// Event is one line of a history.
type Event struct {
	Kind Kind `json:"kind"`
	// Lock names the lock (for faults: empty, or the lock the fault is
	// about).
	Lock string `json:"lock,omitempty"`
	// Holder names the pod or program (for faults: the fault).
	Holder string `json:"holder"`
	// Token is the fencing token of Enter and Grant; 0 means the holder has
	// none (a program outside Kubernetes using a plain recipe), and such
	// an Enter counts for overlaps only.
	Token int64 `json:"token,omitempty"`
	// At is when it happened, by the clock of the machine all the
	// recorders share.
	At time.Time `json:"at"`
}
