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
	"errors"
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

// regressedRetry is how often a lock whose backend would hand out a token at
// or below the recorded one is tried again.
const regressedRetry = 30 * time.Second

// grant acquires the lock for the first pod in line. When someone else
// holds it, a backend with a queue of its own (ZooKeeper) keeps that pod's
// place in line, so that pods and outside programs take turns.
func (r *DistributedLockReconciler) grant(ctx context.Context, lc *lockContext) result {
	head := r.nextInLine(lc)
	if head == nil {
		r.queued.leave(ctx, lc, "")
		if lc.inBackend.Held && lc.takenWithOthers() {
			return r.heldElsewhere(ctx, lc, "")
		}
		return r.free(ctx, lc)
	}
	r.queued.leave(ctx, lc, head.UID) // a place kept for another pod is given up
	id := r.identity(lc.lock, head).String()
	floor := lc.lock.Status.LastFencingToken
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	start := time.Now()
	lease, err := lc.conn.Locker().Acquire(callCtx, lc.key, id, lc.ttl, backend.WithMinToken(floor), backend.WithQueue(),
		backend.WithLimit(lc.limit))
	switch {
	case err == nil && lease.Token <= floor:
		// A backend must never do this; refuse rather than hand out a token
		// that goes backwards.
		_ = lc.conn.Locker().Release(callCtx, lease)
		return r.fencingRegressed(lc, fmt.Errorf("the backend handed out fencing token %d, not above %d", lease.Token, floor))
	case err == nil:
		r.queued.forget(lc.name)
		return r.granted(ctx, lc, head, lease, start)
	case errors.Is(err, backend.ErrNotAcquired):
		if lease.Queued {
			r.queued.keep(lc.name, head.UID, lease)
		}
		if !lc.inBackend.Held {
			lc.inBackend, _ = lc.conn.Locker().Inspect(callCtx, lc.key)
		}
		return r.heldElsewhere(ctx, lc, id)
	case errors.Is(err, backend.ErrFencingRegressed):
		return r.fencingRegressed(lc, err)
	default:
		return r.backendError(lc, fmt.Errorf("acquiring %q for pod %s: %w", lc.key, head.Name, err))
	}
}

// granted records a new hold, hands it to the keeper and tells the pod.
func (r *DistributedLockReconciler) granted(ctx context.Context, lc *lockContext, pod *corev1.Pod,
	lease backend.Lease, start time.Time) result {
	rec := lc.record(r.newHolder(pod, lease, lc.ttl))
	lc.grantedNow++
	r.keepHold(lc, rec, lease, start, pod)
	r.raiseFloor(lc, lease.Token)
	r.setHeld(lc.lock, rec)
	b := lc.lock.Spec.Backend.Name()
	metrics.GrantsTotal.WithLabelValues(b).Inc()
	metrics.ObserveSince(metrics.WaitSeconds.WithLabelValues(b), pod.CreationTimestamp.Time)
	r.eventf(lc.lock, pod, corev1.EventTypeNormal, locksv1alpha1.ReasonGranted, "Grant",
		"Granted the lock to pod %s (fencing token %d)", pod.Name, lease.Token)
	r.annotateHolder(ctx, lc, pod, lease.Token)
	return result{requeueAfter: r.nextLook(lc, rec)}
}

// heldElsewhere reports a holder outside this controller and arranges to
// look again when it goes: at once through a backend watch where the
// backend has them, else by polling.
func (r *DistributedLockReconciler) heldElsewhere(ctx context.Context, lc *lockContext, waiter string) result {
	r.setCondition(lc.lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonHeldElsewhere,
		fmt.Sprintf("The lock is held outside this controller by %s; waiting pods are granted it "+
			"once that holder releases it or its hold expires", describeHolder(lc.inBackend)))
	if w, ok := lc.conn.Locker().(backend.Watcher); ok {
		r.watches.ensure(ctx, lc.name, lc.conn.Clone(), w, lc.key, waiter)
		// Look again within a third of the lease anyway: a place kept in
		// line must be refreshed before it expires.
		return result{requeueAfter: keeper.RenewInterval(lc.ttl)}
	}
	return result{requeueAfter: r.pollInterval(lc)}
}

// pollInterval is how often a lock held by someone who sends no events is
// looked at again: the poll interval, or sooner when the hold expires
// sooner.
func (r *DistributedLockReconciler) pollInterval(lc *lockContext) time.Duration {
	d := min(orDefault(r.ForeignPollInterval, DefaultForeignPollInterval), keeper.RenewInterval(lc.ttl))
	if ttl := lc.inBackend.TTL; ttl > 0 && ttl < d {
		d = max(ttl, 10*time.Millisecond)
	}
	return d
}

func (r *DistributedLockReconciler) fencingRegressed(lc *lockContext, err error) result {
	msg := fmt.Sprintf("Not granting the lock: %s. status.lastFencingToken is %d, and a token must never go backwards "+
		"(the backend's data was probably wiped). See docs/design.md, 'Fencing tokens', for what to do",
		errMessage(err), lc.lock.Status.LastFencingToken)
	r.setCondition(lc.lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonFencingRegressed, msg)
	r.setNotReady(lc, nil, locksv1alpha1.ReasonFencingRegressed, msg)
	return result{requeueAfter: regressedRetry}
}

// backendDown records that the backend cannot be used: nothing is granted.
func (r *DistributedLockReconciler) backendDown(lc *lockContext) result {
	err := lc.inspectErr
	if err == nil {
		err = lc.connErr
	}
	return r.backendError(lc, err)
}

// backendError records a failed backend call. Nothing is granted or released
// while it lasts; the keeper goes on renewing the holds it has. A failure
// the pool remembers is retried when the pool will dial again.
func (r *DistributedLockReconciler) backendError(lc *lockContext, err error) result {
	reason := backendReason(err)
	msg := fmt.Sprintf("%s; nothing is granted or released until this is fixed", errMessage(err))
	r.setCondition(lc.lock, locksv1alpha1.ConditionBackendReachable, metav1.ConditionFalse, reason, msg)
	r.setNotReady(lc, nil, reason, msg)
	if lc.conn != nil && (errors.Is(err, backend.ErrUnauthorized) || errors.Is(err, backend.ErrUnreachable)) {
		// Connect afresh next time: new credentials, or a server whose name
		// now resolves to another address.
		r.Backends.Forget(lc.fingerprint)
	}
	return result{requeueAfter: retryAfter(err, r.retryInterval(), r.now())}
}

// free records that nobody holds the lock and nobody may be granted it.
func (r *DistributedLockReconciler) free(ctx context.Context, lc *lockContext) result {
	r.queued.leave(ctx, lc, "")
	nobody := "Nobody holds the lock"
	if lc.foreign > 0 {
		// A semaphore with permits left beside outside holders.
		nobody = fmt.Sprintf("No pod holds the lock; %d of its %d permits are held outside this controller (%s)",
			lc.foreign, lc.limit, describeHolder(lc.inBackend))
	}
	msg := nobody + " and no pod waits for it"
	for first := range lc.waitingPods(lc.holderUIDs()) {
		msg = fmt.Sprintf("%s; %d pod(s) ask for it but none can use it yet (%s)",
			nobody, lc.line.Len(lc.name), notReadyReason(lc.lock, first, revokedUIDs(lc.lock)))
		break
	}
	r.setCondition(lc.lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonFree, msg)
	return result{}
}

func (r *DistributedLockReconciler) newHolder(pod *corev1.Pod, lease backend.Lease, ttl time.Duration) locksv1alpha1.LockHolder {
	return locksv1alpha1.LockHolder{
		Pod:           pod.Name,
		PodUID:        pod.UID,
		Identity:      lease.Holder,
		AcquiredAt:    metav1.NewTime(r.now().Truncate(time.Second)),
		LeaseDuration: &metav1.Duration{Duration: ttl},
		FencingToken:  lease.Token,
	}
}

// raiseFloor records token as the highest handed out, if it is.
func (r *DistributedLockReconciler) raiseFloor(lc *lockContext, token int64) {
	if token > lc.lock.Status.LastFencingToken {
		lc.lock.Status.LastFencingToken = token
	}
}

// logOnError logs a failure that changes nothing about the lock.
func logOnError(ctx context.Context, err error, msg string, kv ...any) {
	if err != nil {
		logf.FromContext(ctx).Info(msg, append(kv, "error", err.Error())...)
	}
}
