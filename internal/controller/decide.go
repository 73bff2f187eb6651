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

package controller

import "fmt"

// holdKnown is what the controller knows about the hold of the recorded
// holder.
type holdKnown int

const (
	// holdConfirmed: the keeper renews it, or the backend shows exactly it.
	holdConfirmed holdKnown = iota
	// holdUncertain: the keeper's renewals fail for longer than the hold was
	// sure to last, or the backend cannot be asked.
	holdUncertain
	// holdGone: the backend answered that the hold is gone (lost, expired,
	// or someone else's now).
	holdGone
)

func (h holdKnown) String() string {
	return [...]string{"confirmed", "uncertain", "gone"}[h]
}

// podState is what the controller knows about a holder pod.
type podState int

const (
	// podRunning: the pod exists and has not finished; it may be being
	// deleted (its containers still run until it is gone).
	podRunning podState = iota
	// podEnded: the pod finished (Succeeded or Failed) or no longer exists.
	podEnded
	// podUnknown: the pod could not be read.
	podUnknown
)

func (p podState) String() string {
	return [...]string{"running", "ended", "unknown"}[p]
}

// backendSays is what the backend reports about an unrecorded lock.
type backendSays int

const (
	backendFree backendSays = iota
	// backendOurs: the hold of one of this lock's pods (made by this
	// cluster for this DistributedLock).
	backendOurs
	// backendForeign: anyone else (another cluster, another lock on the same
	// key, a program outside Kubernetes).
	backendForeign
	// backendUnavailable: the backend could not be asked.
	backendUnavailable
)

func (b backendSays) String() string {
	return [...]string{"free", "ours", "foreign", "unavailable"}[b]
}

// observation is everything a decision depends on, gathered by observe.
type observation struct {
	// deleting: the DistributedLock has a deletion timestamp.
	deleting bool
	// namespaceTerminating: its namespace is being deleted.
	namespaceTerminating bool
	// breakRequested, forceRequested: the distlock.io/break and
	// distlock.io/force-release annotations are set.
	breakRequested bool
	forceRequested bool

	// recorded: a holder is recorded (in status or in the keeper).
	recorded bool
	// recordedLost: the recorded hold was already found lost.
	recordedLost bool
	// hold: what is known of the recorded hold (when recorded and not lost).
	hold holdKnown
	// holderPod: the state of the recorded holder's pod.
	holderPod podState
	// holderPodDeleting: that pod has a deletion timestamp.
	holderPodDeleting bool
	// maxHoldExceeded: the recorded holder has held longer than
	// spec.maxHoldDuration.
	maxHoldExceeded bool

	// inBackend: what the backend says when nobody is recorded.
	inBackend backendSays
	// backendPod: the state of the pod of an unrecorded hold of ours.
	backendPod podState

	// waiterReady: a pod is first in line and may be granted the lock
	// (observed only when no holder is in focus: grants are decided then).
	waiterReady bool
}

// action is one step the executor takes.
type action int

const (
	// actKeep: the holder runs and its hold is confirmed; keep it.
	actKeep action = iota
	// actKeepUncertain: the holder runs but its hold cannot be confirmed;
	// keep trying, grant nothing, say so in status.
	actKeepUncertain
	// actEvictHolder: delete the holder pod (force-release or
	// maxHoldDuration) and keep holding until it has stopped.
	actEvictHolder
	// actWaitForHolderToEnd: the lock is being deleted; wait until the
	// holder has stopped.
	actWaitForHolderToEnd
	// actRelease: the holder ended; release its hold and look again.
	actRelease
	// actForget: the holder ended and its hold is already gone; forget it
	// and look again.
	actForget
	// actMarkLost: the backend lost the hold while the holder runs: report
	// it, grant nothing until the holder ends.
	actMarkLost
	// actStayLost: the holder of a lost hold still runs; grant nothing.
	actStayLost
	// actBreak: break the hold at once (distlock.io/break) and look again.
	actBreak
	// actFailClosed: the holder pod cannot be read; grant and release
	// nothing.
	actFailClosed
	// actAdopt: the backend holds the lock for one of this lock's running
	// pods that status does not record (a restart between acquiring and
	// recording); take it over.
	actAdopt
	// actReleaseOrphan: the backend holds the lock for one of this lock's
	// pods that has ended; release it and look again.
	actReleaseOrphan
	// actHeldElsewhere: someone outside this controller holds the lock.
	actHeldElsewhere
	// actBackendDown: the backend cannot be asked; grant nothing.
	actBackendDown
	// actGrant: acquire the lock for the first pod in line.
	actGrant
	// actFree: nobody holds the lock and nobody may be granted it.
	actFree
	// actFinalize: the lock is being deleted and nothing of ours is held:
	// clean up and let the object go.
	actFinalize
	// actFinalizeWithoutRelease: the lock's namespace is being deleted and
	// the backend cannot be used: let the object go; any hold expires by
	// its TTL.
	actFinalizeWithoutRelease
)

var actionNames = [...]string{
	"Keep", "KeepUncertain", "EvictHolder", "WaitForHolderToEnd", "Release", "Forget", "MarkLost", "StayLost",
	"Break", "FailClosed", "Adopt", "ReleaseOrphan", "HeldElsewhere", "BackendDown", "Grant", "Free", "Finalize",
	"FinalizeWithoutRelease",
}

func (a action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// loops reports whether, after the executor has taken the action, the
// controller observes again and decides the next step in the same
// reconcile.
func (a action) loops() bool {
	switch a {
	case actRelease, actForget, actBreak, actReleaseOrphan:
		return true
	}
	return false
}

// decide is the state machine of docs/design.md: one observation in, one
// action out. It has no side effects; the table in decide_test.go is the
// specification, row by row.
//
// Its rules, in order of priority: never let two pods hold the lock (grant
// only when the backend is known to be free of every other hold), never
// drop a hold whose holder may still run (unless an operator breaks it),
// and never leave a lock stuck (release the holds of pods that ended).
func decide(o observation) action {
	if o.recorded {
		return decideRecorded(o)
	}
	switch o.inBackend {
	case backendOurs:
		switch o.backendPod {
		case podRunning:
			return actAdopt
		case podEnded:
			return actReleaseOrphan
		default:
			return actFailClosed
		}
	case backendForeign:
		if o.deleting {
			return actFinalize // not ours to release or remove
		}
		return actHeldElsewhere
	case backendUnavailable:
		if o.deleting && o.namespaceTerminating {
			return actFinalizeWithoutRelease
		}
		return actBackendDown
	}
	// The backend is free.
	switch {
	case o.deleting:
		return actFinalize
	case o.waiterReady:
		return actGrant
	default:
		return actFree
	}
}

// decideRecorded decides for a lock with a recorded holder.
func decideRecorded(o observation) action {
	if o.holderPod == podUnknown {
		return actFailClosed
	}
	ended := o.holderPod == podEnded
	if o.recordedLost {
		switch {
		case ended:
			return actForget
		case o.breakRequested:
			return actBreak
		case o.forceRequested && !o.holderPodDeleting:
			return actEvictHolder
		default:
			return actStayLost
		}
	}
	switch o.hold {
	case holdGone:
		switch {
		case ended:
			return actForget
		case o.breakRequested:
			return actBreak
		default:
			return actMarkLost
		}
	case holdUncertain:
		switch {
		case ended:
			return actRelease
		case o.breakRequested:
			return actBreak
		default:
			return actKeepUncertain
		}
	}
	// The hold is confirmed.
	switch {
	case ended:
		return actRelease
	case o.breakRequested:
		return actBreak
	case (o.forceRequested || o.maxHoldExceeded) && !o.holderPodDeleting:
		return actEvictHolder
	case o.deleting:
		return actWaitForHolderToEnd
	default:
		return actKeep
	}
}
