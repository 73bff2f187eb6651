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
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/keeper"
	"github.com/distlock/distlock/internal/metrics"
)

// apply performs one decided action: the thin layer of side effects around
// decide.
func (r *DistributedLockReconciler) apply(ctx context.Context, lc *lockContext, act action) result {
	if !r.leading() {
		// Leadership lapsed during this reconcile (a pause, an API server
		// outage): touch nothing; the new leader, or this replica once it
		// leads again, looks at every lock.
		lc.stale = true
		return result{}
	}
	r.setBackendCondition(lc)
	switch act {
	case actKeep:
		return r.keep(ctx, lc)
	case actKeepUncertain:
		return r.keepUncertain(lc)
	case actEvictHolder:
		return r.evictHolder(ctx, lc)
	case actWaitForHolderToEnd:
		return r.waitForHolderToEnd(ctx, lc)
	case actRelease:
		return r.release(ctx, lc)
	case actForget:
		return r.forget(ctx, lc)
	case actMarkLost:
		return r.markLost(ctx, lc)
	case actStayLost:
		return r.stayLost(lc)
	case actBreak:
		return r.breakHold(ctx, lc)
	case actFailClosed:
		return r.failClosed(lc)
	case actAdopt:
		return r.adopt(ctx, lc)
	case actReleaseOrphan:
		return r.releaseOrphan(ctx, lc)
	case actHeldElsewhere, actGrant:
		return r.grant(ctx, lc)
	case actBackendDown:
		return r.backendDown(lc)
	case actFree:
		return r.free(ctx, lc)
	case actFinalize:
		return r.finalize(ctx, lc)
	case actFinalizeWithoutRelease:
		return r.finalizeWithoutRelease(ctx, lc)
	}
	return result{err: fmt.Errorf("unknown action %v", act)}
}

// keep makes sure the keeper renews the recorded hold, and reports it held.
func (r *DistributedLockReconciler) keep(ctx context.Context, lc *lockContext) result {
	rec := lc.recorded()
	if (!lc.keptOK || lc.kept.Lease.Token != rec.FencingToken) && lc.renewed != nil {
		// A hold this replica does not keep yet (a restart or a failover):
		// observe has just renewed it.
		r.keepHold(lc, rec, *lc.renewed, lc.renewedAt, lc.holderPod)
	}
	// No expiry is shown while renewals succeed: nothing in status changes
	// per renewal, so a held lock costs no status write.
	rec.LeaseExpiresAt = nil
	r.setHeld(lc.lock, rec)
	r.annotateHolder(ctx, lc, lc.holderPod, rec.FencingToken)
	return result{requeueAfter: r.nextLook(lc, rec)}
}

// nextLook is when a held lock must be looked at again without an event: 0
// (never) unless its holder reaches maxHoldDuration, or its holder left the
// pod cache (its label was removed), whose end sends this controller no
// event. Pod events, the keeper (a hold changed phase) and the elector bring
// every other change.
func (r *DistributedLockReconciler) nextLook(lc *lockContext, rec *locksv1alpha1.LockHolder) time.Duration {
	var next time.Duration
	if _, cached := lc.line.Pod(lc.name, rec.PodUID); !cached {
		next = keeper.RenewInterval(holdTTL(rec, lc.ttl))
	}
	if max := lc.lock.Spec.MaxHoldDuration; max != nil {
		if left := rec.AcquiredAt.Add(max.Duration).Sub(r.now()); left > 0 && (next == 0 || left < next) {
			next = left
		}
	}
	return next
}

// keepHold hands a confirmed hold to the keeper.
func (r *DistributedLockReconciler) keepHold(lc *lockContext, rec *locksv1alpha1.LockHolder, lease backend.Lease,
	confirmedAt time.Time, pod *corev1.Pod) {
	h := keeper.Hold{
		Lock: lc.name, Pod: rec.Pod, PodUID: rec.PodUID, AcquiredAt: rec.AcquiredAt.Time,
		Lease: lease, TTL: holdTTL(rec, lc.ttl), Backend: lc.lock.Spec.Backend.Name(), ConfirmedAt: confirmedAt,
		Conn: lc.conn.Clone(),
	}
	if pod != nil {
		h.Pod, h.PodUID = pod.Name, pod.UID
	}
	r.Keeper.Keep(h)
}

func (r *DistributedLockReconciler) keepUncertain(lc *lockContext) result {
	rec := lc.recorded()
	if lc.keptOK && lc.kept.Lease.Token == rec.FencingToken {
		rec.LeaseExpiresAt = expiryOf(lc.kept.ValidUntil)
	}
	msg := fmt.Sprintf("Pod %s holds the lock (fencing token %d), but the hold could not be renewed for longer than it is sure "+
		"to last (%s); the controller keeps the holder, keeps trying, and grants nothing in its place until it knows",
		rec.Pod, rec.FencingToken, errMessage(lc.holdErr))
	r.setCondition(lc.lock, locksv1alpha1.ConditionHeld, metav1.ConditionUnknown, locksv1alpha1.ReasonRenewalFailing, msg)
	lc.noteUnsure(locksv1alpha1.ReasonRenewalFailing, msg)
	return result{requeueAfter: r.retryInterval()}
}

// evictHolder deletes the holder pod after a force-release or past
// maxHoldDuration. The lock stays held until the pod has stopped.
func (r *DistributedLockReconciler) evictHolder(ctx context.Context, lc *lockContext) result {
	rec := lc.recorded()
	lock, pod := lc.lock, lc.holderPod
	if reason := lock.Annotations[locksv1alpha1.ForceReleaseAnnotation]; reason != "" {
		r.eventf(lock, pod, corev1.EventTypeWarning, locksv1alpha1.ReasonForceReleaseRequested, "ForceRelease",
			"An operator force-released the lock (%s): deleting holder pod %s; the lock passes on once it has stopped",
			capValue(reason), rec.Pod)
	} else {
		r.eventf(lock, pod, corev1.EventTypeWarning, locksv1alpha1.ReasonMaxHoldExceeded, "Evict",
			"Pod %s held the lock for longer than maxHoldDuration %s; deleting the pod. The lock passes on once it has stopped",
			rec.Pod, lock.Spec.MaxHoldDuration.Duration)
	}
	if err := r.deletePod(ctx, pod); err != nil {
		logf.FromContext(ctx).Error(err, "deleting the holder pod", "pod", rec.Pod)
		return r.after(r.keepOrStayLost(ctx, lc), r.retryInterval())
	}
	return r.keepOrStayLost(ctx, lc)
}

func (r *DistributedLockReconciler) keepOrStayLost(ctx context.Context, lc *lockContext) result {
	if lc.recorded().Lost {
		return r.stayLost(lc)
	}
	return r.keep(ctx, lc)
}

// after shortens res's requeue to d.
func (r *DistributedLockReconciler) after(res result, d time.Duration) result {
	if res.requeueAfter == 0 || d < res.requeueAfter {
		res.requeueAfter = d
	}
	return res
}

// waitForHolderToEnd keeps the hold of a lock that is being deleted until
// its holder has stopped, the way pvc-protection keeps a claim.
func (r *DistributedLockReconciler) waitForHolderToEnd(ctx context.Context, lc *lockContext) result {
	rec := lc.recorded()
	msg := fmt.Sprintf("The DistributedLock is being deleted; it waits until holder pod %s has stopped, then releases "+
		"the lock. To let it go at once (the pod may still run): kubectl annotate distributedlock %s %s=<reason>",
		rec.Pod, lc.lock.Name, locksv1alpha1.BreakAnnotation)
	r.setNotReady(lc, lc.holderPod, locksv1alpha1.ReasonDeletionWaitsForHolder, msg)
	return r.keep(ctx, lc)
}

// release gives up the hold of a holder that ended and records why.
func (r *DistributedLockReconciler) release(ctx context.Context, lc *lockContext) result {
	rec := *lc.recorded()
	if err := r.releaseRecorded(ctx, lc, &rec); err != nil {
		// The hold is no longer renewed: it expires after its TTL. Until
		// then the next grant fails in the backend, so no one else holds it.
		logf.FromContext(ctx).Info("releasing the hold of a holder that ended failed; it expires by its TTL",
			"pod", rec.Pod, "error", err.Error())
	}
	lock, pod := lc.lock, lc.holderPod
	reason := metrics.ReleaseFinished
	switch {
	case lock.Annotations[locksv1alpha1.ForceReleaseAnnotation] != "":
		reason = metrics.ReleaseForced
		r.eventf(lock, pod, corev1.EventTypeNormal, locksv1alpha1.ReasonForceReleased, "Release",
			"Released the lock after a force-release: holder pod %s has stopped (fencing token %d): %s",
			rec.Pod, rec.FencingToken, capValue(lock.Annotations[locksv1alpha1.ForceReleaseAnnotation]))
		lc.forceHandled = true
	case pod == nil:
		r.eventf(lock, nil, corev1.EventTypeNormal, locksv1alpha1.ReasonReleased, "Release",
			"Released the lock: holder pod %s was deleted", rec.Pod)
	default:
		r.eventf(lock, pod, corev1.EventTypeNormal, locksv1alpha1.ReasonReleased, "Release",
			"Released the lock: holder pod %s finished (%s)", rec.Pod, pod.Status.Phase)
	}
	r.unannotateHolder(ctx, lc, pod)
	observeRelease(lock, &rec, reason)
	lc.unrecord()
	return result{}
}

// observeRelease counts a release and how long the hold lasted.
func observeRelease(lock *locksv1alpha1.DistributedLock, rec *locksv1alpha1.LockHolder, reason string) {
	b := lock.Spec.Backend.Name()
	metrics.ReleasesTotal.WithLabelValues(b, reason).Inc()
	metrics.ObserveSince(metrics.HoldSeconds.WithLabelValues(b), rec.AcquiredAt.Time)
}

// releaseRecorded releases the recorded hold: through the keeper when it
// keeps it (no Secret needed), else over the lock's connection.
func (r *DistributedLockReconciler) releaseRecorded(ctx context.Context, lc *lockContext, rec *locksv1alpha1.LockHolder) error {
	ctx, cancel := r.backendContext(ctx)
	defer cancel()
	if lc.keptOK && lc.kept.Lease.Token == rec.FencingToken {
		_, err := r.Keeper.Release(ctx, lc.holdKey())
		return err
	}
	r.Keeper.Drop(lc.holdKey())
	if lc.conn == nil {
		return lc.connErr
	}
	lease := backend.Lease{Key: lc.key, Holder: rec.Identity, Token: rec.FencingToken}
	if err := lc.conn.Locker().Release(ctx, lease); err != nil {
		return fmt.Errorf("releasing %q (fencing token %d): %w", lc.key, rec.FencingToken, err)
	}
	return nil
}

// forget drops the record of a holder that ended after its hold was already
// gone.
func (r *DistributedLockReconciler) forget(ctx context.Context, lc *lockContext) result {
	rec := lc.recorded()
	r.Keeper.Drop(lc.holdKey())
	if lc.lock.Annotations[locksv1alpha1.ForceReleaseAnnotation] != "" {
		lc.forceHandled = true
	}
	r.eventf(lc.lock, nil, corev1.EventTypeNormal, locksv1alpha1.ReasonReleased, "Forget",
		"Holder pod %s has stopped; its hold (fencing token %d) was already gone from the backend", rec.Pod, rec.FencingToken)
	r.unannotateHolder(ctx, lc, lc.holderPod)
	lc.unrecord()
	return result{}
}

// markLost records that the backend no longer has the holder's hold while
// the holder still runs. The lock is not granted again until the holder
// ends or an operator force-releases or breaks it.
func (r *DistributedLockReconciler) markLost(ctx context.Context, lc *lockContext) result {
	rec := lc.recorded()
	r.Keeper.Drop(lc.holdKey())
	rec.Lost = true
	metrics.HoldsLostTotal.WithLabelValues(lc.lock.Spec.Backend.Name()).Inc()
	who := describeHolder(lc.inBackend)
	r.revoke(lc, rec, locksv1alpha1.ReasonLost)
	r.eventf(lc.lock, lc.holderPod, corev1.EventTypeWarning, locksv1alpha1.ReasonLost, "Lose",
		"%s", lostMessage(lc.lock, rec, who))
	r.markPodLost(ctx, lc.holderPod, who)
	return r.stayLost(lc)
}

func (r *DistributedLockReconciler) stayLost(lc *lockContext) result {
	rec := lc.recorded()
	r.setCondition(lc.lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonLost,
		lostMessage(lc.lock, rec, describeHolder(lc.inBackend)))
	return result{requeueAfter: r.pollInterval(lc)}
}

// breakHold lets the recorded hold go at once, as an operator asked with
// distlock.io/break: the old holder may still run, and is told.
func (r *DistributedLockReconciler) breakHold(ctx context.Context, lc *lockContext) result {
	rec := *lc.recorded()
	reason := lc.lock.Annotations[locksv1alpha1.BreakAnnotation]
	if !rec.Lost {
		if err := r.releaseRecorded(ctx, lc, &rec); err != nil {
			logf.FromContext(ctx).Info("releasing a broken hold failed; it expires by its TTL", "pod", rec.Pod, "error", err.Error())
		}
	}
	r.Keeper.Drop(lc.holdKey())
	if lc.holderPodOK == podRunning {
		r.revoke(lc, &rec, locksv1alpha1.ReasonBroken)
		r.markPodLost(ctx, lc.holderPod, "an operator broke the lock: "+reason)
	}
	r.eventf(lc.lock, lc.holderPod, corev1.EventTypeWarning, locksv1alpha1.ReasonBroken, "Break",
		"An operator broke the hold of pod %s (fencing token %d) at once; the pod may still run and must not use the lock: %s",
		rec.Pod, rec.FencingToken, capValue(reason))
	lc.breakHandled = true
	observeRelease(lc.lock, &rec, metrics.ReleaseBroken)
	if lc.lock.Annotations[locksv1alpha1.ForceReleaseAnnotation] != "" {
		lc.forceHandled = true
	}
	lc.unrecord()
	return result{}
}

// revoke lists pod in status.revoked, so that its waiter exits non-zero
// and it is never granted the lock again.
func (r *DistributedLockReconciler) revoke(lc *lockContext, rec *locksv1alpha1.LockHolder, reason string) {
	for _, rv := range lc.lock.Status.Revoked {
		if rv.PodUID == rec.PodUID {
			return
		}
	}
	revoked := append(lc.lock.Status.Revoked, locksv1alpha1.RevokedPod{
		Pod: rec.Pod, PodUID: rec.PodUID, FencingToken: rec.FencingToken, Reason: reason,
	})
	if over := len(revoked) - locksv1alpha1.MaxRevokedListed; over > 0 {
		revoked = revoked[over:]
	}
	lc.lock.Status.Revoked = revoked
}

// failClosed is used when the holder pod cannot be read: nothing is granted
// or released. The keeper keeps renewing a hold it has.
func (r *DistributedLockReconciler) failClosed(lc *lockContext) result {
	pod := "?"
	if rec := lc.recorded(); rec != nil {
		pod = rec.Pod
	} else if lc.ours != nil {
		pod = lc.ours.Pod
	}
	msg := fmt.Sprintf("Cannot tell whether holder pod %s still runs (%s); granting and releasing nothing until it can",
		pod, errMessage(lc.holdErr))
	r.setCondition(lc.lock, locksv1alpha1.ConditionHeld, metav1.ConditionUnknown, locksv1alpha1.ReasonUnknownHolder, msg)
	r.setNotReady(lc, nil, locksv1alpha1.ReasonUnknownHolder, msg)
	lc.noteUnsure(locksv1alpha1.ReasonUnknownHolder, msg)
	return result{requeueAfter: r.retryInterval()}
}

// adopt takes over a hold of ours that status does not record: a restart
// between acquiring and recording.
func (r *DistributedLockReconciler) adopt(ctx context.Context, lc *lockContext) result {
	pod := lc.holderPod
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	start := time.Now()
	// Acquiring as the same holder returns its existing hold and extends
	// it, with the recipe the hold was made with (a semaphore's holds are
	// listed as such, whatever maxHolders is now).
	limit := 1
	if lc.semaphoreInBackend {
		limit = max(lc.limit, 2)
	}
	lease, err := lc.conn.Locker().Acquire(callCtx, lc.key, lc.inBackend.Holder, lc.ttl, backend.WithLimit(limit))
	if err != nil {
		return r.backendError(lc, fmt.Errorf("adopting the hold of pod %s: %w", pod.Name, err))
	}
	rec := lc.record(r.newHolder(pod, lease, lc.ttl))
	r.keepHold(lc, rec, lease, start, pod)
	r.raiseFloor(lc, lease.Token)
	r.eventf(lc.lock, pod, corev1.EventTypeNormal, locksv1alpha1.ReasonAdopted, "Adopt",
		"Found pod %s holding the lock in the backend (fencing token %d) and took the hold over again", pod.Name, lease.Token)
	lc.focusOn(r.Keeper, rec.PodUID)
	if lc.lock.DeletionTimestamp.IsZero() {
		return r.keep(ctx, lc)
	}
	return r.waitForHolderToEnd(ctx, lc)
}

// releaseOrphan releases a hold of ours whose pod has ended.
func (r *DistributedLockReconciler) releaseOrphan(ctx context.Context, lc *lockContext) result {
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	lease := backend.Lease{Key: lc.key, Holder: lc.inBackend.Holder, Token: lc.inBackend.Token}
	if err := lc.conn.Locker().Release(callCtx, lease); err != nil {
		return r.backendError(lc, fmt.Errorf("releasing the hold of pod %s, which no longer runs: %w", lc.ours.Pod, err))
	}
	metrics.ReleasesTotal.WithLabelValues(lc.lock.Spec.Backend.Name(), metrics.ReleaseOrphan).Inc()
	r.eventf(lc.lock, nil, corev1.EventTypeNormal, locksv1alpha1.ReasonReleased, "Release",
		"Released the hold of pod %s (fencing token %d), which no longer runs", lc.ours.Pod, lease.Token)
	return result{}
}
