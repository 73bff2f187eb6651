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

import "testing"

// TestDecide is the state machine of docs/design.md, row by row. Each row
// is a sentence; the table in the design document lists the same rows.
func TestDecide(t *testing.T) {
	recorded := func(h holdKnown, p podState) observation {
		return observation{recorded: true, hold: h, holderPod: p}
	}
	with := func(o observation, f func(*observation)) observation { f(&o); return o }

	for name, tc := range map[string]struct {
		obs  observation
		want action
	}{
		// A holder is recorded and its hold is confirmed.
		"a running holder with a confirmed hold keeps it": {recorded(holdConfirmed, podRunning), actKeep},
		"a holder that ended is released":                 {recorded(holdConfirmed, podEnded), actRelease},
		"a holder that cannot be read fails closed":       {recorded(holdConfirmed, podUnknown), actFailClosed},
		"a force-release deletes the running holder's pod and keeps holding": {
			with(recorded(holdConfirmed, podRunning), func(o *observation) { o.forceRequested = true }), actEvictHolder},
		"a force-release whose holder pod is already being deleted waits for it": {
			with(recorded(holdConfirmed, podRunning), func(o *observation) { o.forceRequested, o.holderPodDeleting = true, true }), actKeep},
		"a holder past maxHoldDuration has its pod deleted": {
			with(recorded(holdConfirmed, podRunning), func(o *observation) { o.maxHoldExceeded = true }), actEvictHolder},
		"a break releases at once although the holder runs": {
			with(recorded(holdConfirmed, podRunning), func(o *observation) { o.breakRequested = true }), actBreak},
		"deleting the lock waits while the holder runs": {
			with(recorded(holdConfirmed, podRunning), func(o *observation) { o.deleting = true }), actWaitForHolderToEnd},
		"deleting the lock with a break lets it go at once": {
			with(recorded(holdConfirmed, podRunning), func(o *observation) { o.deleting, o.breakRequested = true, true }), actBreak},
		"deleting the lock releases a holder that ended": {
			with(recorded(holdConfirmed, podEnded), func(o *observation) { o.deleting = true }), actRelease},
		"deleting the lock in a terminating namespace still waits for a running holder": {
			with(recorded(holdConfirmed, podRunning), func(o *observation) { o.deleting, o.namespaceTerminating = true, true }),
			actWaitForHolderToEnd},

		// A holder is recorded but its hold cannot be confirmed.
		"a running holder whose renewals fail keeps the lock, uncertain": {recorded(holdUncertain, podRunning), actKeepUncertain},
		"an uncertain hold of a holder that ended is released":           {recorded(holdUncertain, podEnded), actRelease},
		"an uncertain hold can be broken": {
			with(recorded(holdUncertain, podRunning), func(o *observation) { o.breakRequested = true }), actBreak},
		"an uncertain hold of an unreadable holder fails closed": {recorded(holdUncertain, podUnknown), actFailClosed},

		// A holder is recorded but the backend no longer has its hold.
		"a hold gone while the holder runs is lost":            {recorded(holdGone, podRunning), actMarkLost},
		"a hold gone after the holder ended is forgotten":      {recorded(holdGone, podEnded), actForget},
		"a lost hold can be broken":                            {with(recorded(holdGone, podRunning), func(o *observation) { o.breakRequested = true }), actBreak},
		"a lost hold whose holder cannot be read fails closed": {recorded(holdGone, podUnknown), actFailClosed},

		// A recorded hold already found lost.
		"the holder of a lost hold still runs: nothing is granted": {
			with(recorded(holdGone, podRunning), func(o *observation) { o.recordedLost = true }), actStayLost},
		"the holder of a lost hold ended: it is forgotten": {
			with(recorded(holdGone, podEnded), func(o *observation) { o.recordedLost = true }), actForget},
		"a force-release of a lost hold deletes its pod": {
			with(recorded(holdGone, podRunning), func(o *observation) { o.recordedLost, o.forceRequested = true, true }), actEvictHolder},
		"a force-release of a lost hold whose pod is being deleted waits": {
			with(recorded(holdGone, podRunning), func(o *observation) {
				o.recordedLost, o.forceRequested, o.holderPodDeleting = true, true, true
			}), actStayLost},
		"a lost hold can be broken at once": {
			with(recorded(holdGone, podRunning), func(o *observation) { o.recordedLost, o.breakRequested = true, true }), actBreak},
		"a lost hold of an unreadable holder fails closed": {
			with(recorded(holdGone, podUnknown), func(o *observation) { o.recordedLost = true }), actFailClosed},

		// Nobody is recorded.
		"a free lock with a pod in line is granted":  {observation{inBackend: backendFree, waiterReady: true}, actGrant},
		"a free lock with nobody in line stays free": {observation{inBackend: backendFree}, actFree},
		"a hold of ours for a running pod that status does not record is adopted": {
			observation{inBackend: backendOurs, backendPod: podRunning, waiterReady: true}, actAdopt},
		"a hold of ours for a pod that ended is released": {observation{inBackend: backendOurs, backendPod: podEnded}, actReleaseOrphan},
		"a hold of ours for a pod that cannot be read fails closed": {
			observation{inBackend: backendOurs, backendPod: podUnknown, waiterReady: true}, actFailClosed},
		"a hold of someone else is waited for":  {observation{inBackend: backendForeign, waiterReady: true}, actHeldElsewhere},
		"an unreachable backend grants nothing": {observation{inBackend: backendUnavailable, waiterReady: true}, actBackendDown},

		// Deletion with nobody recorded.
		"a deleted lock that nobody holds is finalized": {observation{inBackend: backendFree, deleting: true, waiterReady: true}, actFinalize},
		"a deleted lock held by someone else is finalized without touching that hold": {
			observation{inBackend: backendForeign, deleting: true}, actFinalize},
		"a deleted lock with a hold of ours for a running pod adopts it first (then waits)": {
			observation{inBackend: backendOurs, backendPod: podRunning, deleting: true}, actAdopt},
		"a deleted lock whose backend cannot be reached waits": {
			observation{inBackend: backendUnavailable, deleting: true}, actBackendDown},
		"a deleted lock in a terminating namespace whose backend cannot be reached goes without release": {
			observation{inBackend: backendUnavailable, deleting: true, namespaceTerminating: true}, actFinalizeWithoutRelease},
	} {
		t.Run(name, func(t *testing.T) {
			if got := decide(tc.obs); got != tc.want {
				t.Errorf("decide(%+v) = %v; want %v", tc.obs, got, tc.want)
			}
		})
	}
}

func TestOnlyStepsThatChangeTheBackendOrTheRecordLoop(t *testing.T) {
	for a := actKeep; a <= actFinalizeWithoutRelease; a++ {
		want := a == actRelease || a == actForget || a == actBreak || a == actReleaseOrphan
		if a.loops() != want {
			t.Errorf("%v.loops() = %v; want %v", a, a.loops(), want)
		}
		if a.String() == "" {
			t.Errorf("action %d has no name", int(a))
		}
	}
}

func TestKeyRefusal(t *testing.T) {
	for name, tc := range map[string]struct {
		key   string
		extra []string
		ok    bool
	}{
		"a key under the namespace's own slash prefix":               {key: "team-a/report", ok: true},
		"a key under the namespace's own colon prefix":               {key: "team-a:report", ok: true},
		"a ZooKeeper path under the namespace's own prefix":          {key: "/team-a/locks/report", ok: true},
		"a key in the namespace's own part of the default space":     {key: "distlock/team-a/other", ok: true},
		"another namespace's default key":                            {key: "distlock/team-b/report", ok: false},
		"another namespace's default ZooKeeper path":                 {key: "/distlock/team-b/report", ok: false},
		"another namespace's default key, even if an admin lists it": {key: "distlock/team-b/x", extra: []string{"distlock/"}, ok: false},
		"another namespace's own prefix":                             {key: "team-b/report", ok: false},
		"a prefix of the namespace name is not the namespace":        {key: "team-ab/report", ok: false},
		"a shared key an administrator allows":                       {key: "locks:billing:nightly", extra: []string{"locks:billing:"}, ok: true},
		"a shared key no administrator allowed":                      {key: "locks:billing:nightly", ok: false},
	} {
		t.Run(name, func(t *testing.T) {
			why := keyRefusal(tc.key, "team-a", tc.extra)
			if (why == "") != tc.ok {
				t.Errorf("keyRefusal(%q) = %q; want allowed=%v", tc.key, why, tc.ok)
			}
		})
	}
}
