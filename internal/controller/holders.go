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

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/types"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/keeper"
)

// A lock has up to spec.maxHolders holders, recorded in status.holders. A
// reconcile looks at each recorded holder in turn (the holder in focus: the
// state machine of decide is the same for each), then, with no holder in
// focus, at the holds the backend has that status does not record and at
// the pods to grant while permits are free.

// recorded returns the recorded holder in focus, or nil.
func (lc *lockContext) recorded() *locksv1alpha1.LockHolder {
	if lc.focus == "" {
		return nil
	}
	for i := range lc.lock.Status.Holders {
		if lc.lock.Status.Holders[i].PodUID == lc.focus {
			return &lc.lock.Status.Holders[i]
		}
	}
	return nil
}

// focusOn puts the recorded holder with the given pod UID in focus ("" for
// none) and reads what the keeper knows of its hold.
func (lc *lockContext) focusOn(k *keeper.Keeper, uid types.UID) {
	lc.focus = uid
	lc.kept, lc.keptOK = keeper.Status{}, false
	if uid != "" {
		lc.kept, lc.keptOK = k.Status(lc.holdKey())
	}
}

// holdKey is the keeper's key of the hold in focus.
func (lc *lockContext) holdKey() keeper.Key {
	return keeper.Key{Lock: lc.name, Pod: lc.focus}
}

// recordedUIDs returns the pod UIDs of the recorded holders, oldest hold
// first.
func (lc *lockContext) recordedUIDs() []types.UID {
	uids := make([]types.UID, 0, len(lc.lock.Status.Holders))
	for _, h := range lc.lock.Status.Holders {
		uids = append(uids, h.PodUID)
	}
	return uids
}

// holderUIDs returns the set of the recorded holders' pod UIDs.
func (lc *lockContext) holderUIDs() map[types.UID]bool {
	m := make(map[types.UID]bool, len(lc.lock.Status.Holders))
	for _, h := range lc.lock.Status.Holders {
		m[h.PodUID] = true
	}
	return m
}

// record adds a holder to status (replacing a record of the same pod), keeps
// the list in fencing-token order, puts it in focus and returns it.
func (lc *lockContext) record(rec locksv1alpha1.LockHolder) *locksv1alpha1.LockHolder {
	lc.lock.Status.Holders = slices.DeleteFunc(lc.lock.Status.Holders, func(h locksv1alpha1.LockHolder) bool {
		return h.PodUID == rec.PodUID
	})
	lc.lock.Status.Holders = append(lc.lock.Status.Holders, rec)
	slices.SortStableFunc(lc.lock.Status.Holders, func(a, b locksv1alpha1.LockHolder) int {
		return cmp.Compare(a.FencingToken, b.FencingToken)
	})
	lc.focus = rec.PodUID
	return lc.recorded()
}

// unrecord drops the holder in focus from status and leaves no holder in
// focus.
func (lc *lockContext) unrecord() {
	uid := lc.focus
	lc.lock.Status.Holders = slices.DeleteFunc(lc.lock.Status.Holders, func(h locksv1alpha1.LockHolder) bool {
		return h.PodUID == uid
	})
	lc.focus = ""
}

// hasFreePermit reports whether fewer pods hold the lock than may.
func (lc *lockContext) hasFreePermit() bool {
	return len(lc.lock.Status.Holders) < lc.limit
}

// takenWithOthers reports whether the recorded holders and the holds of
// others that the backend last showed take every permit.
func (lc *lockContext) takenWithOthers() bool {
	return len(lc.lock.Status.Holders)+lc.foreign >= lc.limit
}

// holdsOf lists every hold a backend State reports: a semaphore's holds, or
// a mutex's one.
func holdsOf(st backend.State) []backend.Hold {
	if st.Holds != nil {
		return st.Holds
	}
	if !st.Held {
		return nil
	}
	return []backend.Hold{{Holder: st.Holder, Token: st.Token, TTL: st.TTL}}
}

// stateOfHold is a State that describes one hold.
func stateOfHold(h backend.Hold) backend.State {
	return backend.State{Held: true, Holder: h.Holder, Token: h.Token, TTL: h.TTL}
}

// holding is status.holding: "held/maxHolders".
func holding(lock *locksv1alpha1.DistributedLock) string {
	return fmt.Sprintf("%d/%d", len(lock.Status.Holders), lock.Spec.Holders())
}

// summarizeHolders sets status.holding and, when more than one pod may hold
// the lock or does (a semaphore, or a mutex whose maxHolders was lowered
// while several held), the Held condition for all the holders together:
// the worst of them first, so that no problem of one holder hides behind
// the others. A mutex's single holder keeps the condition its step set.
func (r *DistributedLockReconciler) summarizeHolders(lc *lockContext) {
	lock := lc.lock
	lock.Status.Holding = holding(lock)
	holders := lock.Status.Holders
	if len(holders) == 0 || (lc.limit == 1 && len(holders) == 1) {
		return
	}
	var lost, live []string
	var tokens []string
	for _, h := range holders {
		if h.Lost {
			lost = append(lost, h.Pod)
			continue
		}
		live = append(live, h.Pod)
		tokens = append(tokens, strconv.FormatInt(h.FencingToken, 10))
	}
	permits := fmt.Sprintf("%d of %d permits taken", len(holders)+lc.foreign, lc.limit)
	if lc.foreign > 0 {
		permits += fmt.Sprintf(", %d of them outside this controller", lc.foreign)
	}
	switch {
	case len(lost) > 0:
		r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonLost,
			fmt.Sprintf("The backend lost the holds of pod(s) %s while they still run; their permits stay taken until "+
				"they end or an operator force-releases the lock (%s)", strings.Join(lost, ", "), permits))
	case len(lc.unsure) > 0:
		r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionUnknown, lc.unsureReason,
			fmt.Sprintf("%s (%s)", strings.Join(lc.unsure, "; "), permits))
	default:
		r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionTrue, locksv1alpha1.ReasonGranted,
			fmt.Sprintf("Pod(s) %s hold the lock (%s; fencing tokens %s)", strings.Join(live, ", "), permits,
				strings.Join(tokens, ", ")))
	}
}

// noteUnsure records that the hold of the holder in focus cannot be
// confirmed, for summarizeHolders.
func (lc *lockContext) noteUnsure(reason, msg string) {
	lc.unsure = append(lc.unsure, msg)
	lc.unsureReason = reason
}
